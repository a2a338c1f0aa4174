"""The adapters' layout holds: four rooms whose imports flow one way, no import cycle, small modules and a
small shared base class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "adapters"
ROOMS = ("framework", "methods", "harness", "rate_coding")
ALLOWED = {  # which rooms a room may import from
    "framework": {"framework"},
    "rate_coding": {"framework", "rate_coding"},
    "methods": {"framework", "rate_coding", "methods"},
    "harness": {"framework", "rate_coding", "harness"},
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["sinr_adapters", *parts])


MODULES = {_module(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            inside |= {id(n) for b in node.body for n in ast.walk(b)}
    return inside


def _imports(name: str) -> set[str]:
    """The sinr_adapters modules ``name`` imports at run time (module level or inside functions)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_blocks(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or id(node) in skip:
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith("sinr_adapters"):
            continue
        for alias in node.names:  # `from . import container` names a module
            candidate = f"{target}.{alias.name}"
            out.add(candidate if candidate in MODULES else target)
    return {m for m in out if m in MODULES and m != name}


def test_every_module_is_in_a_room():
    loose = [m for m in MODULES if m != "sinr_adapters" and m.split(".")[1] not in ROOMS]
    assert not loose


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_flow_from_the_framework_outwards(name):
    if name == "sinr_adapters":
        return
    room = name.split(".")[1]
    others = {m.split(".")[1] for m in _imports(name) if m != "sinr_adapters"}
    assert others <= ALLOWED[room], f"{name} imports from {sorted(others - ALLOWED[room])}"


def test_no_import_cycle_outside_type_checking():
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(n):], n]))
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert graph["sinr_adapters.methods.coinpp.adapter"] >= {"sinr_adapters.methods.coinpp.files"}


def test_modules_stay_small_and_the_shared_base_smaller():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 600}
    assert not long
    tree = ast.parse((ROOT / "framework" / "inr.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "INRAdapter"]
    assert cls.end_lineno - cls.lineno + 1 <= 250
