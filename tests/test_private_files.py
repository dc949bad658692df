"""Every file the app creates is its owner's only (0600, folders 0700), whatever the umask: a whole session of
the installed command is walked, and the helpers in ``bzzz_console.files`` are checked under odd umasks."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BIN, cli_env

from bzzz_console.files import create_private, open_private, private_dir, tighten, write_private

CMD_TIMEOUT = 60
RUN_TIMEOUT = 120


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask a test changes."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.slow
def test_a_whole_session_leaves_only_private_files(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    data = tmp_path / "xdg-data" / "bzzz-console"
    config = tmp_path / "xdg-config" / "bzzz-console"
    elsewhere = tmp_path / "new" / "deeper"

    def cli(*args: str, stdin: str | None = None, timeout: float = CMD_TIMEOUT) -> str:
        done = subprocess.run(
            [str(BIN), *args],
            env=env,
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            umask=0o022,  # a usual umask: without explicit modes, files would be 0644 and folders 0755
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    cli("run", "--headless", "--demo", "--exit-when-idle", timeout=RUN_TIMEOUT)  # the default database
    cli("mcp", "token", "--operator")
    cli("mcp", "token", "--agent", "ext-alice")
    cli("key", "set", "--stdin", stdin="sk-test-" + "a1" * 16 + "\n")
    thread_id = json.loads(cli("threads", "list", "--json"))[0]["id"]
    cli("threads", "export", thread_id, "--format", "json", "-o", str(data / "export.json"))
    cli("audit", "verify")
    cli("task", "add", "Elsewhere", "--db", f"sqlite:///{elsewhere / 'bzzz.db'}")

    expected = {data / name for name in ("bzzz.db", "bzzz-console.log", "node.key", "export.json")} | {
        config / "keys" / "default",
        elsewhere / "bzzz.db",
    }
    seen: set[Path] = set()
    for top in (data, config, tmp_path / "new"):
        assert mode(top) == 0o700, top
        for folder, dirs, files in os.walk(top):
            for name in dirs:
                assert mode(Path(folder) / name) == 0o700, Path(folder) / name
            for name in files:
                path = Path(folder) / name
                seen.add(path)
                assert mode(path) == 0o600, f"{path} is {mode(path):o}"
    assert expected <= seen, expected - seen
    assert any("token" in p.name for p in seen if p.parent == data), seen  # the MCP tokens' file


def test_log_files_stay_private_across_rollovers(tmp_path: Path, umask: None) -> None:
    from bzzz_console.logs import InertFormatter, PrivateRotatingFileHandler

    tmp_path = tmp_path / "logs"
    tmp_path.mkdir()
    os.umask(0o002)
    handler = PrivateRotatingFileHandler(tmp_path / "app.log", maxBytes=200, backupCount=2, encoding="utf-8")
    handler.setFormatter(InertFormatter("%(message)s"))
    logger = logging.getLogger("test_private_files.rollover")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(40):
            logger.warning("line %d of a transcript that must stay private", i)
    finally:
        logger.removeHandler(handler)
        handler.close()
    logs = sorted(tmp_path.iterdir())
    assert [p.name for p in logs] == ["app.log", "app.log.1", "app.log.2"]  # it did roll over
    assert {p.name: mode(p) for p in logs} == {p.name: 0o600 for p in logs}


# -- the helpers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o000, 0o277])
def test_private_dir_makes_every_missing_folder_0700(tmp_path: Path, umask: None, mask: int) -> None:
    (tmp_path / "kept").mkdir(mode=0o755)
    os.umask(mask)
    target = tmp_path / "kept" / "a" / "b" / "c"
    assert private_dir(target) == target
    assert [mode(p) for p in (target, target.parent, target.parent.parent)] == [0o700] * 3
    assert mode(tmp_path / "kept") == 0o755  # what existed is left as it was
    private_dir(target)  # again: nothing to do, no error


@pytest.mark.parametrize("mask", [0o022, 0o000, 0o277])
def test_new_files_are_0600_whatever_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    os.umask(mask)
    assert create_private(tmp_path / "created") is True
    assert create_private(tmp_path / "created") is False
    write_private(tmp_path / "atomic", "state\n")
    write_private(tmp_path / "in-place", b"export", atomic=False)
    with open_private(tmp_path / "appended") as handle:
        handle.write("one\n")
    for name in ("created", "atomic", "in-place", "appended"):
        assert mode(tmp_path / name) == 0o600, name
    assert (tmp_path / "atomic").read_text() == "state\n" and (
        tmp_path / "in-place"
    ).read_bytes() == b"export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appended", "atomic", "created", "in-place"]


def test_an_existing_file_keeps_its_mode_unless_replaced_atomically(tmp_path: Path) -> None:
    shared = tmp_path / "shared.md"
    shared.write_text("old")
    shared.chmod(0o640)
    write_private(shared, "new", atomic=False)  # the operator's own file: written in place, mode kept
    assert shared.read_text() == "new" and mode(shared) == 0o640
    with open_private(shared, "a") as handle:
        handle.write("er")
    assert shared.read_text() == "newer" and mode(shared) == 0o640

    state = tmp_path / "state.json"
    state.write_text("{}")
    state.chmod(0o644)
    write_private(state, '{"a": 1}')  # state the app owns: replaced by a private file
    assert state.read_text() == '{"a": 1}' and mode(state) == 0o600


def test_tighten_only_takes_bits_away(tmp_path: Path) -> None:
    cases = {"world": (0o644, 0o600), "read-only": (0o444, 0o400), "private": (0o600, 0o600)}
    for name, (before, _after) in cases.items():
        (tmp_path / name).write_text("x")
        (tmp_path / name).chmod(before)
        tighten(tmp_path / name)
    assert {name: mode(tmp_path / name) for name in cases} == {n: after for n, (_b, after) in cases.items()}
    tighten(tmp_path / "missing")  # nothing there: nothing to do
