"""The BZZZ wire format: compatible with the Go nodes' JSON, strict on everything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz_console.p2p.validation import Admission
from bzzz_console.p2p.wire import (
    TOPIC_COORDINATION,
    TOPIC_META,
    MessageType,
    WireError,
    WireMessage,
    decode,
    encode,
    format_timestamp,
    parse_timestamp,
)

PEER = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"

# As go's encoding/json writes a BZZZ v1 message (RFC 3339 nano timestamp, hop_count omitted when zero).
GO_MESSAGE = (
    b'{"type":"availability_broadcast","from":"' + PEER.encode() + b'",'
    b'"timestamp":"2025-07-11T10:30:00.123456789+02:00","data":{"status":"ready","current_tasks":1}}'
)


def test_a_go_message_decodes_with_its_offset_and_nanoseconds_truncated() -> None:
    message = decode(GO_MESSAGE)
    assert message.type is MessageType.AVAILABILITY_BROADCAST
    assert message.sender == PEER
    assert message.timestamp == datetime(2025, 7, 11, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert message.data == {"status": "ready", "current_tasks": 1}
    assert message.hop_count == 0
    assert message.topic == TOPIC_COORDINATION


def test_encoding_matches_the_go_shape() -> None:
    when = datetime(2026, 11, 26, 15, 20, 1, 500000, tzinfo=UTC)
    raw = encode(WireMessage(MessageType.META_DISCUSSION, PEER, when, {"text": "hi"}))
    body = json.loads(raw)
    assert list(body) == ["type", "from", "timestamp", "data"]  # no hop_count when it is zero
    assert body["timestamp"] == "2026-11-26T15:20:01.5Z"
    hopped = json.loads(encode(WireMessage(MessageType.META_DISCUSSION, PEER, when, {}, hop_count=2)))
    assert hopped["hop_count"] == 2
    assert WireMessage(MessageType.META_DISCUSSION, PEER, when).topic == TOPIC_META
    assert decode(raw).timestamp == when


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            "2026-01-02T03:04:05.1-05:30",
            datetime(2026, 1, 2, 3, 4, 5, 100000, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
        ("2026-01-02t03:04:05.999999999z", datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05",
        "2026-01-02 03:04:05Z",
        "2026-13-02T03:04:05Z",
        "2026-01-02T03:04:05.1234567890Z",
        "yesterday",
        "2026-01-02T03:04:05+24:00",
        "2026-01-02T03:04:05+00:75",  # offset minutes are 00-59
        "\u0662\u0660\u0662\u0666-01-02T03:04:05Z",  # Arabic-Indic digits: not ASCII
        "2026-01-02T03:04:05Z\n",  # a final newline
    ],
)
def test_bad_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def _raw(**fields: object) -> bytes:
    body: dict[str, object] = {
        "type": "task_claim",
        "from": PEER,
        "timestamp": "2026-01-02T03:04:05Z",
        "data": {},
    }
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("raw", "reason", "where"),
    [
        (b"x" * 70_000, "too_large", "bytes"),
        (b"{not json", "not_json", ""),
        (b"[1, 2]", "schema", "object"),
        (_raw(type="task_steal"), "unknown_type", "type"),
        (_raw(**{"from": 7}), "schema", "from"),
        (_raw(timestamp="noon"), "bad_timestamp", "timestamp"),
        (_raw(data=[1]), "schema", "data"),
        (_raw(hop_count=-1), "schema", "hop_count"),
        (_raw(hop_count=99), "hop_limit", "hop_count"),
        (_raw(extra=1), "schema", "extra"),
        (_raw(type="thread_message", data={"thread_id": "t"}), "schema", "data.message_id"),
        (
            _raw(type="escalation_decision", data={"escalation_id": "e", "decision": "approve", "by": "op"}),
            "schema",
            "data.decided_at",
        ),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason_and_the_field(
    raw: bytes, reason: str, where: str
) -> None:
    with pytest.raises(WireError) as info:
        decode(raw)
    assert info.value.reason == reason
    assert where in str(info.value)


def test_go_null_data_is_an_empty_object() -> None:
    assert decode(_raw(data=None)).data == {}


def test_admission_checks_author_duplicates_and_rate_and_counts_reasons() -> None:
    now = [0.0]
    admission = Admission(rate_per_s=1.0, burst=2.0, clock=lambda: now[0])
    first = _raw(data={"n": 1})
    assert admission.admit(first, PEER).data == {"n": 1}
    with pytest.raises(WireError, match="duplicate"):
        admission.admit(first, PEER)
    with pytest.raises(WireError, match="forged_from"):
        admission.admit(_raw(data={"n": 2}), "12D3KooWSomeoneElse")
    with pytest.raises(WireError, match="rate_limited"):
        admission.admit(_raw(data={"n": 3}), PEER)  # the burst of 2 is used up (the duplicate counted too)
    now[0] += 1.0
    assert admission.admit(_raw(data={"n": 4}), PEER).data == {"n": 4}
    assert admission.accepted == 2
    assert admission.rejected == {"duplicate": 1, "forged_from": 1, "rate_limited": 1}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_are_either_a_message_or_a_wire_error(raw: bytes) -> None:
    try:
        message = decode(raw)
    except WireError as exc:
        assert exc.reason
    else:
        assert isinstance(message, WireMessage)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "from", "timestamp", "data", "hop_count", "x"]), json_values))
def test_arbitrary_json_objects_are_either_a_message_or_a_wire_error(body: dict[str, object]) -> None:
    try:
        decode(json.dumps(body).encode())
    except WireError as exc:
        assert exc.reason


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)), st.sampled_from(list(MessageType)))
def test_encode_decode_round_trip(when: datetime, kind: MessageType) -> None:
    data = {
        "escalation_id": "e",
        "decision": "approve",
        "by": "op",
        "decided_at": "x",
        "reason": "r",
        "priority": "high",
        "thread_id": "t",
        "message_id": "m",
        "seq": 1,
        "author": "a",
        "role": "r",
        "type": "comment",
        "content": "c",
        "agent_id": "a",
        "state": "idle",
    }
    message = WireMessage(kind, PEER, when.replace(microsecond=when.microsecond), data, hop_count=1)
    assert decode(encode(message)) == message
    assert format_timestamp(when).endswith("Z")
