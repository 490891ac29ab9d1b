# SPDX-License-Identifier: Apache-2.0
"""The reads that feed the snapshot: each pair's deployments, failures and change lead times over
a window (all pairs at once, or one pair at a time), and all-time totals aggregated in SQL and
kept up to date incrementally between recomputes."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from exporter.model import ChangeLead, Deployment, PairHistory, PairKey, PairTotals, utc
from exporter.store.base import Queries
from exporter.store.connection import Connection
from exporter.store.deployments import DEPLOYMENT_COLS, SOURCES, deployment_of
from exporter.store.failures import FAILURE_COLS, failure_of

__all__ = ["HistoryReads", "KeptLeadTotals", "LazyHistories", "window_leads_sql"]

LeadTotals = dict[PairKey, tuple[int, float, tuple[int, ...]]]


def _start_column(change_start: str, prefix: str) -> str:
    """The SQL expression of a change's start for ``change_start`` (DESIGN §2), columns prefixed."""
    if change_start == "author_time":
        return f"{prefix}author_time"
    if change_start == "pr_first_commit":  # direct pushes fall back to their commit time
        return f"COALESCE({prefix}pr_first_commit_time, {prefix}commit_time)"
    return f"{prefix}commit_time"


def window_leads_sql(change_start: str) -> str:
    """(sha, deployment id, lead seconds) of the changes of one pair's deployments after a time.

    Driven by the pair's deployments in the window (a change is always stored under the pair of
    the deployment that carried it), not by all of the pair's changes, and answered from the
    deployments_pair and changes_deployment_start indexes alone. The leads' order is irrelevant."""
    start_col = _start_column(change_start, "c.")
    return (
        f"SELECT c.sha, c.deployment_id, MAX(0.0, d.deployed_at - {start_col}) FROM deployments d "  # noqa: S608
        "JOIN changes c ON c.deployment_id = d.id "
        "WHERE d.service = ? AND d.environment = ? AND d.deployed_at > ?"
    )


class HistoryReads(Queries):
    """Histories and totals, for a reader (a snapshot recompute) or the writer."""

    def lead_time_phases(self) -> dict[PairKey, dict[str, list[float]]]:
        """Per pair, the coding (first commit to PR opened), review (opened to merged) and deploy
        (merged to deployed) seconds of every change that came through a pull request."""
        out: dict[PairKey, dict[str, list[float]]] = {}
        rows = self.conn.execute(
            "SELECT c.service, c.environment, c.pr_first_commit_time, c.pr_opened_at, c.pr_merged_at, d.deployed_at "
            "FROM changes c JOIN deployments d ON d.id = c.deployment_id "
            "WHERE c.pr_number IS NOT NULL AND c.pr_merged_at IS NOT NULL"
        )
        for service, env, first, opened, merged, deployed in rows:
            opened = opened if opened is not None else first
            phases = out.setdefault(PairKey(service, env), {"coding": [], "review": [], "deploy": []})
            phases["coding"].append(max(0.0, opened - first))
            phases["review"].append(max(0.0, merged - max(opened, first)))
            phases["deploy"].append(max(0.0, deployed - merged))
        return out

    def histories(self, change_start: str, since: float | None = None) -> dict[PairKey, PairHistory]:
        """Every pair's deployments, failures and change lead times, in one pass per table.

        With ``since`` (a timestamp), only deployments after it and the changes they carried are
        loaded (every failure still is): enough for any window that starts at ``since`` or later,
        without holding years of history as objects. ``totals`` gives the all-time numbers.
        """
        out: dict[PairKey, PairHistory] = {}
        by_names: dict[tuple[str, str], PairHistory] = {}  # a tuple hashes faster than a PairKey

        def pair(service: str, environment: str) -> PairHistory:
            h = by_names.get((service, environment))
            if h is None:
                key = PairKey(service, environment)
                h = by_names[(service, environment)] = out[key] = PairHistory(key)
            return h

        when: dict[int, tuple[float, datetime]] = {}
        where, args = ("WHERE deployed_at > ?", (since - 1,)) if since is not None else ("", ())
        for row in self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments {where} ORDER BY deployed_at, id",  # noqa: S608
            args,
        ):
            h = pair(row[1], row[2])
            d = deployment_of((row[0], h.key.service, h.key.environment, *row[3:]))  # one str per pair, not per row
            when[d.id] = (row[4], d.deployed_at)
            h.deployments.append(d)
        for row in self.conn.execute(f"SELECT {FAILURE_COLS} FROM failures ORDER BY started_at, id"):  # noqa: S608
            f = failure_of(row)
            h = pair(f.service, f.environment)
            h.failures.append(f)
            if f.deployment_id is not None:
                h.failed_deployment_ids.add(f.deployment_id)
        # read from the change index alone (the SHA is in it)
        changes = (
            f"SELECT d.service, d.environment, c.sha, c.deployment_id, {_start_column(change_start, 'c.')} "  # noqa: S608
            "FROM deployments d JOIN changes c ON c.deployment_id = d.id"
            + (" WHERE d.deployed_at > ?" if since is not None else "")
        )
        for service, env, sha, dep_id, start in self.conn.execute(changes, args):
            found = when.get(dep_id)
            if found is None:
                continue
            deployed, deployed_at = found
            h = pair(service, env)
            h.leads.append(
                ChangeLead(h.key.service, h.key.environment, sha, dep_id, deployed_at, max(0.0, deployed - start))
            )
        return out

    def pair_history(self, key: PairKey, change_start: str, since: float) -> PairHistory:
        """``histories(change_start, since)[key]`` read alone, through the pair indexes (its leads
        in no particular order: only windows are computed from them)."""
        h = PairHistory(key)
        service, env = key.service, key.environment
        when: dict[int, tuple[float, datetime]] = {}
        for row in self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at > ? ORDER BY deployed_at, id",
            (service, env, since - 1),
        ):
            d = Deployment(
                row[0], service, env, row[3], utc(row[4]), SOURCES[row[5]], row[6], row[7], row[8],
                bool(row[9]), bool(row[10]),
            )  # fmt: skip
            when[d.id] = (row[4], d.deployed_at)
            h.deployments.append(d)
        for row in self.conn.execute(
            f"SELECT {FAILURE_COLS} FROM failures WHERE service = ? AND environment = ? "  # noqa: S608
            "ORDER BY started_at, id",
            (service, env),
        ):
            f = failure_of(row)
            h.failures.append(f)
            if f.deployment_id is not None:
                h.failed_deployment_ids.add(f.deployment_id)
        rows = self.conn.execute(window_leads_sql(change_start), (service, env, since - 1))
        dates = {dep_id: found[1] for dep_id, found in when.items()}
        h.leads = [
            ChangeLead(service, env, sha, dep_id, dates[dep_id], lead)
            for sha, dep_id, lead in rows
            if dep_id in dates  # a deployment committed between the two reads waits for the next recompute
        ]
        return h

    def pair_keys(self) -> list[PairKey]:
        """Every pair with a deployment or a failure."""
        rows = self.conn.execute(
            "SELECT service, environment FROM deployments GROUP BY service, environment "
            "UNION SELECT service, environment FROM failures GROUP BY service, environment"
        )
        return [PairKey(s, e) for s, e in rows]

    def totals(self, change_start: str, bounds: Sequence[float]) -> dict[PairKey, PairTotals]:
        """Every pair's all-time deployment count and latest deployment, and its lead times as a
        cumulative histogram over ``bounds`` with their count and sum, aggregated in SQL: no row
        reaches Python, and read from the pair and change indexes alone. Integer-second lead times
        (git commit times) sum exactly in any order; fractional ones may differ from a sum over
        ``histories`` in the last bit of a double."""
        out = self.deployment_totals()
        for key, lead in self.lead_totals(change_start, bounds, None).items():
            t = out.setdefault(key, PairTotals())
            t.changes, t.lead_seconds_sum, t.lead_le = lead
        return out

    def deployment_totals(self) -> dict[PairKey, PairTotals]:
        return {
            PairKey(service, env): PairTotals(n, utc(last))
            for service, env, n, last in self.conn.execute(
                "SELECT service, environment, COUNT(*), MAX(deployed_at) FROM deployments GROUP BY service, environment"
            )
        }

    def lead_totals(self, change_start: str, bounds: Sequence[float], after_deployment: int | None) -> LeadTotals:
        """(count, sum, cumulative counts) of lead times per pair, of every change or only of the
        changes of deployments with an id above ``after_deployment``."""
        start_col = _start_column(change_start, "c.")
        le = "".join(f", SUM(lead <= {float(b)!r})" for b in bounds)
        where, args = ("WHERE d.id > ?", (after_deployment,)) if after_deployment is not None else ("", ())
        return {
            PairKey(service, env): (n, float(total), tuple(cumulative))
            for service, env, n, total, *cumulative in self.conn.execute(
                f"SELECT service, environment, COUNT(*), SUM(lead){le} FROM ("  # noqa: S608
                f"SELECT d.service, d.environment, MAX(0.0, d.deployed_at - {start_col}) AS lead "
                f"FROM deployments d JOIN changes c ON c.deployment_id = d.id {where}) GROUP BY service, environment",
                args,
            )
        }


class KeptLeadTotals:
    """``HistoryReads.totals``, kept up to date incrementally between calls.

    Changes and deployments are only ever added, and a change is attributed with its new
    deployment, so the lead histograms of the last call plus those of the changes of newer
    deployments are the new ones; when the changes table holds any other row count (a change
    attributed to an older deployment), everything is recounted. Integer-second lead times (git
    commit times) sum exactly either way; fractional ones may differ from a recount in the last
    bit of a double.
    """

    def __init__(self) -> None:
        self._cache: tuple[tuple[str, tuple[float, ...]], int, int, LeadTotals] | None = None
        self._lock = threading.Lock()

    def totals(
        self,
        reads: HistoryReads,
        snapshot: AbstractContextManager[Connection],
        change_start: str,
        bounds: Sequence[float],
    ) -> dict[PairKey, PairTotals]:
        """The totals read by ``reads`` within ``snapshot`` (one state of the database)."""
        key = (change_start, tuple(float(b) for b in bounds))
        with self._lock, snapshot:
            n_changes = int(reads.conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0])
            max_dep = int(reads.conn.execute("SELECT COALESCE(MAX(id), 0) FROM deployments").fetchone()[0])
            cache = self._cache
            leads: LeadTotals
            if cache is not None and cache[0] == key and cache[2] <= max_dep:
                fresh = reads.lead_totals(change_start, bounds, cache[2]) if cache[2] < max_dep else {}
                leads = _merged(cache[3], fresh)
                if sum(v[0] for v in leads.values()) != n_changes:
                    leads = reads.lead_totals(change_start, bounds, None)
            else:
                leads = reads.lead_totals(change_start, bounds, None)
            self._cache = (key, n_changes, max_dep, leads)
            out = reads.deployment_totals()
        for pair, (n, total, le) in leads.items():
            t = out.setdefault(pair, PairTotals())
            t.changes, t.lead_seconds_sum, t.lead_le = n, total, le
        return out


def _merged(kept: LeadTotals, fresh: LeadTotals) -> LeadTotals:
    leads = dict(kept)
    for pair, (n, total, le) in fresh.items():
        old = leads.get(pair)
        if old is None:
            leads[pair] = (n, total, le)
        else:
            leads[pair] = (old[0] + n, old[1] + total, tuple(a + b for a, b in zip(old[2], le, strict=True)))
    return leads


class LazyHistories(Mapping[PairKey, PairHistory]):
    """``histories(change_start, since)`` read one pair at a time, when asked for, and not kept.

    ``snapshot.build`` visits each pair once; a recompute then never holds more than one pair's
    window as objects, so it neither peaks nor fragments the heap with the whole window's.
    Differs from ``histories(since=...)`` only in listing pairs whose deployments all precede
    ``since`` (with an empty history), which ``build`` lists anyway from its totals.
    """

    def __init__(self, reads: HistoryReads, change_start: str, since: float) -> None:
        self._reads = reads
        self._change_start = change_start
        self._since = since
        self._keys = reads.pair_keys()
        self._known = set(self._keys)

    def __getitem__(self, key: PairKey) -> PairHistory:
        if key not in self._known:
            raise KeyError(key)
        return self._reads.pair_history(key, self._change_start, self._since)

    def __iter__(self) -> Iterator[PairKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
