"""Files and folders the app creates are its owner's only: files 0600, folders 0700, whatever the umask.

A umask can only remove bits, but an odd one (``0o277``) removes the owner's too, and a library that creates a
file itself (SQLite, ``logging``) uses 0644. So modes are set explicitly: at creation with ``os.open(…, 0o600)``
and then ``fchmod``, never by relying on the umask. Files that already exist keep their mode unless a function
says otherwise: the operator may have chosen it (an export written over a file they share).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each folder created here 0700 (``Path.mkdir(parents=True)``
    gives the parents the umask's mode). Existing folders are left as they are."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another process made it a moment ago: its mode is its business
        os.chmod(folder, DIR_MODE)
    return path


def create_private(path: Path) -> bool:
    """Create ``path`` as an empty 0600 file if it does not exist; True if this call created it.

    For files another library then opens and fills (SQLite's database: its ``-wal`` and ``-shm`` take the
    database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def open_private(path: Path, mode: str = "a", encoding: str | None = "utf-8") -> IO[Any]:
    """``open(path, mode)`` that creates a missing file 0600 (an existing file keeps its mode).

    ``mode`` is ``"a"``, ``"w"`` or ``"x"``, with ``"b"`` for bytes (then ``encoding`` is ignored)."""
    kind = mode.replace("b", "")
    if kind not in ("a", "w", "x"):
        raise ValueError(f"open_private: mode {mode!r} is not a, w or x (with b)")
    extra = os.O_APPEND if kind == "a" else 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | extra, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
    except FileExistsError:
        if kind == "x":
            raise
        fd = os.open(path, os.O_WRONLY | extra | (os.O_TRUNC if kind == "w" else 0))
    try:
        if "b" in mode:
            return os.fdopen(fd, mode.replace("x", "w"))
        return os.fdopen(fd, mode.replace("x", "w"), encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: str | bytes, *, atomic: bool = True) -> None:
    """Write ``data`` to ``path``, a new file being 0600.

    ``atomic`` (the default, for state such as a key or a checkpoint): written to a private temporary file
    beside it, flushed to disk and renamed over ``path``, so a reader never sees half a file and the result is
    0600 even if ``path`` existed. ``atomic=False`` (for an export the operator names): written in place, so an
    existing file, a FIFO or ``/dev/stdout`` keeps what it is and its mode."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not atomic:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
        except FileExistsError:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def tighten(path: Path) -> None:
    """Take group and other permissions off an existing file (never adds any: a read-only file stays read-only).
    A file of another user's, or on a read-only file system, is left as it is."""
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o7777
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)
