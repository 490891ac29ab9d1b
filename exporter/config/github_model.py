# SPDX-License-Identifier: Apache-2.0
"""The ``github:`` section of the config model: the API client, incidents, and the Deployments API source.

Only what the section can check by itself is here; service names are checked against ``services`` in
``checks``. The token, App key and webhook secret are never in the file (see ``environment``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator

from exporter.config.fields import (
    Duration,
    KeyedError,
    OptionalStr,
    Pattern,
    PositiveDuration,
    Section,
    StrList,
    StrMap,
    as_written,
)
from exporter.config.limits import (
    BUDGET,
    FAILURE_WINDOW,
    HISTORY,
    MATCH_WINDOW,
    PENDING_AGE,
    POLL_INTERVAL,
    RATE_LIMIT_WAIT,
    RETRIES,
    TIMEOUT,
)
from exporter.settings import GITHUB_REPO_PREFIX

__all__ = ["OWNER_NAME", "DeploymentRepoSection", "DeploymentsSection", "GitHubSection", "IncidentsSection"]

OWNER_NAME = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class IncidentServiceSection(Section):
    service: StrictStr = Field(description="a configured service")
    label: OptionalStr = Field(default=None, description="an issue label naming the service")
    title_pattern: Pattern | None = Field(default=None, description="a regex an issue title of the service matches")

    @model_validator(mode="after")
    def _one_way(self) -> IncidentServiceSection:
        if self.label is None and self.title_pattern is None:
            raise KeyedError("label", "one of label and title_pattern is required")
        return self


class IncidentsSection(Section):
    repos: Annotated[tuple[str, ...], StrList("must be a list of owner/name", pattern=OWNER_NAME)] = Field(
        default=(), description="repositories whose issues are incidents (owner/name)"
    )
    label: StrictStr = Field(default="incident", description="the label that makes an issue an incident")
    failure_window: Annotated[PositiveDuration, FAILURE_WINDOW] = Field(
        default=as_written("24h"),
        description=f"how soon after a deployment an incident is its failure ({FAILURE_WINDOW.note})",
    )
    environment: OptionalStr = Field(default=None, description="the environment incidents are in (default: production)")
    services: list[IncidentServiceSection] = Field(
        default_factory=list, description="how an incident names its service"
    )

    @model_validator(mode="after")
    def _mapped(self) -> IncidentsSection:
        if self.repos and not self.services:
            raise KeyedError("services", "needs at least one service mapping when repos are set")
        return self


class DeploymentRepoSection(Section):
    repo: StrictStr = Field(description="owner/name (or github:owner/name) whose deployments are the service's")
    service: StrictStr = Field(description="a configured service")

    @field_validator("repo")
    @classmethod
    def _owner_name(cls, repo: str) -> str:
        repo = repo.removeprefix(GITHUB_REPO_PREFIX)
        if not re.match(OWNER_NAME, repo):
            raise ValueError("must be owner/name")
        return repo


class DeploymentsSection(Section):
    enabled: StrictBool = Field(default=False, description="read GitHub deployments and their statuses")
    poll_interval: Annotated[PositiveDuration, POLL_INTERVAL] | None = Field(
        default=None, description=f"how often to poll (default: github.poll_interval; {POLL_INTERVAL.note})"
    )
    repos: list[DeploymentRepoSection] = Field(
        default_factory=list, description="repositories besides every github: service repository"
    )
    environments: Annotated[
        dict[str, str], StrMap("must map GitHub environment names to environment names", nonempty_values=True)
    ] = Field(default_factory=dict, description="GitHub environment names to environment names")
    match_window: Annotated[Duration, MATCH_WINDOW] = Field(
        default=as_written("1h"),
        description=f"one commit deployed this close in time by two sources is one ({MATCH_WINDOW.note})",
    )
    backfill: Annotated[PositiveDuration, HISTORY] = Field(
        default=as_written("30d"), description=f"how far back the first read of a repository goes ({HISTORY.note})"
    )
    pending_max_age: Annotated[PositiveDuration, PENDING_AGE] = Field(
        default=as_written("24h"), description=f"a deployment not final this long is given up ({PENDING_AGE.note})"
    )

    @model_validator(mode="after")
    def _each_repo_once(self) -> DeploymentsSection:
        seen: set[str] = set()
        for i, item in enumerate(self.repos):
            if item.repo in seen:
                raise KeyedError(
                    f"repos[{i}].repo", f"{item.repo} is listed twice: a repository's deployments go to one service"
                )
            seen.add(item.repo)
        return self


def _api_url(url: str) -> str:
    url = url.rstrip("/")
    if not re.match(r"^https?://", url):
        raise ValueError("must be an http(s) URL")
    return url


class GitHubSection(Section):
    enabled: StrictBool = Field(default=False, description="read pull requests, incidents and webhooks from GitHub")
    base_url: Annotated[StrictStr, AfterValidator(_api_url)] = Field(
        default="https://api.github.com", description="the API root (GitHub Enterprise: https://HOST/api/v3)"
    )
    poll_interval: Annotated[PositiveDuration, POLL_INTERVAL] = Field(
        default=as_written("5m"), description=f"how often to poll the API ({POLL_INTERVAL.note})"
    )
    budget: Annotated[PositiveDuration, BUDGET] = Field(
        default=as_written("30s"), description=f"the most time one poll may spend ({BUDGET.note})"
    )
    timeout: Annotated[PositiveDuration, TIMEOUT] = Field(
        default=as_written("10s"), description=f"the timeout of one request ({TIMEOUT.note})"
    )
    max_rate_limit_wait: Annotated[Duration, RATE_LIMIT_WAIT] = Field(
        default=as_written("60s"),
        description=f"the longest wait for a rate limit reset in a poll ({RATE_LIMIT_WAIT.note})",
    )
    retries: Annotated[StrictInt, RETRIES] = Field(
        default=3, description=f"retries of a failed request ({RETRIES.note})"
    )
    app_installation_id: StrictInt | None = Field(
        default=None, description="the installation, when authenticating as an App"
    )
    lead_time_phases: StrictBool = Field(default=False, description="split lead time into pull request phases")
    incidents: IncidentsSection = Field(default_factory=IncidentsSection, description="issues that are incidents")
    deployments: DeploymentsSection = Field(
        default_factory=DeploymentsSection, description="the Deployments API source, off by default"
    )
