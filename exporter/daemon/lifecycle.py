# SPDX-License-Identifier: Apache-2.0
"""Run and stop: signals, the HTTP listeners, the watch threads and the jobs, a shutdown within
``STOP_BUDGET_SECONDS``, and the store closed last.

SIGTERM, SIGINT and SIGHUP all stop the daemon cleanly. SIGHUP does not reload the config: that
would rebuild the whole wiring (listeners, watches, jobs, clients) in place; a clean stop lets the
supervisor start the daemon again on the new config, and a terminal hang-up no longer kills it
without a checkpoint.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import structlog

from exporter import __version__
from exporter.daemon.argocd_watch import ArgoWatches
from exporter.daemon.jobs import (
    GITHUB_CHANGES,
    GITHUB_DEPLOYMENTS,
    GITHUB_INCIDENTS,
    HEARTBEAT,
    Job,
    gitops_job,
)
from exporter.daemon.listening import ListenError, bind
from exporter.daemon.passes import Passes
from exporter.daemon.wiring import Components
from exporter.errors import DoraError

__all__ = ["HEARTBEAT_SECONDS", "SIGNAL_CHECK_SECONDS", "STOP_BUDGET_SECONDS", "STOP_SIGNALS", "Lifecycle"]

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 5.0
STOP_BUDGET_SECONDS = 8.0
SIGNAL_CHECK_SECONDS = 0.1  # how often the main thread looks for a signal the handler noted
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Lifecycle:
    def __init__(self, components: Components, passes: Passes, watches: ArgoWatches) -> None:
        self.c = components
        self.passes = passes
        self.watches = watches
        self.signalled: int | None = None  # set by the signal handler, acted on by ``run``

    def run(self, install_signals: bool = True) -> int:
        """Serve until a stop signal (or until ``stop`` is set); returns the process exit code.

        A listener that cannot bind closes what was opened (the store is checkpointed) and raises
        its ``ListenError``."""
        if install_signals:
            for signum in STOP_SIGNALS:
                signal.signal(signum, self.on_signal)
        c = self.c
        c.publisher.recompute()
        try:
            host, port = self._listen()
        except ListenError:
            self.close()
            raise
        self.watches.start()
        log.info("daemon.started", version=__version__, listen=f"{host}:{port}", repos=len(c.ingesters))
        c.health.beat("scheduler")
        c.jobs.start(self.jobs())
        while self.signalled is None and not c.stop.wait(SIGNAL_CHECK_SECONDS):
            pass
        if self.signalled is not None:
            log.info("daemon.signal", signal=signal.Signals(self.signalled).name)
        c.stop.set()
        log.info("daemon.stopping")
        self._stop(deadline=time.monotonic() + STOP_BUDGET_SECONDS)
        log.info("daemon.stopped")
        return 0

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Only notes the signal. A handler runs on the main thread between two bytecodes, possibly
        while that thread holds a lock: the log's write lock with a line half written, or the stop
        event's own. Taking either again here would deadlock the process for good (a SIGTERM right
        after a log line did, now and then), so the main loop logs it and sets ``stop``."""
        self.signalled = signum

    def jobs(self) -> list[Job]:
        """The periodic jobs of the configured sources."""
        c, p = self.c, self.passes
        jobs = [Job(id=HEARTBEAT, run=c.health.beat, every=HEARTBEAT_SECONDS, args=("scheduler",), first_run_now=False)]
        for i, ing in enumerate(c.ingesters):
            every = ing.repo.poll_interval
            jobs.append(
                Job(id=gitops_job(i), run=p.poll_gitops, every=every, args=(ing, True), name=f"gitops {ing.repo.key}")
            )
        github = c.cfg.github
        if c.github.resolver is not None:
            jobs.append(
                Job(id=GITHUB_CHANGES, run=p.resolve_github_changes, every=github.poll_interval, name="github changes")
            )
        if c.github.incidents is not None:
            jobs.append(
                Job(
                    id=GITHUB_INCIDENTS,
                    run=p.poll_github_incidents,
                    every=github.poll_interval,
                    name="github incidents",
                )
            )
        if c.github.deployments is not None:
            every = github.deployments.poll_interval
            jobs.append(
                Job(id=GITHUB_DEPLOYMENTS, run=p.poll_github_deployments, every=every, name="github deployments")
            )
        return jobs

    def _listen(self) -> tuple[str, int]:
        """Start the HTTP listener, and the webhook listener with the configured receivers."""
        c = self.c
        host, port = bind("http.listen", lambda h, p: c.http.serve(h, p, c.cfg.http_security), c.cfg.listen)
        if c.github_webhook is not None:
            c.github_webhook.start()
            c.http.post_routes["/webhooks/github"] = c.github_webhook.handle
        if c.argocd_notifications is not None:
            c.http.add_webhook("/webhooks/argocd", c.cfg.secrets.argocd_webhook_token, c.argocd_notifications)
        if c.cfg.webhook_listen is not None:
            serve_webhooks = lambda h, p: c.http.serve_webhooks(h, p, c.cfg.webhook_security)  # noqa: E731
            whost, wport = bind("http.webhook_listen", serve_webhooks, c.cfg.webhook_listen)
            log.info("daemon.webhooks_listening", listen=f"{whost}:{wport}")
        return host, port

    def _stop(self, *, deadline: float) -> None:
        """Stop the jobs, wait for the passes under way and the watches until ``deadline``, then close."""
        self.c.jobs.shutdown()
        for lock in self.passes.locks:
            if lock.acquire(timeout=max(0.1, deadline - time.monotonic())):
                lock.release()
            else:
                log.warning("daemon.stop_timeout", waited=STOP_BUDGET_SECONDS)
        for t in self.watches.threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        self.close()

    def close(self) -> None:
        """Stop the listeners and clients, fold the WAL into the store file, close the store."""
        c = self.c
        c.http.shutdown()
        if c.github_webhook is not None:
            c.github_webhook.stop()
        c.repos.close()
        if c.github.client is not None:
            c.github.client.close()
        try:
            c.store.checkpoint()
        except DoraError as exc:
            log.error("store.checkpoint_failed", error=str(exc))
        c.store.close()
