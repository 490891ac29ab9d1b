# SPDX-License-Identifier: Apache-2.0
"""A line scanner for the plain block-YAML most values files are written in.

Reading ``image.tag`` through a YAML library builds the whole document as Python objects, which
cost more than everything else an ingest does per manifest commit. This scanner reads a strict
subset instead: block mappings and sequences, plain and simply quoted scalars, comments, ``[]``
and ``{}``, ``|``/``>`` block scalars it skips. Anything outside that subset (anchors, tags, flow
collections, escapes, multi-line scalars, tabs, non-ASCII, several documents, anything odd about
indentation) makes it answer ``None``, and the caller parses with the YAML library as before. So
it never decides a document the library would decide differently; the tests check that against
libyaml on generated and mutated documents.
"""

from __future__ import annotations

import re
from typing import Literal

Found = tuple[Literal["value", "missing", "non_scalar"], str]

_OUTSIDE = re.compile(r"[^\x20-\x7e\n]")  # tabs, CR, control characters, non-ASCII: not decided here
_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +(.*))?$")
_START = re.compile(r"---(?: +#.*)?$")
_END = re.compile(r"\.\.\.(?: +#.*)?$")
_BLOCK_HEADER = re.compile(r"[|>][+-]?(?: +#.*)?$")
_PLAIN_START_BAD = frozenset(",[]{}#&*!|>'\"%@`?:")


class _Unsure(Exception):
    """The document is outside the subset this scanner decides."""


class _BlockScalar:
    """A ``|``/``>`` scalar the scanner skipped: its value is left to the YAML library."""


_BLOCK = _BlockScalar()
Node = dict[str, "Node"] | list["Node"] | str | _BlockScalar | None


def lookup(text: str, keys: tuple[str, ...]) -> Found | None:
    """What ``keys`` names in ``text``, as the YAML library's base loader would see it; ``None``
    when the scanner cannot tell (the caller then parses the document in full)."""
    if _OUTSIDE.search(text):
        return None
    try:
        doc = _Scanner(text.split("\n")).document()
    except _Unsure:
        return None
    for k in keys:
        if not isinstance(doc, dict) or k not in doc:
            return ("missing", "")
        doc = doc[k]
    if isinstance(doc, _BlockScalar):
        return None
    if doc is None or doc == "":
        return ("missing", "")
    if not isinstance(doc, str):
        return ("non_scalar", "")
    return ("value", doc)


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


class _Scanner:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        # (line number, indent, content) of every line that is not blank or a comment, found once
        self.items: list[tuple[int, int, str]] = []
        for n, line in enumerate(lines):
            line = line.rstrip(" ")
            content = line.lstrip(" ")
            if content and content[0] != "#":
                self.items.append((n, len(line) - len(content), content))
        self.k = 0
        self.pending: tuple[int, str] | None = None  # a compact mapping's first key, after its "- "

    def peek(self) -> tuple[int, str] | None:
        """(indent, content) of the next line that is not blank or a comment."""
        if self.pending is not None:
            return self.pending
        if self.k < len(self.items):
            _, indent, content = self.items[self.k]
            return indent, content
        return None

    def consume(self) -> None:
        if self.pending is not None:
            self.pending = None
        else:
            self.k += 1

    def document(self) -> Node:
        first = self.peek()
        if first is not None and first[0] == 0 and _START.match(first[1]):
            self.consume()
            first = self.peek()
        if first is None:
            return None
        if first[0] != 0:
            raise _Unsure
        node = self.block(0)
        end = self.peek()
        if end is not None and end[0] == 0 and _END.match(end[1]):
            self.consume()
            end = self.peek()
        if end is not None:
            raise _Unsure  # a second document, or indentation the scanner does not follow
        return node

    def block(self, indent: int) -> Node:
        peeked = self.peek()
        assert peeked is not None
        return self.sequence(indent) if _is_item(peeked[1]) else self.mapping(indent, True)

    def mapping(self, indent: int, items_at_indent: bool) -> dict[str, Node]:
        out: dict[str, Node] = {}
        while True:
            peeked = self.peek()
            if peeked is None or peeked[0] < indent:
                return out
            if peeked[0] > indent or _is_item(peeked[1]):
                raise _Unsure
            m = _KEY.match(peeked[1])
            if m is None:
                raise _Unsure
            self.consume()
            out[m.group(1)] = self.value(m.group(2) or "", indent, items_at_indent)  # the last duplicate wins

    def sequence(self, indent: int) -> list[Node]:
        out: list[Node] = []
        while True:
            peeked = self.peek()
            if peeked is None or peeked[0] < indent:
                return out
            if peeked[0] > indent:
                raise _Unsure
            if not _is_item(peeked[1]):
                return out  # a key of the mapping this sequence is the value of, at the same indent
            self.consume()
            after = peeked[1][1:]
            rest = after.lstrip(" ")
            if rest and not rest.startswith("#") and _KEY.match(rest):
                self.pending = (indent + 1 + len(after) - len(rest), rest)
                out.append(self.mapping(self.pending[0], False))
            elif _is_item(rest):
                raise _Unsure
            else:
                out.append(self.value(rest, indent, False))

    def value(self, rest: str, indent: int, items_at_indent: bool) -> Node:
        """The value after ``key:`` or ``-`` on a line at ``indent``: on the line, or the block below."""
        if not rest or rest.startswith("#"):
            peeked = self.peek()
            if peeked is not None and peeked[0] > indent:
                return self.block(peeked[0])
            if peeked is not None and peeked[0] == indent and items_at_indent and _is_item(peeked[1]):
                return self.sequence(indent)
            return ""  # null: the base loader's empty scalar
        c = rest[0]
        if c == "'" or c == '"':
            return _quoted(rest)
        if rest[:2] in ("[]", "{}"):
            _tail(rest[2:])
            return [] if c == "[" else {}
        if c in "|>":
            if not _BLOCK_HEADER.match(rest):
                raise _Unsure
            self.skip_block_scalar(indent)
            return _BLOCK
        if c in _PLAIN_START_BAD or (c == "-" and (len(rest) == 1 or rest[1] == " ")):
            raise _Unsure
        cut = rest.find(" #")
        plain = (rest if cut < 0 else rest[:cut]).rstrip(" ")
        if ": " in plain or plain.endswith(":"):
            raise _Unsure
        return plain

    def skip_block_scalar(self, indent: int) -> None:
        """Step over a block scalar's lines: those indented like its first non-empty line."""
        assert self.pending is None
        lines = self.lines
        i = self.items[self.k - 1][0] + 1  # the line after the header
        content_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            if line == "":
                i += 1
                continue
            stripped = line.lstrip(" ")
            if not stripped:
                raise _Unsure  # whitespace-only lines: indentation rules the scanner does not follow
            at = len(line) - len(stripped)
            if content_indent is None:
                if at <= indent:
                    break  # an empty block scalar
                content_indent = at
            elif at < content_indent:
                if at > indent:
                    raise _Unsure
                break
            i += 1
        while self.k < len(self.items) and self.items[self.k][0] < i:
            self.k += 1


def _quoted(rest: str) -> str:
    """A single- or double-quoted scalar that ends on its line (double: without escapes)."""
    if rest[0] == '"':
        end = rest.find('"', 1)
        if end < 0 or "\\" in rest[:end]:
            raise _Unsure
        _tail(rest[end + 1 :])
        return rest[1:end]
    j = 1
    while True:
        end = rest.find("'", j)
        if end < 0:
            raise _Unsure
        if rest[end + 1 : end + 2] == "'":
            j = end + 2
            continue
        _tail(rest[end + 1 :])
        return rest[1:end].replace("''", "'")


def _tail(tail: str) -> None:
    """Only a comment may follow a complete value on its line."""
    if tail and not (tail[0] == " " and tail.lstrip(" ").startswith("#")):
        raise _Unsure
