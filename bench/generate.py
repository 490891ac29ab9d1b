# SPDX-License-Identifier: Apache-2.0
"""Generate a large synthetic GitOps setup with ``git fast-import``: a source repo and a GitOps repo.

    python bench/generate.py --out /tmp/bench-large --commits 200000 --layout values --shape linear

What it writes under ``--out``:

- ``source/``: the services' code, one monorepo; every dev bump is preceded by one to three commits
  in ``services/<service>/`` (and now and then a commit in ``docs/`` that touches no service), so a
  deployment carries a few changes and the path filters have work to do.
- ``gitops/``: ``--commits`` first-parent commits, each one tag bump of one (service, environment):
  CI bumps dev to a new source SHA, dev is promoted to staging, staging to prod, and about 2 % of
  prod bumps are rollbacks to the previous prod tag. Two layouts:
  ``files``: ``deploy/<environment>/<service>.env`` holding ``IMAGE_TAG=<sha>`` (a regex rule);
  ``values``: ``charts/<service>/values-<environment>.yaml``, a Helm values file with ``image.tag``.
  Two history shapes: ``linear`` (one commit per bump) and ``merge`` (each bump a branch commit plus
  a ``--no-ff`` merge, so the repository holds twice as many commits).
- ``dora.yaml``: the exporter's config for it (store in ``--out/dora.db``).
- ``generated.json``: what was generated (counts), for the other scripts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.demo.fastimport import FastImport

ENVIRONMENTS = ("dev", "staging", "prod")
STEP = 180  # seconds between bumps on average: 200k bumps span about 14 months, ending about now


def _services(n: int) -> list[str]:
    return [f"svc-{i:03d}" for i in range(n)]


def manifest_path(layout: str, service: str, env: str) -> str:
    if layout == "files":
        return f"deploy/{env}/{service}.env"
    return f"charts/{service}/values-{env}.yaml"


def manifest_body(layout: str, service: str, env: str, tag: str) -> str:
    if layout == "files":
        return f"# {service} in {env}\nIMAGE=registry.example/{service}\nIMAGE_TAG={tag}\nREPLICAS=2\n"
    return (
        f"# {service} in {env}\nreplicaCount: 2\nimage:\n  repository: registry.example/{service}\n"
        f"  tag: {tag}\n  pullPolicy: IfNotPresent\nresources:\n  limits:\n    cpu: 500m\n    memory: 256Mi\n"
    )


def config(out: Path, layout: str, services: list[str]) -> dict[str, object]:
    if layout == "files":
        rule: dict[str, str] = {"path": "deploy/{environment}/{service}.env", "regex": r"(?m)^IMAGE_TAG=(?P<tag>\S+)$"}
    else:
        rule = {"path": "charts/{service}/values-{environment}.yaml", "yaml_key": "image.tag"}
    return {
        "store": {"path": str(out / "dora.db")},
        "http": {"listen": "127.0.0.1:0"},
        "log": {"level": "warning", "format": "json"},
        "windows": ["1d", "7d", "30d", "90d"],
        "environments": list(ENVIRONMENTS),
        "gitops": [{"repo": str(out / "gitops"), "branch": "main", "poll_interval": "60s", "manifests": [rule]}],
        "services": [{"name": s, "repo": str(out / "source"), "paths": [f"services/{s}/"]} for s in services],
    }


class Generator:
    def __init__(self, out: Path, layout: str, shape: str, n_services: int, seed: int, commits: int) -> None:
        self.out = out
        self.layout = layout
        self.shape = shape
        self.services = _services(n_services)
        self.rng = random.Random(seed)
        self.clock = int(time.time()) - commits * STEP
        self.src_clock = self.clock - 3600
        self.src_n = 0
        self.tags: dict[tuple[str, str], str] = {}
        self.prod_prev: dict[str, str] = {}
        self.gitops_commits = 0
        self.first_parent = 0
        self.branch_n = 0
        self.main_mark = ""

    def _source_commit(self, fi: FastImport, service: str | None) -> str:
        self.src_n += 1
        self.src_clock = max(self.src_clock + 1, self.clock - self.rng.randint(60, 3 * 86400))
        path = f"services/{service}/src/f{self.src_n % 5}.py" if service else f"docs/note{self.src_n % 3}.md"
        mark = fi.commit(
            f"{service or 'docs'}: change {self.src_n}",
            self.src_clock,
            {path: f"# change {self.src_n}\n"},
            author="Dev <dev@example.test>",
        )
        return mark

    def _gitops_commit(self, fi: FastImport, message: str, files: dict[str, str | None]) -> None:
        self.clock += self.rng.randint(1, 2 * STEP)
        if self.shape == "linear":
            self.main_mark = fi.commit(message, self.clock, files, author="CI <ci@example.test>")
            self.gitops_commits += 1
        else:
            self.branch_n += 1
            branch = f"refs/heads/bump-{self.branch_n % 4}"
            side = fi.commit(
                message, self.clock, files, author="CI <ci@example.test>", ref=branch, parents=[self.main_mark]
            )
            self.clock += 1
            self.main_mark = fi.commit(  # fast-import does not merge trees: the merge carries the change
                f"Merge pull request #{self.branch_n}: {message}",
                self.clock,
                files,
                author="CI <ci@example.test>",
                parents=[self.main_mark, side],
            )
            self.gitops_commits += 2
        self.first_parent += 1

    def run(self, commits: int) -> dict[str, object]:
        started = time.monotonic()
        src = FastImport(self.out / "source")
        ops = FastImport(self.out / "gitops")
        try:
            # an initial commit sets every pair (the baselines) at one source commit per service
            first: dict[str, str | None] = {}
            for s in self.services:
                sha = src.sha(self._source_commit(src, s))
                for e in ENVIRONMENTS:
                    self.tags[(s, e)] = sha
                    first[manifest_path(self.layout, s, e)] = manifest_body(self.layout, s, e, sha)
            self.clock += 1
            self.main_mark = ops.commit("Initial manifests", self.clock, first, author="CI <ci@example.test>")
            self.gitops_commits += 1
            self.first_parent += 1
            while self.first_parent < commits:
                self._bump(src, ops)
        finally:
            src.close(checkout=False)
            ops.close(checkout=False)
        return {
            "layout": self.layout,
            "shape": self.shape,
            "services": len(self.services),
            "environments": len(ENVIRONMENTS),
            "first_parent_commits": self.first_parent,
            "gitops_commits": self.gitops_commits,
            "source_commits": self.src_n,
            "seconds": round(time.monotonic() - started, 1),
        }

    def _bump(self, src: FastImport, ops: FastImport) -> None:
        s = self.rng.choice(self.services)
        r = self.rng.random()
        if r < 0.45:
            env, message = "dev", "Update image tags to {tag}"
            if self.rng.random() < 0.1:
                self._source_commit(src, None)
            mark = ""
            for _ in range(self.rng.randint(1, 3)):
                mark = self._source_commit(src, s)
            tag = src.sha(mark)
        elif r < 0.75:
            env, message, tag = "staging", "Promote to staging: {tag}", self.tags[(s, "dev")]
        elif r < 0.98 or s not in self.prod_prev:
            env, message, tag = "prod", "Promote to production: {tag}", self.tags[(s, "staging")]
        else:
            env, message, tag = "prod", "Rollback {service} to {tag}", self.prod_prev[s]
        if self.tags[(s, env)] == tag:
            return  # nothing to change: not a commit
        if env == "prod":
            self.prod_prev[s] = self.tags[(s, env)]
        self.tags[(s, env)] = tag
        body = manifest_body(self.layout, s, env, tag)
        self._gitops_commit(ops, message.format(tag=tag[:12], service=s), {manifest_path(self.layout, s, env): body})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--commits", type=int, default=200_000, help="first-parent GitOps commits")
    p.add_argument("--services", type=int, default=80)
    p.add_argument("--layout", choices=("files", "values"), default="values")
    p.add_argument("--shape", choices=("linear", "merge"), default="linear")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        p.error(f"{args.out} is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    gen = Generator(args.out, args.layout, args.shape, args.services, args.seed, args.commits)
    info = gen.run(args.commits)
    import yaml

    (args.out / "dora.yaml").write_text(yaml.safe_dump(config(args.out, args.layout, gen.services), sort_keys=False))
    (args.out / "generated.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
