"""The console's start before its first frame: the cheap database check reads the usual SQLite URLs without
SQLAlchemy and finds the same file SQLAlchemy would (or none, for what has no file)."""

from __future__ import annotations

import pytest

from bzzz_console.cli.db import _sqlite_file
from bzzz_console.store.errors import sqlite_path


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///bzzz.db",
        "sqlite:////tmp/a%20b/bzzz.db",
        "sqlite:////tmp/x.db?timeout=3",
        "sqlite+pysqlite:///~/x.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite://host/x.db",
        "sqlite:///file:x.db?uri=true",
        "SQLite:///x.db",
        "sqlite+aiosqlite:///x.db",
        "postgresql+psycopg://user@host/db",
        "not a url",
    ],
)
def test_the_cheap_check_finds_the_file_sqlalchemy_finds(url: str) -> None:
    assert _sqlite_file(url) == sqlite_path(url)
