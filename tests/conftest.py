"""Fixtures shared by every test: a clean environment, and store URLs for SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bzzz_console.store.repo import Store

POSTGRES_ENV = "BZZZ_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set: PostgreSQL store tests need a server (.ci/run starts one)"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's real configuration, data or API key."""
    for name in list(os.environ):
        if name.startswith("BZZZ_") and not name.startswith("BZZZ_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for var, folder in (("XDG_CONFIG_HOME", "xdg-config"), ("XDG_DATA_HOME", "xdg-data")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(var, str(tmp_path / folder))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bzzz.db'}"


@pytest.fixture
def postgres_url() -> str:
    """The test server's URL, its ``public`` schema emptied so each test starts from a fresh database."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(POSTGRES_SKIP)
    from sqlalchemy import text

    from bzzz_console.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return url


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], ids=["sqlite", "postgres"]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on an empty database, closed after the test."""
    from bzzz_console.store.repo import Store

    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
