"""Logging goes to a file in the data dir, never to stdout (JSON events, MCP stdio) or the TUI's terminal.

Configured before any library that calls ``logging.basicConfig`` (mcp does) is imported, so theirs is a no-op.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler

from bzzz_console.config import Settings
from bzzz_console.domain.text import inert


class InertFormatter(logging.Formatter):
    """Log lines quote data (peer messages, tool arguments, model errors); someone will ``tail -f`` the file on a
    terminal, so every line is made inert (newlines and tabs of tracebacks kept)."""

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record))


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    folder = settings.resolved_data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler: logging.Handler = RotatingFileHandler(
            folder / "bzzz-console.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        os.chmod(folder / "bzzz-console.log", 0o600)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "openai", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
