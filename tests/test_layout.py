"""The package's shape: no import cycles between autosplit modules, no huge files, the CLI imported by no one.

Every module under ``autosplit/`` is parsed with :mod:`ast` (nothing is imported). Its imports are collected
at every level (module, class and function bodies): ``import a.b``, ``from a import b`` (an edge to the
submodule ``a.b`` when it is one, else to ``a``), relative imports resolved against the module's package,
and ``importlib.import_module("literal")`` calls. Imports under ``if TYPE_CHECKING:`` are ignored. An import
of a package is an edge to its ``__init__.py``; only edges to autosplit modules are kept.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "autosplit"
MAX_LINES = 800
#: the ``python -m autosplit`` entry point is the one module outside autosplit/cli/ allowed to import it
CLI_ENTRY_POINTS = {"autosplit.__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _import_module_target(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` / ``import_module("x")``, else None."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def imported_names(module: str, source: str, *, is_package: bool = False) -> set[str]:
    """Every module name the ``source`` of ``module`` imports (any level; TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(source, filename=module)
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
        elif isinstance(node, ast.Call):
            target = _import_module_target(node)
            if target is not None:
                if target.startswith("."):
                    level = len(target) - len(target.lstrip("."))
                    target = _resolve_relative(module, is_package, level, target.lstrip(".") or None)
                found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: {autosplit modules it imports}}`` over every module of the package."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        names = imported_names(module, path.read_text(), is_package=path.name == "__init__.py")
        graph[module] = {name for name in names if name in MODULES and name != module}
    return graph


def cyclic_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    for start in sorted(graph):
        if start in index:
            continue
        # Iterative Tarjan: (node, iterator over its successors).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    return sorted(components)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest concrete cycle (``[a, b, ..., a]``) through the first module of each cyclic component."""
    cycles = []
    for component in cyclic_components(graph):
        members = set(component)
        # Shortest way back to the first module, by breadth-first search inside the component.
        first = component[0]
        parent: dict[str, str] = {}
        frontier = [first]
        seen = {first}
        path: list[str] | None = None
        while frontier and path is None:
            following = []
            for node in frontier:
                for succ in sorted(graph[node] & members):
                    if succ == first:
                        path = [succ]
                        walk = node
                        while walk != first:
                            path.append(walk)
                            walk = parent[walk]
                        path.append(first)
                        path.reverse()
                        break
                    if succ not in seen:
                        seen.add(succ)
                        parent[succ] = node
                        following.append(succ)
                if path is not None:
                    break
            frontier = following
        cycles.append(path or component)
    return cycles


def test_the_scan_sees_every_kind_of_import() -> None:
    source = """
import importlib
from typing import TYPE_CHECKING

import autosplit.jobreport
from autosplit.splitting import plan, model
from . import dataset
from .lumimask import LumiMask
from .. import errors

if TYPE_CHECKING:
    from autosplit.sim import Pool
else:
    import autosplit.ledger

class Reader:
    def read(self):
        from autosplit.estimators.unitcost import UnitCostModel
        return importlib.import_module("autosplit.worker")
"""
    found = imported_names("autosplit.datasets.dbs", source)
    assert found == {
        "importlib",
        "typing",
        "autosplit.jobreport",
        "autosplit.splitting",  # `plan` is a name in the package: the package's __init__.py
        "autosplit.splitting.model",  # `model` is a submodule
        "autosplit.datasets.dataset",
        "autosplit.datasets.lumimask",
        "autosplit.errors",
        "autosplit.ledger",
        "autosplit.estimators.unitcost",
        "autosplit.worker",
    }
    assert imported_names("autosplit.datasets", "from . import lumimask", is_package=True) == {
        "autosplit.datasets.lumimask"
    }


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    lines = [
        f"  {' -> '.join(cycle)}  (modules in the cycles: {', '.join(component)})"
        for cycle, component in zip(find_cycles(graph), cyclic_components(graph), strict=True)
    ]
    assert not lines, "import cycles between autosplit modules:\n" + "\n".join(lines)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_huge_files(module: str) -> None:
    n_lines = len(MODULES[module].read_text().splitlines())
    assert n_lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {n_lines} lines (> {MAX_LINES})"


def test_nothing_outside_the_cli_imports_it() -> None:
    graph = import_graph()
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in graph.items()
        if module != "autosplit.cli"
        and not module.startswith("autosplit.cli.")
        and module not in CLI_ENTRY_POINTS
        for name in names
        if name == "autosplit.cli" or name.startswith("autosplit.cli.")
    )
    assert not offenders, "modules outside autosplit/cli/ import the CLI:\n  " + "\n  ".join(offenders)
