"""Finds the data folders (``agents/``, ``screens/``) whether installed from a wheel or run from a checkout.

In a wheel they are force-included as ``bzzz_console/data/<name>``; in a checkout (or an editable install) they
sit at the repository's top level, next to the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ data folder is missing from the installation ({_PACKAGE})")


def agents_dir() -> Path:
    return data_dir("agents")


def screens_dir() -> Path:
    return data_dir("screens")
