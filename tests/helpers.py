"""What several test modules need to run the installed command: its path and a clean environment."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).with_name("bzzz-console")
"""The installed ``bzzz-console`` of the interpreter running the tests."""


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """The parent environment without the developer's settings, key or credentials, with the data and config
    dirs under ``root``, no keyring of the developer's, and plain wide output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("BZZZ_") and not k.startswith("BZZZ_TEST_"))
        and k not in ("OPENAI_API_KEY", "CREDENTIALS_DIRECTORY")
    }
    for var, folder in (("XDG_DATA_HOME", "xdg-data"), ("XDG_CONFIG_HOME", "xdg-config")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        env[var] = str(root / folder)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["COLUMNS"] = "200"  # rich output is not wrapped mid-topic
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something true (and return that); fail naming ``what`` after ``timeout``
    seconds, a generous bound on a busy machine, never a duration being tested."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
    return result


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """:func:`eventually` for code without an event loop (a thread, a server): poll ``check`` until it returns
    something true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
    return result
