"""The composition root: store, sources, scheduler, snapshot, HTTP; signals and graceful shutdown."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__
from exporter.core import snapshot
from exporter.errors import DoraError, ErrorKind, SourceError, StoreError
from exporter.ingest.argocd import ArgoIngester
from exporter.ingest.gitops import GitOpsIngester, IngestResult
from exporter.ingest.repos import Repos
from exporter.model import PairKey
from exporter.serve.collector import DoraCollector, Exposition, SnapshotHolder
from exporter.serve.explain import explain
from exporter.serve.health import Health
from exporter.serve.http import HttpApp
from exporter.serve.webhooks import GitHubWebhook, parse_argocd_notification
from exporter.settings import GITHUB_REPO_PREFIX, Config
from exporter.store import Store
from exporter.store.db import LazyHistories

if TYPE_CHECKING:  # loaded at run time only when their source is configured: each client costs ~45 MB
    from exporter.ingest.github_changes import ChangeResolver, ResolveResult
    from exporter.ingest.github_deployments import DeploymentIngester, DeploymentsResult
    from exporter.ingest.github_incidents import IncidentIngester, IncidentResult
    from exporter.sources import argocd as argocd_source
    from exporter.sources.github.client import Client, Settings

log = structlog.get_logger(__name__)
_R = TypeVar("_R")

HEARTBEAT_SECONDS = 5.0
STOP_BUDGET_SECONDS = 8.0
SIGNAL_CHECK_SECONDS = 0.1  # how often the main thread looks for a signal the handler noted


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
        self._signalled: int | None = None  # set by the signal handler, acted on by ``run``
        self.store = Store(cfg.store_path)
        self.github: Client | None = None
        self.incidents: IncidentIngester | None = None
        self.github_repos = any(s.repo and s.repo.startswith(GITHUB_REPO_PREFIX) for s in cfg.services)
        parts: dict[str, list[str]] = {"gitops": [g.key for g in cfg.gitops]}
        self.resolver: ChangeResolver | None = None
        if cfg.github.enabled:
            from exporter.ingest.github_cache import StoreCache
            from exporter.ingest.github_incidents import IncidentIngester
            from exporter.sources.github.client import Client

            self.github = Client(github_settings(cfg), StoreCache(self.store))
            if cfg.github.incidents.repos:
                self.incidents = IncidentIngester(cfg, self.store, self.github)
            github_parts = [
                *(["changes"] if self.github_repos else []),
                *(["incidents"] if self.incidents else []),
                *(["deployments"] if cfg.github.deployments.enabled else []),
            ]
            if github_parts:
                parts["github"] = github_parts
        self.repos = Repos(cfg, self.github)
        if self.github is not None and self.github_repos:
            from exporter.ingest.github_changes import ChangeResolver

            self.resolver = ChangeResolver(cfg, self.store, self.repos)
        self.deployments: DeploymentIngester | None = None
        if self.github is not None and cfg.github.deployments.enabled:
            from exporter.ingest.github_deployments import DeploymentIngester

            self.deployments = DeploymentIngester(cfg, self.store, self.github, self.repos)
        if cfg.argocd.enabled:
            parts["argocd"] = [ns or "*" for ns in (cfg.argocd.namespaces or ("",))]
        self.health = Health(parts)
        self.health.store_open = True
        self.holder = SnapshotHolder(snapshot.Snapshot(datetime.now(UTC)))
        self.registry = CollectorRegistry()
        self.collector = DoraCollector(self.holder, self.health, static_labels=cfg.static_labels)
        self.registry.register(self.collector)
        self.exposition = Exposition(self.registry, self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.ingesters = [GitOpsIngester(cfg, g, self.store, self.repos) for g in cfg.gitops]
        self._compute_lock = threading.Lock()
        self._live_lock = threading.Lock()
        self._live: dict[PairKey, snapshot.LiveState] = {}
        self._busy = threading.Lock()
        self._github_busy = threading.Lock()
        self._gitops_read_at: dict[str, datetime] = {}  # per repo: start of its last complete poll
        self._incidents_waiting = False
        self._resolve_busy = threading.Lock()
        self._deployments_busy = threading.Lock()
        self.http: HttpApp | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.webhook: GitHubWebhook | None = None
        if cfg.github.enabled and cfg.secrets.github_webhook_secret:
            self.webhook = GitHubWebhook(cfg.secrets.github_webhook_secret, self.on_github_event)
        self.argo = ArgoIngester(cfg, self.store, self.repos) if cfg.argocd.enabled else None
        self.argo_settings: argocd_source.WatchSettings | None = None
        if cfg.argocd.enabled:
            from exporter.sources import argocd as argocd_source

            self.argo_settings = argocd_source.WatchSettings(
                namespaces=cfg.argocd.namespaces,
                label_selector=cfg.argocd.label_selector,
                connect_timeout=cfg.argocd.connect_timeout,
                read_timeout=cfg.argocd.read_timeout,
                watch_timeout=cfg.argocd.watch_timeout,
                backoff=cfg.argocd.backoff,
            )
        self._threads: list[threading.Thread] = []
        self._argo_pairs: set[PairKey] = set()
        self._load_argocd_live()
        if self.argo is not None:
            self.health.count("history_gaps", "argocd", self.store.argocd_counts()["history_gaps"])

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
                # only the GitHub source looks for pull requests: without it the count is 0, no scan needed
                self.store.changes_without_pull_request() if self.cfg.github.enabled else 0,
                self.store.lead_time_phases() if self.cfg.github.lead_time_phases else None,
                totals=self.store.totals(self.cfg.change_start, snapshot.LEAD_TIME_BUCKETS),
            )
            self.holder.set(snap)
            return snap

    def set_live_state(
        self, service: str, environment: str, *, sync_failing: bool | None = None, degraded: bool | None = None
    ) -> snapshot.Snapshot:
        """Record the live state of one pair (``None`` keeps a value) and republish the snapshot.

        The Argo CD watch republishes the stored state of every pair instead (``argocd_observed``); this
        one-pair form serves callers that push a state directly. Thread-safe:
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

    # -- Argo CD ---------------------------------------------------------------------------------

    def _load_argocd_live(self) -> bool:
        """Serve the stored live state of every pair with Argo CD apps; True when something changed."""
        live = self.store.argocd_live()
        changed = False
        with self._live_lock:
            for key in list(self._argo_pairs):  # pairs whose last Argo CD app was deleted
                if (key.service, key.environment) not in live and self._live.get(key) != snapshot.LiveState():
                    self._live[key] = snapshot.LiveState()
                    changed = True
            self._argo_pairs = {PairKey(s, e) for s, e in live}
            for (service, env), (failing, degraded) in live.items():
                state = snapshot.LiveState(sync_failing=failing, degraded=degraded)
                if self._live.get(PairKey(service, env)) != state:
                    self._live[PairKey(service, env)] = state
                    changed = True
        return changed

    def argocd_observed(self, outcome_changed: bool) -> None:
        """After an Argo CD observation: republish live state and numbers when something changed."""
        live_changed = self._load_argocd_live()
        if outcome_changed or live_changed:
            self.recompute()

    def start_argocd(self) -> list[threading.Thread]:
        """One guarded watch thread per namespace (or one for all namespaces)."""
        if self.argo is None:
            return []
        scopes: tuple[str | None, ...] = tuple(self.cfg.argocd.namespaces) or (None,)
        for ns in scopes:
            t = threading.Thread(target=self._guard, args=(f"argocd-watch-{ns or '*'}", ns), daemon=True)
            t.name = f"argocd-watch-{ns or '*'}"
            t.start()
            self._threads.append(t)
        return self._threads

    def _guard(self, name: str, namespace: str | None) -> None:
        """Run one watch until stop; a crash is logged, counted and restarted after a backoff step."""
        from exporter.sources import argocd as argocd_source

        settings = self.argo_settings
        assert settings is not None  # watches run only with the Argo CD source configured
        attempt = 0
        while not self.stop.is_set():
            try:
                api = argocd_source.load_api(self.cfg.argocd.kubeconfig, self.cfg.argocd.context)
                try:
                    argocd_source.Watcher(api, settings, namespace, _ArgoListener(self)).run(self.stop)
                finally:
                    api.close()  # type: ignore[no-untyped-call]
            except SourceError as exc:
                self.health.failure("argocd", namespace or "*", exc.kind, str(exc))
                log.error("argocd.watch_failed", thread=name, kind=exc.kind, error=str(exc))
            except Exception as exc:
                self.health.failure("argocd", namespace or "*", ErrorKind.UNEXPECTED, repr(exc))
                log.exception("argocd.watch_crashed", thread=name)
            else:
                if self.stop.is_set():
                    log.info("argocd.watch_stopped", thread=name)
                    return
                log.error("argocd.watch_exited_unexpectedly", thread=name)
            self.stop.wait(settings.delay(attempt))
            attempt += 1
        log.info("argocd.watch_cancelled", thread=name)

    def webhook_argocd(self, body: bytes) -> tuple[int, str]:
        """POST /webhooks/argocd after authentication: record the hint once; the watch stays the truth."""
        try:
            note = parse_argocd_notification(body)
        except ValueError as exc:
            self.health.count("webhook_events", "argocd:malformed")
            return 400, f"bad notification: {exc}"
        try:
            with self.store.transaction() as tx:
                new = tx.add_webhook_event("argocd", note.key, note.raw)
        except StoreError as exc:
            log.error("webhook.store_failed", error=str(exc))
            return 503, "store unavailable"
        outcome = "recorded" if new else "duplicate"
        if new and note.started_at:
            from exporter.sources.argocd import parse_time

            started = parse_time(note.started_at)
            if started is not None and self.store.argocd_operation_known(note.uid, started.timestamp()):
                outcome = "known"  # the watch saw this operation first: the hint adds nothing
        self.health.count("webhook_events", f"argocd:{outcome}")
        log.info("webhook.argocd", outcome=outcome, app=note.app, trigger=note.trigger)
        return 202, outcome

    def poll_gitops(self, ing: GitOpsIngester, progress: bool = False, recompute: bool = True) -> IngestResult | None:
        """One guarded poll: errors are logged and counted, never raised into the scheduler.
        ``recompute=False``: the caller recomputes the snapshot itself once it is done."""
        started = time.monotonic()
        read_at = datetime.now(UTC)
        with self._busy:
            try:
                result = ing.poll(self.stop, Progress(ing.repo.key) if progress else None)
            except SourceError as exc:
                self.health.failure("gitops", ing.repo.key, exc.kind, str(exc))
                if exc.source == "github":  # a service repo read through the API: resumes next poll
                    self.health.failure("github", "changes", exc.kind, str(exc))
                log.error("gitops.poll_failed", repo=ing.repo.key, kind=exc.kind, error=str(exc), source=exc.source)
                return None
            except StoreError as exc:
                self.health.failure("gitops", ing.repo.key, ErrorKind.STORE, str(exc))
                log.error("gitops.store_failed", repo=ing.repo.key, error=str(exc))
                return None
            except Exception as exc:
                self.health.failure("gitops", ing.repo.key, ErrorKind.UNEXPECTED, repr(exc))
                log.exception("gitops.poll_crashed", repo=ing.repo.key)
                return None
            finally:
                self._note_rate_limit()
        duration = time.monotonic() - started
        self.health.success("gitops", ing.repo.key, duration)
        if not result.stopped:
            self._gitops_read_at[ing.repo.key] = read_at
            if self._incidents_waiting and len(self._gitops_read_at) == len(self.ingesters):
                self._incidents_waiting = False
                self._run_now("github-incidents")
        log.info(
            "gitops.polled",
            repo=ing.repo.key,
            commits=result.commits,
            deployments=result.deployments,
            skipped=result.skips,
            force_push=result.force_push,
            seconds=round(duration, 3),
        )
        if recompute and (result.commits or result.force_push or not self.holder.get().pairs):
            self.recompute()
        if result.deployments and self.resolver is not None:
            self._run_now("github-changes")  # read the new deployments' changes now, on their own worker
        return result

    def _run_now(self, job_id: str) -> None:
        scheduler = self.scheduler
        if scheduler is not None and scheduler.get_job(job_id) is not None:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    def resolve_github_changes(self) -> ResolveResult | None:
        """One guarded pass over deployments whose changes are read through GitHub, within the budget."""
        if self.resolver is None or self.github is None:
            return None
        from exporter.ingest.github_changes import ResolveResult

        started = time.monotonic()
        result = self._github_pass("changes", self._resolve_busy, self._resolver_poll, ResolveResult)
        if result is None:
            return None
        duration = time.monotonic() - started
        log.info(
            "github.changes_read",
            deployments=result.deployments,
            changes=result.changes,
            unresolved=result.unresolved,
            stopped=result.stopped,
            seconds=round(duration, 3),
        )
        if result.deployments or result.unresolved or result.stopped:
            self.recompute()
        if result.stopped and not self.stop.is_set():
            self._run_now("github-changes")  # the budget ran out with work left: continue on the next tick
        return result

    def _github_pass(
        self, part: str, busy: threading.Lock, run: Callable[[], _R], stopped: Callable[..., _R]
    ) -> _R | None:
        """Run one GitHub job within ``github.budget`` and record its health: a spent budget is a
        normal stop (what was applied stays; the next run resumes), any other fault is logged, counted on the source's
        part and ends the pass with ``None``; nothing propagates into the scheduler."""
        assert self.github is not None
        started = time.monotonic()
        with busy:
            try:
                with self.github.budget(self.cfg.github.budget):
                    result = run()
                self.health.success("github", part, time.monotonic() - started)
                return result
            except SourceError as exc:
                if exc.kind != ErrorKind.BUDGET_EXHAUSTED:
                    self.health.failure("github", part, exc.kind, str(exc))
                    log.warning(f"github.{part}_failed", kind=exc.kind, error=str(exc))
                    self.recompute()  # whatever was applied before the fault is served
                    return None
                log.info(f"github.{part}_budget_exhausted", budget=self.cfg.github.budget)
                self.health.success("github", part, time.monotonic() - started)  # a normal stop, not a fault
                return stopped(stopped=True)
            except StoreError as exc:
                self.health.failure("github", part, ErrorKind.STORE, str(exc))
                log.error("github.store_failed", part=part, error=str(exc))
                return None
            except Exception as exc:
                self.health.failure("github", part, ErrorKind.UNEXPECTED, repr(exc))
                log.exception(f"github.{part}_crashed")
                return None
            finally:
                self._note_rate_limit()

    def _resolver_poll(self) -> ResolveResult:
        assert self.resolver is not None
        return self.resolver.poll(self.stop)

    def _incidents_poll(self, horizon: datetime | None) -> IncidentResult:
        assert self.incidents is not None
        return self.incidents.poll(self.stop, horizon)

    def _note_rate_limit(self) -> None:
        if self.github is not None:
            self.health.github_rate_limit_remaining = dict(self.github.remaining_by_resource)

    def poll_github_incidents(self) -> IncidentResult | None:
        """One guarded incident pass within ``github.budget``; never takes the gitops lock, so a
        slow or failing GitHub does not delay the GitOps polls."""
        if self.incidents is None or self.github is None:
            return None
        # incidents are attributed once, to deployments already ingested: never read one newer
        # than the GitOps history, and wait for the first complete GitOps poll after a start
        if len(self._gitops_read_at) < len(self.ingesters):
            log.info("github.incidents_waiting_for_gitops")
            self._incidents_waiting = True
            return None
        horizon = min(self._gitops_read_at.values(), default=None)
        from exporter.ingest.github_incidents import IncidentResult

        started = time.monotonic()
        result = self._github_pass(
            "incidents", self._github_busy, lambda: self._incidents_poll(horizon), IncidentResult
        )
        if result is None:
            return None
        duration = time.monotonic() - started
        log.info(
            "github.incidents_polled",
            issues=result.issues,
            new=result.new,
            unattributed=result.unattributed,
            deferred=result.deferred,
            stopped=result.stopped,
            seconds=round(duration, 3),
        )
        self.recompute()
        return result

    def _deployments_poll(self) -> DeploymentsResult:
        assert self.deployments is not None
        return self.deployments.poll(self.stop)

    def poll_github_deployments(self) -> DeploymentsResult | None:
        """One guarded pass over the GitHub Deployments API within ``github.budget``; a webhook
        ``deployment_status`` runs it early. Its own worker and lock: it never waits for a GitOps poll."""
        if self.deployments is None or self.github is None:
            return None
        from exporter.ingest.github_deployments import DeploymentsResult

        started = time.monotonic()
        result = self._github_pass("deployments", self._deployments_busy, self._deployments_poll, DeploymentsResult)
        if result is None:
            return None
        log.info(
            "github.deployments_polled",
            read=result.read,
            deployments=result.deployments,
            matched=result.matched,
            failures=result.failures,
            restores=result.restores,
            waiting=result.waiting,
            stopped=result.stopped,
            seconds=round(time.monotonic() - started, 3),
        )
        if result.changed or result.unmatched or result.stopped:
            self.recompute()
        if result.deployments and self.resolver is not None:
            self._run_now("github-changes")  # the changes of new rows of github: services
        if result.stopped and not self.stop.is_set():
            self._run_now("github-deployments")  # the budget ran out with work left
        return result

    def on_github_event(self, event: str, payload: dict[str, Any]) -> None:
        """A verified webhook: run the poll that would see it now instead of at its next interval."""
        log.info("webhook.github.event", github_event=event, action=payload.get("action"))
        jobs = {
            "issues": ["github-incidents"],
            "deployment_status": ["github-deployments"],
            "push": [f"gitops-{i}" for i in range(len(self.ingesters))],
            "pull_request": [f"gitops-{i}" for i in range(len(self.ingesters))]
            if payload.get("action") == "closed"
            else [],
        }.get(event, [])
        for job_id in jobs:
            self._run_now(job_id)

    def ingest_once(self, progress: bool = False) -> list[IngestResult | None]:
        # one snapshot at the end, not one per repository and another after the GitHub passes
        results = [self.poll_gitops(ing, progress, recompute=False) for ing in self.ingesters]
        while (deployed := self.poll_github_deployments()) is not None and deployed.stopped and deployed.read:
            pass  # a one-shot ingest reads every deployment: each stopped pass resumes where it stopped
        while self.resolver is not None and self.resolver.pending():
            resolved = self.resolve_github_changes()  # a one-shot ingest reads every queued deployment
            if resolved is None or not (resolved.deployments or resolved.unresolved or resolved.stopped):
                break  # a fault (logged and counted), or nothing left that can be read
        self.poll_github_incidents()
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
        if self.webhook is not None:
            self.webhook.start()
            self.http.post_routes["/webhooks/github"] = self.webhook.handle
        if self.argo is not None:
            self.http.add_webhook("/webhooks/argocd", self.cfg.secrets.argocd_webhook_token, self.webhook_argocd)
        if self.cfg.webhook_listen is not None:
            whost, wport = self.http.serve_webhooks(*self.cfg.webhook_listen)
            log.info("daemon.webhooks_listening", listen=f"{whost}:{wport}")
        self.start_argocd()
        log.info("daemon.started", version=__version__, listen=f"{host}:{port}", repos=len(self.ingesters))
        scheduler = self.scheduler = BackgroundScheduler(
            # one worker per job: a slow GitHub job never waits for, or holds up, a GitOps poll
            executors={"default": ThreadPoolExecutor(max_workers=len(self.ingesters) + 4)},
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
        if self.resolver is not None:
            scheduler.add_job(
                self.resolve_github_changes,
                IntervalTrigger(seconds=self.cfg.github.poll_interval),
                id="github-changes",
                name="github changes",
                next_run_time=datetime.now(UTC),
            )
        if self.incidents is not None:
            scheduler.add_job(
                self.poll_github_incidents,
                IntervalTrigger(seconds=self.cfg.github.poll_interval),
                id="github-incidents",
                name="github incidents",
                next_run_time=datetime.now(UTC),
            )
        if self.deployments is not None:
            scheduler.add_job(
                self.poll_github_deployments,
                IntervalTrigger(seconds=self.cfg.github.deployments.poll_interval),
                id="github-deployments",
                name="github deployments",
                next_run_time=datetime.now(UTC),
            )
        scheduler.start()
        while self._signalled is None and not self.stop.wait(SIGNAL_CHECK_SECONDS):
            pass
        if self._signalled is not None:
            log.info("daemon.signal", signal=signal.Signals(self._signalled).name)
        self.stop.set()
        log.info("daemon.stopping")
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        scheduler.shutdown(wait=False)
        for lock in (self._busy, self._github_busy, self._resolve_busy, self._deployments_busy):
            if lock.acquire(timeout=max(0.1, deadline - time.monotonic())):
                lock.release()
            else:
                log.warning("daemon.stop_timeout", waited=STOP_BUDGET_SECONDS)
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        self.close()
        log.info("daemon.stopped")
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Only notes the signal. A handler runs on the main thread between two bytecodes, possibly
        while that thread holds a lock: the log's write lock with a line half written, or the stop
        event's own. Taking either again here would deadlock the process for good (a SIGTERM right
        after a log line did, now and then), so the main loop logs it and sets ``stop``."""
        self._signalled = signum

    def close(self) -> None:
        if self.http is not None:
            self.http.shutdown()
        if self.webhook is not None:
            self.webhook.stop()
        self.repos.close()
        if self.github is not None:
            self.github.close()
        try:
            self.store.checkpoint()
        except DoraError as exc:
            log.error("store.checkpoint_failed", error=str(exc))
        self.store.close()


def github_settings(cfg: Config) -> Settings:
    """Client settings from the ``github:`` section and the secrets. A rate-limit wait never
    exceeds a job's budget: a job returns within its budget and the next run resumes."""
    g, sec = cfg.github, cfg.secrets
    from exporter.sources.github.client import Settings

    return Settings(
        base_url=g.base_url,
        token=sec.github_token,
        app_id=sec.github_app_id,
        app_private_key=sec.github_app_private_key,
        app_installation_id=g.app_installation_id,
        timeout=g.timeout,
        max_rate_limit_wait=min(g.max_rate_limit_wait, g.budget),
        retries=g.retries,
    )


class _ArgoListener:
    """Feeds one watch's reports to the ingester, health and self-metrics, then republishes."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        assert daemon.argo is not None
        self.argo = daemon.argo

    def _done(self, changed: bool, n: int) -> None:
        self.d.health.count("events_processed", "argocd", n)
        self.d.argocd_observed(changed)

    def listed(self, scope: str, apps: Sequence[argocd_source.App]) -> None:
        started = time.monotonic()
        out = self.argo.listed(apps)
        if out.gaps:
            self.d.health.count("history_gaps", "argocd", out.gaps)
        self.d.health.success("argocd", scope, time.monotonic() - started)
        log.info("argocd.list_applied", scope=scope, apps=len(apps), deployments=out.deployments)
        self._done(out.changed, len(apps))

    def changed(self, scope: str, app: argocd_source.App) -> None:
        out = self.argo.apply(app)
        if out.gaps:
            self.d.health.count("history_gaps", "argocd", out.gaps)
        self._done(out.changed, 1)

    def deleted(self, scope: str, app: argocd_source.App) -> None:
        self._done(self.argo.deleted(app), 1)

    def healthy(self, scope: str) -> None:
        self.d.health.success("argocd", scope, 0.0)

    def failed(self, scope: str, error: SourceError) -> None:
        self.d.health.failure("argocd", scope, error.kind, str(error))
        log.error("argocd.watch_error", scope=scope, kind=error.kind, error=str(error))

    def reconnecting(self, scope: str, reason: str) -> None:
        self.d.health.count("watch_reconnects", "argocd")
        log.warning("argocd.watch_reconnect", scope=scope, reason=reason)

    def relisting(self, scope: str, reason: str) -> None:
        self.d.health.count("watch_relists", "argocd")
        log.warning("argocd.watch_relist", scope=scope, reason=reason)
