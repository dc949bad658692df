"""Logging goes to a file in the data dir, never to stdout (JSON events, MCP stdio) or the TUI's terminal.

Configured before any library that calls ``logging.basicConfig`` (mcp does) is imported, so theirs is a no-op.
"""

from __future__ import annotations

import io
import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from bzzz_console.config import Settings
from bzzz_console.domain.text import inert
from bzzz_console.files import open_private, private_dir


class InertFormatter(logging.Formatter):
    """Log lines quote data (peer messages, tool arguments, model errors); someone will ``tail -f`` the file on a
    terminal, so every line is made inert (newlines and tabs of tracebacks kept)."""

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record))


class PrivateRotatingFileHandler(RotatingFileHandler):
    """Each log file it opens (the first, and the new one after every rollover) is created 0600: logs quote
    transcripts and tool arguments. The stock handler creates them with the umask's mode (0644)."""

    def _open(self) -> io.TextIOWrapper:
        handle = open_private(
            Path(self.baseFilename), "w" if self.mode.startswith("w") else "a", self.encoding
        )
        assert isinstance(handle, io.TextIOWrapper)  # text mode: what logging.FileHandler writes to
        return handle


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    folder = settings.resolved_data_dir()
    try:
        private_dir(folder)
        handler: logging.Handler = PrivateRotatingFileHandler(
            folder / "bzzz-console.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
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
