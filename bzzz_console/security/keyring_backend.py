"""Which OS keyring may hold API keys: the active backend, when it is a real one that never prompts.

Looked up lazily: on a Linux box with no D-Bus session no real backend can be active, and importing ``keyring``
there would only cost start-up time. What is stored there, and under which names, is
:mod:`bzzz_console.security.secrets`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_REJECTED_KEYRING_MODULES = (
    "keyring.backends.fail",
    "keyring.backends.null",
    "keyrings.alt",
    "keyrings.cryptfile",
)


def _acceptable(backend: Any) -> bool:
    module = type(backend).__module__
    if any(module == bad or module.startswith(bad + ".") for bad in _REJECTED_KEYRING_MODULES):
        return False
    try:
        return float(backend.priority) > 0
    except Exception:  # a backend that cannot say is not viable here
        return False


def _keyring_may_exist() -> bool:
    """False on a Linux box without a D-Bus session or keyring configuration, where no real backend can be active
    (Secret Service and KWallet need D-Bus): there, importing keyring would only cost ~0.2 s of start-up."""
    if not sys.platform.startswith("linux") or "keyring" in sys.modules:
        return True
    env = os.environ
    runtime_dir, config = env.get("XDG_RUNTIME_DIR"), env.get("XDG_CONFIG_HOME") or "~/.config"
    return bool(
        env.get("DBUS_SESSION_BUS_ADDRESS")
        or env.get("PYTHON_KEYRING_BACKEND")
        or (runtime_dir and Path(runtime_dir, "bus").exists())
        or Path(config, "python_keyring", "keyringrc.cfg").expanduser().exists()
    )


def keyring_backend() -> Any | None:
    """The active keyring backend when it is a real one that never prompts on a terminal, else None.

    The ``fail`` and ``null`` backends store nothing; ``keyrings.alt`` and ``keyrings.cryptfile`` ask for a
    password on the terminal (that would hang a TUI or a service) or keep base64 in a file: none of them counts.
    A chainer is looked through: its best acceptable member is used directly.
    """
    if not _keyring_may_exist():
        return None
    try:
        import keyring
        from keyring.backends.chainer import ChainerBackend

        active = keyring.get_keyring()
        if isinstance(active, ChainerBackend):
            return next((b for b in active.backends if _acceptable(b)), None)
    except Exception:
        return None
    return active if _acceptable(active) else None


def keyring_name(backend: Any) -> str:
    return str(getattr(type(backend), "name", None) or type(backend).__name__)
