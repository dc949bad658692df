"""The audit chain itself: the entry format, hashing and signing, and reading entries back.

An entry is ``(idx, at, author, type, data, prev_hash)`` plus its ``hash`` and ``signature``:

* ``hash`` is the SHA-256 (hex) of the entry's canonical JSON — the object ``{"at", "author", "data", "idx",
  "prev_hash", "type"}`` with sorted keys, no spaces, UTF-8, ``at`` in ISO-8601 UTC with microseconds;
* ``prev_hash`` is the previous entry's ``hash`` (64 zeros for entry 0), so removing, inserting or reordering
  an entry breaks the chain;
* ``signature`` is the Ed25519 signature (hex) of the 32 raw bytes of ``hash`` by the node key
  (:mod:`bzzz_console.security.nodekey`); ``data["signer"]`` records that key's public half, so a trail that several
  nodes write to (a shared PostgreSQL database) verifies entry by entry.

Writing entries is :mod:`bzzz_console.security.audit`, verifying them :mod:`bzzz_console.security.audit_verify`, and the signed
checkpoints of the trail's head that make a cut-off end evident :mod:`bzzz_console.security.audit_checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from bzzz_console.security.nodekey import canonical_json
from bzzz_console.store.tables import utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from bzzz_console.store.repo import Store

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Entry:
    idx: int
    at: datetime
    author: str
    type: str
    data: dict[str, Any]
    hash: str
    prev_hash: str
    signature: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "idx": self.idx,
            "at": iso(self.at),
            "author": self.author,
            "type": self.type,
            "data": self.data,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
            "signature": self.signature,
        }


def iso(at: datetime) -> str:
    """The entry time as hashed: ISO-8601 in UTC, always with microseconds (``…T12:00:00.000000+00:00``)."""
    return utc(at).astimezone(UTC).isoformat(timespec="microseconds")


def plain(value: Any) -> Any:
    """JSON-ready data that reads back from the database exactly as it was hashed."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN/inf are not JSON (PostgreSQL refuses them)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return plain(value.value)
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a model's JSON) cannot be stored or hashed as UTF-8
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def canonical(idx: int, at: datetime, author: str, type: str, data: dict[str, Any], prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: sorted keys, no spaces, UTF-8."""
    body = {"idx": idx, "at": iso(at), "author": author, "type": type, "data": data, "prev_hash": prev_hash}
    return canonical_json(body, allow_nan=False)


def entry_hash(idx: int, at: datetime, author: str, type: str, data: dict[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(idx, at, author, type, data, prev_hash)).hexdigest()


def sign(key: Ed25519PrivateKey, hash_hex: str) -> str:
    """The Ed25519 signature (hex) of the hash's 32 raw bytes."""
    return key.sign(bytes.fromhex(hash_hex)).hex()


def signature_valid(public_key: Ed25519PublicKey, hash_hex: str, signature_hex: str | None) -> bool:
    from cryptography.exceptions import InvalidSignature

    if not signature_hex:
        return False
    try:
        public_key.verify(bytes.fromhex(signature_hex), bytes.fromhex(hash_hex))
    except (InvalidSignature, ValueError):
        return False
    return True


def _parse_at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return utc(value)
    try:
        return utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A row as found in the database: fields a tamperer broke are None (and the entry counts as modified)."""

    idx: int
    at: datetime | None
    author: str
    type: str
    data: dict[str, Any] | None
    hash: str
    prev_hash: str
    signature: str | None

    def entry(self) -> Entry:
        return Entry(
            self.idx,
            self.at or datetime.min.replace(tzinfo=UTC),
            self.author,
            self.type,
            self.data if self.data is not None else {},
            self.hash,
            self.prev_hash,
            self.signature,
        )


def iter_entries(store: Store, *, last: int | None = None) -> Iterator[StoredEntry]:
    """Entries in index order (the last ``last`` only), read tolerantly: data and time are parsed here, so a
    row damaged by hand is reported by verification instead of failing the read."""
    for row in store.audit_rows(last=last):
        try:
            data = json.loads(row.data)
        except (TypeError, ValueError):
            data = None
        yield StoredEntry(
            idx=int(row.idx),
            at=_parse_at(row.at),
            author=str(row.author),
            type=str(row.type),
            data=data if isinstance(data, dict) else None,
            hash=str(row.hash),
            prev_hash=str(row.prev_hash),
            signature=row.signature,
        )


def read_entries(store: Store, *, last: int | None = None) -> list[Entry]:
    return [stored.entry() for stored in iter_entries(store, last=last)]
