# SPDX-License-Identifier: Apache-2.0
"""GitOps source: deployed values per (service, environment) from a manifest repository's history.

One streaming first-parent ``--raw`` diff of the new range (``Git.first_parent_diffs``) lists, per
commit, the blobs of matching files that changed (merges diffed against their first parent); each
new blob is read once
through ``cat-file --batch`` and parsed. A value that differs from the last one seen for its
(service, environment) is a deployment. Deleting, moving or re-adding a file with the same value
changes nothing, because the state is kept per (service, environment), not per file.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from exporter.model import ManifestValue, Skip, utc
from exporter.settings import GitOpsRepo, ManifestRule, Names
from exporter.sources.git.repository import Blob, Git, Oversized
from exporter.sources.gitops import yamlscan

SOURCE = "gitops"
TOO_LARGE = "manifest_too_large"
# The most blob content one read-ahead holds at once: READ_AHEAD commits of manifests near the size
# cap would otherwise be held together (256 x 4 MiB). Past it, blobs are read one by one.
PREFETCH_BUDGET = 16 << 20
try:  # libyaml's loader is ~10x faster; the pure one is the fallback
    _Loader: type[Any] = yaml.CBaseLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.BaseLoader

PairState = dict[tuple[str, str], str]


@dataclass
class CommitValues:
    """What one manifest commit says: the values it sets and the inputs it could not use."""

    commit: str
    committed_at_ts: int
    message: str
    values: list[ManifestValue] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    status: str
    blob: str
    path: str


def _walk(doc: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if not isinstance(doc, Mapping) or k not in doc:
            return None
        doc = doc[k]
    return doc


class Extractor:
    """Parses blobs by the repo's rules; results are cached by blob id, since blobs never change."""

    def __init__(self, repo: GitOpsRepo, names: Names, git: Git) -> None:
        self.rules = repo.manifests
        self.names = names
        self.git = git
        self.max_bytes = repo.max_manifest_bytes
        self.parse = lru_cache(maxsize=4096)(self._parse)
        self._prefetched: dict[str, Blob] = {}

    def prefetch(self, entries: list[_Entry]) -> None:
        """Read the blobs of many entries in one pipelined pass, ahead of parsing them."""
        wanted = [e.blob for e in entries if e.status != "D" and self.rule_for(e.path) is not None]
        self._prefetched = self.git.read_blobs(
            list(dict.fromkeys(wanted)), max_size=self.max_bytes, budget=PREFETCH_BUDGET
        )

    def rule_for(self, path: str) -> tuple[ManifestRule, dict[str, str]] | None:
        for rule in self.rules:
            m = rule.path_regex.match(path)
            if m:
                return rule, {k: v for k, v in m.groupdict().items() if v is not None}
        return None

    def _parse(self, blob: str, path: str) -> tuple[tuple[tuple[str, str, str], ...], str | None]:
        """``((service, environment, value), ...)`` for one blob, or an unmatched reason."""
        found = self.rule_for(path)
        if found is None:
            return (), None
        rule, parts = found
        data = (
            self._prefetched.pop(blob)
            if blob in self._prefetched
            else self.git.read_blob(blob, max_size=self.max_bytes)
        )
        if data is None:
            return (), "blob_missing"
        if isinstance(data, Oversized):
            return (), TOO_LARGE
        text = data.decode("utf-8", errors="replace")
        out: list[tuple[str, str, str]] = []
        if rule.yaml_key is not None:
            value, reason = yaml_value(text, rule.yaml_key)
            if value is None:
                return (), reason
            service = rule.service or parts.get("service")
            env = rule.environment or parts.get("environment")
            assert service is not None and env is not None  # config validation guarantees one of them
            out.append((self.names.service(service), self.names.environment(env), value.strip()))
        else:
            assert rule.regex is not None
            for m in rule.regex.finditer(text):
                groups = m.groupdict()
                service = groups.get("service") or rule.service or parts.get("service")
                env = groups.get("environment") or rule.environment or parts.get("environment")
                if not service or not env or not groups.get("tag"):
                    continue
                out.append((self.names.service(service), self.names.environment(env), groups["tag"]))
            if not out:
                return (), "missing_key"
        return tuple(out), None


def yaml_value(text: str, keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """``(value, None)`` or ``(None, unmatched reason)`` for the scalar at ``keys`` in a YAML text.

    Plain block YAML is read by the line scanner; whatever it cannot decide, by the YAML library."""
    found = yamlscan.lookup(text, keys)
    if found is not None:
        kind, value = found
        return (value, None) if kind == "value" else (None, _REASONS[kind])
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - BaseLoader builds plain str/list/dict only
    except yaml.YAMLError:
        return None, "malformed_manifest"
    value = _walk(doc, keys)
    if value is None or value == "":
        return None, "missing_key"
    if not isinstance(value, str):
        return None, "non_scalar_value"
    return value, None


_REASONS = {"missing": "missing_key", "non_scalar": "non_scalar_value"}


def _parse_raw(line: str) -> _Entry | None:
    # ":100644 100644 <old> <new> M\tpath" (git diff --raw, no renames)
    meta, _, path = line.partition("\t")
    fields = meta.split()
    if len(fields) < 5 or not path:
        return None
    return _Entry(fields[4][0], fields[3], path)


def read_commits(
    git: Git, repo: GitOpsRepo, extractor: Extractor, rev_range: str, piped: bool = False
) -> Generator[CommitValues, None, None]:
    """Stream the values set by each first-parent commit in ``rev_range``, oldest first."""
    pathspecs = sorted({r.pathspec for r in repo.manifests})
    lines = git.first_parent_diffs(rev_range, "%x1e%H%x1f%ct%x1f%s", pathspecs, piped=piped)
    # commits are read ahead in groups so that their blobs are fetched in one pipelined pass
    pending: list[tuple[CommitValues, list[_Entry]]] = []
    for line in lines:
        if line.startswith("\x1e"):
            if len(pending) >= READ_AHEAD:
                yield from _parsed(extractor, pending)
                pending = []
            sha, ct, subject = line[1:].split("\x1f", 2)
            pending.append((CommitValues(sha, int(ct), subject), []))
        elif line.startswith(":") and pending:
            entry = _parse_raw(line)
            if entry is not None and entry.status != "D":  # a deleted file deploys nothing
                pending[-1][1].append(entry)
    yield from _parsed(extractor, pending)


READ_AHEAD = 256


def _parsed(
    extractor: Extractor, pending: list[tuple[CommitValues, list[_Entry]]]
) -> Generator[CommitValues, None, None]:
    extractor.prefetch([e for _, entries in pending for e in entries])
    for current, entries in pending:
        for entry in entries:
            triples, reason = extractor.parse(entry.blob, entry.path)
            if reason == TOO_LARGE:  # counted once per (file, blob), however many commits set it
                limit = extractor.max_bytes
                where = f"{entry.path} at {current.commit[:12]}: blob {entry.blob[:12]} over {limit} bytes"
                current.skips.append(Skip(SOURCE, reason, f"{entry.path}@{entry.blob}", where))
            elif reason is not None:
                current.skips.append(
                    Skip(SOURCE, reason, f"{current.commit}:{entry.path}", f"{entry.path} at {current.commit[:12]}")
                )
            for service, env, value in triples:
                current.values.append(
                    ManifestValue(
                        service, env, value, entry.path, current.commit, utc(current.committed_at_ts), current.message
                    )
                )
        yield current


def new_values(commit: CommitValues, state: PairState) -> list[ManifestValue]:
    """The values of ``commit`` that differ from ``state`` (updated in place): its deployments.

    When one commit sets a pair twice (two files), the last file in git's path order wins.
    """
    latest: dict[tuple[str, str], ManifestValue] = {}
    for v in commit.values:
        latest[(v.service, v.environment)] = v
    out = []
    for pair, v in latest.items():
        if state.get(pair) != v.value:
            state[pair] = v.value
            out.append(v)
    return out
