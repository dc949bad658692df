"""Admission of incoming wire messages: what gossipsub's signature check does not cover.

``from`` must be the signed author (the JSON field itself is not authenticated), duplicates are dropped, a peer
may not flood (token bucket per peer), and each rejection is counted by reason — a bad message never crashes a
node and never reaches an agent.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from bzzz_console.p2p.wire import MAX_HOPS, MAX_MESSAGE_BYTES, WireError, WireMessage, decode


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class Admission:
    max_bytes: int = MAX_MESSAGE_BYTES
    max_hops: int = MAX_HOPS
    rate_per_s: float = 50.0
    burst: float = 100.0
    seen_limit: int = 10_000
    clock: Callable[[], float] = time.monotonic
    rejected: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, raw: bytes, signed_author: str) -> WireMessage:
        """The message if it may go on to the runtime; raises WireError (and counts it) otherwise."""
        try:
            self._rate(signed_author)
            digest = hashlib.sha256(raw).hexdigest()
            if digest in self._seen:
                raise WireError("duplicate", f"already seen ({digest[:12]})")
            message = decode(raw, max_bytes=self.max_bytes, max_hops=self.max_hops)
            if message.sender != signed_author:
                raise WireError(
                    "forged_from", f"from {message.sender!r} is not the signed author {signed_author!r}"
                )
        except WireError as exc:
            self.rejected[exc.reason] += 1
            raise
        self._remember(digest)
        self.accepted += 1
        return message

    def _remember(self, digest: str) -> None:
        self._seen[digest] = None
        while len(self._seen) > self.seen_limit:
            self._seen.popitem(last=False)

    def _rate(self, peer: str) -> None:
        now = self.clock()
        bucket = self._buckets.setdefault(peer, _Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_s)
        bucket.updated = now
        if bucket.tokens < 1:
            raise WireError("rate_limited", f"peer {peer} sends more than {self.rate_per_s:g}/s")
        bucket.tokens -= 1
