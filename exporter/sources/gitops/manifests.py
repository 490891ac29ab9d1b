# SPDX-License-Identifier: Apache-2.0
"""GitOps source: deployed values per (service, environment) from a manifest repository's history.

One streaming first-parent ``--raw`` diff of the new range (``Git.first_parent_diffs``) lists, per
commit, the blobs of matching files that changed (merges diffed against their first parent); each
new blob is read once
through ``cat-file --batch`` and parsed. A value that differs from the last one seen for its
(service, environment) is a deployment. Deleting, moving or re-adding a file with the same value
changes nothing, because the state is kept per (service, environment), not per file.

A touched file asserts only the values that changed in it: each pair's value in the new blob is
compared with the old blob's (the diff names both), so an unchanged line in a file touched for
another service cannot flip a pair whose tag a second, stale file also carries. A file that
appears asserts what it holds, except the values a file deleted by the same commit held (a move).
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
Triples = tuple[tuple[str, str, str], ...]  # (service, environment, value) of one blob
_NO_BLOB = "0" * 40  # the old side of an added file, the new side of a deleted one


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
    old: str = _NO_BLOB


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
        # per path, its newest blob parsed and what it says: that is the old side of the path's next
        # change, so comparing old with new costs no read and no parse along a first-parent history
        self._newest: dict[str, tuple[str, Triples]] = {}

    def prefetch(self, entries: list[_Entry]) -> None:
        """Read the blobs of many entries in one pipelined pass, ahead of parsing them: every new
        blob, and the old blobs that are not the newest parsed for their path (a path's first change
        in this reader: the start of a poll, or of a file's history before a deletion)."""
        wanted: list[str] = []
        newest: dict[str, str] = {}
        for e in entries:
            if self.rule_for(e.path) is None:
                continue
            if e.old != _NO_BLOB and newest.get(e.path, self._newest.get(e.path, ("",))[0]) != e.old:
                wanted.append(e.old)
            if e.status != "D":
                wanted.append(e.blob)
            newest[e.path] = e.blob
        self._prefetched = self.git.read_blobs(
            list(dict.fromkeys(wanted)), max_size=self.max_bytes, budget=PREFETCH_BUDGET
        )

    def old_side(self, entry: _Entry) -> Triples:
        """What the old side of a changed or deleted file said (nothing for an added file)."""
        if entry.old == _NO_BLOB:
            return ()
        newest = self._newest.get(entry.path)
        if newest is not None and newest[0] == entry.old:
            return newest[1]
        return self.parse(entry.old, entry.path)[0]

    def new_side(self, entry: _Entry) -> tuple[Triples, str | None]:
        """What the new side of a changed or added file says (``parse``), remembered as the path's
        newest blob."""
        triples, reason = self.parse(entry.blob, entry.path)
        self._newest[entry.path] = (entry.blob, triples)
        return triples, reason

    def conflicts(self, blob: str, path: str) -> str:
        """Which values an ambiguous blob gives a pair, first (the one used) and then the others.
        Read again only to say so in a log line: ambiguous blobs are rare."""
        found = self.rule_for(path)
        data = self.git.read_blob(blob, max_size=self.max_bytes)
        if found is None or found[0].regex is None or not isinstance(data, bytes):
            return "several values"
        seen: dict[tuple[str, str], list[str]] = {}
        for service, env, value in _regex_matches(self.names, found[0], found[1], data.decode("utf-8", "replace")):
            values = seen.setdefault((service, env), [])
            if value not in values:
                values.append(value)
        return "; ".join(
            f"{service} {env} is {values[0]!r} (first match, used), then {', '.join(map(repr, values[1:]))}"
            for (service, env), values in seen.items()
            if len(values) > 1
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
            # the first match of a pair wins (grep's rule); a later one with another value is ambiguous
            first: dict[tuple[str, str], str] = {}
            ambiguous = False
            for service, env, value in _regex_matches(self.names, rule, parts, text):
                held = first.setdefault((service, env), value)
                ambiguous = ambiguous or held != value
            if not first:
                return (), "missing_key"
            return tuple((service, env, value) for (service, env), value in first.items()), (
                "ambiguous_value" if ambiguous else None
            )
        return tuple(out), None


def _regex_matches(
    names: Names, rule: ManifestRule, parts: dict[str, str], text: str
) -> Generator[tuple[str, str, str], None, None]:
    """Every (service, environment, tag) a regex rule matches in a text, in file order."""
    assert rule.regex is not None
    for m in rule.regex.finditer(text):
        groups = m.groupdict()
        service = groups.get("service") or rule.service or parts.get("service")
        env = groups.get("environment") or rule.environment or parts.get("environment")
        if not service or not env or not groups.get("tag"):
            continue
        yield names.service(service), names.environment(env), groups["tag"]


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
    return _Entry(fields[4][0], fields[3], path, fields[2])


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
            if entry is not None:  # a deleted file deploys nothing, but tells what a move carries over
                pending[-1][1].append(entry)
    yield from _parsed(extractor, pending)


READ_AHEAD = 256


def _parsed(
    extractor: Extractor, pending: list[tuple[CommitValues, list[_Entry]]]
) -> Generator[CommitValues, None, None]:
    extractor.prefetch([e for _, entries in pending for e in entries])
    for current, entries in pending:
        carried = _carried(extractor, entries)
        for entry in entries:
            if entry.status == "D":
                continue
            triples, reason = extractor.new_side(entry)
            if reason is not None:
                current.skips.append(_skip(extractor, current, entry, reason))
            before = extractor.old_side(entry) if entry.old != _NO_BLOB else carried
            for service, env, value in triples:
                if (service, env, value) in before:
                    continue  # unchanged in this file (or carried over by a move): it asserts nothing
                current.values.append(
                    ManifestValue(
                        service, env, value, entry.path, current.commit, utc(current.committed_at_ts), current.message
                    )
                )
        yield current


def _carried(extractor: Extractor, entries: list[_Entry]) -> Triples:
    """The values held by the files a commit deletes, when it also adds some: a file moved (or a
    layout migrated) in one commit carries them over, and asserts none of them again."""
    deleted = [e for e in entries if e.status == "D"]
    if not deleted or all(e.old != _NO_BLOB for e in entries):
        return ()
    return tuple(t for e in deleted for t in extractor.old_side(e))


def _skip(extractor: Extractor, current: CommitValues, entry: _Entry, reason: str) -> Skip:
    where = f"{entry.path} at {current.commit[:12]}"
    # a file's content is judged once, however many commits carry it: keyed by path and blob
    if reason == "ambiguous_value":
        return Skip(
            SOURCE, reason, f"{entry.path}@{entry.blob}", f"{where}: {extractor.conflicts(entry.blob, entry.path)}"
        )
    if reason == TOO_LARGE:
        detail = f"{where}: blob {entry.blob[:12]} over {extractor.max_bytes} bytes"
        return Skip(SOURCE, reason, f"{entry.path}@{entry.blob}", detail)
    return Skip(SOURCE, reason, f"{current.commit}:{entry.path}", where)


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
