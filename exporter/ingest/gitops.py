# SPDX-License-Identifier: Apache-2.0
"""Ingesting a GitOps repository: deployments, their changes and rollbacks, into the store.

This is where sources meet the store (daemon layer): the gitops source says which values changed,
the git source resolves tags and lists changes, ``correlate`` decides rollbacks, and each batch of
commits lands in one transaction together with the cursor and the per-pair value state. An ingest
killed at any point resumes from the last committed cursor and converges on the same rows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from exporter.core.correlate import Transition, tag_commit_candidate
from exporter.errors import ErrorKind, SourceError
from exporter.ingest import unify
from exporter.ingest.repos import Repos, service_key
from exporter.ingest.rollbacks import record_rollback
from exporter.keys import gitops_natural_key, gitops_restated_key
from exporter.model import Deployment, DeploymentSource, ManifestValue, Skip
from exporter.settings import GITHUB_REPO_PREFIX, Config, GitOpsRepo, redact_url
from exporter.sources import gitops
from exporter.sources.git.commitgraph import ChangeLister, CommitGraph
from exporter.sources.git.repository import Git
from exporter.sources.gitops import child as gitops_child
from exporter.store import Store, Tx

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)

# A transaction's commits: the first batches are small, so that results land (and a kill loses
# little) early; they then double, so that a long history pays one fsync per several thousand
# commits rather than per few hundred. BATCH_SECONDS bounds how long the write lock is held.
BATCH_FIRST = 100
BATCH_MAX = 8000
BATCH_SECONDS = 2.0

Progress = Callable[[int, int], None]


@dataclass
class IngestResult:
    head: str
    commits: int = 0
    deployments: int = 0
    skips: int = 0
    force_push: bool = False
    stopped: bool = False


@dataclass
class _Reconcile:
    """Deployments recorded from commits a force-push dropped, per pair, oldest first.

    They happened (Argo CD synced them), so they stay. When the rewritten history sets the same
    value again, the old deployment is re-linked to the new commit instead of counted twice.
    """

    orphans: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)
    fresh: set[tuple[str, str]] = field(default_factory=set)  # pairs whose last replayed value is a new row

    def claim(self, pair: tuple[str, str], version: str) -> int | None:
        queue = self.orphans.get(pair, [])
        for i, (dep_id, v) in enumerate(queue):
            if v == version:
                del queue[: i + 1]
                return dep_id
        return None


class _Latest:
    """The latest and the latest resolved deployment of each pair, within one transaction.

    The ingester holds the write lock for the whole transaction, so after a pair's first read its
    answers follow from the rows it inserts: two queries per deployment saved. Rows it changes in
    other ways (an adopted Argo CD deployment, an insert that hit an existing key) are re-read.
    """

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._pairs: dict[tuple[str, str], tuple[Deployment | None, Deployment | None]] = {}
        self._external: bool | None = None

    def external_possible(self) -> bool:
        """Whether any deployment an external source recorded is still unexplained by GitOps: if
        none is when the transaction starts, none appears during it (it holds the write lock and
        records GitOps rows only), so the per-deployment adoption lookup can be skipped."""
        if self._external is None:
            self._external = self.tx.has_unexplained_external()
        return self._external

    def get(self, service: str, environment: str) -> tuple[Deployment | None, Deployment | None]:
        """(latest, latest with a resolved commit), ordered as ``Tx.last_deployment`` orders."""
        hit = self._pairs.get((service, environment))
        if hit is None:
            hit = self._pairs[(service, environment)] = (
                self.tx.last_deployment(service, environment),
                self.tx.last_deployment(service, environment, resolved=True),
            )
        return hit

    def added(self, d: Deployment) -> None:
        prev, base = self.get(d.service, d.environment)
        self._pairs[(d.service, d.environment)] = (
            d if _later(d, prev) else prev,
            d if d.commit is not None and _later(d, base) else base,
        )

    def forget(self, service: str, environment: str) -> None:
        self._pairs.pop((service, environment), None)


def _later(d: Deployment, than: Deployment | None) -> bool:
    return than is None or (d.deployed_at, d.id) > (than.deployed_at, than.id)


@dataclass(frozen=True, slots=True)
class _Link:
    """What recording ``deployment`` still needs from its source repository's commit graph: its
    changes since ``base``, and (given ``prev``) whether it went back to an ancestor of it. The
    deployment row itself carries everything else, so a queued link holds nothing of its own
    beyond these references."""

    deployment: Deployment
    lister: ChangeLister | None
    paths: tuple[str, ...]
    base: Deployment | None
    prev: Deployment | None


class _Links:
    """One transaction's graph work, done in deployment order.

    While a source commit graph is still loading on its thread (the first poll of a process), the
    work queues here, up to ``MAX_WAITING`` deployments, and the ingest goes on reading manifests
    and recording deployments instead of waiting for git. All of it is done before the
    transaction commits, so every batch still lands whole."""

    def __init__(self, tx: Tx, cfg: Config) -> None:
        self.tx = tx
        self.cfg = cfg
        self.waiting: deque[_Link] = deque()

    def add(self, link: _Link) -> None:
        if (self.waiting or _loading(link.lister)) and self.may_wait():
            self.waiting.append(link)
            return
        self.flush()
        self._do(link)

    def may_wait(self) -> bool:
        """Whether more work may queue: below the bound, and a graph it needs is still loading."""
        if len(self.waiting) >= MAX_WAITING:
            return False
        return self.blocked() if self.waiting else True

    def blocked(self) -> bool:
        """Whether queued work still waits for a graph that is loading."""
        return bool(self.waiting) and any(_loading(link.lister) for link in (self.waiting[0], self.waiting[-1]))

    def flush(self, stop: threading.Event | None = None) -> None:
        """Do the queued work in order. With ``stop``: raise ``_Abandoned`` (rolling the batch back)
        as soon as it is set while the work still waits for a loading graph."""
        while self.waiting:
            link = self.waiting[0]
            while stop is not None and isinstance(link.lister, CommitGraph) and link.lister.loading:
                if stop.is_set():
                    raise _Abandoned
                link.lister.wait_loaded(0.05)
            self._do(self.waiting.popleft())

    def _do(self, link: _Link) -> None:
        d, lister, base, prev = link.deployment, link.lister, link.base, link.prev
        commit = d.commit
        if commit is not None and lister is not None and _known(lister, base):
            assert base is not None and base.commit is not None
            if isinstance(lister, CommitGraph):  # times as numbers, straight into the store
                rows = lister.change_rows(commit, [base.commit], link.paths)
                self.tx.add_change_rows(d.id, d.service, d.environment, rows)
            else:
                changes = lister.changes(commit, [base.commit], link.paths)
                self.tx.add_changes(d.id, d.service, d.environment, changes)
        if prev is None:
            return
        is_ancestor = bool(
            commit
            and lister
            and commit != prev.commit
            and _known(lister, prev)
            and lister.is_ancestor(commit, str(prev.commit))
        )
        record_rollback(
            self.tx,
            self.cfg,
            prev,
            Transition(prev.version, prev.deployed_at, d.version, d.deployed_at, d.message, is_ancestor),
            d.id,
        )


class _Abandoned(Exception):
    """Raised inside a batch's transaction to roll it back: nothing of it is kept, the cursor stays."""


MAX_WAITING = 60_000  # deployments whose graph work may wait for a loading graph (≈ 40 MB of queued links)


def _loading(lister: ChangeLister | None) -> bool:
    return isinstance(lister, CommitGraph) and lister.loading


class GitOpsIngester:
    """Polls one GitOps repository incrementally."""

    def __init__(
        self,
        cfg: Config,
        repo: GitOpsRepo,
        store: Store,
        repos: Repos,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.cfg = cfg
        self.repo = repo
        self.store = store
        self.repos = repos
        self.clock = clock or (lambda: datetime.now(UTC))  # when a force-push is seen: its only time
        self.cursor_name = f"gitops:{repo.key}"
        self._listers: dict[str, ChangeLister] = {}

    def poll(self, stop: threading.Event | None = None, progress: Progress | None = None) -> IngestResult:
        self._listers.clear()
        stop = stop or threading.Event()
        git = self.repos.get(self.repo.repo, self.repo.key, refresh=True)
        head = git.resolve(f"refs/heads/{self.repo.branch}") or git.resolve(self.repo.branch)
        if head is None:
            where = redact_url(self.repo.repo)  # a clone URL may carry a token: never into logs or the landing page
            raise SourceError("gitops", ErrorKind.BRANCH_MISSING, f"branch {self.repo.branch} not found in {where}")
        for repo in dict.fromkeys(
            s.repo
            for s in self.cfg.services
            if s.repo and s.repo != self.repo.repo and not s.repo.startswith(GITHUB_REPO_PREFIX)
        ):
            self.repos.get(repo, service_key(repo), refresh=True)  # tags may point at commits fetched only now
        cursor = self.store.cursor(self.cursor_name)
        result = IngestResult(head)
        if cursor == head:
            return result
        self._warm_graphs(git)
        extractor = gitops.Extractor(self.repo, self.cfg.names, git)
        if cursor is not None and (git.resolve(cursor) is None or not git.is_ancestor(cursor, head)):
            return self._reconcile(git, extractor, cursor, head, result)
        rev_range = f"{cursor}..{head}" if cursor else head
        total = git.count(rev_range, [r.pathspec for r in self.repo.manifests]) if progress else 0
        if gitops_child.worth_a_child(git, rev_range):  # a long history: read on the other core
            commits = gitops_child.read_commits(git.path, self.repo, self.cfg.names, rev_range)
        else:
            commits = gitops.read_commits(git, self.repo, extractor, rev_range)
        state = self.store.gitops_state(self.repo.key)
        size = BATCH_FIRST
        try:
            with self.store.bulk_writes():
                while True:
                    done = self._batch(git, commits, state, head, stop, result, size)
                    size = min(size * 2, BATCH_MAX)
                    if progress:
                        progress(result.commits, total)
                    if done:
                        return result
                    if stop.is_set():
                        result.stopped = True
                        return result
        finally:
            commits.close()

    def _warm_graphs(self, git: Git) -> None:
        """Start loading the source repositories' commit graphs on threads, so that their git
        processes run beside the one reading the GitOps history rather than after it."""
        for repo in dict.fromkeys(s.repo for s in self.cfg.services if s.repo and not self.repos.deferred(s.repo)):
            lister = self.repos.lister(repo, self.repo.repo, git)
            if isinstance(lister, CommitGraph):
                lister.warm_in_background()

    def _batch(
        self,
        git: Git,
        commits: Iterator[gitops.CommitValues],
        state: gitops.PairState,
        head: str,
        stop: threading.Event,
        result: IngestResult,
        size: int,
    ) -> bool:
        """One transaction: up to ``size`` commits or ``BATCH_SECONDS`` of work (git calls
        included), then the state and the cursor of the last applied commit. True once the stream ends."""
        deadline = time.monotonic() + BATCH_SECONDS
        counts = (result.commits, result.deployments, result.skips)
        try:
            with self.store.transaction() as tx:
                latest, links = _Latest(tx), _Links(tx, self.cfg)
                last: str | None = None
                exhausted = False
                n = 0
                while not stop.is_set():
                    # past its size or time, a batch still goes on while its graph work waits for a graph
                    if (n >= size or time.monotonic() > deadline) and not (links.waiting and links.may_wait()):
                        break
                    commit = next(commits, None)
                    if commit is None:
                        exhausted = True
                        break
                    self._apply(tx, latest, links, git, commit, state, result, None)
                    last = commit.commit
                    result.commits += 1
                    n += 1
                links.flush(stop)  # a shutdown does not wait for a graph to load: the batch is redone
                if exhausted or last is not None:
                    tx.set_gitops_state(self.repo.key, state)
                    tx.set_cursor(self.cursor_name, head if exhausted else str(last))
        except _Abandoned:
            result.commits, result.deployments, result.skips = counts
            return False
        return exhausted

    def _reconcile(
        self, git: Git, extractor: gitops.Extractor, cursor: str, head: str, result: IngestResult
    ) -> IngestResult:
        """After a force-push: replay from the merge-base in one transaction, re-linking survivors."""
        result.force_push = True
        keep = git.first_parent_set(head)
        base = git.merge_base(cursor, head) if git.resolve(cursor) else None
        rc = _Reconcile()
        state: gitops.PairState = {}
        with self.store.transaction() as tx:
            latest, links = _Latest(tx), _Links(tx, self.cfg)
            for dep_id, service, env, version, manifest_commit in tx.gitops_deployments(self.repo.key):
                if manifest_commit in keep:
                    state[(service, env)] = version
                else:
                    rc.orphans.setdefault((service, env), []).append((dep_id, version))
            log.warning(
                "gitops.force_push",
                repo=self.repo.key,
                old_head=cursor,
                new_head=head,
                merge_base=base,
                orphaned=sum(len(v) for v in rc.orphans.values()),
            )
            for commit in gitops.read_commits(git, self.repo, extractor, f"{base}..{head}" if base else head):
                self._apply(tx, latest, links, git, commit, state, result, rc)
                result.commits += 1
            self._restate(tx, latest, links, git, state, rc, old_head=cursor, head=head, result=result)
            links.flush()
            tx.set_gitops_state(self.repo.key, state)
            tx.set_cursor(self.cursor_name, head)
        return result

    def _apply(
        self,
        tx: Tx,
        latest: _Latest,
        links: _Links,
        git: Git,
        commit: gitops.CommitValues,
        state: gitops.PairState,
        result: IngestResult,
        rc: _Reconcile | None,
    ) -> None:
        for skip in commit.skips:
            if not tx.record_skip(skip):
                continue
            result.skips += 1
            if skip.reason == "ambiguous_value":  # the first value is used: nothing was skipped
                log.warning("gitops.ambiguous_value", where=skip.detail)
            else:
                log.warning("gitops.manifest_skipped", reason=skip.reason, where=skip.detail)
        for value in gitops.new_values(commit, state):
            key = gitops_natural_key(self.repo.key, value.commit, value.service, value.environment)
            if rc is not None:
                claimed = rc.claim((value.service, value.environment), value.value)
                if claimed is not None:
                    tx.relink_deployment(claimed, key, value.commit)
                    rc.fresh.discard((value.service, value.environment))
                    continue
                rc.fresh.add((value.service, value.environment))
            if self._deploy(tx, latest, links, git, value, key, result):
                result.deployments += 1

    def _restate(
        self,
        tx: Tx,
        latest: _Latest,
        links: _Links,
        git: Git,
        state: gitops.PairState,
        rc: _Reconcile,
        *,
        old_head: str,
        head: str,
        result: IngestResult,
    ) -> None:
        """After a force-push replay: deploy what the new head declares for each pair whose latest
        recorded value differs. A reset back to an earlier bump sets nothing new, and a rewritten
        commit re-applying an earlier value re-links that value's old deployment; either way the
        pair now runs the head's value, not the dropped one. Git does not record when a branch
        was force-updated: the deployment is timed when this poll sees it."""
        recorded: dict[tuple[str, str], str] = {}
        for _, service, environment, version, _ in tx.gitops_deployments(self.repo.key):  # oldest first
            recorded[(service, environment)] = version
        moved = sorted(
            (pair, value) for pair, value in state.items() if pair not in rc.fresh and recorded.get(pair) != value
        )
        if not moved:
            return
        subject = git.run("show", "-s", "--format=%s", head).strip()
        seen = self.clock()
        for (service, environment), value in moved:
            prev, _ = latest.get(service, environment)
            at = seen if prev is None else max(seen, prev.deployed_at)
            log.info(
                "gitops.force_push_moved_back",
                repo=self.repo.key,
                service=service,
                environment=environment,
                version=value,
                replaced=recorded.get((service, environment)),
            )
            declared = ManifestValue(service, environment, value, "", head, at, subject)
            key = gitops_restated_key(self.repo.key, old_head, head, service, environment)
            if self._deploy(tx, latest, links, git, declared, key, result):
                result.deployments += 1

    def _deploy(
        self,
        tx: Tx,
        latest: _Latest,
        links: _Links,
        gitops_git: Git,
        value: ManifestValue,
        key: str,
        result: IngestResult,
    ) -> bool:
        svc = self.cfg.service(value.service)
        source_git: ChangeLister | None = None
        commit: str | None = None
        deferred = svc is not None and svc.repo is not None and self.repos.deferred(svc.repo)
        if svc is not None and svc.repo and not deferred:
            source_git = self._listers.get(svc.repo)
            if source_git is None:  # looked up once per poll, not per deployment
                source_git = self._listers[svc.repo] = self.repos.lister(svc.repo, self.repo.repo, gitops_git)
            candidate = tag_commit_candidate(value.value, svc.tag_pattern)
            commit = source_git.resolve(candidate) if candidate else None
            if commit is None and tx.record_skip(
                Skip("gitops", "unresolved_tag", key, f"{value.service} {value.environment} tag {value.value}")
            ):
                result.skips += 1
                log.warning(
                    "gitops.unresolved_tag", service=value.service, environment=value.environment, tag=value.value
                )
        argo = (
            unify.row_for_gitops(tx, value, unify.external_match(self.cfg, svc, commit, value))
            if latest.external_possible()
            else None
        )
        if argo is not None:
            # Argo CD (or GitHub) already recorded this deployment (it synced this manifest commit, or
            # deployed this source commit, before we polled): one real deployment, one row. GitOps adds
            # the version and changes; the external time stays.
            base = tx.previous_deployment(value.service, value.environment, argo.deployed_at.timestamp(), argo.id)
            tx.adopt_deployment(argo.id, value.value, self.repo.key, commit, value.message, value.commit)
            latest.forget(value.service, value.environment)
            if deferred and svc is not None and svc.repo:
                tx.add_pending_changes(argo.id, svc.repo, key)  # its commit and changes come from GitHub
            if svc is not None:
                adopted = Deployment(
                    argo.id, value.service, value.environment, value.value, value.committed_at, argo.source,
                    value.commit, commit, value.message,
                )  # fmt: skip
                links.add(_Link(adopted, source_git, svc.paths, base, None))
            return True
        prev, base = latest.get(value.service, value.environment)
        dep_id, inserted = tx.add_deployment(
            natural_key=key,
            service=value.service,
            environment=value.environment,
            version=value.value,
            deployed_at=value.committed_at.timestamp(),
            source=DeploymentSource.GITOPS,
            manifest_repo=self.repo.key,
            manifest_commit=value.commit,
            commit=commit,
            message=value.message,
            baseline=prev is None,
        )
        if not inserted:
            latest.forget(value.service, value.environment)  # a re-run: the row predates this transaction
            return False
        recorded = Deployment(
            dep_id, value.service, value.environment, value.value, value.committed_at,
            DeploymentSource.GITOPS, value.commit, commit, value.message, baseline=prev is None,
        )  # fmt: skip
        latest.added(recorded)
        if deferred and svc is not None and svc.repo:
            tx.add_pending_changes(dep_id, svc.repo, key)
        if prev is None:
            return True
        links.add(_Link(recorded, source_git, svc.paths if svc is not None else (), base, prev))
        return True


def _known(lister: ChangeLister, d: Deployment | None) -> bool:
    """Whether ``d``'s commit is still in its repository. A force-push (and a gc) can drop an
    earlier deployment's commit: it then bounds no change range and is nobody's ancestor, instead
    of failing every later poll."""
    return d is not None and d.commit is not None and lister.resolve(d.commit) is not None
