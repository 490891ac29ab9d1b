# SPDX-License-Identifier: Apache-2.0
"""Ingesting a GitOps repository: deployments, their changes and rollbacks, into the store.

This is where sources meet the store (daemon layer): the gitops source says which values changed,
the git source resolves tags and lists changes, ``correlate`` decides rollbacks, and each batch of
commits lands in one transaction together with the cursor and the per-pair value state. An ingest
killed at any point resumes from the last committed cursor and converges on the same rows.

The rare force-push path's bookkeeping is in ``ingest.gitops_restate``, and what a transaction
carries beside its rows (the latest deployment per pair, the queued commit-graph work) in
``ingest.gitops_links``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from exporter.errors import ErrorKind, SourceError
from exporter.ingest import unify
from exporter.ingest.gitops_adopt import adopt
from exporter.ingest.gitops_links import MAX_WAITING as MAX_WAITING  # re-exported: named here before the split
from exporter.ingest.gitops_links import Abandoned as _Abandoned
from exporter.ingest.gitops_links import Latest as _Latest
from exporter.ingest.gitops_links import Link as _Link
from exporter.ingest.gitops_links import Links as _Links
from exporter.ingest.gitops_restate import Reconcile as _Reconcile
from exporter.ingest.gitops_restate import restated, survivors
from exporter.ingest.gitops_tags import resolve_tag
from exporter.ingest.repos import Repos, service_key
from exporter.keys import gitops_natural_key
from exporter.model import Deployment, DeploymentSource, ManifestValue
from exporter.settings import GITHUB_REPO_PREFIX, Config, GitOpsRepo, redact_url
from exporter.sources import gitops
from exporter.sources.git.commitgraph import ChangeLister, CommitGraph
from exporter.sources.git.repository import Git
from exporter.sources.gitops import child as gitops_child
from exporter.store import Store, Tx

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
        with self.store.transaction() as tx:
            latest, links = _Latest(tx), _Links(tx, self.cfg)
            state, rc = survivors(tx, self.repo.key, keep)
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
            for declared, key in restated(
                tx, latest, git, state, rc=rc, repo_key=self.repo.key, old_head=cursor, head=head, clock=self.clock
            ):
                if self._deploy(tx, latest, links, git, declared, key, result):
                    result.deployments += 1
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
        """Record ``value`` as a deployment (or adopt the external row that already stands for it),
        its graph work queued on ``links``. False when its row predates this transaction."""
        svc = self.cfg.service(value.service)
        source_git: ChangeLister | None = None
        commit: str | None = None
        deferred = svc is not None and svc.repo is not None and self.repos.deferred(svc.repo)
        if svc is not None and svc.repo and not deferred:
            source_git = self._lister(svc.repo, gitops_git)
            commit, skipped = resolve_tag(tx, source_git, value, tag_pattern=svc.tag_pattern, key=key)
            result.skips += skipped
        argo = (
            unify.row_for_gitops(tx, value, unify.external_match(self.cfg, svc, commit, value))
            if latest.external_possible()
            else None
        )
        if argo is not None:
            adopt(tx, argo, value, repo_key=self.repo.key, svc=svc, key=key, commit=commit, source_git=source_git,
                  deferred=deferred, latest=latest, links=links)  # fmt: skip
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

    def _lister(self, repo: str, gitops_git: Git) -> ChangeLister:
        """The source repository's lister, looked up once per poll, not per deployment."""
        lister = self._listers.get(repo)
        if lister is None:
            lister = self._listers[repo] = self.repos.lister(repo, self.repo.repo, gitops_git)
        return lister
