# SPDX-License-Identifier: Apache-2.0
"""One GitOps transaction's bookkeeping: the latest deployment of each pair, and the commit-graph work.

Split from ``ingest.gitops`` so that the ingester keeps the order of things (poll, batch, apply,
deploy) while this module holds what a batch carries alongside: ``Latest`` saves two queries per
deployment, ``Links`` queues a deployment's changes and rollback check while a source commit graph
is still loading. Both live for one transaction only.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from exporter.core.correlate import Transition
from exporter.ingest.rollbacks import record_rollback
from exporter.model import Deployment
from exporter.settings import Config
from exporter.sources.git.commitgraph import ChangeLister, CommitGraph
from exporter.store import Tx

__all__ = ["MAX_WAITING", "Abandoned", "Latest", "Link", "Links"]

MAX_WAITING = 60_000  # deployments whose graph work may wait for a loading graph (≈ 40 MB of queued links)


class Latest:
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
class Link:
    """What recording ``deployment`` still needs from its source repository's commit graph: its
    changes since ``base``, and (given ``prev``) whether it went back to an ancestor of it. The
    deployment row itself carries everything else, so a queued link holds nothing of its own
    beyond these references."""

    deployment: Deployment
    lister: ChangeLister | None
    paths: tuple[str, ...]
    base: Deployment | None
    prev: Deployment | None


class Links:
    """One transaction's graph work, done in deployment order.

    While a source commit graph is still loading on its thread (the first poll of a process), the
    work queues here, up to ``MAX_WAITING`` deployments, and the ingest goes on reading manifests
    and recording deployments instead of waiting for git. All of it is done before the
    transaction commits, so every batch still lands whole."""

    def __init__(self, tx: Tx, cfg: Config) -> None:
        self.tx = tx
        self.cfg = cfg
        self.waiting: deque[Link] = deque()

    def add(self, link: Link) -> None:
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
        """Do the queued work in order. With ``stop``: raise ``Abandoned`` (rolling the batch back)
        as soon as it is set while the work still waits for a loading graph."""
        while self.waiting:
            link = self.waiting[0]
            while stop is not None and isinstance(link.lister, CommitGraph) and link.lister.loading:
                if stop.is_set():
                    raise Abandoned
                link.lister.wait_loaded(0.05)
            self._do(self.waiting.popleft())

    def _do(self, link: Link) -> None:
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


class Abandoned(Exception):
    """Raised inside a batch's transaction to roll it back: nothing of it is kept, the cursor stays."""


def _loading(lister: ChangeLister | None) -> bool:
    return isinstance(lister, CommitGraph) and lister.loading


def _known(lister: ChangeLister, d: Deployment | None) -> bool:
    """Whether ``d``'s commit is still in its repository. A force-push (and a gc) can drop an
    earlier deployment's commit: it then bounds no change range and is nobody's ancestor, instead
    of failing every later poll."""
    return d is not None and d.commit is not None and lister.resolve(d.commit) is not None
