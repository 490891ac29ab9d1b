# SPDX-License-Identifier: Apache-2.0
"""``exporter.config.loading``: a full valid config, path templates, name normalization, errors that name the
key, and ``check-config`` run for real as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import config
from exporter.core.levels import PRESETS, Bounds, Metric
from exporter.errors import ConfigError
from exporter.settings import DEFAULT_TAG_PATTERN, Config, ManifestRule, Names

FULL = r"""
store:
  path: state/dora.db
http:
  listen: "127.0.0.1:9478"
  webhook_listen: "127.0.0.1:9479"
log:
  level: INFO
  format: json
production_environment: prod
environments: [dev, staging]
windows: [1d, 7d, 30d, 90d]
levels:
  preset: dora-2024
failure_window: 2h
rollback_min_age: 10m
revert_pattern: '(?i)^(revert|rollback|undo)'
change_start: author_time
names:
  environments:
    production: prod
  services:
    legacy-api: api
gitops:
  - repo: https://git.example.com/minishop/minishop.git
    branch: release
    poll_interval: 2m
    manifests:
      # one file per service (and environment, in the file name)
      - path: "infra/helm-charts/{service}/values-{environment}.yaml"
        yaml_key: image.tag
      # one file per environment and service
      - path: "charts/image-tags/{environment}/{service}"
        yaml_key: tag
      # one .env file per environment, several services in it
      - path: "deploy/{environment}.env"
        regex: '^(?P<service>[A-Z_]+)_IMAGE_TAG=(?P<tag>\S+)$'
services:
  - name: user-service
    repo: https://git.example.com/minishop/minishop.git
    paths: [services/user-service/]
  - name: api
    repo: /srv/git/api.git
    paths: [cmd/, internal/]
    tag_pattern: "refs/tags/{tag}"
  - name: web
    repo: /srv/git/web.git
    tag_pattern: '(?P<sha>[0-9a-f]{8})$'
  - name: worker
    tag_pattern: 'release-(?P<sha>[0-9a-f]{7,40})'
"""


def parse(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> Config:
    return config.parse(yaml.safe_load(text), environ or {}, tmp_path)


def test_full_config(tmp_path: Path) -> None:
    cfg = parse(FULL, tmp_path)
    assert cfg.store_path == tmp_path / "state" / "dora.db"
    assert cfg.data_dir == tmp_path / "state"
    assert cfg.listen == ("127.0.0.1", 9478)
    assert cfg.webhook_listen == ("127.0.0.1", 9479)
    assert (cfg.log_level, cfg.log_format) == ("info", "json")
    assert cfg.production_environment == "prod"
    assert cfg.environments == ("dev", "staging", "prod")  # production is always an environment
    assert [(w.label, w.seconds) for w in cfg.windows] == [
        ("1d", 86400.0),
        ("7d", 604800.0),
        ("30d", 2592000.0),
        ("90d", 7776000.0),
    ]
    assert cfg.levels_name == "dora-2024"
    assert cfg.thresholds == PRESETS["dora-2024"]
    assert cfg.failure_window == 7200.0
    assert cfg.rollback_min_age == 600.0
    assert cfg.revert_pattern.pattern == "(?i)^(revert|rollback|undo)"
    assert cfg.revert_pattern.search("Undo the release")
    assert cfg.change_start == "author_time"

    (g,) = cfg.gitops
    assert (g.repo, g.branch, g.poll_interval) == ("https://git.example.com/minishop/minishop.git", "release", 120.0)
    per_service, per_env_service, dotenv = g.manifests
    assert (per_service.yaml_key, per_service.regex) == (("image", "tag"), None)
    assert per_service.pathspec == ":(glob)infra/helm-charts/*/values-*.yaml"
    assert (per_env_service.yaml_key, per_env_service.pathspec) == (("tag",), ":(glob)charts/image-tags/*/*")
    assert dotenv.yaml_key is None and dotenv.regex is not None
    assert dotenv.pathspec == ":(glob)deploy/*.env"
    text = "USER_SERVICE_IMAGE_TAG=9fceb02\nPAYMENT_SERVICE_IMAGE_TAG=release-1\n# comment\nAPI_IMAGE_TAG=v7\n"
    assert [(m["service"], m["tag"]) for m in dotenv.regex.finditer(text)] == [
        ("USER_SERVICE", "9fceb02"),
        ("PAYMENT_SERVICE", "release-1"),
        ("API", "v7"),
    ]

    assert [(s.name, s.repo, s.paths, s.tag_pattern, s.ref_template) for s in cfg.services] == [
        (
            "user-service",
            "https://git.example.com/minishop/minishop.git",
            ("services/user-service/",),
            DEFAULT_TAG_PATTERN,
            None,
        ),
        ("api", "/srv/git/api.git", ("cmd/", "internal/"), "refs/tags/{tag}", "refs/tags/{tag}"),
        ("web", "/srv/git/web.git", (), "(?P<sha>[0-9a-f]{8})$", None),
        ("worker", None, (), "release-(?P<sha>[0-9a-f]{7,40})", None),
    ]
    assert cfg.service("web") is cfg.services[2]
    assert cfg.service("nope") is None
    assert cfg.names.environment("production") == "prod"
    assert cfg.names.service("legacy-api") == "api"


def test_defaults(tmp_path: Path) -> None:
    cfg = parse("{}", tmp_path)
    assert cfg.store_path == tmp_path / "dora.db"
    assert cfg.listen == ("127.0.0.1", 9478)
    assert cfg.webhook_listen is None
    assert cfg.production_environment == "prod"
    assert cfg.environments == ("prod",)
    assert [w.label for w in cfg.windows] == ["1d", "7d", "30d", "90d"]
    assert cfg.levels_name == "dora-2023"
    assert cfg.thresholds == PRESETS["dora-2023"]
    assert cfg.failure_window == 3600.0
    assert cfg.rollback_min_age == 300.0
    assert cfg.change_start == "commit_time"
    assert cfg.gitops == () and cfg.services == ()


def test_custom_thresholds(tmp_path: Path) -> None:
    cfg = parse(
        """
levels:
  preset: custom
  custom:
    lead_time: {elite: 2h, high: 2d, medium: 2w}
    deployment_frequency: {elite: 2, high: 0.5, medium: 0.1}
""",
        tmp_path,
    )
    assert cfg.levels_name == "custom"
    assert cfg.thresholds[Metric.LEAD_TIME] == Bounds(7200.0, 172800.0, 1209600.0)
    assert cfg.thresholds[Metric.DEPLOYMENT_FREQUENCY] == Bounds(2.0, 0.5, 0.1)
    # metrics not overridden keep the default preset's bounds
    assert cfg.thresholds[Metric.CHANGE_FAILURE_RATE] == PRESETS["dora-2023"][Metric.CHANGE_FAILURE_RATE]


def rule_for(template: str, tmp_path: Path) -> ManifestRule:
    rule: dict[str, Any] = {"path": template, "yaml_key": "image.tag"}
    if "{service}" not in template:
        rule["service"] = "api"
    if "{environment}" not in template:
        rule["environment"] = "prod"
    return config.parse({"gitops": [{"repo": "/srv/gitops", "manifests": [rule]}]}, {}, tmp_path).gitops[0].manifests[0]


@pytest.mark.parametrize(
    ("template", "path", "groups"),
    [
        # a placeholder filling a whole segment, or part of one
        ("infra/helm-charts/{service}/values-{environment}.yaml", "infra/helm-charts/api/values-prod.yaml",
         {"service": "api", "environment": "prod"}),
        ("infra/helm-charts/{service}/values-{environment}.yaml", "infra/helm-charts/user-service/values-staging.yaml",
         {"service": "user-service", "environment": "staging"}),
        ("infra/helm-charts/{service}/values-{environment}.yaml", "infra/helm-charts/api/x/values-prod.yaml", None),
        ("infra/helm-charts/{service}/values-{environment}.yaml", "infra/helm-charts/api/values-prod.yml", None),
        ("infra/helm-charts/{service}/values-{environment}.yaml", "infra/helm-charts/api/values-.yaml", None),
        ("infra/helm-charts/{service}/values-{environment}.yaml", "other/infra/helm-charts/api/values-prod.yaml", None),
        ("charts/image-tags/{environment}/{service}", "charts/image-tags/prod/api",
         {"environment": "prod", "service": "api"}),
        ("charts/image-tags/{environment}/{service}", "charts/image-tags/prod/api/extra", None),
        ("charts/image-tags/{environment}/{service}", "charts/image-tags/prod", None),
        ("deploy/{environment}.env", "deploy/prod.env", {"environment": "prod"}),
        ("deploy/{environment}.env", "deploy/eu/prod.env", None),
        ("deploy/{environment}.env", "deploy/prod.envrc", None),
        # `*` matches within one segment, including nothing
        ("apps/*/{service}.yaml", "apps/team-a/api.yaml", {"service": "api"}),
        ("apps/*/{service}.yaml", "apps/team-a/sub/api.yaml", None),
        ("apps/v*/{service}.yaml", "apps/v/api.yaml", {"service": "api"}),
        ("apps/v*/{service}.yaml", "apps/x2/api.yaml", None),
        # the rest is literal: a dot is not "any character"
        ("kustomize/{environment}/kustomization.yaml", "kustomize/prod/kustomizationxyaml", None),
        ("kustomize/{environment}/kustomization.yaml", "kustomize/prod/kustomization.yaml", {"environment": "prod"}),
    ],
)  # fmt: skip
def test_path_template(template: str, path: str, groups: dict[str, str] | None, tmp_path: Path) -> None:
    m = rule_for(template, tmp_path).path_regex.match(path)
    assert (m.groupdict() if m else None) == groups


@pytest.mark.parametrize(
    ("normalize", "services", "environments", "kind", "raw", "name"),
    [
        (True, {}, {}, "service", "API", "api"),
        (True, {}, {}, "service", "User_Service", "user-service"),
        (True, {}, {}, "service", "user-service", "user-service"),
        (True, {"legacy-api": "api"}, {}, "service", "LEGACY_API", "api"),  # normalized, then mapped
        (True, {"LEGACY": "api"}, {}, "service", "LEGACY", "api"),  # an exact raw key wins
        (True, {}, {"production": "prod"}, "environment", "production", "prod"),
        (True, {}, {"production": "prod"}, "environment", "Production", "prod"),
        (True, {}, {"production": "prod"}, "environment", "PROD", "prod"),
        (True, {}, {"production": "prod"}, "environment", "staging", "staging"),
        (False, {}, {}, "service", "API", "API"),
        (False, {}, {"production": "prod"}, "environment", "production", "prod"),
    ],
)
def test_names(
    normalize: bool, services: dict[str, str], environments: dict[str, str], kind: str, raw: str, name: str
) -> None:
    names = Names(normalize, services, environments)
    assert getattr(names, kind)(raw) == name


def test_names_from_config(tmp_path: Path) -> None:
    cfg = parse("names: {normalize: true, environments: {production: prod}}", tmp_path)
    assert (cfg.names.service("API"), cfg.names.environment("production")) == ("api", "prod")


GOOD_GITOPS = """
gitops:
  - repo: /srv/gitops
    manifests:
      - path: "apps/{service}/{environment}.yaml"
        yaml_key: image.tag
"""

RULE = "gitops:\n  - repo: /srv/gitops\n    manifests:\n      - "


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param(
            "gitops:\n  - repo: /srv/gitops\n    manifest:\n      - {path: 'a/{service}.yaml', yaml_key: tag}\n",
            "gitops[0].manifest",
            id="unknown-key-in-gitops",
        ),
        pytest.param("gitop: []\n", "gitop", id="unknown-top-level-key"),
        pytest.param(GOOD_GITOPS + "        image: x\n", "gitops[0].manifests[0].image", id="unknown-key-in-rule"),
        pytest.param("store: {path: x.db, size: 1}\n", "store.size", id="unknown-key-in-section"),
        pytest.param("failure_window: 1 hour\n", "failure_window", id="bad-duration"),
        pytest.param("rollback_min_age: soon\n", "rollback_min_age", id="bad-min-age"),
        pytest.param("windows: 7d\n", "windows", id="windows-not-a-list"),
        pytest.param("windows: []\n", "windows", id="windows-empty"),
        pytest.param("windows: [7d, fortnight]\n", "windows[1]", id="bad-window"),
        pytest.param("windows: [7d, 0s]\n", "windows[1]", id="zero-window"),
        pytest.param("windows: [7d, 7d]\n", "windows", id="duplicate-window"),
        pytest.param("levels: {preset: dora-2022}\n", "levels.preset", id="unknown-preset"),
        pytest.param(
            "levels: {preset: custom, custom: {lead_time: {elite: 1w, high: 1d, medium: 30d}}}\n",
            "levels.custom.lead_time",
            id="custom-out-of-order",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {deployment_frequency: {elite: 0.1, high: 0.5, medium: 1}}}\n",
            "levels.custom.deployment_frequency",
            id="custom-frequency-out-of-order",
        ),
        pytest.param(
            "levels: {preset: dora-2023, custom: {lead_time: {elite: 1h, high: 1d, medium: 30d}}}\n",
            "levels.custom.lead_time",
            id="custom-without-custom-preset",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {lead_time: {elite: 1h, high: 1d, medium: 30d, low: 1y}}}\n",
            "levels.custom.lead_time.low",
            id="custom-unknown-level",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {lead_time: {elite: 1h, high: soon, medium: 30d}}}\n",
            "levels.custom.lead_time.high",
            id="custom-bad-duration",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {lead_times: {elite: 1h, high: 1d, medium: 30d}}}\n",
            "levels.custom.lead_times",
            id="custom-unknown-metric",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {lead_time: {elite: 1h, high: 1d}}}\n",
            "levels.custom.lead_time.medium",
            id="custom-missing-level",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {change_failure_rate: {elite: 5, high: 10, medium: 15}}}\n",
            "levels.custom.change_failure_rate.elite",
            id="custom-ratio-as-percent",
        ),
        pytest.param(
            "levels: {preset: custom, custom: {deployment_frequency: {elite: 1, high: 0.5, medium: -1}}}\n",
            "levels.custom.deployment_frequency.medium",
            id="custom-negative-frequency",
        ),
        pytest.param("failure_window: null\n", "failure_window", id="null-duration"),
        pytest.param("failure_window: [1h]\n", "failure_window", id="list-duration"),
        pytest.param("windows: [7d, null]\n", "windows[1]", id="null-window"),
        pytest.param("revert_pattern: '(unclosed'\n", "revert_pattern", id="bad-revert-pattern"),
        pytest.param("change_start: merge_time\n", "change_start", id="bad-change-start"),
        pytest.param("http: {listen: localhost}\n", "http.listen", id="listen-without-port"),
        pytest.param("http: {listen: '127.0.0.1:99999'}\n", "http.listen", id="listen-bad-port"),
        pytest.param("log: {level: verbose}\n", "log.level", id="bad-log-level"),
        pytest.param("gitops:\n  - branch: main\n", "gitops[0].repo", id="missing-repo"),
        pytest.param("gitops: [/srv/gitops]\n", "gitops[0]", id="gitops-entry-not-a-mapping"),
        pytest.param("gitops:\n  - repo: /srv/gitops\n", "gitops[0].manifests", id="no-manifests"),
        pytest.param(
            GOOD_GITOPS + "    poll_interval: 100ms\n",
            "gitops[0].poll_interval",
            id="poll-too-fast",
        ),
        pytest.param(
            RULE + "{path: 'deploy/{environment}.env', regex: '(?P<tag>['}\n",
            "gitops[0].manifests[0].regex",
            id="bad-regex",
        ),
        pytest.param(
            RULE + "{path: 'deploy/{environment}.env', regex: '^(?P<service>[A-Z_]+)=(\\S+)$'}\n",
            "gitops[0].manifests[0].regex",
            id="regex-without-tag-group",
        ),
        pytest.param(
            RULE + "{path: 'deploy/{environment}.env', regex: '^TAG=(?P<tag>\\S+)$'}\n",
            "gitops[0].manifests[0].path",
            id="no-way-to-know-the-service",
        ),
        pytest.param(
            RULE + "{path: 'apps/{app}/{environment}.yaml', yaml_key: tag}\n",
            "gitops[0].manifests[0].path",
            id="unknown-placeholder",
        ),
        pytest.param(
            RULE + "{path: 'apps/{service}/{environment}.yaml', yaml_key: tag, regex: '(?P<tag>.*)'}\n",
            "gitops[0].manifests[0].yaml_key",
            id="yaml-key-and-regex",
        ),
        pytest.param(
            RULE + "{path: 'apps/{service}/{environment}.yaml', yaml_key: 'a..b'}\n",
            "gitops[0].manifests[0].yaml_key",
            id="bad-yaml-key",
        ),
        pytest.param(
            RULE + "{path: '/abs/{service}/{environment}.yaml', yaml_key: tag}\n",
            "gitops[0].manifests[0].path",
            id="absolute-path",
        ),
        pytest.param("services:\n  - name: a\n  - name: b\n    tag_pattern: 'v[0-9]+'\n", "services[1].tag_pattern",
                     id="tag-pattern-without-sha-group"),
        pytest.param("services:\n  - name: a\n    tag_pattern: '(?P<sha>['\n", "services[0].tag_pattern",
                     id="tag-pattern-bad-regex"),
        pytest.param("services:\n  - name: a\n    labels: [team]\n", "services[0].labels", id="labels-not-a-mapping"),
        pytest.param("services:\n  - name: a\n    labels: {team-name: x}\n", "services[0].labels.team-name",
                     id="label-name-invalid"),
        pytest.param("services:\n  - name: a\n    labels: {__team: x}\n", "services[0].labels.__team",
                     id="label-name-reserved-prefix"),
        pytest.param("services:\n  - name: a\n    labels: {environment: x}\n", "services[0].labels.environment",
                     id="label-name-of-the-exporter"),
        pytest.param("services:\n  - name: a\n    labels: {job: x}\n", "services[0].labels.job", id="label-name-job"),
        pytest.param("services:\n  - name: a\n    labels: {tier: 1}\n", "services[0].labels.tier",
                     id="label-value-not-a-string"),
        pytest.param("services:\n  - paths: [a/]\n", "services[0].name", id="service-without-name"),
        pytest.param("services:\n  - name: a\n    paths: a/\n", "services[0].paths", id="paths-not-a-list"),
        pytest.param("services:\n  - name: a\n  - name: a\n", "services", id="duplicate-service"),
        pytest.param("names: {environments: [prod]}\n", "names.environments", id="names-not-a-mapping"),
        pytest.param("environments: prod\n", "environments", id="environments-not-a-list"),
        pytest.param("- a\n- b\n", "<root>", id="root-not-a-mapping"),
    ],
)  # fmt: skip
def test_bad_config_names_the_key(text: str, key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_load_reports_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "dora.yaml"
    path.write_text("store: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, {})
    assert info.value.key == "<root>"


def test_load_resolves_paths_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "dora.yaml"
    path.write_text("store: {path: db/dora.db}\n")
    cfg = config.load(path, {})
    assert cfg.store_path == tmp_path / "etc" / "db" / "dora.db"
    assert cfg.source_path == path


# --- the CLI, for real -----------------------------------------------------------------------------


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DORA_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("failure_window: 1 hour\n", "failure_window"),
        ("levels: {preset: custom, custom: {lead_time: {elite: 1h, high: 1d}}}\n", "levels.custom.lead_time.medium"),
        ("gitops:\n  - repo: /srv/gitops\n    manifest: []\n", "gitops[0].manifest"),
    ],
)
def test_check_config_bad_exits_2_naming_the_key(text: str, key: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    p = cli("check-config", "--config", "bad.yaml", cwd=tmp_path, env={})
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    assert re.search(rf"config error: {re.escape(key)}: ", p.stderr), p.stderr


def test_check_config_missing_file_exits_2(tmp_path: Path) -> None:
    p = cli("check-config", "--config", "absent.yaml", cwd=tmp_path, env={})
    assert p.returncode == 2
    assert "--config" in p.stderr


def test_check_config_redacts_secrets(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nfilesecret\n-----END PRIVATE KEY-----\n")
    text = FULL.replace(
        "https://git.example.com/minishop/minishop.git", "https://user:tok@127.0.0.1/x.git"
    )  # both the GitOps repo and user-service's source repo
    (tmp_path / "dora.yaml").write_text(text)
    p = cli(
        "check-config",
        "--config",
        "dora.yaml",
        cwd=tmp_path,
        env={"DORA_GITHUB_TOKEN": "supersecret", "DORA_GITHUB_APP_PRIVATE_KEY_FILE": str(tmp_path / "key.pem")},
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    for secret in ("supersecret", "filesecret", "user:tok", "tok@"):
        assert secret not in out
    assert "<redacted>" in p.stdout
    doc: dict[str, Any] = yaml.safe_load(p.stdout)
    assert doc["secrets"] == {
        "github_token": "<redacted>",
        "github_app_id": "<unset>",
        "github_app_private_key": "<redacted>",
        "argocd_webhook_token": "<unset>",
        "github_webhook_secret": "<unset>",
    }
    assert doc["gitops"][0]["repo"] == "https://<redacted>@127.0.0.1/x.git"
    assert doc["services"][0]["repo"] == "https://<redacted>@127.0.0.1/x.git"
    # the rest is the effective configuration, as validated
    assert doc["windows"] == ["1d", "7d", "30d", "90d"]
    assert doc["levels"]["preset"] == "dora-2024"
    assert doc["failure_window"] == "7200s"
    assert doc["change_start"] == "author_time"
    assert [m["path"] for m in doc["gitops"][0]["manifests"]] == [
        "infra/helm-charts/{service}/values-{environment}.yaml",
        "charts/image-tags/{environment}/{service}",
        "deploy/{environment}.env",
    ]
    assert doc["store"]["path"] == str(tmp_path / "state" / "dora.db")


def test_service_takes_the_longest_match_when_both_share_a_segment() -> None:
    """Service names carry hyphens far more often than environment names do."""
    from exporter.config.convert import path_regex

    m = path_regex("apps/{service}-{environment}.yaml").match("apps/user-service-prod.yaml")
    assert m is not None
    assert (m.group("service"), m.group("environment")) == ("user-service", "prod")


# -- github ---------------------------------------------------------------------------------------

GITHUB_BASE: dict[str, Any] = {
    "services": [{"name": "shop", "repo": "github:acme/shop", "paths": ["services/shop"]}],
    "change_start": "pr_first_commit",
}


def test_the_charts_github_section_and_webhook_listener_are_accepted() -> None:
    cfg = config.parse({"github": {"enabled": False}, "http": {"webhook_listen": "0.0.0.0:9479"}}, environ={})
    assert not cfg.github.enabled and cfg.webhook_listen == ("0.0.0.0", 9479)


def test_a_full_github_section() -> None:
    raw = {
        **GITHUB_BASE,
        "github": {
            "enabled": True,
            "base_url": "https://ghe.example.com/api/v3/",
            "poll_interval": "2m",
            "budget": "20s",
            "max_rate_limit_wait": "30s",
            "incidents": {
                "repos": ["acme/ops"],
                "label": "sev",
                "failure_window": "12h",
                "services": [
                    {"service": "shop", "label": "svc:shop"},
                    {"service": "shop", "title_pattern": "(?i)shop"},
                ],
            },
        },
    }
    cfg = config.parse(raw, environ={"DORA_GITHUB_TOKEN": "ghp_secret"})
    g = cfg.github
    assert (g.base_url, g.poll_interval, g.budget, g.max_rate_limit_wait) == (
        "https://ghe.example.com/api/v3",
        120,
        20,
        30,
    )
    assert g.incidents.repos == ("acme/ops",) and g.incidents.failure_window == 12 * 3600
    assert g.incidents.environment is None and [m.service for m in g.incidents.services] == ["shop", "shop"]
    assert "ghp_secret" not in str(config.redacted(cfg))
    assert config.redacted(cfg)["github"]["incidents"]["label"] == "sev"


def test_incidents_default_to_the_incident_label_and_a_24h_window() -> None:
    raw = {
        **GITHUB_BASE,
        "github": {"enabled": True, "incidents": {"repos": ["a/b"], "services": [{"service": "shop", "label": "x"}]}},
    }
    inc = config.parse(raw, environ={}).github.incidents
    assert (inc.label, inc.failure_window) == ("incident", 24 * 3600)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"change_start": "pr_first_commit"}, "change_start"),
        ({"services": [{"name": "s", "repo": "github:acme/s"}]}, "services[0].repo"),
        ({"services": [{"name": "s", "repo": "github:acme"}], "github": {"enabled": True}}, "services[0].repo"),
        ({"github": {"enabled": True, "base_url": "ftp://x"}}, "github.base_url"),
        ({"github": {"budget": "0s"}}, "github.budget"),
        ({"github": {"retries": 11}}, "github.retries"),
        ({"github": {"tokn": "x"}}, "github.tokn"),
        ({"github": {"incidents": {"repos": ["not-a-repo"]}}}, "github.incidents.repos"),
        ({"github": {"incidents": {"repos": ["a/b"]}}}, "github.incidents.services"),
        (
            {"github": {"incidents": {"services": [{"service": "nope", "label": "x"}]}}},
            "github.incidents.services[0].service",
        ),
        (
            {"services": [{"name": "s"}], "github": {"incidents": {"services": [{"service": "s"}]}}},
            "github.incidents.services[0].label",
        ),
        ({"github": {"incidents": {"failure_window": "0s"}}}, "github.incidents.failure_window"),
    ],
)
def test_github_errors_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(raw, environ={})
    assert err.value.key == key


def test_a_github_app_needs_its_installation_id() -> None:
    env = {"DORA_GITHUB_APP_ID": "123"}
    with pytest.raises(ConfigError) as err:
        config.parse({"github": {"enabled": True}}, environ=env)
    assert err.value.key == "github.app_installation_id"
    assert (
        config.parse({"github": {"enabled": True, "app_installation_id": 9}}, environ=env).github.app_installation_id
        == 9
    )


# -- github.deployments ---------------------------------------------------------------------------


def test_deployments_are_off_by_default_and_read_every_github_service_repo_when_on() -> None:
    assert not config.parse({**GITHUB_BASE, "github": {"enabled": True}}, environ={}).github.deployments.enabled
    raw = {
        "services": [
            {"name": "shop", "repo": "github:acme/shop"},
            {"name": "cart", "repo": "/srv/cart"},
            {"name": "legacy"},
        ],
        "environments": ["staging"],
        "github": {
            "enabled": True,
            "deployments": {
                "enabled": True,
                "repos": [{"repo": "acme/cart", "service": "cart"}, {"repo": "github:acme/old", "service": "legacy"}],
                "environments": {"production": "prod", "stage": "staging"},
                "match_window": "30m",
            },
        },
    }
    cfg = config.parse(raw, environ={"DORA_GITHUB_TOKEN": "ghp_secret"})
    d = cfg.github.deployments
    repos = [(r.repo, r.service) for r in d.repos]
    assert repos == [("acme/cart", "cart"), ("acme/old", "legacy"), ("acme/shop", "shop")]
    assert (d.match_window, d.poll_interval, d.backfill, d.pending_max_age) == (1800, 300, 30 * 86400, 86400)
    shown = config.redacted(cfg)["github"]["deployments"]
    assert shown["environments"] == {"production": "prod", "stage": "staging"} and shown["match_window"] == "1800s"
    assert "ghp_secret" not in str(config.redacted(cfg))


def test_a_repo_listed_explicitly_wins_over_the_services_that_share_it() -> None:
    services = [{"name": "a", "repo": "github:acme/mono"}, {"name": "b", "repo": "github:acme/mono"}]
    raw = {"services": services, "github": {"enabled": True, "deployments": {"enabled": True}}}
    with pytest.raises(ConfigError) as err:
        config.parse(raw, environ={})
    assert err.value.key == "github.deployments.repos" and "a, b" in str(err.value)
    raw["github"]["deployments"]["repos"] = [{"repo": "acme/mono", "service": "b"}]  # type: ignore[index]
    cfg = config.parse(raw, environ={})
    assert [(r.repo, r.service) for r in cfg.github.deployments.repos] == [("acme/mono", "b")]


@pytest.mark.parametrize(
    ("deployments", "key"),
    [
        ({"enabled": True}, "github.deployments.repos"),  # nothing to read
        ({"repos": [{"repo": "nope", "service": "shop"}]}, "github.deployments.repos[0].repo"),
        ({"repos": [{"repo": "a/b", "service": "cart"}]}, "github.deployments.repos[0].service"),
        ({"repos": [{"repo": "a/b"}]}, "github.deployments.repos[0].service"),
        (
            {"repos": [{"repo": "a/b", "service": "shop"}, {"repo": "a/b", "service": "shop"}]},
            "github.deployments.repos[1].repo",
        ),
        ({"environments": {"production": "live"}}, "github.deployments.environments.production"),
        ({"environments": ["prod"]}, "github.deployments.environments"),
        ({"match_window": "-1m"}, "github.deployments.match_window"),
        ({"backfill": "0s"}, "github.deployments.backfill"),
        ({"pending_max_age": "soon"}, "github.deployments.pending_max_age"),
        ({"poll_intervall": "1m"}, "github.deployments.poll_intervall"),
    ],
)
def test_deployments_errors_name_the_key(deployments: dict[str, Any], key: str) -> None:
    raw = {"services": [{"name": "shop"}], "github": {"enabled": True, "deployments": deployments}}
    with pytest.raises(ConfigError) as err:
        config.parse(raw, environ={})
    assert err.value.key == key


def test_deployments_need_the_github_source() -> None:
    raw = {"services": [{"name": "shop"}], "github": {"deployments": {"enabled": True, "repos": [
        {"repo": "a/b", "service": "shop"}]}}}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        config.parse(raw, environ={})
    assert err.value.key == "github.deployments.enabled"


def test_static_labels_are_the_union_of_the_services_with_blanks(tmp_path: Path) -> None:
    cfg = parse(
        "services:\n"
        "  - {name: api, labels: {team: payments, tier: '1'}}\n"
        "  - {name: web, labels: {team: storefront}}\n"
        "  - {name: worker}\n",
        tmp_path,
    )
    names, values = cfg.static_labels
    assert names == ("team", "tier")
    assert values == {"api": ("payments", "1"), "web": ("storefront", ""), "worker": ("", "")}
    assert config.redacted(cfg)["services"][0]["labels"] == {"team": "payments", "tier": "1"}
    assert parse("services:\n  - name: api\n", tmp_path).static_labels == ((), {"api": ()})
