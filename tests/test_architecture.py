"""The package's shape: no import cycles, no layer importing one above it, `__init__.py` files that only re-export."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edgeseg"

# What each part may not import (function-level imports included: a lazy import is still a dependency).
FORBIDDEN = {
    "edgeseg.runtime": (
        "edgeseg.calibration",
        "edgeseg.bench",
        "edgeseg.export",
        "edgeseg.deploy",
        "edgeseg.tools",
        "edgeseg.models",
        "edgeseg.cli",
    ),
    "edgeseg.data": (
        "edgeseg.runtime",
        "edgeseg.export",
        "edgeseg.calibration",
        "edgeseg.engines",
        "edgeseg.bench",
        "edgeseg.deploy",
        "edgeseg.tools",
        "edgeseg.models",
        "edgeseg.cli",
    ),
    "edgeseg.models": (
        "edgeseg.runtime",
        "edgeseg.export",
        "edgeseg.calibration",
        "edgeseg.engines",
        "edgeseg.bench",
        "edgeseg.deploy",
        "edgeseg.tools",
        "edgeseg.cli",
    ),
    "edgeseg.engines": (
        "edgeseg.runtime",
        "edgeseg.export",
        "edgeseg.calibration",
        "edgeseg.bench",
        "edgeseg.deploy",
        "edgeseg.tools",
        "edgeseg.cli",
    ),
    "edgeseg.export": (
        "edgeseg.calibration",
        "edgeseg.engines",
        "edgeseg.bench",
        "edgeseg.deploy",
        "edgeseg.tools",
        "edgeseg.cli",
    ),
    "edgeseg.calibration": ("edgeseg.engines", "edgeseg.bench", "edgeseg.deploy", "edgeseg.tools", "edgeseg.cli"),
}
SHARED_HELPERS = ("bundle", "errors", "fileio", "progress", "timing", "metrics", "tables", "onnx_graph", "classes")
for helper in SHARED_HELPERS:  # the helpers at the top are below everything
    FORBIDDEN[f"edgeseg.{helper}"] = tuple(
        f"edgeseg.{part}"
        for part in ("runtime", "data", "models", "export", "calibration", "engines", "bench", "deploy", "tools", "cli")
    )


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgeseg modules `name` imports, anywhere in the file (a module, or a module's attribute)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return {m for m in found if m in modules and m != name}


@functools.lru_cache(maxsize=None)  # one parse of the package for every test here
def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_layer_imports_one_above_it(part):
    graph = import_graph()
    offending = sorted(
        f"{name} imports {dependency}"
        for name, dependencies in graph.items()
        if name == part or name.startswith(part + ".")
        for dependency in dependencies
        if any(dependency == above or dependency.startswith(above + ".") for above in FORBIDDEN[part])
    )
    assert not offending, "; ".join(offending)


def test_init_files_only_re_export():
    for path in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            plain = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            )
            names = isinstance(node, ast.Assign) and all(
                isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in node.targets
            )
            assert plain or names, (
                f"{path.relative_to(PACKAGE.parent)} line {node.lineno}: an __init__.py only re-exports"
            )


# A bundle's kind is decided once per layer, by a registry keyed by the manifest's output kind (the runtime's heads,
# calibration's profiles, eval's and info's scorers, deploy's refusals), not by is_instances / is_keypoints /
# is_semantic read across the verbs (21 reads before the registries).
KIND_READ = re.compile(r"\bis_(instances|keypoints|semantic)\b")
MAX_KIND_READS = 5


def test_the_kind_is_read_in_few_places_outside_the_bundle():
    reads = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "bundle.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for _ in KIND_READ.finditer(line)
    ]
    assert len(reads) <= MAX_KIND_READS, f"{len(reads)} reads of a bundle's kind: {', '.join(reads)}"


def test_every_output_kind_has_a_head_a_calibration_profile_and_a_scorer():
    from edgeseg.bundle import OUTPUT_KINDS
    from edgeseg.calibration.profiles import PROFILES
    from edgeseg.runtime.heads import HEADS
    from edgeseg.tools.scorers import SCORERS

    for registry in (HEADS, PROFILES, SCORERS):
        assert sorted(registry) == sorted(OUTPUT_KINDS)
