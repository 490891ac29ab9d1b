"""The composition root: store, sources, scheduler, snapshot, HTTP; signals and graceful shutdown."""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__, snapshot
from exporter.config import Config
from exporter.errors import DoraError, SourceError, StoreError
from exporter.explaining import explain
from exporter.health import Health
from exporter.http import HttpApp
from exporter.ingesting import GitOpsIngester, IngestResult, Repos
from exporter.metrics import DoraCollector, Exposition, SnapshotHolder
from exporter.model import PairKey
from exporter.store import Store
from exporter.store.db import LazyHistories

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 5.0
STOP_BUDGET_SECONDS = 8.0


class Progress:
    """First-ingest progress: a bar on a TTY, a log line every 10 s otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.tty and total:
            width = 30
            filled = int(width * min(done, total) / total)
            sys.stderr.write(f"\r{self.name} [{'#' * filled}{' ' * (width - filled)}] {done}/{total} commits")
            sys.stderr.flush()
            if done >= total:
                sys.stderr.write("\n")
        elif time.monotonic() - self.last >= 10:
            self.last = time.monotonic()
            log.info("ingest.progress", repo=self.name, commits=done, total=total)


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.store = Store(cfg.store_path)
        self.repos = Repos(cfg)
        self.health = Health({"gitops": [g.key for g in cfg.gitops]})
        self.health.store_open = True
        self.holder = SnapshotHolder(snapshot.Snapshot(datetime.now(UTC)))
        self.registry = CollectorRegistry()
        self.collector = DoraCollector(self.holder, self.health)
        self.registry.register(self.collector)
        self.exposition = Exposition(self.registry, self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.ingesters = [GitOpsIngester(cfg, g, self.store, self.repos) for g in cfg.gitops]
        self._compute_lock = threading.Lock()
        self._live_lock = threading.Lock()
        self._live: dict[PairKey, snapshot.LiveState] = {}
        self._busy = threading.Lock()
        self.http: HttpApp | None = None

    # -- work ----------------------------------------------------------------------------------

    def known_pairs(self) -> list[PairKey]:
        return [PairKey(s.name, e) for s in self.cfg.services for e in self.cfg.environments]

    def recompute(self, now: datetime | None = None) -> snapshot.Snapshot:
        """Rebuild the served snapshot from the store (after ingest, never per scrape)."""
        with self._compute_lock:
            with self._live_lock:
                live = dict(self._live)
            now = now or datetime.now(UTC)
            longest = max(w.seconds for w in self.cfg.windows)
            snap = snapshot.build(
                # the windows' history as objects, one pair at a time; all-time numbers aggregated by the store
                LazyHistories(self.store, self.cfg.change_start, now.timestamp() - longest),
                self.known_pairs(),
                now,
                [(w.label, w.seconds) for w in self.cfg.windows],
                self.cfg.thresholds,
                self.store.unmatched_counts(),
                live,
                self.store.totals(self.cfg.change_start, snapshot.LEAD_TIME_BUCKETS),
            )
            self.holder.set(snap)
            return snap

    def set_live_state(
        self, service: str, environment: str, *, sync_failing: bool | None = None, degraded: bool | None = None
    ) -> snapshot.Snapshot:
        """Record the live state of one pair (``None`` keeps a value) and republish the snapshot.

        The Argo CD source will call this when an Application's sync or health changes. Thread-safe:
        the snapshot published last always includes the latest state of every pair.
        """
        key = PairKey(service, environment)
        with self._live_lock:
            old = self._live.get(key, snapshot.LiveState())
            self._live[key] = snapshot.LiveState(
                sync_failing=old.sync_failing if sync_failing is None else sync_failing,
                degraded=old.degraded if degraded is None else degraded,
            )
        return self.recompute()

    def poll_gitops(self, ing: GitOpsIngester, progress: bool = False) -> IngestResult | None:
        """One guarded poll: errors are logged and counted, never raised into the scheduler."""
        started = time.monotonic()
        with self._busy:
            try:
                result = ing.poll(self.stop, Progress(ing.repo.key) if progress else None)
            except SourceError as exc:
                self.health.failure("gitops", ing.repo.key, exc.kind, str(exc))
                log.error("gitops.poll_failed", repo=ing.repo.key, kind=exc.kind, error=str(exc))
                return None
            except StoreError as exc:
                self.health.failure("gitops", ing.repo.key, "store", str(exc))
                log.error("gitops.store_failed", repo=ing.repo.key, error=str(exc))
                return None
            except Exception as exc:
                self.health.failure("gitops", ing.repo.key, "unexpected", repr(exc))
                log.exception("gitops.poll_crashed", repo=ing.repo.key)
                return None
        duration = time.monotonic() - started
        self.health.success("gitops", ing.repo.key, duration)
        log.info(
            "gitops.polled",
            repo=ing.repo.key,
            commits=result.commits,
            deployments=result.deployments,
            skipped=result.skips,
            force_push=result.force_push,
            seconds=round(duration, 3),
        )
        if result.commits or result.force_push or not self.holder.get().pairs:
            self.recompute()
        return result

    def ingest_once(self, progress: bool = False) -> list[IngestResult | None]:
        results = [self.poll_gitops(ing, progress) for ing in self.ingesters]
        self.recompute()
        return results

    def explain(self, service: str | None, environment: str | None) -> list[dict[str, Any]]:
        return explain(self.store, self.cfg.change_start, service, environment)

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit code."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.recompute()
        self.http = HttpApp(
            self.registry,
            self.health,
            self.holder.get,
            self.explain,
            self.cfg.production_environment,
            self.cfg.windows[min(2, len(self.cfg.windows) - 1)].label,
            self.exposition,
        )
        host, port = self.http.serve(*self.cfg.listen)
        log.info("daemon.started", version=__version__, listen=f"{host}:{port}", repos=len(self.ingesters))
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(2, len(self.ingesters) + 1))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.health.beat("scheduler")
        scheduler.add_job(
            self.health.beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), args=["scheduler"], id="heartbeat"
        )
        for i, ing in enumerate(self.ingesters):
            scheduler.add_job(
                self.poll_gitops,
                IntervalTrigger(seconds=ing.repo.poll_interval),
                args=[ing, True],
                id=f"gitops-{i}",
                name=f"gitops {ing.repo.key}",
                next_run_time=datetime.now(UTC),
            )
        scheduler.start()
        self.stop.wait()
        log.info("daemon.stopping")
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        scheduler.shutdown(wait=False)
        if self._busy.acquire(timeout=max(0.1, deadline - time.monotonic())):
            self._busy.release()
        else:
            log.warning("daemon.stop_timeout", waited=STOP_BUDGET_SECONDS)
        self.close()
        log.info("daemon.stopped")
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("daemon.signal", signal=signal.Signals(signum).name)
        self.stop.set()

    def close(self) -> None:
        if self.http is not None:
            self.http.shutdown()
        self.repos.close()
        try:
            self.store.checkpoint()
        except DoraError as exc:
            log.error("store.checkpoint_failed", error=str(exc))
        self.store.close()
