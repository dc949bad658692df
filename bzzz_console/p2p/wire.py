"""The BZZZ wire format, compatible with the original Go nodes (pubsub/pubsub.go of BZZZ v1).

A message is one JSON object published to one topic::

    {"type": "task_announcement", "from": "<peer id>", "timestamp": "2026-11-26T15:20:01.123456789+01:00",
     "data": {...}, "hop_count": 2}

``hop_count`` is present only when non-zero (Go's ``omitempty``). Timestamps are RFC 3339 with an offset; Go sends
nanoseconds, Python keeps microseconds, so up to 9 fractional digits are accepted and the extra ones dropped. See
``docs/wire-format.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

TOPIC_COORDINATION = "bzzz/coordination/v1"
TOPIC_META = "antennae/meta-discussion/v1"
MAX_MESSAGE_BYTES = 64 * 1024
MAX_HOPS = 8


class MessageType(StrEnum):
    # BZZZ v1 coordination (bzzz/coordination/v1)
    TASK_ANNOUNCEMENT = "task_announcement"
    TASK_CLAIM = "task_claim"
    TASK_PROGRESS = "task_progress"
    TASK_COMPLETE = "task_complete"
    CAPABILITY_BROADCAST = "capability_broadcast"
    AVAILABILITY_BROADCAST = "availability_broadcast"
    # BZZZ v1 Antennae meta-discussion (antennae/meta-discussion/v1)
    META_DISCUSSION = "meta_discussion"
    TASK_HELP_REQUEST = "task_help_request"
    TASK_HELP_RESPONSE = "task_help_response"
    COORDINATION_REQUEST = "coordination_request"
    COORDINATION_COMPLETE = "coordination_complete"
    DEPENDENCY_ALERT = "dependency_alert"
    ESCALATION_TRIGGER = "escalation_trigger"
    # v2: threads, agent states and operator decisions travel between consoles
    THREAD_MESSAGE = "thread_message"
    AGENT_STATE = "agent_state"
    ESCALATION_DECISION = "escalation_decision"


META_TYPES = frozenset(
    {
        MessageType.META_DISCUSSION,
        MessageType.TASK_HELP_REQUEST,
        MessageType.TASK_HELP_RESPONSE,
        MessageType.COORDINATION_REQUEST,
        MessageType.COORDINATION_COMPLETE,
        MessageType.DEPENDENCY_ALERT,
        MessageType.ESCALATION_TRIGGER,
    }
)


def topic_of(kind: MessageType) -> str:
    """One topic per message (other implementations reject a message signed for several topics)."""
    return TOPIC_META if kind in META_TYPES else TOPIC_COORDINATION


# Required fields of the v2 types' data (name → JSON type); v1 types carry free-form objects, as in Go.
V2_SCHEMAS: dict[MessageType, dict[str, type | tuple[type, ...]]] = {
    MessageType.THREAD_MESSAGE: {
        "thread_id": str,
        "message_id": str,
        "seq": int,
        "author": str,
        "role": str,
        "type": str,
        "content": str,
    },
    MessageType.AGENT_STATE: {"agent_id": str, "role": str, "state": str},
    MessageType.ESCALATION_DECISION: {"escalation_id": str, "decision": str, "by": str, "decided_at": str},
    # v1 nodes send escalation_trigger too, with their own fields: only the reason is common to both
    MessageType.ESCALATION_TRIGGER: {"reason": str},
}


class WireError(ValueError):
    """A message that is dropped; ``reason`` is the counter it goes to, the message says what and where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WireMessage:
    type: MessageType
    sender: str
    """The JSON ``from``: the publishing peer's id (checked against the signed author by the validator)."""
    timestamp: datetime
    data: dict[str, Any] = field(default_factory=dict)
    hop_count: int = 0

    @property
    def topic(self) -> str:
        return topic_of(self.type)


def format_timestamp(when: datetime) -> str:
    """RFC 3339 with an offset, like Go's ``time.Time`` JSON (``Z`` for UTC, trailing zeros trimmed)."""
    if when.tzinfo is None:
        raise ValueError("wire timestamps need a time zone")
    text = when.isoformat()
    if "." in text:
        head, _, rest = text.partition(".")
        digits, offset = rest[:6].rstrip("0"), rest[6:]
        text = f"{head}.{digits}{offset}" if digits else f"{head}{offset}"
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_RFC3339 = re.compile(  # ASCII digits only, and \Z: "$" would let a final newline through
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,
)


def parse_timestamp(text: str) -> datetime:
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not an RFC 3339 time with an offset (e.g. 2026-11-26T15:20:01.5+01:00)"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    if zulu:
        tz: timezone = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:  # RFC 3339's time-numoffset: hours 00-23, minutes 00-59
            raise ValueError(f"offset out of range in {text!r}")
        delta = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(delta if sign == "+" else -delta)
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
        )
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def encode(message: WireMessage) -> bytes:
    body: dict[str, Any] = {
        "type": message.type.value,
        "from": message.sender,
        "timestamp": format_timestamp(message.timestamp),
        "data": message.data,
    }
    if message.hop_count:
        body["hop_count"] = message.hop_count
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if len(raw) > MAX_MESSAGE_BYTES:
        raise WireError("too_large", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    return raw


def decode(raw: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_hops: int = MAX_HOPS) -> WireMessage:
    """Parse and check one message's shape; raises WireError naming the reason and the field."""
    if len(raw) > max_bytes:
        raise WireError("too_large", f"{len(raw)} bytes > {max_bytes}")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # also "[[[…" nested too deep, an integer of 5000 digits
        raise WireError("not_json", str(exc)) from None
    if not isinstance(body, dict):
        raise WireError("schema", "the message is not a JSON object")
    unknown = set(body) - {"type", "from", "timestamp", "data", "hop_count"}
    if unknown:
        raise WireError("schema", f"unknown field(s) {', '.join(sorted(unknown))}")
    try:
        kind = MessageType(str(body.get("type")))
    except ValueError:
        raise WireError("unknown_type", f"type: {body.get('type')!r}") from None
    sender = body.get("from")
    if not isinstance(sender, str) or not sender or len(sender) > 128:
        raise WireError("schema", "from: must be the sender's peer id")
    stamp = body.get("timestamp")
    if not isinstance(stamp, str):
        raise WireError("bad_timestamp", "timestamp: must be an RFC 3339 string")
    try:
        when = parse_timestamp(stamp)
    except ValueError as exc:
        raise WireError("bad_timestamp", f"timestamp: {exc}") from None
    data = body.get("data", {})
    if data is None:
        data = {}  # Go marshals a nil map as null
    if not isinstance(data, dict):
        raise WireError("schema", "data: must be a JSON object")
    hops = body.get("hop_count", 0)
    if not isinstance(hops, int) or isinstance(hops, bool) or hops < 0:
        raise WireError("schema", "hop_count: must be a non-negative integer")
    if hops > max_hops:
        raise WireError("hop_limit", f"hop_count {hops} > {max_hops}")
    for name, expected in V2_SCHEMAS.get(kind, {}).items():
        value = data.get(name)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise WireError("schema", f"data.{name}: required for {kind.value}")
    return WireMessage(kind, sender, when, data, hops)
