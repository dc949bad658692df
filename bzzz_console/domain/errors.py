"""Errors that several layers raise and catch: defined here, below all of them, so none imports another for it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A settings problem the operator can fix: the message names key, source and expectation."""


class CommandError(RuntimeError):
    """An operator command that cannot be applied; the message says why. ``field``: the decision argument at
    fault (``amount_usd``, ``model`` …; see :class:`~bzzz_console.domain.decisions.InvalidDecision`), if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
