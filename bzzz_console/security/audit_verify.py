"""Verifying the audit trail: the chain entry by entry, then against this node's last signed checkpoint.

What verification can and cannot tell: a modified, removed, inserted, duplicated or reordered entry is found,
and so is an entry not signed by the key it names. Entries cut off the *end* of the trail leave a shorter,
intact chain: only a checkpoint kept outside the database (:mod:`bzzz_console.security.audit_checkpoint`) shows them
missing. Anyone holding a node key can sign entries in its name — pin the keys you trust (``audit verify
--key``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bzzz_console.security.audit_chain import (
    GENESIS,
    StoredEntry,
    entry_hash,
    iter_entries,
    signature_valid,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from bzzz_console.security.audit_checkpoint import Checkpoint
    from bzzz_console.store.repo import Store

FindCopy = Callable[[str, int], int | None]
"""(stored hash, index) → the index of another entry that stores the same hash, if any."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    """Entries found intact before the first bad one (all of them when ``ok``)."""
    first_bad_index: int | None = None
    reason: str = ""
    """``modified``, ``missing``, ``inserted``, ``duplicate``, ``bad signature``, ``replaced`` (the entry a
    checkpoint signed is no longer there) or ``bad checkpoint``; empty when ``ok``."""
    detail: str = ""
    signers: dict[str, int] = field(default_factory=dict)
    """Public key (hex) → entries it signed, among those checked."""
    last_bad_index: int | None = None
    """The last of a run of missing entries (a trail cut short of its checkpoint)."""
    checkpoint: dict[str, Any] | None = None
    """The checkpoint the trail was held to, if any."""
    note: str = ""
    """Said after "intact": what was (or could not be) checked beyond the chain."""

    def message(self) -> str:
        if self.ok:
            return f"intact: {self.checked} entries" + (f" ({self.note})" if self.note else "")
        if self.reason == "bad checkpoint":
            return f"checkpoint: {self.detail}"
        if self.last_bad_index is not None:
            first, last = self.first_bad_index, self.last_bad_index
            span = f"entry #{first} is" if first == last else f"entries #{first}–#{last} are"
            return f"{span} missing: {self.detail}"
        return f"entry #{self.first_bad_index}: {self.reason} ({self.detail})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_index": self.first_bad_index,
            "last_bad_index": self.last_bad_index,
            "reason": self.reason or None,
            "detail": self.detail or None,
            "message": self.message(),
            "signers": self.signers,
            "checkpoint": self.checkpoint,
        }


def _as_public(key: Ed25519PublicKey | Ed25519PrivateKey | str | None) -> Ed25519PublicKey | None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bzzz_console.security.nodekey import public_key_from_hex

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
        from bzzz_console.security.nodekey import public_key_hex

        self.default = default
        self.default_hex = public_key_hex(default) if default is not None else None
        self.pinned = {p.strip().lower() for p in pinned}
        self._cache: dict[str, Ed25519PublicKey | None] = {}

    def check(self, entry: StoredEntry) -> str | None:
        """None when the signature is good, else what is wrong with it."""
        from bzzz_console.security.nodekey import public_key_from_hex

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
    find_copy: FindCopy | None = None,
) -> VerifyResult:
    """Walk the chain: indices contiguous from 0, each ``prev_hash`` the previous ``hash``, each hash
    recomputed, each signature checked against the entry's recorded signer (``public_key``, this node's key,
    for an entry that records none; only ``pinned`` keys when given).

    The first failure is classified: *duplicate* (a copy of another entry under a new index: the copy is named,
    never the entry it copies), *missing* (a gap in the indices, or a link to an entry that is gone),
    *inserted* (the next entry links over this one), *modified* (the content no longer matches its hash, or
    the hash no longer matches what the next entry links to) or *bad signature*. ``find_copy`` looks up a
    stored hash among entries too far back to be remembered (only when an entry is already suspect).
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
        hash_ok = (
            cur.data is not None
            and cur.at is not None
            and entry_hash(cur.idx, cur.at, cur.author, cur.type, cur.data, cur.prev_hash) == cur.hash
        )
        if cur.idx != expected or cur.prev_hash != link or not hash_ok:
            # Every hash covers its entry's index, so two rows storing one hash cannot both be genuine: the one
            # whose hash does not recompute (here, the suspect) is the copy. Checked first, so a copy that links
            # back into the trail is not mistaken for an insertion before the entry it copies.
            original = recent.get(cur.hash)
            if original is None and find_copy is not None:
                original = find_copy(cur.hash, cur.idx)
            if original is not None and original != cur.idx:
                return bad(cur.idx, "duplicate", f"a verbatim copy of entry #{original}")
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


def held_to(result: VerifyResult, checkpoint: Checkpoint, head: str | None) -> VerifyResult:
    """An intact chain held to a signed checkpoint (``head``: the stored hash of the checkpoint's last entry,
    None if the trail has no such entry). A trail shorter than the checkpoint was cut; one whose entry at the
    checkpoint's head is another entry was cut and written again (the chain alone cannot show either)."""
    signed = checkpoint.to_dict()
    if not result.ok:
        return replace(result, checkpoint=signed)
    last = checkpoint.size - 1
    when = checkpoint.when()
    if result.checked < checkpoint.size:
        ends = f"the trail ends at #{result.checked - 1}" if result.checked else "the trail is empty"
        return replace(
            result,
            ok=False,
            first_bad_index=result.checked,
            last_bad_index=last,
            reason="missing",
            detail=f"{ends} but the checkpoint of {when} signed #{last}",
            checkpoint=signed,
        )
    if head != checkpoint.head:
        return replace(
            result,
            ok=False,
            first_bad_index=last,
            reason="replaced",
            detail=f"it is not the entry the checkpoint of {when} signed: the trail was cut and written "
            "again up to here",
            checkpoint=signed,
        )
    return replace(result, checkpoint=signed, note=f"checkpoint of {when}: #{last} matches")


def _find_copy(store: Store) -> FindCopy:
    def find(digest: str, idx: int) -> int | None:
        return store.audit_index_of(digest, besides=idx)

    return find


def verify(
    store: Store,
    public_key: Ed25519PublicKey | Ed25519PrivateKey | str | None = None,
    *,
    pinned: Collection[str] = (),
    checkpoint: Checkpoint | None = None,
) -> VerifyResult:
    """Verify the store's whole trail (streamed: memory does not grow with its length), held to ``checkpoint``
    when given."""
    if checkpoint is None:
        return verify_entries(iter_entries(store), public_key, pinned=pinned, find_copy=_find_copy(store))
    head: list[str] = []

    def watched() -> Iterator[StoredEntry]:
        for entry in iter_entries(store):
            if entry.idx == checkpoint.size - 1:
                head.append(entry.hash)
            yield entry

    result = verify_entries(watched(), public_key, pinned=pinned, find_copy=_find_copy(store))
    return held_to(result, checkpoint, head[0] if head else None)
