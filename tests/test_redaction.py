"""Redaction: each kind, the Luhn check, no false positives on ordinary numbers, the settings, and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz_console.config import SecuritySettings, Settings, load_settings
from bzzz_console.security.redaction import Redactor, luhn_ok, redact, redactor_for, tag

R = Redactor(secrets=())


# -- API keys ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-abcdefghijklmnop1234 here", "key [redacted:api_key] here"),
        ("sk-proj-AbC_dEf-123456789012345678901234", "[redacted:api_key]"),
        ("sk-svcacct-abcdefghijklmnopqrstuv", "[redacted:api_key]"),
        ("sk-ant-api03-abcdefghijklmnopqrstuv", "[redacted:api_key]"),
        ("Authorization: Bearer eyJhbGciOi.J9.abc123def456", "Authorization: Bearer [redacted:api_key]"),
        (
            "curl -H 'authorization: bearer 0a1b2c3d4e5f6a7b'",
            "curl -H 'authorization: bearer [redacted:api_key]'",
        ),
        ("api_key=abcd1234efgh", "api_key=[redacted:api_key]"),
        ('{"api-key": "abcd1234efgh"}', '{"api-key": "[redacted:api_key]"}'),
        ("X-API-KEY: 0123456789abcdef", "X-API-KEY: [redacted:api_key]"),
        ("apiKey = 'Zz9Zz9Zz9'", "apiKey = '[redacted:api_key]'"),
        ("password: hunter22", "password: [redacted:api_key]"),
        ("client_secret=abcdefghijklmnop", "client_secret=[redacted:api_key]"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token [redacted:api_key]"),
        ("AKIAIOSFODNN7EXAMPLE is an AWS key id", "[redacted:api_key] is an AWS key id"),
    ],
)
def test_api_keys(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Bearer authentication is fine",
        "the API key: rotate it weekly",
        "API_KEY: rotate",
        "ask-questions-first",
        "disk-usage-report-for-today",
        "sk-short",
        "see api_key=[redacted:api_key]",
    ],
)
def test_api_key_look_alikes_stay(text: str) -> None:
    assert R.redact(text) == text


def test_live_keys_are_redacted_whatever_their_shape_and_the_settings() -> None:
    key = "Zq0123456789abcdefXYZ"
    off = SecuritySettings(redact_llm=(), redact_store=(), redact_export=())
    r = Redactor(off, secrets=[key, "short"])
    assert r.redact(f"the key is {key}!", "llm") == "the key is [redacted:api_key]!"
    assert r.redact(f"{key}{key}", "store") == "[redacted:api_key][redacted:api_key]"
    assert r.redact("a short one stays", "export") == "a short one stays"


def test_the_process_live_keys_are_used_by_default(tmp_path: object) -> None:
    from bzzz_console.security.secrets import remember_secret

    remember_secret("LiveKeyValue-0123456789")
    assert redact("x LiveKeyValue-0123456789 y", "export") == "x [redacted:api_key] y"
    # a redactor that already cached a text redacts it again once a new key is known
    r = Redactor(SecuritySettings(redact_store=()))
    assert r.redact("late LateKeyValue-0123456789", "store") == "late LateKeyValue-0123456789"
    remember_secret("LateKeyValue-0123456789")
    assert r.redact("late LateKeyValue-0123456789", "store") == "late [redacted:api_key]"


# -- emails -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail bob@example.com now", "mail [redacted:email] now"),
        ("Bob.Smith+tag@mail.example.co.uk.", "[redacted:email]."),
        ("<first_last@sub-domain.example.org>", "<[redacted:email]>"),
        ("mailto:alice@example.com", "mailto:[redacted:email]"),
        ("a@b.io,c@d.io", "[redacted:email],[redacted:email]"),
    ],
)
def test_emails(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "bzzz://architect@*",
        "bzzz://reviewer@my.project/threads/review-1a2b",
        "user@localhost",
        "@mention in chat",
        "git@ is not an address",
        "x@y",
        "version 1.2@3.4",
    ],
)
def test_email_look_alikes_stay(text: str) -> None:
    assert R.redact(text) == text


# -- phone numbers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "phone",
    [
        "+14155552671",
        "+1 (555) 123-4567",
        "+44 20 7946 0958",
        "+49 151 12345678",
        "+33 1 23 45 67 89",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "020 7946 0958",
        "07700 900123",
        "01 23 45 67 89",
        "030-1234-5678",
        "(030) 1234567",
    ],
)
def test_phone_numbers(phone: str) -> None:
    assert R.redact(f"call {phone} today") == "call [redacted:phone] today"


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 we shipped 12 releases",
        "id 12345678 and 1234567890",
        "order 5551234567",
        "1,234,567 tokens",
        "12 345 678 tokens",
        "2024-05-06T12:34:56Z",
        "2024-05-06 12:34:56.123456+00:00",
        "05/06/2024 at 10:30",
        "epoch 1715000000 or 1715000000000",
        "cost $0.0123 of 5.00",
        "v1.2.3 and 192.168.100.200",
        "seq #12, turn 3/24",
        "pi is 3.14159265358979",
        "review-1a2b3c4d #3 ↩ review-1a2b3c4d#2",
        "+5 points, -3 points",
        "ports 8080-8090",
        "ISBN 978-3-16-148410-0",
        "at 0.5 and 0.25",
    ],
)
def test_ordinary_numbers_stay(text: str) -> None:
    assert R.redact(text) == text


# -- card numbers -----------------------------------------------------------------------------------------------
def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "4222222222222",
    ],
)
def test_card_numbers(card: str) -> None:
    assert R.redact(f"card {card}.") == "card [redacted:card]."


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        "20240506123456",  # a compact timestamp that passes Luhn: no card network starts with 20
        "1715000000000 ms",
        "4111 1111 1111",  # too short
        "4111-1111 1111-1111",  # mixed separators
    ],
)
def test_card_look_alikes_stay(text: str) -> None:
    assert R.redact(text) == text


# -- settings ---------------------------------------------------------------------------------------------------
def test_kinds_are_configured_per_target() -> None:
    text = "bob@example.com, +1 555 123 4567, 4111 1111 1111 1111, sk-abcdefghijklmnop1234"
    security = SecuritySettings(redact_llm=("email",), redact_store=("card", "phone"), redact_export=())
    r = Redactor(security, secrets=())
    assert r.redact(text, "llm") == (
        "[redacted:email], +1 555 123 4567, 4111 1111 1111 1111, sk-abcdefghijklmnop1234"
    )
    assert r.redact(text, "store") == (
        "bob@example.com, [redacted:phone], [redacted:card], sk-abcdefghijklmnop1234"
    )
    assert r.redact(text, "export") == text
    assert r.redact(text) == "[redacted:email], [redacted:phone], [redacted:card], [redacted:api_key]"


def test_settings_come_from_toml_and_environment(tmp_path: object) -> None:
    from pathlib import Path

    assert Settings().security.redact_store == ("api_key", "email", "phone", "card")
    path = Path(str(tmp_path)) / "c.toml"
    path.write_text('[security]\nredact_export = ["email"]\nkey_cache_s = 1\n', encoding="utf-8")
    s = load_settings(path, environ={"BZZZ_SECURITY__REDACT_LLM": '["api_key"]'})
    assert s.security.redact_export == ("email",) and s.security.redact_llm == ("api_key",)
    assert s.security.key_cache_s == 1
    from bzzz_console.config import ConfigError

    with pytest.raises(ConfigError, match=r"security\.redact_store"):
        load_settings(path, environ={"BZZZ_SECURITY__REDACT_STORE": '["ssn"]'})


def test_redactor_for_is_shared_per_settings() -> None:
    assert redactor_for(SecuritySettings()) is redactor_for(SecuritySettings())
    assert redactor_for(SecuritySettings(redact_llm=())) is not redactor_for(SecuritySettings())


def test_json_data_stays_json() -> None:
    doc = {"text": 'mail "bob@example.com", key sk-abcdefghijklmnop1234', "n": 4111111111111111}
    out = R.redact_data(doc)
    assert out == {"text": 'mail "[redacted:email]", key [redacted:api_key]', "n": 4111111111111111}
    assert json.loads(R.redact(json.dumps(doc["text"]))) == out["text"]  # a redacted JSON string stays valid
    assert R.redact_data({"a": ["bob@example.com", 3, ("x@y.io",)]}) == {
        "a": [tag("email"), 3, (tag("email"),)]
    }


def test_the_prompt_is_redacted_but_its_structure_stays() -> None:
    """What the demo model parses (the context card, the history lines) survives redaction."""
    from datetime import datetime

    from bzzz_console.domain.specs import AgentSpec
    from bzzz_console.domain.state import Agent, Participant, ThreadState
    from bzzz_console.domain.threads import MessageType, ThreadMessage, ThreadStatus
    from bzzz_console.runtime.llm.prompts import build_messages
    from bzzz_console.store.tables import utc

    spec = AgentSpec(role="architect", model="gpt-4o", capabilities=("x",), reasoning_prompts={"system": "S"})
    from bzzz_console.domain.lifecycle import AgentState

    agent = Agent("architect-1", spec, "gpt-4o", AgentState.ACTIVE)
    now = utc(datetime(2024, 5, 6, 12, 0))
    thread = ThreadState(
        id="review-1a2b3c4d",
        project="default",
        topic="Call +44 20 7946 0958",
        status=ThreadStatus.ACTIVE,
        participants=[Participant("architect-1", "architect"), Participant("reviewer-1", "reviewer")],
        messages=[],
        turn_count=0,
        created_at=now,
        task={"id": "task-1", "title": "t", "description": "write to bob@example.com"},
    )
    history = [
        ThreadMessage(
            id="review-1a2b3c4d#2",
            thread_id=thread.id,
            seq=2,
            author="reviewer-1",
            role="reviewer",
            type=MessageType.PROPOSAL,
            content="card 4111 1111 1111 1111 (v2)",
            created_at=now,
        )
    ]
    plain = build_messages(agent, thread, history, [])
    clean = build_messages(agent, thread, history, [], redact=R.for_target("llm"))
    assert [m.role for m in clean] == [m.role for m in plain]
    joined = "\n".join(m.content or "" for m in clean)
    assert "bob@example.com" not in joined and "7946" not in joined and "4111" not in joined
    assert "[reviewer-1 (reviewer) · proposal #2]: card [redacted:card] (v2)" in joined
    assert "agent_id: architect-1\nrole: architect\nthread_id: review-1a2b3c4d\n" in joined


# -- properties -------------------------------------------------------------------------------------------------
PIECES = st.sampled_from(
    [
        " ",
        "-",
        ".",
        "@",
        "+",
        "(",
        ")",
        "/",
        ":",
        "=",
        "[",
        "]",
        "bob",
        "example.com",
        "sk-",
        "abcdefghijklmnop1234",
        "api_key=",
        "Bearer ",
        "4111 1111 1111 1111",
        "555",
        "123",
        "4567",
        "+1",
        "020",
        "0",
        "2024",
        "[redacted:email]",
        "LiveKey-0123456789",
    ]
)
TEXTS = st.one_of(
    st.text(max_size=200), st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=30).map("".join)
)
LIVE = Redactor(secrets=["LiveKey-0123456789"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_redacting_never_raises_and_is_idempotent(text: str) -> None:
    once = LIVE.redact(text)
    assert LIVE.redact(once) == once
    assert "LiveKey-0123456789" not in once
    for target in ("llm", "store", "export"):
        assert LIVE.redact(once, target) == once  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_plain_integers_are_never_redacted(n: int) -> None:
    text = f"we used {n} tokens"
    assert R.redact(text) == text


def test_pathological_inputs_are_fast() -> None:
    import time

    for text in (
        "+" + "1" * 5000,
        "0" + " 12" * 3000,
        "a" * 5000 + "@",
        "sk-" + "a-" * 3000,
        "4" * 10000,
        "1-" * 3000,
    ):
        started = time.perf_counter()
        R.redact(text)
        assert time.perf_counter() - started < 0.5, text[:20]
