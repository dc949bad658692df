"""Signed checkpoints of the audit trail's head, kept outside the database, so that entries cut off the end of
the trail — or all of them — are evident.

A hash chain shows that nothing was changed, inserted or removed *before* its last entry, but a trail cut after
entry 11 is a shorter chain that is perfectly intact. Transparency logs have the same problem and solve it with
a signed head: Certificate Transparency's signed tree head (RFC 6962 §3.5, RFC 9162 §4.10), the checkpoints of
Trillian and sigsum (C2SP tlog-checkpoint: origin, size, root hash, signature). Whoever keeps a signed head of
size n can hold the log to it later: a log shorter than n, or one whose first n entries no longer hash to the
signed root, has been tampered with. Here the log is a hash chain, so the "root" of its first n entries is the
hash of entry n-1 (each entry's hash covers its predecessor's), and the consistency check is that entry n-1
still carries that hash while the chain up to it verifies.

A checkpoint is ``{"database", "size", "head", "at", "signer", "signature"}``: ``database`` names the trail (a
hash of the database's location, never its password: two databases used from one data dir keep apart, and
nodes sharing a PostgreSQL database each keep their own in their own data dir), ``head`` is the hash of entry
``size - 1``, ``signature`` the node key's Ed25519 signature of the canonical JSON of the other fields (with a
``kind`` that no audit entry signature can be mistaken for). It lives in
``<data dir>/audit-checkpoints/<database>.json`` (0600, folder 0700), beside the node key, so deleting rows from
the database does not delete it.

Every writer of the trail on this node moves it forward after appending: a CLI ``escalations answer`` at once,
the runtime (console, headless, MCP) at most half a second after its last append and when it stops — entries
newer than the checkpoint are vouched for by the next one, never by an older. Writers may race, across
processes: the update holds an exclusive ``flock`` on a lock file beside it and replaces the file atomically; a
checkpoint only moves forward, and only when the trail still holds the head it names. A trail found cut or
rewritten keeps its old checkpoint as evidence — a newer one never papers over it — and the writer reports it.

What it does not protect against: whoever can write the data dir holds the node key and can sign any
checkpoint. Copy the checkpoint elsewhere (``audit verify --json`` prints it) the way CT monitors keep heads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bzzz_console.security.audit_chain import Entry, iso
from bzzz_console.security.nodekey import canonical_json
from bzzz_console.store.tables import now_utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.engine import URL

    from bzzz_console.store.repo import Store

CHECKPOINT_DIR = "audit-checkpoints"
KIND = "bzzz-audit-checkpoint/v1"

log = logging.getLogger(__name__)


class CheckpointError(Exception):
    """A checkpoint file that exists but cannot be trusted (unreadable, malformed, signed by another key, or its
    signature does not verify); the message names the file."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    database: str
    size: int
    head: str
    at: datetime
    signer: str
    signature: str

    def when(self) -> str:
        return self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "size": self.size,
            "head": self.head,
            "at": iso(self.at),
            "signer": self.signer,
            "signature": self.signature,
        }


def signed_bytes(database: str, size: int, head: str, at: datetime) -> bytes:
    body = {"kind": KIND, "database": database, "size": size, "head": head, "at": iso(at)}
    return canonical_json(body, ascii_only=True)


def make_checkpoint(key: Ed25519PrivateKey, database: str, size: int, head: str) -> Checkpoint:
    from bzzz_console.security.nodekey import public_key_hex

    at = now_utc()
    signature = key.sign(signed_bytes(database, size, head, at)).hex()
    return Checkpoint(database, size, head, at, public_key_hex(key), signature)


def database_id(url: URL) -> str | None:
    """Which database a trail lives in, as a short hash of where it is (no user, no password); None for an
    in-memory SQLite database, which nothing outlives."""
    backend = url.get_backend_name()
    database = url.database or ""
    if backend == "sqlite":
        if database in ("", ":memory:") or database.startswith("file:"):
            return None
        where = f"sqlite:{Path(database).expanduser().resolve()}"
    else:
        where = f"{backend}://{(url.host or 'localhost').lower()}:{url.port or 5432}/{database}"
    return hashlib.sha256(where.encode("utf-8")).hexdigest()[:32]


class Checkpoints:
    """The checkpoint file of one database in one data dir: read it (``audit verify``), move it forward
    (every writer, after each append)."""

    def __init__(self, data_dir: Path, database: str) -> None:
        self.database = database
        self.folder = data_dir / CHECKPOINT_DIR
        self.path = self.folder / f"{database}.json"
        self.problem: str | None = None
        """Why the last append did not move the checkpoint forward; None when it did."""

    @classmethod
    def for_store(cls, data_dir: Path, store: Store) -> Checkpoints | None:
        database = database_id(store.engine.url)
        return None if database is None else cls(data_dir, database)

    # -- reading -------------------------------------------------------------------------------------------
    def read(self, signer: str | None) -> Checkpoint | None:
        """The checkpoint, None if there is none; CheckpointError if it cannot be trusted. ``signer``: the
        public key (hex) that must have signed it — this node's; None (no node key) trusts no file."""
        from bzzz_console.security.nodekey import public_key_from_hex

        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                f"cannot read {self.path}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            raw = json.loads(text)
            checkpoint = Checkpoint(
                database=_text(raw, "database"),
                size=_count(raw, "size"),
                head=_text(raw, "head"),
                at=datetime.fromisoformat(_text(raw, "at")).astimezone(UTC),
                signer=_text(raw, "signer").lower(),
                signature=_text(raw, "signature"),
            )
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{self.path} is malformed: {exc}") from None
        if checkpoint.database != self.database:
            raise CheckpointError(f"{self.path} names another database ({checkpoint.database})")
        if signer is None:
            raise CheckpointError(f"{self.path} exists but this data dir has no node key to check it with")
        if checkpoint.signer != signer.lower():
            raise CheckpointError(
                f"{self.path} is signed by {checkpoint.signer[:16]}…, not by this node's key {signer[:16]}… "
                "(if the node key was replaced on purpose, move the file away)"
            )
        from cryptography.exceptions import InvalidSignature

        body = signed_bytes(checkpoint.database, checkpoint.size, checkpoint.head, checkpoint.at)
        try:
            public_key_from_hex(signer).verify(bytes.fromhex(checkpoint.signature), body)
        except (InvalidSignature, ValueError):
            raise CheckpointError(f"{self.path}: the signature does not match its content") from None
        return checkpoint

    # -- writing -------------------------------------------------------------------------------------------
    def advance(self, store: Store, key: Ed25519PrivateKey, entries: Sequence[Entry]) -> None:
        """Move the checkpoint to the last of ``entries`` (just committed). Never raises: the entries are in
        the trail already, and an append that failed here would be retried and written twice."""
        if not entries:
            return
        try:
            problem = self._advance(store, key, entries)
        except Exception as exc:  # a full disk, a read-only data dir, a database hiccup
            problem = f"cannot update the audit checkpoint {self.path}: {type(exc).__name__}: {exc}"
        if problem and problem != self.problem:
            log.warning("%s", problem)
        self.problem = problem

    def _advance(self, store: Store, key: Ed25519PrivateKey, entries: Sequence[Entry]) -> str | None:
        from bzzz_console.security.nodekey import public_key_hex

        size = entries[-1].idx + 1
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked():
            try:
                current = self.read(public_key_hex(key))
            except CheckpointError as exc:
                return f"audit checkpoint not updated: {exc}"
            if current is not None:
                if current.size >= size:
                    return None  # another writer got further (and checkpointed our entries with its own)
                if _hash_at(store, entries, current.size - 1) != current.head:
                    # Rows the checkpoint covers are gone or were written again: keep the evidence.
                    return (
                        f"the audit trail no longer holds entry #{current.size - 1} as checkpointed at "
                        f"{current.when()}: entries were removed or rewritten (kept: {self.path})"
                    )
            self._write(make_checkpoint(key, self.database, size, entries[-1].hash))
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / f"{self.database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl
            except ImportError:  # Windows: no flock; the atomic replace still keeps the file whole
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            yield
        finally:
            os.close(fd)

    def _write(self, checkpoint: Checkpoint) -> None:
        # Written to a private temporary file and renamed over the old one: a reader never sees half a file.
        # No fsync: SQLite runs with synchronous=NORMAL, so a commit may itself be lost to a power cut, and a
        # checkpoint forced to disk ahead of it would then accuse the trail of a loss it did not suffer.
        tmp = self.folder / f".{self.database}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(checkpoint.to_dict(), handle, indent=1)
                handle.write("\n")
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _hash_at(store: Store, entries: Sequence[Entry], idx: int) -> str | None:
    """The stored hash of entry ``idx``: from the batch just written when it is there (or is the entry the
    batch links to), else from the database."""
    first = entries[0].idx
    if first <= idx <= entries[-1].idx:
        return entries[idx - first].hash
    if idx == first - 1:
        return entries[0].prev_hash
    return store.audit_hash(idx)


def _text(raw: Any, name: str) -> str:
    value = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name!r} is missing or not a string")
    return value


def _count(raw: Any, name: str) -> int:
    value = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name!r} is not a positive whole number")
    return value
