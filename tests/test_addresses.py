"""Tests for semantic addresses: parsing, canonical formatting, strict rejection and matching."""

from __future__ import annotations

import dataclasses
import operator
import pickle
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz_console.domain.addresses import (
    PATH_KINDS,
    AddressError,
    SemanticAddress,
    agent_address,
    parse_address,
)

A = SemanticAddress


# --------------------------------------------------------------------------- parsing the documented examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bzzz://architect@*", A("architect", None, "*")),
        (
            "bzzz://architect-1:architect@payments:task-7/threads/t-3",
            A("architect-1", "architect", "payments", "task-7", "threads", "t-3"),
        ),
        ("bzzz://:reviewer@payments", A(None, "reviewer", "payments")),
        ("bzzz://*:*@*", A("*", "*", "*")),
        ("bzzz://@payments", A(None, None, "payments")),
        ("bzzz://*@proj/escalations/e-12", A("*", None, "proj", None, "escalations", "e-12")),
        ("bzzz://*@*/tasks/17", A("*", None, "*", None, "tasks", "17")),
        (
            "bzzz://docs-1@default/subscriptions/s-1",
            A("docs-1", None, "default", None, "subscriptions", "s-1"),
        ),
        ("bzzz://a@p/agents/*", A("a", None, "p", None, "agents", "*")),
        ("bzzz://A.b_c-9@P:*", A("A.b_c-9", None, "P", "*")),
    ],
)
def test_parse_examples(text: str, expected: SemanticAddress) -> None:
    addr = parse_address(text)
    assert addr == expected
    assert SemanticAddress.parse(text) == expected
    assert addr.format() == text
    assert str(addr) == text


def test_scheme_is_case_insensitive_and_canonicalised() -> None:
    addr = parse_address("BzZz://Architect@Payments")
    assert addr == A("Architect", None, "Payments")
    assert addr.format() == "bzzz://Architect@Payments"  # only the scheme is lowercased


def test_target() -> None:
    assert parse_address("bzzz://*@p/threads/t-1").target == ("threads", "t-1")
    assert parse_address("bzzz://*@p:t").target is None


def test_name_length_limit() -> None:
    longest = "a" * 64
    assert parse_address(f"bzzz://{longest}@p").agent == longest
    with pytest.raises(AddressError) as err:
        parse_address(f"bzzz://{longest}a@p")
    assert err.value.position == 7 + 64
    assert "longer than 64" in str(err.value)


def test_agent_address() -> None:
    assert agent_address("architect-1", "architect") == "bzzz://architect-1:architect@*"
    assert agent_address("docs-1", "docs", "payments") == "bzzz://docs-1:docs@payments"
    with pytest.raises(AddressError):
        agent_address("bad id", "docs")


def test_address_is_frozen_and_hashable() -> None:
    addr = parse_address("bzzz://a@p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        addr.project = "q"  # type: ignore[misc]
    assert {addr, parse_address("bzzz://a@p")} == {addr}


@pytest.mark.parametrize(
    "fields",
    [
        ("", None, "p"),
        (None, "", "p"),
        ("a", None, ""),
        ("a:b", None, "p"),
        ("a", None, "p@q"),
        ("a", None, "p", None, "threads", None),
        ("a", None, "p", None, None, "x"),
        ("a", None, "p", None, "bogus", "x"),
        ("a b", None, "p"),
    ],
)
def test_constructor_validates(fields: tuple[str | None, ...]) -> None:
    with pytest.raises(AddressError):
        SemanticAddress(*fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- rejections (what and where)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 0, "empty"),
        ("bzzz://a b@x", 8, "whitespace ' '"),
        ("bzzz://a@x\t", 10, "whitespace"),
        (" bzzz://a@x", 0, "whitespace"),
        ("bzzz://a\x00@x", 8, "control character '\\x00'"),
        ("bzzz://a@x\u200b", 10, "control character"),
        ("http://a@x", 0, "scheme 'bzzz://'"),
        ("bzzz:/a@x", 6, "scheme 'bzzz://'"),
        ("bzzz:", 5, "scheme 'bzzz://'"),
        ("bzzz://payments", 15, "missing '@'"),
        ("bzzz://a:r", 10, "missing '@'"),
        ("bzzz://a@", 9, "missing project"),
        ("bzzz://@", 8, "missing project"),
        ("bzzz://a@/tasks/1", 9, "missing project"),
        ("bzzz://a@@p", 9, "duplicate '@'"),
        ("bzzz://a@b@c", 10, "duplicate '@'"),
        ("bzzz://a@b:t@c", 12, "duplicate '@'"),
        ("bzzz://a:@p", 9, "missing role"),
        ("bzzz://:@p", 8, "missing role"),
        ("bzzz://a@p:", 11, "missing task"),
        ("bzzz://a@p:/tasks/1", 11, "missing task"),
        ("bzzz://a:b:c@p", 10, "unexpected ':'"),
        ("bzzz://a@p:t:u", 12, "unexpected ':'"),
        ("bzzz://-a@p", 7, "must start with a letter or digit"),
        ("bzzz://a@.p", 9, "must start with a letter or digit"),
        ("bzzz://*a@p", 8, "unexpected 'a'"),
        ("bzzz://a@p*", 10, "unexpected '*'"),
        ("bzzz://é@p", 7, "unexpected 'é'"),
        ("bzzz://a@p/foo/1", 11, "unknown path kind 'foo'"),
        ("bzzz://a@p/Threads/1", 11, "unknown path kind 'Threads'"),
        ("bzzz://a@p/", 11, "unexpected end"),
        ("bzzz://a@p//1", 11, "unexpected '/'"),
        ("bzzz://a@p/threads", 18, "missing id after '/threads'"),
        ("bzzz://a@p/threads:1", 18, "unexpected ':'"),
        ("bzzz://a@p/threads/", 19, "missing id after '/threads/'"),
        ("bzzz://a@p/threads/1/", 20, "nothing may follow the path id"),
        ("bzzz://a@p/threads/1/messages/2", 20, "nothing may follow the path id"),
        ("bzzz://a@p/tasks/1?x", 18, "unexpected '?'"),
        ("bzzz://a@p/tasks/-1", 17, "must start with a letter or digit"),
        ("bzzz://a@p" + "/" * 600, 512, "too long"),
    ],
)
def test_rejections_report_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(AddressError) as err:
        parse_address(text)
    exc = err.value
    message = str(exc)
    assert isinstance(exc, ValueError)
    assert exc.position == column
    assert f"at column {column}" in message
    assert fragment in message
    assert message.startswith("invalid semantic address ")
    assert exc.address == text
    assert exc.reason in message


@pytest.mark.parametrize("value", [None, 5, b"bzzz://a@p", ["bzzz://a@p"]])
def test_non_string_rejected(value: object) -> None:
    with pytest.raises(AddressError, match="expected a string"):
        parse_address(value)  # type: ignore[arg-type]


def test_error_message_matches_brief_example_shape() -> None:
    with pytest.raises(AddressError) as err:
        parse_address("bzzz://a b@x")
    assert str(err.value).startswith("invalid semantic address 'bzzz://a b@x': ")
    assert err.value.position == 8


def test_error_pickles() -> None:
    with pytest.raises(AddressError) as err:
        parse_address("bzzz://a@")
    copy = pickle.loads(pickle.dumps(err.value))
    assert (copy.address, copy.position, copy.reason) == ("bzzz://a@", 9, err.value.reason)
    assert str(copy) == str(err.value)


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("text", "agent_id", "role", "project", "expected"),
    [
        # a single name matches the agent id or the role
        ("bzzz://architect@*", "architect-1", "architect", "payments", True),
        ("bzzz://architect-1@*", "architect-1", "architect", "payments", True),
        ("bzzz://architect@*", "dev-1", "developer", "payments", False),
        # id and role given: both must match
        ("bzzz://architect-1:architect@*", "architect-1", "architect", "p", True),
        ("bzzz://architect-1:developer@*", "architect-1", "architect", "p", False),
        ("bzzz://architect:architect@*", "architect-1", "architect", "p", False),
        # role only
        ("bzzz://:reviewer@payments", "rev-2", "reviewer", "payments", True),
        ("bzzz://:reviewer@payments", "reviewer", "developer", "payments", False),
        # wildcards and the empty agent part
        ("bzzz://*:*@*", "x", "y", "z", True),
        ("bzzz://*@payments", "x", "y", "payments", True),
        ("bzzz://@payments", "x", "y", "payments", True),
        ("bzzz://@payments", "x", "y", "billing", False),
        ("bzzz://*:reviewer@*", "x", "developer", "p", False),
        # project
        ("bzzz://architect@payments", "a", "architect", "billing", False),
        ("bzzz://architect@payments", "a", "architect", None, True),  # unbound agent
        ("bzzz://architect@*", "a", "architect", None, True),
        # the task is ignored for agents; an /agents/<id> path narrows to that agent
        ("bzzz://*@p:task-1", "a", "r", "p", True),
        ("bzzz://*@p/agents/a", "a", "r", "p", True),
        ("bzzz://*@p/agents/b", "a", "r", "p", False),
        ("bzzz://*@p/threads/t-1", "a", "r", "p", True),
        # matching is case-sensitive
        ("bzzz://Architect@*", "a", "architect", "p", False),
    ],
)
def test_matches_agent(text: str, agent_id: str, role: str, project: str | None, expected: bool) -> None:
    assert parse_address(text).matches_agent(agent_id, role, project) is expected


@pytest.mark.parametrize(
    ("text", "thread_id", "project", "task_id", "expected"),
    [
        ("bzzz://*@payments", "t-1", "payments", None, True),
        ("bzzz://*@payments", "t-1", "billing", None, False),
        ("bzzz://*@*/threads/t-1", "t-1", "any", None, True),
        ("bzzz://*@*/threads/t-1", "t-2", "any", None, False),
        ("bzzz://*@*/threads/*", "t-2", "any", None, True),
        ("bzzz://a@p:task-7/threads/t-3", "t-3", "p", "task-7", True),
        ("bzzz://a@p:task-7/threads/t-3", "t-3", "p", "task-8", False),
        ("bzzz://a@p:task-7", "t-3", "p", None, False),
        ("bzzz://a@p:*", "t-3", "p", None, True),
        ("bzzz://*@*/tasks/17", "t-3", "p", "17", True),
        ("bzzz://*@*/tasks/17", "t-3", "p", "18", False),
        ("bzzz://*@*/tasks/17", "t-3", "p", None, False),
        ("bzzz://*@proj/escalations/e-12", "e-12", "proj", None, False),
    ],
)
def test_matches_thread(text: str, thread_id: str, project: str, task_id: str | None, expected: bool) -> None:
    assert parse_address(text).matches_thread(thread_id, project, task_id) is expected


@pytest.mark.parametrize(
    ("text", "task_id", "project", "expected"),
    [
        ("bzzz://*@*/tasks/17", "17", "p", True),
        ("bzzz://*@*/tasks/17", "18", "p", False),
        ("bzzz://*@p:17", "17", "p", True),
        ("bzzz://*@p:17", "17", "q", False),
        ("bzzz://*@p", "17", "p", True),
        ("bzzz://*@p:*/tasks/*", "17", "p", True),
        ("bzzz://*@p/threads/t-1", "17", "p", False),
        ("bzzz://*@p:16/tasks/17", "17", "p", False),
    ],
)
def test_matches_task(text: str, task_id: str, project: str, expected: bool) -> None:
    assert parse_address(text).matches_task(task_id, project) is expected


# --------------------------------------------------------------------------- properties

_NAME_START = string.ascii_letters + string.digits
names = st.builds(
    operator.add, st.sampled_from(_NAME_START), st.text(_NAME_START + "._-", max_size=63)
) | st.just("*")
optional_names = st.none() | names


@st.composite
def addresses(draw: st.DrawFn) -> SemanticAddress:
    agent = draw(optional_names)
    role = draw(optional_names)
    project = draw(names)
    task = draw(optional_names)
    kind = draw(st.none() | st.sampled_from(PATH_KINDS))
    path_id = None if kind is None else draw(names)
    return SemanticAddress(agent, role, project, task, kind, path_id)


# Text that gets past the scheme most of the time, built from the grammar's own characters.
_grammar_alphabet = st.sampled_from([*"aZ09._-*:@/ ", "threads", "tasks", "é", "\x00", "/agents/"])
near_addresses = st.lists(_grammar_alphabet, max_size=30).map(lambda parts: "bzzz://" + "".join(parts))


@settings(max_examples=300, deadline=None)
@given(addresses())
def test_format_then_parse_roundtrips(addr: SemanticAddress) -> None:
    text = addr.format()
    assert parse_address(text) == addr
    assert str(addr) == text
    assert len(text) <= 512


def _parse_or_error(text: str) -> SemanticAddress | None:
    try:
        return parse_address(text)
    except AddressError as exc:
        assert 0 <= exc.position <= len(text)
        assert f"at column {exc.position}" in str(exc)
        return None


@settings(max_examples=300, deadline=None)
@given(st.text() | near_addresses)
def test_arbitrary_text_parses_or_raises_address_error(text: str) -> None:
    result = _parse_or_error(text)
    assert result is None or isinstance(result, SemanticAddress)


@settings(max_examples=300, deadline=None)
@given(near_addresses | addresses().map(str))
def test_parsed_addresses_reformat_canonically(text: str) -> None:
    addr = _parse_or_error(text)
    if addr is None:
        return
    canonical = addr.format()
    assert canonical == "bzzz://" + text[7:]  # canonical form only lowercases the scheme
    assert parse_address(canonical) == addr


@settings(max_examples=200, deadline=None)
@given(addresses(), st.data())
def test_single_character_mutations_never_crash(addr: SemanticAddress, data: st.DataObject) -> None:
    text = addr.format()
    index = data.draw(st.integers(0, len(text)))
    char = data.draw(st.characters())
    mutated = text[:index] + char + text[index + 1 :]
    parsed = _parse_or_error(mutated)
    if parsed is not None:
        assert parse_address(parsed.format()) == parsed
