"""The plain console launch skips typer: its options must mean what typer's root command makes of them, and any
other command line must be left to typer whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bzzz_console.cli import commands
from bzzz_console.cli.db import check_before_console
from bzzz_console.cli.launch import (
    ConsoleArgs,
    config_table,
    console_args,
    console_hint,
    database_looks_usable,
    p2p_overrides,
)
from bzzz_console.config import load_settings

AS_TYPER_READS_THEM = [
    [],
    ["--demo"],
    ["--readonly", "--seed", "7"],
    ["--seed=007", "--demo", "--readonly"],
    ["--db=sqlite:///x.db", "--config", "c.toml"],
    ["--db", "sqlite:///a.db", "--db", "sqlite:///b.db"],
    [
        "--listen",
        "/ip4/0.0.0.0/tcp/4001",
        "--peer",
        "/ip4/10.0.0.1/tcp/4001/p2p/Qm",
        "--listen",
        "/ip6/::/tcp/1",
    ],
    ["--mcp-port", "8080", "--demo", "--demo"],
    ["--mcp-port=65535"],
]

LEFT_TO_TYPER = [
    ["--help"],
    ["-h"],
    ["--version"],
    ["run", "--demo"],
    ["status"],
    ["--demo", "status"],
    ["--seed", "-1"],
    ["--seed", "x"],
    ["--mcp-port", "0"],
    ["--mcp-port", "70000"],
    ["--demo=1"],
    ["--db"],
    ["--db", ""],
    ["--db", "--demo"],
    ["--"],
    ["--dmeo"],
]


def _as_console(args: ConsoleArgs) -> dict[str, Any]:
    return {
        "demo": args.demo,
        "readonly": args.readonly,
        "seed": args.seed,
        "db": args.db,
        "config": args.config,
        "mcp_port": args.mcp_port,
        "p2p": p2p_overrides(args.listen, args.peer),
    }


@pytest.mark.parametrize("argv", AS_TYPER_READS_THEM)
def test_the_fast_path_reads_options_as_typer_does(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(commands, "_console", lambda **kwargs: seen.append(kwargs))
    result = CliRunner().invoke(commands.app, argv)
    assert result.exit_code == 0, result.output
    parsed = console_args(argv)
    assert parsed is not None and seen == [_as_console(parsed)]


@pytest.mark.parametrize("argv", LEFT_TO_TYPER)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert console_args(argv) is None


def test_the_entry_point_module_does_not_import_typer_for_the_fast_path() -> None:
    import subprocess
    import sys

    code = "import sys, bzzz_console.cli.main; print(sorted(m for m in sys.modules if m.startswith(('typer', 'pydantic'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from bzzz_console.cli.main import app  # the typer app, still reachable where it always was

    assert app is commands.app


def test_the_hint_is_the_console_table_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BZZZ_CONFIG", "BZZZ_CONSOLE__THEME", "BZZZ_CONSOLE__KEYS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "c.toml"
    path.write_text('[console]\ntheme = "nord"\nkeys = {"app.quit" = "ctrl+c"}\n', encoding="utf-8")
    table = config_table(path)
    assert table is not None and console_hint(table) == {"theme": "nord", "keys": {"app.quit": "ctrl+c"}}
    monkeypatch.setenv("BZZZ_CONSOLE__THEME", "dracula")
    monkeypatch.setenv("BZZZ_CONSOLE__KEYS", "{not json")
    assert console_hint(table) == {"theme": "dracula", "keys": {"app.quit": "ctrl+c"}}
    path.write_text("[console\n", encoding="utf-8")
    assert config_table(path) is None  # not TOML: the settings are read (and refused) before the console
    assert config_table(tmp_path / "absent.toml") is None


def _agrees(db: str | None, config: Path | None) -> bool:
    """The pre-paint guess says "usable" only when the real check, on the real settings, passes."""
    table = config_table(config)
    guess = table is not None and database_looks_usable(db, table)
    try:
        check_before_console(load_settings(config).with_overrides(store__url=db))
    except Exception:
        return not guess
    return True  # usable, or unsure (then the settings are read first: slower, never wrong)


def test_the_database_guess_never_passes_what_the_check_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BZZZ_CONFIG", "BZZZ_DB_URL", "BZZZ_STORE__URL", "BZZZ_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"garbage" * 100)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "bzzz.db").write_bytes(b"garbage" * 100)
    config = tmp_path / "c.toml"
    for db in (None, f"sqlite:///{garbage}", f"sqlite:///{folder}", f"sqlite:///{tmp_path / 'new.db'}"):
        assert _agrees(db, None), db
        for body in ("", f'data_dir = "{data}"\n', f'[store]\nurl = "sqlite:///{garbage}"\n'):
            config.write_text(body, encoding="utf-8")
            assert _agrees(db, config), (db, body)
    assert not database_looks_usable(f"sqlite:///{garbage}", {})
    assert database_looks_usable(
        f"sqlite:///{tmp_path / 'new.db'}", {"store": {"url": f"sqlite:///{garbage}"}}
    )
    assert not database_looks_usable(None, {"data_dir": str(data)})
    monkeypatch.setenv("BZZZ_DATA_DIR", str(tmp_path / "elsewhere"))
    assert database_looks_usable(None, {"data_dir": str(data)})  # the environment wins over the file
    monkeypatch.setenv("BZZZ_DB_URL", f"sqlite:///{folder}")
    assert not database_looks_usable(None, {})
    assert database_looks_usable("postgresql+psycopg://u@h/db", {})
