"""House rules that keep the code base simple to carry on: import boundaries, lazy heavy imports, lint, types."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bzzz_console"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_tui_imports_textual() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "tui") in path.parents:
            continue
        if any(m == "textual" or m.startswith("textual.") for m in _imported_modules(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_domain_imports_nothing_of_the_project_but_itself() -> None:
    for path in (PACKAGE / "domain").rglob("*.py"):
        project = {m for m in _imported_modules(path) if m.startswith("bzzz_console")}
        assert all(m.startswith("bzzz_console.domain") for m in project), (path, project)


def test_core_never_imports_the_tui() -> None:
    for sub in ("domain", "runtime", "store"):
        for path in (PACKAGE / sub).rglob("*.py"):
            assert not any(m.startswith("bzzz_console.tui") for m in _imported_modules(path)), path


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_heavy_libraries_stay_off_the_start_up_path() -> None:
    heavy = {"openai", "mcp", "libp2p", "textual"}
    assert heavy & _loaded_after("import bzzz_console.cli.main") == set()
    assert heavy & _loaded_after("import bzzz_console.runtime.runtime") == set()
    assert "sqlmodel" not in _loaded_after("import bzzz_console.cli.main")


def test_the_console_paints_before_the_database_and_the_runtime_are_imported(tmp_path: Path) -> None:
    """What runs before the console's first frame (settings, the cheap database check, the console itself)
    imports no database or model library: the store, its migrations and the runtime come after the paint."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    loaded = _loaded_after(
        "import bzzz_console.cli.main; from bzzz_console.config import Settings; "
        "from bzzz_console.cli.db import check_before_console; "
        f"check_before_console(Settings.model_validate({{'store': {{'url': {url!r}}}}})); "
        "import bzzz_console.tui.app"
    )
    assert {"sqlalchemy", "sqlmodel", "alembic", "openai", "mcp", "libp2p", "httpx"} & loaded == set()


def test_modules_stay_small() -> None:
    too_big = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if "versions" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert too_big == {}


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extras)")
    result = subprocess.run([ruff, "check", "--quiet", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
