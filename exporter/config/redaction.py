# SPDX-License-Identifier: Apache-2.0
"""The effective configuration as plain data for ``check-config`` and logs, with every secret hidden.

Secrets show only whether they are set; credentials embedded in clone URLs are masked; durations are
printed in seconds, as validated, so what is shown is what the daemon runs with.
"""

from __future__ import annotations

from typing import Any

from exporter.settings import (
    ArgoCDConfig,
    Config,
    GitHubConfig,
    GitHubDeployments,
    GitOpsRepo,
    Secrets,
    redact_url,
)

__all__ = ["redacted"]


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _deployments(d: GitHubDeployments) -> dict[str, Any]:
    return {
        "enabled": d.enabled,
        "poll_interval": _seconds(d.poll_interval),
        "repos": [{"repo": r.repo, "service": r.service} for r in d.repos],
        "environments": dict(d.environments),
        "match_window": _seconds(d.match_window),
        "backfill": _seconds(d.backfill),
        "pending_max_age": _seconds(d.pending_max_age),
    }


def _github(g: GitHubConfig) -> dict[str, Any]:
    return {
        "enabled": g.enabled,
        "base_url": redact_url(g.base_url),
        "poll_interval": _seconds(g.poll_interval),
        "budget": _seconds(g.budget),
        "timeout": _seconds(g.timeout),
        "max_rate_limit_wait": _seconds(g.max_rate_limit_wait),
        "retries": g.retries,
        "app_installation_id": g.app_installation_id,
        "lead_time_phases": g.lead_time_phases,
        "incidents": {
            "repos": list(g.incidents.repos),
            "label": g.incidents.label,
            "failure_window": _seconds(g.incidents.failure_window),
            "environment": g.incidents.environment,
            "services": [
                {
                    "service": m.service,
                    "label": m.label,
                    "title_pattern": m.title_pattern.pattern if m.title_pattern else None,
                }
                for m in g.incidents.services
            ],
        },
        "deployments": _deployments(g.deployments),
    }


def _gitops(g: GitOpsRepo) -> dict[str, Any]:
    return {
        "repo": redact_url(g.repo),
        "branch": g.branch,
        "poll_interval": _seconds(g.poll_interval),
        "manifests": [
            {
                "path": r.path,
                **({"yaml_key": ".".join(r.yaml_key)} if r.yaml_key else {}),
                **({"regex": r.regex.pattern} if r.regex else {}),
                **({"service": r.service} if r.service else {}),
                **({"environment": r.environment} if r.environment else {}),
            }
            for r in g.manifests
        ],
    }


def _argocd(a: ArgoCDConfig) -> dict[str, Any]:
    return {
        "enabled": a.enabled,
        "namespaces": list(a.namespaces),
        "label_selector": a.label_selector,
        "kubeconfig": a.kubeconfig,
        "name_templates": list(a.name_template_sources),
        "source_repo": a.source_repo,
        "image_pattern": a.image_pattern.pattern if a.image_pattern else None,
        "backoff": [_seconds(b) for b in a.backoff],
    }


def _secrets(s: Secrets) -> dict[str, str]:
    return {name: ("<redacted>" if getattr(s, name) else "<unset>") for name in Secrets.__dataclass_fields__}


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets replaced by ``<redacted>``/``<unset>``."""
    return {
        "store": {"path": str(cfg.store_path)},
        "data_dir": str(cfg.data_dir),
        "http": {
            "listen": f"{cfg.listen[0]}:{cfg.listen[1]}",
            "webhook_listen": f"{cfg.webhook_listen[0]}:{cfg.webhook_listen[1]}" if cfg.webhook_listen else None,
        },
        "log": {"level": cfg.log_level, "format": cfg.log_format},
        "production_environment": cfg.production_environment,
        "environments": list(cfg.environments),
        "windows": [w.label for w in cfg.windows],
        "levels": {
            "preset": cfg.levels_name,
            "thresholds": {
                m.value: {"elite": b.elite, "high": b.high, "medium": b.medium} for m, b in cfg.thresholds.items()
            },
        },
        "failure_window": _seconds(cfg.failure_window),
        "rollback_min_age": _seconds(cfg.rollback_min_age),
        "revert_pattern": cfg.revert_pattern.pattern,
        "change_start": cfg.change_start,
        "names": {
            "normalize": cfg.names.normalize,
            "services": dict(cfg.names.services),
            "environments": dict(cfg.names.environments),
        },
        "gitops": [_gitops(g) for g in cfg.gitops],
        "services": [
            {
                "name": s.name,
                "repo": redact_url(s.repo) if s.repo else None,
                "paths": list(s.paths),
                "tag_pattern": s.tag_pattern,
                "labels": dict(s.labels),
            }
            for s in cfg.services
        ],
        "github": _github(cfg.github),
        "argocd": _argocd(cfg.argocd),
        "secrets": _secrets(cfg.secrets),
    }
