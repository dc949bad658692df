"""The package's shape, enforced (as Harlequin does with import contracts): the folders say what each part does,
no part imports one above it, and the heavy or dangerous libraries stay in their rooms.

A *part* is a sub-package or a loose module, looked at inside each package: at the top ``domain``, ``store``,
``runtime`` … and ``config``, ``files`` …; inside ``runtime`` its ``llm``, ``tools``, ``threads``, ``escalation``
and its loose modules. Imports guarded by ``if TYPE_CHECKING:`` are annotations, not dependencies; imports inside
functions are dependencies like any other (a cycle closed by a late import is still a cycle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bzzz_console"
MAX_LINES = 400
MAX_MODULES_PER_FOLDER = 15
# library -> the only part of the package that may import it
CONFINED = {
    "textual": "bzzz_console.tui",
    "libp2p": "bzzz_console.p2p",
    "trio": "bzzz_console.p2p",
    "sqlalchemy": "bzzz_console.store",
    "sqlmodel": "bzzz_console.store",
    "alembic": "bzzz_console.store",
    "sqlite3": "bzzz_console.store",
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue  # Alembic's scripts: run by Alembic, not imported by the package
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


@cache
def imports_of(path: Path) -> tuple[tuple[str, int], ...]:
    """Every module-level and function-level import's target and line; ``TYPE_CHECKING`` blocks left out."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.extend((f"{child.module}.{alias.name}", child.lineno) for alias in child.names)
                found.append((child.module, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return tuple(found)


def internal_edges() -> Iterator[tuple[str, str, str]]:
    """(importer, imported module, where) for every import of one of the package's own modules."""
    known = dict(modules())
    for name, path in known.items():
        for target, line in imports_of(path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield name, target, f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"


def part_within(package: str, module: str) -> str | None:
    """The part of ``package`` that ``module`` belongs to (None if it is not inside ``package``)."""
    if not module.startswith(package + "."):
        return None
    return package + "." + module[len(package) + 1 :].split(".")[0]


def packages() -> list[str]:
    return [name for name, path in modules() if path.name == "__init__.py"]


def cycles_in(package: str) -> list[list[str]]:
    """Strongly connected groups of more than one part among ``package``'s parts, each with its imports."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for importer, target, where in internal_edges():
        a, b = part_within(package, importer), part_within(package, target)
        if a and b and a != b:
            graph[a][b].append(where)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in list(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (top := stack.pop()) != node:
                group.append(top)
            group.append(node)
            if len(group) > 1:
                groups.append(
                    sorted({where for a in group for b in group if b in graph[a] for where in graph[a][b]})
                )

    for node in list(graph):
        if node not in index:
            connect(node)
    return groups


@pytest.mark.parametrize("package", packages())
def test_no_import_cycle_between_the_parts_of(package: str) -> None:
    assert cycles_in(package) == []


def test_the_lower_parts_never_import_the_ones_above_them() -> None:
    """The layers, lowest first; a part may import only parts of its own layer or below."""
    layers = [
        {"domain"},
        {"config", "config_sections", "config_docs", "files", "logs", "resources"},
        {"store"},
        {"security"},
        {"views"},
        {"p2p", "runtime", "demo"},
        {"app"},
        {"mcp"},
        {"tui"},
        {"cli", "__main__"},
    ]
    rank = {name: n for n, layer in enumerate(layers) for name in layer}
    top = "bzzz_console"
    wrong = set()
    for importer, target, where in internal_edges():
        a, b = part_within(top, importer), part_within(top, target)
        if a is None or b is None or a == b:
            continue
        a, b = a.split(".")[1], b.split(".")[1]
        assert a in rank and b in rank, f"{a} or {b} has no layer: add it to this test"
        if rank[b] > rank[a]:
            wrong.add(where)
    assert sorted(wrong) == []


def test_p2p_and_runtime_and_demo_know_nothing_of_each_other() -> None:
    """``p2p`` talks to the node through the protocol it defines (``p2p/host.py``); ``app.py`` plugs them
    together. The demo team is data and a scripted server for the runtime to be given, not part of it."""
    apart = {f"bzzz_console.{name}" for name in ("p2p", "runtime", "demo")}
    wrong = sorted(
        {
            where
            for importer, target, where in internal_edges()
            if (a := part_within("bzzz_console", importer)) in apart
            and (b := part_within("bzzz_console", target)) in apart
            and a != b
        }
    )
    assert wrong == []


@pytest.mark.parametrize(("library", "home"), sorted(CONFINED.items()))
def test_only_its_own_part_imports(library: str, home: str) -> None:
    outside = sorted(
        {
            f"{path.relative_to(PACKAGE.parent)}:{line}"
            for name, path in modules()
            if not (name == home or name.startswith(home + "."))
            for target, line in imports_of(path)
            if target == library or target.startswith(library + ".")
        }
    )
    assert outside == []


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for _, path in modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_folder_holds_more_than_fifteen_modules() -> None:
    crowded = {
        str(folder.relative_to(PACKAGE.parent)): n
        for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir())]
        if "migrations" not in folder.parts and "__pycache__" not in folder.parts
        if (n := len([f for f in folder.glob("*.py") if f.name != "__init__.py"])) > MAX_MODULES_PER_FOLDER
    }
    assert crowded == {}


def test_the_checks_themselves_see_a_cycle_and_a_confined_import(tmp_path: Path) -> None:
    """The contract test must be able to fail: the parser finds function-level imports and skips annotations."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bzzz_console.tui.app import BzzzApp\n"
        "def late():\n    import textual.app\n    from bzzz_console.runtime import runtime\n",
        encoding="utf-8",
    )
    found = {target for target, _ in imports_of(sample)}
    assert "textual.app" in found and "bzzz_console.runtime.runtime" in found
    assert not any(target.startswith("bzzz_console.tui") for target in found)
