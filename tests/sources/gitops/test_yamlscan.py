# SPDX-License-Identifier: Apache-2.0
"""The block-YAML line scanner against libyaml: whenever it answers, libyaml agrees.

Documents come from a seeded generator of the styles values files use (nested mappings,
sequences of scalars and of mappings, quoting, comments, block scalars, duplicate keys), then
some are mutated (characters inserted or deleted, lines re-indented or duplicated) so that
malformed and unusual YAML is covered as much as the well-formed kind.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.sources import gitops
from exporter.sources.gitops import yamlscan

Loader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

KEYS = ["image", "tag", "repository", "a", "b.c", "x-y", "1", "on", "env", "name", "value"]
PLAINS = [
    "v1.2.3", "1.0", "~", "null", "a#b", "http://x:80/y", "-1", "a b", "---", "-x", "a,b", "a]b", "yes",
    "8a5ebb49fbef8c466a4cb57726c2c09b0fc54d5e", "500m", "a  b", "a'b", "a # c", "x:y",
]  # fmt: skip
ODD = ["x: y", "x:", "@x", "%x", "&a", "*a", "!t", "? x", "[a, b]", "{a: 1}", "'", '"', "-", "- x", "|", ">", ":x"]
QUOTED = ["'a b'", "'it''s'", "'a#b'", '"a b"', '"a\\"b"', '"a #b"', "''", '""', "'open", '"open', "'a' b", '"a"x']


def _scalar(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(PLAINS)
    if pick < 0.7:
        return rng.choice(ODD)
    if pick < 0.85:
        return rng.choice(QUOTED)
    return rng.choice(["[]", "{}", "[] # e", "", "# only a comment"])


def _comment(rng: random.Random, indent: str) -> list[str]:
    return [rng.choice(["", f"{indent}# note", "#", "   "])] if rng.random() < 0.15 else []


def _block(rng: random.Random, depth: int, indent: int, step: int) -> list[str]:
    """Lines of a mapping or a sequence at ``indent``."""
    pad = " " * indent
    lines: list[str] = []
    if rng.random() < 0.25 and depth > 0:
        for _ in range(rng.randint(1, 3)):
            lines += _comment(rng, pad)
            if depth > 1 and rng.random() < 0.3:
                sub = _block(rng, depth - 1, indent + 2, step)
                if sub and not sub[0].lstrip().startswith("-"):
                    lines.append(f"{pad}- {sub[0].lstrip()}")  # a compact mapping: first key after "- "
                    lines += sub[1:]
                else:
                    lines.append(f"{pad}-")
                    lines += _block(rng, depth - 1, indent + step, step)
            else:
                lines.append(f"{pad}- {_scalar(rng)}".rstrip())
        return lines
    for _ in range(rng.randint(1, 4)):
        lines += _comment(rng, pad)
        key = rng.choice(KEYS)
        roll = rng.random()
        if depth > 0 and roll < 0.35:
            lines.append(f"{pad}{key}:")
            same_indent_items = rng.random() < 0.2
            lines += _block(rng, depth - 1, indent if same_indent_items else indent + step, step)
        elif roll < 0.45:
            lines.append(f"{pad}{key}: {rng.choice(['|', '>-', '|+', '|2', '> # c'])}")
            body = " " * (indent + rng.choice([step, step, 1, 0]))
            for _ in range(rng.randint(0, 3)):
                line = rng.choice(["text", "a: b", "# not a comment", "- x", "", " "])
                lines.append(f"{body}{line}" if line else "")
        else:
            lines.append(f"{pad}{key}: {_scalar(rng)}".rstrip())
    return lines


def _mutate(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.3 and lines[i]:
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + lines[i][j + 1 :]
        elif op < 0.6:
            j = rng.randint(0, len(lines[i]))
            insert = rng.choice([" ", ":", "#", "-", "'", '"', "\t", "&", "*", "|", "{", "[", "é", ": "])
            lines[i] = lines[i][:j] + insert + lines[i][j:]
        elif op < 0.8:
            lines[i] = rng.choice([" ", "  ", ""]) + lines[i] if rng.random() < 0.5 else lines[i][1:]
        else:
            lines.insert(i, lines[i])
    return "\n".join(lines)


def _document(rng: random.Random) -> str:
    lines = _block(rng, rng.randint(0, 3), 0, rng.choice([2, 2, 4]))
    head = rng.choice(["", "", "---\n", "# header\n", "--- # x\n", "%YAML 1.1\n---\n"])
    tail = rng.choice(["\n", "", "\n\n", "\n...\n", "\n---\nb: 2\n"])
    return head + "\n".join(lines) + tail


def _reference(text: str, keys: tuple[str, ...]) -> tuple[str, str]:
    try:
        doc = yaml.load(text, Loader=Loader)
    except yaml.YAMLError:
        return ("malformed", "")
    for k in keys:
        if not isinstance(doc, dict) or k not in doc:
            return ("missing", "")
        doc = doc[k]
    if doc is None or doc == "":
        return ("missing", "")
    if not isinstance(doc, str):
        return ("non_scalar", "")
    return ("value", doc)


def _paths(rng: random.Random, text: str) -> list[tuple[str, ...]]:
    out = [("image", "tag"), ("a",), (rng.choice(KEYS),), (rng.choice(KEYS), rng.choice(KEYS))]
    try:
        doc = yaml.load(text, Loader=Loader)
    except yaml.YAMLError:
        return out
    path: list[str] = []
    while isinstance(doc, dict) and doc:
        key = rng.choice(sorted(doc))
        path.append(key)
        doc = doc[key]
        out.append(tuple(path))
    return out


@pytest.mark.parametrize("mutated", [False, True], ids=["generated", "mutated"])
def test_every_answer_agrees_with_libyaml(mutated: bool) -> None:
    rng = random.Random(20261126 + mutated)
    decided = malformed_seen = 0
    kinds: set[str] = set()
    for _ in range(6000):
        text = _document(rng)
        if mutated:
            text = _mutate(rng, text)
        for keys in _paths(rng, text):
            got = yamlscan.lookup(text, keys)
            want = _reference(text, keys)
            malformed_seen += want[0] == "malformed"
            if got is not None:
                decided += 1
                kinds.add(got[0])
                assert got == want, f"{keys} in:\n{text}"
    # the comparison means something only if the scanner decided many documents of every kind,
    # and the generator also produced documents libyaml rejects
    assert decided > (1500 if mutated else 5000), decided
    assert kinds == {"value", "missing", "non_scalar"}
    assert malformed_seen > 1000, malformed_seen


REALISTIC = """\
# values for svc-000 in prod
replicaCount: 2
image:
  repository: registry.example/svc-000
  tag: "v1.4.2"  # bumped by CI
  pullPolicy: IfNotPresent
imagePullSecrets: []
podAnnotations: {}
env:
  - name: LOG_LEVEL
    value: info
  - name: FEATURES
    value: 'a,b'
args:
- --port=8080
- --verbose
config: |
  server:
    port: 8080
  # a comment inside the file
ingress:
  enabled: false
  hosts:
    - host: shop.example
      paths:
        - path: /
          pathType: Prefix
resources:
  limits: {cpu: 500m}
"""


def test_a_realistic_values_file_is_decided_by_the_scanner() -> None:
    realistic = REALISTIC.replace("  limits: {cpu: 500m}\n", "  limits:\n    cpu: 500m\n")
    assert yamlscan.lookup(realistic, ("image", "tag")) == ("value", "v1.4.2")
    assert yamlscan.lookup(realistic, ("env",)) == ("non_scalar", "")
    assert yamlscan.lookup(realistic, ("image", "digest")) == ("missing", "")
    assert _reference(realistic, ("ingress", "enabled")) == yamlscan.lookup(realistic, ("ingress", "enabled"))
    # a flow mapping is outside the subset: the full parser decides, with the same answer
    assert yamlscan.lookup(REALISTIC, ("image", "tag")) is None
    assert gitops.yaml_value(REALISTIC, ("image", "tag")) == ("v1.4.2", None)


@pytest.mark.parametrize(
    ("text", "keys", "want"),
    [
        ("image:\n  tag: a\nimage:\n  tag: b\n", ("image", "tag"), ("b", None)),  # the last duplicate wins
        ("image:\n  tag: [a\n", ("image", "tag"), (None, "malformed_manifest")),
        ("image:\n  tag:\n", ("image", "tag"), (None, "missing_key")),
        ("image:\n  tag:\n    - a\n", ("image", "tag"), (None, "non_scalar_value")),
        ("image:\n  tag: &t a\nother: *t\n", ("other",), ("a", None)),  # anchors: the full parser
        ("image:\n\ttag: a\n", ("image", "tag"), (None, "malformed_manifest")),  # a tab indent
    ],
)
def test_yaml_value_reasons(text: str, keys: tuple[str, ...], want: tuple[str | None, str | None]) -> None:
    assert gitops.yaml_value(text, keys) == want


def test_the_demo_manifests_take_the_scanner_path(tmp_path: Path) -> None:
    """Otherwise the scanner would be dead code for the layout the README starts with."""
    from exporter.demo import generate

    out = tmp_path / "demo"
    generate.generate(out, seed=1, days=3)
    generate.write_config(out, "127.0.0.1:0")
    repo = out / "minishop"
    paths = [p for p in _git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines() if p.endswith(".yaml")]
    assert paths
    cfg = yaml.safe_load((out / "dora.yaml").read_text())
    keys = {tuple(m["yaml_key"].split(".")) for repo_cfg in cfg["gitops"] for m in repo_cfg["manifests"]}
    assert keys == {("image", "tag")}
    for path in paths:
        text = _git(repo, "show", f"HEAD:{path}")
        assert yamlscan.lookup(text, ("image", "tag")) == _reference(text, ("image", "tag")), path


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout
