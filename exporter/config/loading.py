"""One validated configuration: a YAML file plus environment overrides for secrets.

Validation is complete at start-up and every error names the dotted key that is wrong, so a
typo fails the rollout (exit 2) instead of silently dropping a metric. Unknown keys are errors
for the same reason. Secrets never come from the file: only from ``DORA_*`` environment variables
(or files they point to), and ``redacted()`` is what gets printed or logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from exporter.core.dora import DEFAULT_PRESET, PRESETS, Bounds, Metric, Thresholds
from exporter.core.durations import parse_duration
from exporter.errors import ConfigError
from exporter.settings import (
    CHANGE_STARTS,
    DEFAULT_TAG_PATTERN,
    GITHUB_REPO_PREFIX,
    SECRET_ENV,
    SECRET_FILE_ENV,
    AppMapping,
    ArgoCDConfig,
    Config,
    DeploymentRepo,
    GitHubConfig,
    GitHubDeployments,
    GitHubIncidents,
    GitOpsRepo,
    IncidentService,
    ManifestRule,
    Names,
    Secrets,
    ServiceConfig,
    Window,
)

T = TypeVar("T")


class _Reader:
    """Walks the raw YAML, tracking the dotted key so every error can name it."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(name)
        return self.data.get(name, default)

    def require(self, name: str) -> Any:
        self.seen.add(name)
        if name not in self.data or self.data[name] is None:
            raise ConfigError(self.key(name), "is required")
        return self.data[name]

    def typed(self, name: str, kind: type[T], default: T) -> T:
        value = self.get(name, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(self.key(name), f"must be a {kind.__name__}, got {type(value).__name__}")
        return value

    def section(self, name: str) -> _Reader:
        value = self.get(name, {})
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), "must be a mapping")
        return _Reader(value, f"{self.key(name)}.")

    def items(self, name: str) -> list[_Reader]:
        value = self.get(name, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.key(name), "must be a list")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise ConfigError(f"{self.key(name)}[{i}]", "must be a mapping")
            out.append(_Reader(item, f"{self.key(name)}[{i}]."))
        return out

    def convert(self, name: str, fn: Callable[[Any], T], default: Any) -> T:
        raw = self.get(name, default)
        try:
            return fn(raw)
        except (ValueError, TypeError, re.error) as exc:
            raise ConfigError(self.key(name), str(exc)) from exc

    def done(self, extra: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.data) - self.seen - set(extra))
        if unknown:
            raise ConfigError(self.key(str(unknown[0])), "unknown key")


def _listen(value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"must be HOST:PORT, got {value!r}")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces


def _regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise TypeError("must be a regular expression string")
    return re.compile(value, re.MULTILINE)


def _path_regex(template: str) -> re.Pattern[str]:
    """``{service}``/``{environment}`` match within one path segment; ``*`` too; the rest is literal.

    ``{service}`` is greedy and ``{environment}`` is not: in ``{service}-{environment}`` the hyphens
    go to the service (``user-service-prod``), since environments rarely carry them."""
    out = []
    pieces = {"{service}": r"(?P<service>[^/]+)", "{environment}": r"(?P<environment>[^/]+?)", "*": r"[^/]*"}
    for piece in re.split(r"(\{service\}|\{environment\}|\*)", template):
        out.append(pieces.get(piece) or re.escape(piece))
    return re.compile("".join(out) + r"\Z")


def _manifest(r: _Reader) -> ManifestRule:
    path = r.require("path")
    if not isinstance(path, str) or not path or path.startswith("/"):
        raise ConfigError(r.key("path"), "must be a relative path template")
    if template_errors := re.findall(r"\{(?!service\}|environment\})[^}]*\}", path):
        raise ConfigError(r.key("path"), f"unknown placeholder {template_errors[0]}")
    yaml_key, regex = r.get("yaml_key"), r.get("regex")
    if (yaml_key is None) == (regex is None):
        raise ConfigError(r.key("yaml_key"), "exactly one of yaml_key and regex is required")
    service = r.typed("service", str, "") or None
    environment = r.typed("environment", str, "") or None
    compiled = r.convert("regex", lambda v: None if v is None else _regex(v), None)
    if compiled is not None and "tag" not in compiled.groupindex:
        raise ConfigError(r.key("regex"), "needs a named group (?P<tag>...)")
    groups = set(compiled.groupindex) if compiled is not None else set()
    for part, fixed in (("service", service), ("environment", environment)):
        if f"{{{part}}}" not in path and part not in groups and not fixed:
            raise ConfigError(r.key("path"), f"no way to know the {part}: use {{{part}}}, a regex group or `{part}:`")
    keys: tuple[str, ...] | None = None
    if yaml_key is not None:
        if not isinstance(yaml_key, str) or not all(yaml_key.split(".")):
            raise ConfigError(r.key("yaml_key"), "must be a dotted key such as image.tag")
        keys = tuple(yaml_key.split("."))
    r.done()
    return ManifestRule(path, keys, compiled, service, environment, _path_regex(path))


def _gitops(r: _Reader) -> GitOpsRepo:
    repo = r.require("repo")
    if not isinstance(repo, str) or not repo:
        raise ConfigError(r.key("repo"), "must be a path or clone URL")
    branch = r.typed("branch", str, "main")
    poll = r.convert("poll_interval", parse_duration, "60s")
    if poll < 1:
        raise ConfigError(r.key("poll_interval"), "must be at least 1s")
    rules = tuple(_manifest(m) for m in r.items("manifests"))
    r.done()  # before the empty check: a typo such as `manifest:` must be named, not reported as missing
    if not rules:
        raise ConfigError(r.key("manifests"), "needs at least one rule")
    return GitOpsRepo(repo, branch, poll, rules)


def _service(r: _Reader) -> ServiceConfig:
    name = r.require("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(r.key("name"), "must be a non-empty string")
    repo = r.typed("repo", str, "") or None
    paths_raw = r.get("paths", [])
    if not isinstance(paths_raw, list) or not all(isinstance(p, str) for p in paths_raw):
        raise ConfigError(r.key("paths"), "must be a list of path prefixes")
    pattern = r.typed("tag_pattern", str, DEFAULT_TAG_PATTERN)
    if "{tag}" not in pattern:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(r.key("tag_pattern"), str(exc)) from exc
        if "sha" not in compiled.groupindex:
            raise ConfigError(r.key("tag_pattern"), "needs a named group (?P<sha>...) or a {tag} ref template")
    labels = _static_labels(r)
    r.done()
    return ServiceConfig(name, repo, tuple(paths_raw), pattern, labels)


# Label names the exporter's own series use, and those Prometheus attaches to every target: a
# static label may take none of them (DESIGN §3: service and environment plus static labels).
RESERVED_LABELS = frozenset(
    {"service", "environment", "window", "metric", "reason", "phase", "source", "kind", "resource", "le",
     "quantile", "job", "instance"}
)  # fmt: skip
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _static_labels(r: _Reader) -> tuple[tuple[str, str], ...]:
    raw = r.get("labels", {}) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(r.key("labels"), "must map label names to values")
    for name, value in raw.items():
        where = f"{r.key('labels')}.{name}"
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ConfigError(where, "is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)")
        if name in RESERVED_LABELS:
            raise ConfigError(where, "is a label the exporter or Prometheus already sets")
        if not isinstance(value, str):
            raise ConfigError(where, "must be a string (quote numbers and booleans)")
    return tuple(sorted(raw.items()))


def _thresholds(r: _Reader) -> tuple[str, Thresholds]:
    preset = r.typed("preset", str, DEFAULT_PRESET)
    custom = r.section("custom")
    if preset != "custom" and preset not in PRESETS:
        raise ConfigError(r.key("preset"), f"must be one of {', '.join([*PRESETS, 'custom'])}")
    base = dict(PRESETS[DEFAULT_PRESET if preset == "custom" else preset])
    for metric in Metric:
        section = custom.section(metric.value)
        if not section.data:
            continue
        if preset != "custom":
            raise ConfigError(custom.key(metric.value), "custom thresholds need preset: custom")

        def num(v: Any, m: Metric = metric) -> float:
            if m in (Metric.LEAD_TIME, Metric.TIME_TO_RESTORE):
                return parse_duration(v)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise TypeError("must be a number")
            if m is Metric.CHANGE_FAILURE_RATE and not 0 <= v <= 1:
                raise ValueError(f"must be a ratio between 0 and 1 (15 % is 0.15), got {v!r}")
            if v < 0:
                raise ValueError(f"must not be negative, got {v!r}")
            return float(v)

        b = Bounds(*(section.convert(level, num, None) for level in ("elite", "high", "medium")))
        ordered = (
            (b.elite >= b.high >= b.medium)
            if metric is Metric.DEPLOYMENT_FREQUENCY
            else (b.elite <= b.high <= b.medium)
        )
        if not ordered:
            raise ConfigError(custom.key(metric.value), "levels must be ordered elite, high, medium")
        section.done()
        base[metric] = b
    custom.done()
    r.done()
    return preset, base


def _names(r: _Reader) -> Names:
    maps = {}
    for name in ("services", "environments"):
        raw = r.get(name, {}) or {}
        if not isinstance(raw, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise ConfigError(r.key(name), "must map names to names")
        maps[name] = dict(raw)
    normalize = r.typed("normalize", bool, True)
    r.done()
    return Names(normalize, maps["services"], maps["environments"])


def _github(r: _Reader, services: tuple[ServiceConfig, ...]) -> GitHubConfig:
    enabled = r.typed("enabled", bool, False)
    base_url = r.typed("base_url", str, "https://api.github.com").rstrip("/")
    if not re.match(r"^https?://", base_url):
        raise ConfigError(r.key("base_url"), "must be an http(s) URL")

    def positive(name: str, default: str) -> float:
        value = r.convert(name, parse_duration, default)
        if value <= 0:
            raise ConfigError(r.key(name), "must be positive")
        return value

    poll = positive("poll_interval", "5m")
    budget = positive("budget", "30s")
    timeout = positive("timeout", "10s")
    max_wait = r.convert("max_rate_limit_wait", parse_duration, "60s")
    if max_wait < 0:
        raise ConfigError(r.key("max_rate_limit_wait"), "must not be negative")
    retries = r.typed("retries", int, 3)
    if not 0 <= retries <= 10:
        raise ConfigError(r.key("retries"), "must be between 0 and 10")
    installation = r.get("app_installation_id")
    if installation is not None and (isinstance(installation, bool) or not isinstance(installation, int)):
        raise ConfigError(r.key("app_installation_id"), "must be an integer")
    phases = r.typed("lead_time_phases", bool, False)
    inc = r.section("incidents")
    repos_raw = inc.get("repos", []) or []
    if not isinstance(repos_raw, list) or not all(isinstance(x, str) and _OWNER_NAME.match(x) for x in repos_raw):
        raise ConfigError(inc.key("repos"), "must be a list of owner/name")
    label = inc.typed("label", str, "incident")
    window = inc.convert("failure_window", parse_duration, "24h")
    if window <= 0:
        raise ConfigError(inc.key("failure_window"), "must be positive")
    env = inc.typed("environment", str, "") or None
    names = {s.name for s in services}
    mappings = []
    for m in inc.items("services"):
        svc = m.require("service")
        if not isinstance(svc, str) or svc not in names:
            raise ConfigError(m.key("service"), f"must name a configured service, got {svc!r}")
        m_label = m.typed("label", str, "") or None
        pattern = m.convert("title_pattern", lambda v: None if v is None else re.compile(v), None)
        if m_label is None and pattern is None:
            raise ConfigError(m.key("label"), "one of label and title_pattern is required")
        m.done()
        mappings.append(IncidentService(svc, m_label, pattern))
    inc.done()
    if repos_raw and not mappings:
        raise ConfigError(inc.key("services"), "needs at least one service mapping when repos are set")
    deployments = _github_deployments(r.section("deployments"), services, enabled, poll)
    r.done()
    return GitHubConfig(
        enabled=enabled,
        base_url=base_url,
        poll_interval=poll,
        budget=budget,
        timeout=timeout,
        max_rate_limit_wait=max_wait,
        retries=retries,
        app_installation_id=installation,
        lead_time_phases=phases,
        incidents=GitHubIncidents(tuple(repos_raw), label, window, env, tuple(mappings)),
        deployments=deployments,
    )


def _github_deployments(
    r: _Reader, services: tuple[ServiceConfig, ...], github_enabled: bool, poll_default: float
) -> GitHubDeployments:
    """``github.deployments``: explicit repositories first, then every ``github:`` service repository."""
    enabled = r.typed("enabled", bool, False)

    def positive(name: str, default: str) -> float:
        value = r.convert(name, parse_duration, default)
        if value <= 0:
            raise ConfigError(r.key(name), "must be positive")
        return value

    poll = positive("poll_interval", f"{poll_default:g}s")
    window = r.convert("match_window", parse_duration, "1h")
    if window < 0:
        raise ConfigError(r.key("match_window"), "must not be negative")
    backfill = positive("backfill", "30d")
    max_age = positive("pending_max_age", "24h")
    names = {s.name for s in services}
    explicit: dict[str, str] = {}
    for item in r.items("repos"):
        repo = item.require("repo")
        if not isinstance(repo, str) or not _OWNER_NAME.match(repo.removeprefix(GITHUB_REPO_PREFIX)):
            raise ConfigError(item.key("repo"), "must be owner/name")
        repo = repo.removeprefix(GITHUB_REPO_PREFIX)
        svc = item.require("service")
        if not isinstance(svc, str) or svc not in names:
            raise ConfigError(item.key("service"), f"must name a configured service, got {svc!r}")
        if repo in explicit:
            raise ConfigError(item.key("repo"), f"{repo} is listed twice: a repository's deployments go to one service")
        item.done()
        explicit[repo] = svc
    envs_raw = r.get("environments", {}) or {}
    if not isinstance(envs_raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in envs_raw.items()
    ):
        raise ConfigError(r.key("environments"), "must map GitHub environment names to environment names")
    r.done()
    by_repo: dict[str, list[str]] = {}
    for s in services:
        if s.repo and s.repo.startswith(GITHUB_REPO_PREFIX):
            by_repo.setdefault(s.repo.removeprefix(GITHUB_REPO_PREFIX), []).append(s.name)
    repos = [DeploymentRepo(repo, svc) for repo, svc in explicit.items()]
    for repo, owners in by_repo.items():
        if repo in explicit or not enabled:
            continue
        if len(owners) > 1:
            raise ConfigError(
                r.key("repos"),
                f"{repo} is the repository of {', '.join(owners)}: list it with the one service its deployments are",
            )
        repos.append(DeploymentRepo(repo, owners[0]))
    if enabled and not github_enabled:
        raise ConfigError(r.key("enabled"), "needs github.enabled: true")
    if enabled and not repos:
        raise ConfigError(r.key("repos"), "no repository to read: list {repo, service} or use a github: service repo")
    return GitHubDeployments(enabled, poll, tuple(repos), dict(envs_raw), window, backfill, max_age)


_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _argocd(r: _Reader) -> ArgoCDConfig:
    if not r.data:
        r.done()
        return ArgoCDConfig()
    enabled = r.typed("enabled", bool, True)
    namespaces_raw = r.get("namespaces", ["argocd"])
    if namespaces_raw is None:
        namespaces_raw = ["argocd"]
    if not isinstance(namespaces_raw, list) or not all(
        isinstance(n, str) and _K8S_NAME.match(n) for n in namespaces_raw
    ):
        raise ConfigError(r.key("namespaces"), "must be a list of namespace names ([] watches all namespaces)")
    selector = r.typed("label_selector", str, "") or None
    kubeconfig = r.typed("kubeconfig", str, "") or None
    context = r.typed("context", str, "") or None
    m = r.section("mapping")
    apps: dict[str, tuple[str, str]] = {}
    apps_raw = m.get("apps", {}) or {}
    if not isinstance(apps_raw, Mapping):
        raise ConfigError(m.key("apps"), "must map app names to {service, environment}")
    for name, target in apps_raw.items():
        if not (
            isinstance(target, Mapping)
            and set(target) == {"service", "environment"}
            and all(isinstance(v, str) and v for v in target.values())
        ):
            raise ConfigError(f"{m.key('apps')}.{name}", "must be {service: NAME, environment: NAME}")
        apps[str(name)] = (target["service"], target["environment"])
    labels = m.section("labels")
    service_label = labels.typed("service", str, "") or None
    environment_label = labels.typed("environment", str, "") or None
    labels.done()
    templates_raw = m.get("name_templates", ["{service}-{environment}"])
    if templates_raw is None:
        templates_raw = []
    if not isinstance(templates_raw, list) or not all(isinstance(t, str) and t for t in templates_raw):
        raise ConfigError(m.key("name_templates"), "must be a list of templates such as {service}-{environment}")
    for t in templates_raw:
        if re.findall(r"\{(?!service\}|environment\})[^}]*\}", t):
            raise ConfigError(m.key("name_templates"), f"unknown placeholder in {t!r}")
    dest = m.typed("destination_namespace", str, "") or None
    if dest is not None and "{" not in dest:
        raise ConfigError(m.key("destination_namespace"), "needs {service} and/or {environment}")
    m.done()
    source_repo = r.typed("source_repo", str, "") or None
    image = r.convert("image_pattern", lambda v: None if v is None else re.compile(v), None)
    if image is not None and "tag" not in image.groupindex:
        raise ConfigError(r.key("image_pattern"), "needs a named group (?P<tag>...) (and optionally (?P<service>...))")
    t = r.section("timeouts")
    connect = t.convert("connect", parse_duration, "10s")
    read = t.convert("read", parse_duration, "90s")
    watch = t.convert("watch", parse_duration, "60s")
    t.done()
    if not 0 < watch < read:
        raise ConfigError(t.key("read"), "must be longer than timeouts.watch (the server ends a quiet watch first)")
    backoff_raw = r.get("backoff", ["0.5s", "1s", "2s", "5s", "10s", "30s"])
    if not isinstance(backoff_raw, list) or not backoff_raw:
        raise ConfigError(r.key("backoff"), "must be a non-empty list of durations")
    try:
        backoff = tuple(parse_duration(b) for b in backoff_raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(r.key("backoff"), str(exc)) from exc
    r.done()
    return ArgoCDConfig(
        enabled=enabled,
        namespaces=tuple(namespaces_raw),
        label_selector=selector,
        kubeconfig=kubeconfig,
        context=context,
        mapping=AppMapping(
            apps=apps,
            service_label=service_label,
            environment_label=environment_label,
            name_templates=tuple(_path_regex(t) for t in templates_raw),
            destination_namespace=_path_regex(dest) if dest else None,
        ),
        source_repo=source_repo,
        image_pattern=image,
        connect_timeout=connect,
        read_timeout=read,
        watch_timeout=watch,
        backoff=backoff,
        name_template_sources=tuple(templates_raw),
    )


def _read_secret_file(env: str, environ: Mapping[str, str]) -> str | None:
    path = environ.get(env)
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        raise ConfigError(env, f"cannot read {path}: {exc.strerror}") from exc


def _secrets(environ: Mapping[str, str]) -> Secrets:
    values: dict[str, str | None] = {name: environ.get(env) or None for name, env in SECRET_ENV.items()}
    for name, env in SECRET_FILE_ENV.items():
        from_file = _read_secret_file(env, environ)
        if from_file is not None:
            values[name] = values.get(name) or from_file
    return Secrets(**values)


def parse(raw: Any, environ: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Config:
    """Validate raw YAML data into a ``Config``; relative paths resolve against ``base_dir``."""
    environ = os.environ if environ is None else environ
    base_dir = base_dir or Path.cwd()
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("<root>", "the config file must hold a mapping")
    r = _Reader(raw)
    store = r.section("store")
    store_path = base_dir / store.typed("path", str, "./dora.db")
    store.done()
    data_dir_raw = r.typed("data_dir", str, "")
    data_dir = base_dir / data_dir_raw if data_dir_raw else store_path.parent
    http = r.section("http")
    listen = http.convert("listen", _listen, "127.0.0.1:9478")
    webhook_raw = http.get("webhook_listen")
    webhook = http.convert("webhook_listen", _listen, None) if webhook_raw is not None else None
    http.done()
    log = r.section("log")
    level = log.typed("level", str, "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(log.key("level"), "must be debug, info, warning or error")
    fmt = log.typed("format", str, "auto")
    if fmt not in ("auto", "json", "console"):
        raise ConfigError(log.key("format"), "must be auto, json or console")
    log.done()
    prod = r.typed("production_environment", str, "prod")
    windows_raw = r.get("windows", ["1d", "7d", "30d", "90d"])
    if not isinstance(windows_raw, list) or not windows_raw:
        raise ConfigError("windows", "must be a non-empty list of durations")
    windows = []
    for i, w in enumerate(windows_raw):
        try:
            seconds = parse_duration(w)
        except ValueError as exc:
            raise ConfigError(f"windows[{i}]", str(exc)) from exc
        if seconds <= 0:
            raise ConfigError(f"windows[{i}]", "must be positive")
        windows.append(Window(str(w), seconds))
    if len({w.label for w in windows}) != len(windows):
        raise ConfigError("windows", "labels must be unique")
    levels_name, thresholds = _thresholds(r.section("levels"))
    failure_window = r.convert("failure_window", parse_duration, "1h")
    rollback_min_age = r.convert("rollback_min_age", parse_duration, "5m")
    revert = r.convert("revert_pattern", lambda v: re.compile(v), r"(?i)^(revert|roll ?back)")
    change_start = r.typed("change_start", str, "commit_time")
    if change_start not in CHANGE_STARTS:
        raise ConfigError("change_start", f"must be one of {', '.join(CHANGE_STARTS)}")
    gitops = tuple(_gitops(g) for g in r.items("gitops"))
    if len({g.key for g in gitops}) != len(gitops):
        raise ConfigError("gitops", "the same repo and branch is listed twice")
    services = tuple(_service(s) for s in r.items("services"))
    if len({s.name for s in services}) != len(services):
        raise ConfigError("services", "service names must be unique")
    github = _github(r.section("github"), services)
    for i, svc in enumerate(services):
        if svc.repo and svc.repo.startswith(GITHUB_REPO_PREFIX):
            if not _OWNER_NAME.match(svc.repo.removeprefix(GITHUB_REPO_PREFIX)):
                raise ConfigError(f"services[{i}].repo", "must be github:owner/name")
            if not github.enabled:
                raise ConfigError(f"services[{i}].repo", "a github: repository needs github.enabled: true")
    secrets = _secrets(environ)
    if github.enabled and secrets.github_app_id and not secrets.github_token and github.app_installation_id is None:
        raise ConfigError("github.app_installation_id", "is required to authenticate as a GitHub App")
    if change_start == "pr_first_commit" and not github.enabled:
        raise ConfigError("change_start", "pr_first_commit needs the GitHub source (github.enabled: true)")
    names = _names(r.section("names"))
    envs_raw = r.get("environments", [])
    if not isinstance(envs_raw, list) or not all(isinstance(e, str) for e in envs_raw):
        raise ConfigError("environments", "must be a list of environment names")
    environments = tuple(dict.fromkeys([*envs_raw, prod]))
    for gh_env, env in github.deployments.environments.items():
        if env not in environments:
            raise ConfigError(
                f"github.deployments.environments.{gh_env}", f"{env!r} is not in environments (nor production)"
            )
    argocd = _argocd(r.section("argocd"))
    r.done()
    return Config(
        store_path=store_path,
        data_dir=data_dir,
        listen=listen,
        webhook_listen=webhook,
        log_level=level,
        log_format=fmt,
        production_environment=prod,
        windows=tuple(windows),
        levels_name=levels_name,
        thresholds=thresholds,
        failure_window=failure_window,
        revert_pattern=revert,
        rollback_min_age=rollback_min_age,
        change_start=change_start,
        gitops=gitops,
        services=services,
        names=names,
        environments=environments,
        secrets=secrets,
        github=github,
        argocd=argocd,
    )


def resolve_path(cli_value: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--config``, else ``$DORA_EXPORTER_CONFIG``, else ``./dora.yaml``."""
    environ = os.environ if environ is None else environ
    return Path(cli_value or environ.get("DORA_EXPORTER_CONFIG") or "dora.yaml")


def load(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; relative paths inside it resolve against its directory."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("<root>", f"{path} is not valid YAML: {exc}") from exc
    cfg = parse(raw, environ, path.resolve().parent)
    return Config(**{**cfg.__dict__, "source_path": path})
