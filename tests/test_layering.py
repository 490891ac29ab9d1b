"""DESIGN §4 layering, checked on the real import statements of every module in ``exporter/``.

An arrow is "may import": cli -> daemon -> {http, metrics, sources, store} -> {correlate, dora}
-> model -> errors. Helpers sit at the layer of what they serve (``ingesting``/``explaining`` wire
sources to the store, so they are daemon level; ``snapshot``/``health`` are pure, at dora's level).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "exporter"

# layer rank: a module may import modules of a strictly lower rank (or its own package's siblings
# where noted); equal-rank peers stay independent of each other.
RANK = {
    "exporter.errors": 0,
    "exporter.model": 1,
    "exporter.durations": 1,
    "exporter.correlate": 2,
    "exporter.dora": 2,
    "exporter.snapshot": 3,
    "exporter.health": 3,
    "exporter.config": 3,
    "exporter.logs": 3,
    "exporter.demo": 3,
    "exporter.sources": 4,
    "exporter.store": 4,
    "exporter.metrics": 4,
    "exporter.http": 4,
    "exporter.ingesting": 5,
    "exporter.syncing": 5,
    "exporter.ingesting_github": 5.5,  # builds on ingesting (the change lister and the rollback rule)
    "exporter.ingesting_deployments": 5.5,  # builds on ingesting and syncing (adoption, the restore rule)
    "exporter.explaining": 5,
    "exporter.daemon": 6,
    "exporter.cli": 7,
    "exporter": 0,  # the package root only carries __version__
}


def _unit(module: str) -> str:
    """The layering unit of a module: sub-packages (sources, store, demo) count as one."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        out.append((name.removesuffix(".__init__"), path))
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "exporter" or m.startswith("exporter.")}


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_follow_the_layers(module: str, path: Path) -> None:
    unit = _unit(module)
    assert unit in RANK, f"{module} is in no layer: add it to RANK deliberately"
    for imported in _imports(path):
        target = _unit(imported)
        if target not in RANK or target == unit or imported == "exporter":
            continue
        assert RANK[target] < RANK[unit], f"{module} imports {imported}: layer {RANK[unit]} -> {RANK[target]}"


def test_only_sources_run_git_or_talk_to_apis() -> None:
    for module, path in _modules():
        text = path.read_text()
        if _unit(module) in ("exporter.sources", "exporter.demo"):
            continue  # the demo writes its repository with git fast-import: it is a generator, not a source
        for forbidden in ("import kubernetes", "from kubernetes", "import github", "from github", '"git"'):
            assert forbidden not in text, f"{module} uses {forbidden!r}; only exporter.sources may"
