# SPDX-License-Identifier: Apache-2.0
"""Generate the MiniShop GitOps monorepo of the seed guide, with months of seeded history.

What happens, as in ``minishop-gitops-guide.md``: developers commit to ``services/<svc>/`` on
``main``; CI bumps every service's ``values-dev.yaml`` to the new commit ("Update image tags to
<sha>"); each service is promoted to staging and later to production ("Promote to staging: <sha>",
"Promote to production: <sha>"); some production releases are bad and are rolled back by hand a
few hours later, by a commit that puts the previous tag back (half of them with a "Rollback ..."
message, half without, so ancestry alone must catch them).

The generator keeps its own account of what it deployed and what each deployment carried, and
writes it to ``ground-truth.json``: the end-to-end test holds the exporter to it.
"""

from __future__ import annotations

import heapq
import json
import random
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from exporter.demo.fastimport import FastImport

SERVICES = ("user-service", "product-service", "order-service", "payment-service", "notification-service")
ENVIRONMENTS = ("dev", "staging", "prod")
DEVELOPERS = ("Ada <ada@minishop.example>", "Linus <linus@minishop.example>", "Grace <grace@minishop.example>")
HOUR = 3600


def values_file(service: str, env: str, tag: str) -> str:
    replicas = {"dev": 1, "staging": 2, "prod": 3}[env]
    return (
        f"# {service} in {env}; the tag is bumped by CI\n"
        f"replicaCount: {replicas}\n"
        f"image:\n  repository: minishop/{service}\n  tag: {tag}\n  pullPolicy: IfNotPresent\n"
        f"resources:\n  limits:\n    cpu: 500m\n    memory: 256Mi\n"
    )


@dataclass
class _Pair:
    """The generator's own bookkeeping for one (service, environment)."""

    tag: str | None = None
    deployments: int = 0
    rollbacks: int = 0
    leads: list[float] = field(default_factory=list)
    delivered: set[int] = field(default_factory=set)  # indexes of dev commits already counted


@dataclass
class Truth:
    repo: Path
    start: datetime
    end: datetime
    pairs: dict[tuple[str, str], _Pair]
    rollbacks: list[dict[str, object]]

    def to_json(self) -> dict[str, object]:
        return {
            "repo": str(self.repo),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "pairs": {
                f"{s}/{e}": {
                    "service": s,
                    "environment": e,
                    "deployments": p.deployments,
                    "rollbacks": p.rollbacks,
                    "changes": len(p.leads),
                    "lead_time_median_seconds": statistics.median(p.leads) if p.leads else None,
                }
                for (s, e), p in sorted(self.pairs.items())
            },
            "rollbacks": self.rollbacks,
        }


class _Sim:
    def __init__(self, repo: Path, seed: int, start: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
        self.fi = FastImport(repo)
        self.clock = start
        self.dev_commits: list[tuple[str, str, int]] = []  # (sha, service, time) in main's order
        self.sha_index: dict[str, int] = {}  # tag (commit sha) -> position in dev_commits
        self.pairs = {(s, e): _Pair() for s in SERVICES for e in ENVIRONMENTS}
        self.rollbacks: list[dict[str, object]] = []
        self.prod_history: dict[str, list[str]] = {s: [] for s in SERVICES}
        self.pending_rollback: set[str] = set()

    def tick(self, when: int) -> int:
        """Commit times strictly increase, like a real single-branch history."""
        self.clock = max(self.clock + 1, when)
        return self.clock

    def dev_commit(self, when: int, service: str) -> None:
        n = len(self.dev_commits)
        t = self.tick(when)
        mark = self.fi.commit(
            f"{service}: change {n}",
            t,
            {f"services/{service}/src/change_{n % 7}.txt": f"change {n} at {t}\n"},
            author=self.rng.choice(DEVELOPERS),
        )
        sha = self.fi.sha(mark)
        self.sha_index[sha] = n
        self.dev_commits.append((sha, service, t))

    def deploy(self, when: int, env: str, services: list[str], tag: str, message: str) -> None:
        """One manifest commit setting ``tag`` for ``services`` in ``env``; books what it delivers."""
        changed = [s for s in services if self.pairs[(s, env)].tag != tag]
        if not changed:
            return
        t = self.tick(when)
        self.fi.commit(
            message, t, {f"infra/helm-charts/{s}/values-{env}.yaml": values_file(s, env, tag) for s in changed}
        )
        for s in changed:
            self._book(s, env, tag, t)

    def _book(self, service: str, env: str, tag: str, t: int) -> None:
        p = self.pairs[(service, env)]
        baseline = p.tag is None
        p.deployments += 1
        upto = self.sha_index[tag]
        if baseline:
            p.delivered.update(range(upto + 1))  # a baseline attributes nothing, ever
        else:
            for i in range(upto + 1):
                if i in p.delivered:
                    continue
                p.delivered.add(i)
                _, svc, ct = self.dev_commits[i]
                if svc == service:
                    p.leads.append(float(t - ct))
        p.tag = tag


class _Events:
    """The simulation's agenda: a heap of (time, seq, kind, service); ``seq`` keeps events at the
    same time in the order they were scheduled, so a seed always plays the same history."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, str]] = []
        self._seq = 0

    def at(self, t: int, kind: str, service: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, service))

    def pop(self) -> tuple[int, str, str] | None:
        """The next (time, kind, service), or ``None`` when none is left."""
        if not self._heap:
            return None
        t, _, kind, service = heapq.heappop(self._heap)
        return t, kind, service


def generate(out: Path, seed: int = 7, days: int = 120, end: datetime | None = None) -> Truth:
    """Write ``out/minishop`` and ``out/ground-truth.json``; returns the ground truth."""
    end = (end or datetime.now().astimezone()).replace(microsecond=0)
    start = end - timedelta(days=days)
    repo = out / "minishop"
    if repo.exists():
        import shutil

        shutil.rmtree(repo)
    t0 = int(start.timestamp())
    sim = _Sim(repo, seed, t0)
    _bootstrap(sim, t0)
    events = _schedule(sim.rng, start, t0, days)
    _play(sim, events, int(end.timestamp()))
    sim.fi.close()
    truth = Truth(repo, start, datetime.fromtimestamp(sim.clock).astimezone(), sim.pairs, sim.rollbacks)
    (out / "ground-truth.json").write_text(json.dumps(truth.to_json(), indent=2) + "\n")
    return truth


def _bootstrap(sim: _Sim, t0: int) -> None:
    """The initial layout, then a first build deployed everywhere: every pair starts with a baseline."""
    sim.fi.commit(
        "Initial MiniShop layout",
        sim.tick(t0),
        {
            "README.md": "# MiniShop\n\nServices in services/, Helm charts in infra/helm-charts/.\n",
            **{f"services/{s}/README.md": f"# {s}\n" for s in SERVICES},
            **{f"infra/helm-charts/{s}/Chart.yaml": f"apiVersion: v2\nname: {s}\nversion: 0.1.0\n" for s in SERVICES},
        },
    )
    sim.dev_commit(t0 + 60, SERVICES[0])
    first = sim.dev_commits[0][0]
    for env in ENVIRONMENTS:  # everything starts deployed at the first build
        sim.deploy(t0 + 120, env, list(SERVICES), first, f"Bootstrap {env}: {first}")


def _schedule(rng: random.Random, start: datetime, t0: int, days: int) -> _Events:
    """Each day's code changes and promotion attempts, all drawn before any is played: working
    hours, busier on weekdays, promotions on weekdays only."""
    events = _Events()
    for day in range(days):
        day0 = t0 + day * 86400 + 86400
        weekday = (start + timedelta(days=day + 1)).weekday() < 5
        for s in SERVICES:
            for _ in range(rng.choice((0, 1, 1, 2, 3) if weekday else (0, 0, 0, 1))):
                events.at(day0 + rng.randint(9 * HOUR, 18 * HOUR), "code", s)
            if weekday and rng.random() < 0.8:
                events.at(day0 + rng.randint(11 * HOUR, 17 * HOUR), "staging", s)
            if weekday and rng.random() < 0.35:
                events.at(day0 + rng.randint(14 * HOUR, 17 * HOUR), "prod", s)
    return events


def _play(sim: _Sim, events: _Events, end_ts: int) -> None:
    """Play the events in time order until ten minutes before ``end_ts``; code changes schedule
    their CI bump, and a bad production release its rollback."""
    rng = sim.rng
    while (event := events.pop()) is not None:
        t, kind, s = event
        if t > end_ts - 600:
            break
        if kind == "code":
            sim.dev_commit(t, s)
            events.at(t + rng.randint(5 * 60, 20 * 60), "bump")
        elif kind == "bump":
            sha = sim.dev_commits[-1][0]
            sim.deploy(t, "dev", list(SERVICES), sha, f"Update image tags to {sha}")
        elif kind == "staging":
            tag = sim.pairs[(s, "dev")].tag
            assert tag is not None
            sim.deploy(t, "staging", [s], tag, f"Promote to staging: {tag}")
        elif kind == "prod" and s not in sim.pending_rollback:
            _promote_to_prod(sim, events, t, s)
        elif kind.startswith("rollback:"):
            _roll_back(sim, t, s, kind.split(":", 1)[1])


def _promote_to_prod(sim: _Sim, events: _Events, t: int, service: str) -> None:
    """Promote staging's tag to production, when it differs; some releases are bad (15 %) and are
    rolled back to the previous tag by hand one to six hours later."""
    tag = sim.pairs[(service, "staging")].tag
    previous = sim.pairs[(service, "prod")].tag
    assert tag is not None and previous is not None
    if tag == previous:
        return
    sim.deploy(t, "prod", [service], tag, f"Promote to production: {tag}")
    if sim.rng.random() < 0.15:
        sim.pending_rollback.add(service)
        events.at(t + sim.rng.randint(1 * HOUR, 6 * HOUR), "rollback:" + previous, service)


def _roll_back(sim: _Sim, t: int, service: str, back_to: str) -> None:
    """Put ``back_to`` back in production, half the time without saying "Rollback" (ancestry alone
    must catch those), and book it in the ground truth."""
    bad = sim.pairs[(service, "prod")].tag
    message = (
        f"Rollback {service} in production to {back_to[:7]}"
        if sim.rng.random() < 0.5
        else f"Pin {service} production to {back_to[:7]} while the release is investigated"
    )
    sim.deploy(t, "prod", [service], back_to, message)
    sim.pairs[(service, "prod")].rollbacks += 1
    sim.rollbacks.append(
        {
            "service": service,
            "environment": "prod",
            "at": datetime.fromtimestamp(sim.clock).astimezone().isoformat(),
            "from": bad,
            "to": back_to,
            "message": message,
        }
    )
    sim.pending_rollback.discard(service)


def write_config(out: Path, listen: str = "127.0.0.1:9478") -> Path:
    """A config for the demo: the monorepo is both the GitOps repo and every service's source."""
    repo = out / "minishop"
    cfg = {
        "store": {"path": str(out / "dora.db")},
        "http": {"listen": listen},
        "production_environment": "prod",
        "environments": list(ENVIRONMENTS),
        "windows": ["1d", "7d", "30d", "90d"],
        "levels": {"preset": "dora-2023"},
        "gitops": [
            {
                "repo": str(repo),
                "branch": "main",
                "poll_interval": "30s",
                "manifests": [
                    {"path": "infra/helm-charts/{service}/values-{environment}.yaml", "yaml_key": "image.tag"}
                ],
            }
        ],
        "services": [{"name": s, "repo": str(repo), "paths": [f"services/{s}/"]} for s in SERVICES],
    }
    import yaml

    path = out / "dora.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
