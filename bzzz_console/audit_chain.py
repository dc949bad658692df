"""The audit chain itself: the entry format, hashing and signing, reading entries back and verifying them.

An entry is ``(idx, at, author, type, data, prev_hash)`` plus its ``hash`` and ``signature``:

* ``hash`` is the SHA-256 (hex) of the entry's canonical JSON — the object ``{"at", "author", "data", "idx",
  "prev_hash", "type"}`` with sorted keys, no spaces, UTF-8, ``at`` in ISO-8601 UTC with microseconds;
* ``prev_hash`` is the previous entry's ``hash`` (64 zeros for entry 0), so removing, inserting or reordering
  an entry breaks the chain;
* ``signature`` is the Ed25519 signature (hex) of the 32 raw bytes of ``hash`` by the node key
  (:mod:`bzzz_console.nodekey`); ``data["signer"]`` records that key's public half, so a trail that several
  nodes write to (a shared PostgreSQL database) verifies entry by entry.

What verification can and cannot tell: a modified, removed, inserted or reordered entry is found, and so is an
entry not signed by the key it names. Entries cut off the *end* of the trail leave a shorter, intact chain; and
anyone holding a node key can sign entries in its name — pin the keys you trust (``audit verify --key``).
Writing entries is :mod:`bzzz_console.audit`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from bzzz_console.store.tables import AuditRow, utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from sqlalchemy import Table

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
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


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


def audit_table() -> Table:
    table: Table = AuditRow.__table__  # type: ignore[attr-defined]
    return table


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
    from sqlalchemy import Text, cast, select

    t = audit_table()
    at = (
        cast(t.c.at, Text) if store.backend == "sqlite" else t.c.at
    )  # SQLite: text, a bad value must not raise
    query = select(
        t.c.idx,
        at.label("at"),
        t.c.author,
        t.c.type,
        cast(t.c.data, Text).label("data"),
        t.c.hash,
        t.c.prev_hash,
        t.c.signature,
    )
    if last is not None:
        newest = select(t.c.idx).order_by(t.c.idx.desc()).limit(last).subquery()
        query = query.where(t.c.idx.in_(select(newest.c.idx)))
    query = query.order_by(t.c.idx)
    with store.engine.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(query):
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


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    """Entries found intact before the first bad one (all of them when ``ok``)."""
    first_bad_index: int | None = None
    reason: str = ""
    """``modified``, ``missing``, ``inserted`` or ``bad signature``; empty when ``ok``."""
    detail: str = ""
    signers: dict[str, int] = field(default_factory=dict)
    """Public key (hex) → entries it signed, among those checked."""

    def message(self) -> str:
        if self.ok:
            return f"intact: {self.checked} entries"
        return f"entry #{self.first_bad_index}: {self.reason} ({self.detail})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_index": self.first_bad_index,
            "reason": self.reason or None,
            "detail": self.detail or None,
            "message": self.message(),
            "signers": self.signers,
        }


def _as_public(key: Ed25519PublicKey | Ed25519PrivateKey | str | None) -> Ed25519PublicKey | None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bzzz_console.nodekey import public_key_from_hex

    if key is None:
        return None
    if isinstance(key, str):
        return public_key_from_hex(key)
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    return key


class _Keys:
    """Signer keys parsed once each; pinned ones are the only ones trusted when any are given."""

    def __init__(self, default: Ed25519PublicKey | None, pinned: Collection[str]) -> None:
        from bzzz_console.nodekey import public_key_hex

        self.default = default
        self.default_hex = public_key_hex(default) if default is not None else None
        self.pinned = {p.strip().lower() for p in pinned}
        self._cache: dict[str, Ed25519PublicKey | None] = {}

    def check(self, entry: StoredEntry) -> str | None:
        """None when the signature is good, else what is wrong with it."""
        from bzzz_console.nodekey import public_key_from_hex

        signer = entry.data.get("signer") if entry.data else None
        if not isinstance(signer, str):
            if self.default is None:
                return "no signer recorded and no node key to check it with"
            signer = self.default_hex or ""
        signer = signer.lower()
        if self.pinned and signer not in self.pinned:
            return f"signed by {signer[:16]}…, which is not a pinned key"
        if signer not in self._cache:
            try:
                self._cache[signer] = public_key_from_hex(signer)
            except ValueError:
                self._cache[signer] = None
        public = self._cache[signer]
        if public is None:
            return f"the recorded signer {signer[:20]!r} is not an Ed25519 public key"
        if not signature_valid(public, entry.hash, entry.signature):
            return f"the signature does not match signer {signer[:16]}…"
        return None


def verify_entries(
    entries: Iterable[StoredEntry],
    public_key: Ed25519PublicKey | Ed25519PrivateKey | str | None = None,
    *,
    pinned: Collection[str] = (),
) -> VerifyResult:
    """Walk the chain: indices contiguous from 0, each ``prev_hash`` the previous ``hash``, each hash
    recomputed, each signature checked against the entry's recorded signer (``public_key``, this node's key,
    for an entry that records none; only ``pinned`` keys when given).

    The first failure is classified: *missing* (a gap in the indices, or a link to an entry that is gone),
    *inserted* (the next entry links over this one), *modified* (the content no longer matches its hash, or
    the hash no longer matches what the next entry links to) or *bad signature*.
    """
    keys = _Keys(_as_public(public_key), pinned)
    signers: dict[str, int] = {}
    it = iter(entries)
    prev: StoredEntry | None = None
    cur = next(it, None)
    checked = 0
    recent: dict[str, int] = {}  # hash -> index of the last entries, to recognise a link that skips some

    def bad(index: int, reason: str, detail: str) -> VerifyResult:
        return VerifyResult(False, checked, index, reason, detail, signers)

    while cur is not None:
        nxt = next(it, None)
        expected = checked
        link = prev.hash if prev is not None else GENESIS
        links_over = nxt is not None and nxt.prev_hash == link and nxt.prev_hash != cur.hash
        if cur.idx < expected:  # only a negative index sorts before the expected one
            return bad(cur.idx, "inserted", f"numbered #{cur.idx}, before the start of the trail")
        if cur.idx != expected:
            if cur.prev_hash == link:
                return bad(cur.idx, "inserted", f"numbered #{cur.idx} after #{expected - 1}, linked to it")
            where = (
                f"the trail jumps from #{expected - 1} to #{cur.idx}"
                if expected
                else f"it starts at #{cur.idx}"
            )
            return bad(expected, "missing", where)
        hash_ok = (
            cur.data is not None
            and cur.at is not None
            and entry_hash(cur.idx, cur.at, cur.author, cur.type, cur.data, cur.prev_hash) == cur.hash
        )
        signature_problem = keys.check(cur) if hash_ok else None
        if cur.prev_hash != link:
            skipped = recent.get(cur.prev_hash)
            if skipped is not None:  # it links further back: what lies between was inserted
                checked = skipped + 1
                return bad(skipped + 1, "inserted", f"entry #{cur.idx} links to #{skipped}, past it")
            if links_over:
                return bad(
                    cur.idx, "inserted", f"entry #{cur.idx + 1} links to #{expected - 1}, past this one"
                )
            if not hash_ok:
                return bad(cur.idx, "modified", "its content and prev_hash do not match its hash")
            if signature_problem:
                return bad(cur.idx, "inserted", f"it links to no earlier entry and {signature_problem}")
            return bad(
                cur.idx,
                "missing",
                f"its prev_hash is not the hash of entry #{expected - 1}: an entry before it was removed"
                if expected
                else "entry 0 does not start from the genesis hash",
            )
        if not hash_ok:
            if links_over:
                return bad(
                    cur.idx, "inserted", f"entry #{cur.idx + 1} links to #{expected - 1}, past this one"
                )
            return bad(cur.idx, "modified", "its content does not match its hash")
        if signature_problem:
            if links_over:
                return bad(
                    cur.idx, "inserted", f"entry #{cur.idx + 1} links to #{expected - 1}, past this one"
                )
            if nxt is not None and nxt.prev_hash != cur.hash:
                return bad(cur.idx, "modified", f"re-hashed: entry #{cur.idx + 1} links to its former hash")
            return bad(cur.idx, "bad signature", signature_problem)
        signer = str((cur.data or {}).get("signer") or keys.default_hex or "").lower()
        signers[signer] = signers.get(signer, 0) + 1
        checked += 1
        recent[cur.hash] = cur.idx
        if len(recent) > 256:
            del recent[next(iter(recent))]
        prev, cur = cur, nxt
    return VerifyResult(True, checked, signers=signers)


def verify(
    store: Store,
    public_key: Ed25519PublicKey | Ed25519PrivateKey | str | None = None,
    *,
    pinned: Collection[str] = (),
) -> VerifyResult:
    """Verify the store's whole trail (streamed: memory does not grow with its length)."""
    return verify_entries(iter_entries(store), public_key, pinned=pinned)
