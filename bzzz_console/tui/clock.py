"""The console's clock: ages, countdowns and the spend rate read it, so snapshot tests can freeze it."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
