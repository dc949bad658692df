"""Bad input, fuzzed with Hypothesis: every rejection is the module's own clear error, never a crash.

* addresses: arbitrary text, non-strings and near misses of the grammar -> a ``SemanticAddress`` that round-trips,
  or ``AddressError`` (a ``ValueError``) saying what is wrong at which column;
* tool arguments: every tool of ``tools.registry()`` through ``run_tool`` on a real started demo Runtime, with
  arbitrary JSON, malformed JSON text and schema-shaped arguments built from the node's real ids -> always a
  ``ToolOutcome`` whose result is JSON; an error is one string that names the field (or the arguments) at fault;
* config files: arbitrary bytes, TOML-ish text, valid TOML with known and random keys and values, and
  ``BZZZ_*`` environments -> ``Settings`` or ``ConfigError``;
* database URLs: arbitrary text and URL-shaped near misses -> an engine (and, opened, a store) or
  ``DatabaseError``;
* P2P wire messages: arbitrary bytes, Go-shaped messages with wrong or missing fields, byte-level mutations of
  valid ones, JSON nested too deep and integers too long to parse -> a ``WireMessage`` that re-encodes the
  same, or ``WireError`` with its reason.

Every check bumps ``CASES[<family>]``; ``tests/benchmarks/reliability.py`` imports the strategies and checks of
this module and runs them for more cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz_console.app import make_runtime
from bzzz_console.config import ConfigError, Settings, load_settings
from bzzz_console.demo.team import add_demo_tasks
from bzzz_console.domain.addresses import MAX_LENGTH, SCHEME, AddressError, SemanticAddress, parse_address
from bzzz_console.domain.events import ErrorRaised
from bzzz_console.domain.threads import MessageType
from bzzz_console.p2p import wire
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.runtime.tools.base import AGENT_MESSAGE_TYPES, ToolContext, ToolOutcome
from bzzz_console.runtime.tools.registry import AGENT_TOOL_NAMES, registry, run_tool
from bzzz_console.store.engine import make_engine
from bzzz_console.store.errors import DatabaseError

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # "query option ignored"

CASES: Counter[str] = Counter()
"""Cases checked per family (address, tool, config_text, config_table, config_env, db_url, wire)."""

_BASE = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def fuzz(max_examples: int) -> settings:
    """Bounded example counts (the whole file runs in well under 20 s), no example database on disk."""
    return settings(_BASE, max_examples=max_examples)


# -- shared value strategies ----------------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "._-"
NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,10}\Z") | st.just("*")
TRICKY = ":@/*._-\\ \t\n\r\x00\x7f\u00e9\u0663\uff21\u200b\ufeff%?#[]"
TRICKY_CHAR = st.sampled_from(TRICKY) | st.characters()


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from one of the strategies with roughly the given weights (``one_of`` favours its first branches)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: Python's json accepts them
    | st.text(max_size=20)
)
deep_json = st.integers(1_000, 30_000).map(lambda n: "[" * n)  # deeper than the JSON parser's recursion
long_int_json = st.integers(4_000, 6_000).map(lambda n: '{"max_history": ' + "9" * n + "}")  # > int() limit
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


# -- addresses ----------------------------------------------------------------------------------------------


@st.composite
def valid_addresses(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["bzzz://", "BZZZ://", "Bzzz://"]))
    agent = draw(st.none() | NAME)
    role = draw(st.none() | NAME)
    who = (agent or "") + ("" if role is None else f":{role}")
    where = draw(NAME) + draw(
        st.sampled_from(["", ":"]).flatmap(lambda c: NAME.map(lambda n: c + n) if c else st.just(""))
    )
    path = draw(
        st.just("")
        | st.tuples(
            st.sampled_from(["threads", "escalations", "tasks", "agents", "subscriptions"]), NAME
        ).map(lambda kv: f"/{kv[0]}/{kv[1]}")
    )
    return f"{scheme}{who}@{where}{path}"


@st.composite
def near_miss_addresses(draw: st.DrawFn) -> str:
    """A valid address with a few characters inserted, deleted, replaced or segments repeated."""
    text = draw(valid_addresses())
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "repeat", "truncate"]))
        i = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:i] + draw(TRICKY_CHAR) + text[i:]
        elif op == "delete" and text:
            text = text[: max(i - 1, 0)] + text[i:]
        elif op == "replace" and i < len(text):
            text = text[:i] + draw(TRICKY_CHAR) + text[i + 1 :]
        elif op == "repeat":
            j = draw(st.integers(i, len(text)))
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i]
    return text


long_addresses = st.builds(
    lambda name, n, tail: f"bzzz://{name * n}@p{tail}",
    st.sampled_from(["a", "ab", "x.-"]),
    st.integers(20, 300),
    st.sampled_from(["", "/threads/t", ":task"]),
)

address_inputs: st.SearchStrategy[Any] = st.one_of(
    st.text(),
    st.text(alphabet=TRICKY + NAME_CHARS).map(lambda s: SCHEME + s),
    valid_addresses(),
    near_miss_addresses(),
    long_addresses,
    st.none() | st.integers() | st.binary(max_size=10) | st.lists(st.text(max_size=3), max_size=2),
)


def check_address(value: Any) -> None:
    """Parse; a valid address round-trips, an invalid one raises AddressError with a column and a reason."""
    CASES["address"] += 1
    try:
        address = parse_address(value)
    except AddressError as exc:
        assert isinstance(exc, ValueError)
        assert str(exc).startswith("invalid semantic address ")
        assert "column" in exc.reason, exc.reason
        limit = max(len(value), MAX_LENGTH) if isinstance(value, str) else 0
        assert 0 <= exc.position <= limit, (exc.position, value)
        return
    assert isinstance(value, str)
    assert address.format() == SCHEME + value[len(SCHEME) :]
    assert parse_address(address.format()) == address
    # Matching never raises, whatever the address says.
    address.matches_agent("architect-1", "architect", "default")
    address.matches_thread("thread-1", "default", "task-1")
    address.matches_task("task-1", "default")


address_fields = st.tuples(
    st.none() | NAME | st.text(max_size=5),
    st.none() | NAME | st.text(max_size=5),
    NAME | st.text(max_size=5),
    st.none() | NAME | st.text(max_size=5),
    st.none() | st.sampled_from(["threads", "tasks", "agents", "bogus"]) | st.text(max_size=5),
    st.none() | NAME | st.text(max_size=5),
)


def check_address_fields(fields: tuple[Any, ...]) -> None:
    """Building a SemanticAddress from fields validates them the way the parser does."""
    CASES["address"] += 1
    try:
        address = SemanticAddress(*fields)
    except AddressError as exc:
        assert "column" in exc.reason
        return
    assert parse_address(address.format()) == address


@fuzz(300)
@given(address_inputs)
def test_addresses_parse_or_raise_address_error(value: Any) -> None:
    check_address(value)


@fuzz(150)
@given(address_fields)
def test_address_fields_validate_like_the_parser(fields: tuple[Any, ...]) -> None:
    check_address_fields(fields)


# -- tool arguments -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownIds:
    """What a started demo node holds, so fuzzed arguments reach the handlers and not only validation."""

    agents: tuple[str, ...]
    roles: tuple[str, ...]
    threads: tuple[str, ...]
    tasks: tuple[str, ...]
    escalations: tuple[str, ...]
    messages: tuple[str, ...]
    participants: tuple[tuple[str, str], ...]
    projects: tuple[str, ...] = ("default", "*", "other")

    @classmethod
    def of(cls, rt: Runtime) -> KnownIds:
        store = rt.store
        threads = tuple(t.id for t in store.threads())
        return cls(
            agents=tuple(rt.agents),
            roles=tuple(sorted({a.role for a in rt.agents.values()})),
            threads=threads,
            tasks=tuple(t.id for t in store.tasks()),
            escalations=tuple(e.id for e in store.escalations()),
            messages=tuple(m.id for t in threads for m in store.messages(t)),
            participants=tuple((p.agent_id, p.thread_id) for p in store.participants()),
        )


EVENT_KINDS = ("message_posted", "escalation_raised", "thread_closed", "llm_called", "bogus_kind")


def some(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from([v for v in values if v] or ["none"])


def field_values(name: str, ids: KnownIds, required: bool = False) -> st.SearchStrategy[Any]:
    """Plausible values for an argument by its name, mixed with arbitrary JSON."""
    agent = some(*ids.agents, "ghost-1", "ext-agent")
    thread = some(*ids.threads, "thread-nope")
    text = st.text(max_size=40)
    address = st.one_of(
        st.tuples(some(*ids.projects), thread).map(lambda pt: f"bzzz://*@{pt[0]}/threads/{pt[1]}"),
        st.tuples(some(*ids.projects), some(*ids.tasks)).map(lambda pt: f"bzzz://*@{pt[0]}/tasks/{pt[1]}"),
        st.tuples(agent, some(*ids.projects)).map(lambda ap: f"bzzz://{ap[0]}@{ap[1]}"),
        some(*ids.roles).map(lambda r: f"bzzz://:{r}@default"),
        some(*ids.escalations).map(lambda e: f"bzzz://*@*/escalations/{e}"),
        agent.map(lambda a: f"bzzz://*@*/agents/{a}"),
        st.just("bzzz://*@*/subscriptions/sub-nope"),
        st.just("bzzz://*@*"),
        valid_addresses(),
        near_miss_addresses(),
    )
    number = st.integers(-5, 1000) | st.floats() | st.sampled_from([0, 1, 3, 10, 100, 500, 501, 1.5])
    specific: dict[str, st.SearchStrategy[Any]] = {
        "target_address": address,
        "address": address,
        "semantic_address": address,
        "filter_address": st.none() | address,
        "message_type": weighted(
            (4, st.sampled_from(AGENT_MESSAGE_TYPES)),
            (1, st.sampled_from([t.value for t in MessageType])),
            (1, text),
        ),
        "content": st.fixed_dictionaries(
            {"text": st.text(min_size=1, max_size=40) | text},
            optional={"reply_to": some(*ids.messages) | json_scalars},
        ),
        "priority": st.sampled_from(["low", "medium", "high", "urgent", "LOW", ""]),
        "thread_id": st.none() | thread,
        "agent_id": st.none() | agent | st.from_regex(r"\A[a-z][a-z0-9-]{0,8}\Z"),
        "escalation_id": some(*ids.escalations, "esc-nope"),
        "action": st.sampled_from(["create", "join", "leave", "list", "summarize", "show", "delete"]),
        "decision": st.sampled_from(
            [
                "approve",
                "reject",
                "reply",
                "reassign",
                "raise_budget",
                "downgrade_model",
                "terminate",
                "hand_back",
                "maybe",
            ]
        ),
        "participants": st.lists(agent | some(*ids.roles) | text, max_size=4),
        "capabilities": st.lists(text, max_size=3),
        "expertise": st.lists(text | st.sampled_from(["architecture", "review"]), max_size=3),
        "options": st.lists(text, max_size=12),
        "event_types": st.lists(st.sampled_from(EVENT_KINDS), max_size=3),
        "filter_criteria": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "expertise": st.lists(text, max_size=2),
                "availability": st.none() | st.booleans(),
                "performance_threshold": st.none() | number,
            },
        ),
        "role": some(*ids.roles) | st.from_regex(r"\A[a-z][a-z0-9_-]{0,8}\Z") | text,
        "callback_webhook": st.none()
        | st.sampled_from(["http://127.0.0.1:9/hook", "https://example.com/x", "ftp://localhost/", "http://"])
        | text,
        "to": st.none() | agent | some(*ids.roles),
        "model": st.none() | st.sampled_from(["gpt-4o-mini", "gpt-4o", "nope"]),
    }
    for numeric in ("max_history", "max_tasks", "amount_usd", "performance_threshold"):
        specific[numeric] = number
    for flag in ("include_metadata", "include_closed", "availability"):
        specific[flag] = st.booleans()
    for free in ("topic", "reason", "text", "note", "specialization"):
        specific[free] = st.none() | text
    plausible = specific.get(name, json_values)
    if required:
        plausible = plausible.filter(lambda v: v is not None)
    return weighted((9, plausible), (1, json_values))  # mostly plausible, sometimes anything


def tool_arguments(name: str, ids: KnownIds) -> st.SearchStrategy[Any]:
    """Arguments for one tool: mostly every required field present with plausible values, else anything."""
    tool = registry().get(name)
    model_fields = tool.args.model_fields if tool is not None else {}
    required = {f: field_values(f, ids, True) for f, info in model_fields.items() if info.is_required()}
    optional = {f: field_values(f, ids) for f, info in model_fields.items() if not info.is_required()}
    shaped = st.fixed_dictionaries(required, optional=optional)
    loose = st.fixed_dictionaries({}, optional={**required, **optional})
    with_extra = st.tuples(shaped, st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=2))
    return weighted(
        (12, shaped),
        (2, loose),
        (2, with_extra.map(lambda pair: {**pair[1], **pair[0]})),
        (2, shaped.map(json.dumps)),
        (1, shaped.map(lambda d: json.dumps(d)[:-1])),  # cut short
        (1, st.text(max_size=40)),
        (1, json_values),
        (2, deep_json),
        (2, long_int_json),
    )


def tool_contexts(name: str, ids: KnownIds) -> st.SearchStrategy[ToolContext]:
    """In-process agents call the agent tools, MCP clients the rest; each sometimes calls the others'."""
    mcp = st.builds(lambda ro: ToolContext(None, readonly=ro, via="mcp"), st.booleans())
    if not ids.participants:
        return mcp
    agent = st.sampled_from(ids.participants).map(lambda p: ToolContext(p[0], p[1]))
    return weighted((4, agent), (1, mcp)) if name in AGENT_TOOL_NAMES else weighted((4, mcp), (1, agent))


def tool_calls(ids: KnownIds) -> st.SearchStrategy[tuple[str, Any, ToolContext]]:
    """(tool name, arguments, caller) for every tool, and a few names that are no tool."""
    calls = {
        name: st.tuples(st.just(name), tool_arguments(name, ids), tool_contexts(name, ids))
        for name in [*registry(), "nope", "", "bzzz_post "]
    }  # built once: strategies built inside a flatmap would be built again for every example
    real = [calls[name] for name in sorted(registry())]
    return weighted(
        (12, st.sampled_from(real).flatmap(lambda s: s)),
        (1, st.sampled_from([calls["nope"], calls[""], calls["bzzz_post "]]).flatmap(lambda s: s)),
    )


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_.]+)?: ")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def error_names_its_field(name: str, arguments: Any, ctx: ToolContext, error: str) -> bool:
    """A rejection says what is wrong: a field of the tool's arguments, the arguments or the tool as a whole,
    or the value at fault (an id from the arguments or from the caller's thread)."""
    tool = registry().get(name)
    fields = set(tool.args.model_fields) if tool is not None else set()
    match = _FIELD_PREFIX.match(error)
    if match and (match[1] in fields or match[1] == "content"):
        return True
    whole = ("invalid arguments for ", "arguments of ", "unknown tool ", f"{name} is refused", f"{name} ")
    if error.startswith(whole) or any(f in error for f in fields):
        return True
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    values = [v for v in (*_strings(arguments), ctx.thread_id, ctx.agent_id) if v]
    if any(repr(v) in error for v in values):
        return True
    # An id named in the error that the call carried, also inside an address (".../threads/<id>").
    ids = [t for t in re.findall(r"[\w.#-]{3,}", error) if re.search(r"[-#\d]", t)]
    if any(t in v for t in ids for v in values):
        return True
    # bzzz_decide hands its decision to the operator's commands, whose messages name the decision's missing
    # part in words ("a rejection needs a reason", "raise the budget by a positive amount of USD").
    return name == "bzzz_decide"


async def check_tool_call(rt: Runtime, name: str, arguments: Any, ctx: ToolContext) -> ToolOutcome:
    """``run_tool`` returns a ToolOutcome with a JSON result; a failure is one string naming the field."""
    CASES["tool"] += 1
    outcome = await asyncio.wait_for(run_tool(rt, ctx, name, arguments), 20)
    assert isinstance(outcome, ToolOutcome), outcome
    json.dumps(outcome.result)  # the agent's next prompt and the MCP reply carry it as JSON
    if not outcome.ok:
        error = outcome.result.get("error")
        assert isinstance(error, str) and error.strip(), outcome.result
        assert error_names_its_field(name, arguments, ctx, error), (name, error)
    return outcome


def fuzz_settings(folder: Path) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(folder / "data"),
            "store": {"url": f"sqlite:///{folder / 'fuzz.db'}"},
            "demo": {"latency_ms": 0, "seed": 7},
            "runtime": {"poll_interval_s": 0.05},
            "budgets": {"daily_usd": None, "thread_usd": None},
        }
    )


@contextlib.contextmanager
def demo_runtime(folder: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, Runtime]]:
    """A started demo Runtime on a fresh database, the demo tasks played to idle (one thread waits on a human)."""
    loop = asyncio.new_event_loop()
    rt = make_runtime(fuzz_settings(folder), force_demo=True)
    loop.run_until_complete(rt.start())
    try:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        loop.run_until_complete(asyncio.wait_for(rt.wait_idle(), 60))
        yield loop, rt
    finally:
        loop.run_until_complete(rt.close())
        loop.close()


def test_tool_arguments_always_give_an_outcome(tmp_path: Path) -> None:
    with demo_runtime(tmp_path) as (loop, rt):
        events = rt.bus.subscribe(maxsize=100_000)
        ids = KnownIds.of(rt)
        seen: Counter[tuple[str, bool]] = Counter()

        @fuzz(250)
        @given(tool_calls(ids))
        def one_call(call: tuple[str, Any, ToolContext]) -> None:
            outcome = loop.run_until_complete(check_tool_call(rt, *call))
            seen[call[0], outcome.ok] += 1

        one_call()
        # deliberately lets time pass: what the calls set off runs a moment, so a late internal error shows
        loop.run_until_complete(asyncio.sleep(0.05))
        errors = [e for e in events.drain() if isinstance(e, ErrorRaised)]
    assert errors == [], errors  # the runtime carried on without a single internal error
    # The shaped arguments get past validation into the handlers: many calls succeed, of several tools.
    succeeded = {name for (name, ok) in seen if ok}
    assert sum(n for (_, ok), n in seen.items() if ok) >= 20 and len(succeeded) >= 4, seen


# -- config files -------------------------------------------------------------------------------------------

SECTIONS = {
    name: list(type(getattr(Settings(), name)).model_fields)
    for name in (
        "model",
        "demo",
        "runtime",
        "budgets",
        "escalation",
        "optimizer",
        "console",
        "mcp",
        "store",
        "security",
    )
}
TOP_KEYS = ("data_dir", "pricing")

toml_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.dates()
    | st.times()
    | st.datetimes(timezones=st.none() | st.just(UTC))
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def config_tables(draw: st.DrawFn) -> dict[str, Any]:
    """Known sections and keys with random values, plus the odd unknown key or section."""
    data: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.sampled_from(SECTIONS[section]) | st.text(max_size=8), max_size=3))
        data[section] = {k: draw(toml_values) for k in keys}
    for key in draw(st.lists(st.sampled_from(TOP_KEYS) | st.text(max_size=8), max_size=2)):
        data[key] = draw(toml_values)
    if draw(st.booleans()):
        data[draw(st.sampled_from(sorted(SECTIONS)))] = draw(toml_scalars)  # a section that is not a table
    return data


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """A TOML value (inline tables for dicts); just enough of a TOML writer for the fuzzer."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(data: dict[str, Any]) -> str:
    top = [f"{_toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [
        f"[{_toml_key(k)}]\n" + "".join(f"{_toml_key(kk)} = {toml_value(vv)}\n" for kk, vv in v.items())
        for k, v in data.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(tables)


TOML_ALPHABET = string.ascii_letters + string.digits + " _-.=[]{}\",'#\n\t:+" + "\u00e9\x00"
hostile_toml = st.one_of(
    st.integers(500, 5_000).map(lambda n: "x = " + "[" * n + "]" * n),
    st.integers(500, 3_000).map(lambda n: "x = " + "{a = " * n + "1" + "}" * n),
    st.integers(4_000, 6_000).map(lambda n: "[runtime]\nmax_turns = " + "1" * n),
)
config_texts: st.SearchStrategy[str | bytes] = st.one_of(
    hostile_toml,
    st.text(max_size=200),
    st.text(alphabet=TOML_ALPHABET, max_size=200),
    config_tables().map(to_toml),
    config_tables().map(to_toml).map(lambda s: s[: len(s) // 2]),
    st.binary(max_size=100),
    config_tables().map(to_toml).map(lambda s: "\ufeff" + s),
)
config_environs = st.dictionaries(
    st.one_of(
        st.sampled_from([f"BZZZ_{s.upper()}__{k.upper()}" for s, ks in SECTIONS.items() for k in ks]),
        st.sampled_from(["BZZZ_DB_URL", "BZZZ_DATA_DIR", "BZZZ_", "BZZZ___", "BZZZ_RUNTIME", "BZZZ_X__Y__Z"]),
        st.text(alphabet=string.ascii_uppercase + "_", max_size=12).map(lambda s: "BZZZ_" + s),
    ),
    st.one_of(
        st.text(max_size=20),
        json_values.map(json.dumps),
        st.sampled_from(["[", "{", "[1, 2]", '{"a": 1}', "true", "-1", "1e999", "nan", " "]),
        deep_json,
        st.integers(4_000, 6_000).map(lambda n: "[" + "1" * n + "]"),
    ),
    max_size=4,
)


def _check_loaded(load: Any) -> Settings | None:
    try:
        loaded = load()
    except ConfigError as exc:
        assert str(exc).strip()
        return None
    assert isinstance(loaded, Settings)
    loaded.database_url()
    return loaded


def check_config_text(folder: Path, text: str | bytes) -> None:
    """Any file content: Settings or ConfigError."""
    CASES["config_text"] += 1
    path = folder / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check_loaded(lambda: load_settings(path, {}))


def check_config_table(folder: Path, data: dict[str, Any]) -> None:
    """Valid TOML with known and random keys: Settings or ConfigError naming the key."""
    CASES["config_table"] += 1
    path = folder / "config.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    try:
        load_settings(path, {})
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(("invalid settings", f"config file {path}")), message
        if message.startswith("invalid settings"):
            assert "key '" in message, message
        return


def check_config_env(folder: Path, environ: dict[str, str]) -> None:
    """Any BZZZ_* environment on top of an empty file: Settings or ConfigError."""
    CASES["config_env"] += 1
    path = folder / "config.toml"
    path.write_text("", encoding="utf-8")
    _check_loaded(lambda: load_settings(path, environ))


@fuzz(120)
@given(text=config_texts)
def test_config_text_gives_settings_or_config_error(tmp_path: Path, text: str | bytes) -> None:
    check_config_text(tmp_path, text)


@fuzz(150)
@given(data=config_tables())
def test_config_tables_give_settings_or_config_error_naming_the_key(
    tmp_path: Path, data: dict[str, Any]
) -> None:
    check_config_table(tmp_path, data)


@fuzz(150)
@given(environ=config_environs)
def test_config_environment_gives_settings_or_config_error(tmp_path: Path, environ: dict[str, str]) -> None:
    check_config_env(tmp_path, environ)


# -- database URLs ------------------------------------------------------------------------------------------

URL_TEXT = string.ascii_letters + string.digits + ":/@?&=%+._-~#[] "
relative_path = st.from_regex(r"\A[A-Za-z0-9_-]{1,8}(/[A-Za-z0-9_. -]{1,8}){0,2}\Z")


@st.composite
def url_shaped(draw: st.DrawFn) -> str:
    scheme = draw(
        st.sampled_from(
            [
                "postgresql",
                "postgresql+psycopg",
                "postgresql+asyncpg",
                "postgres",
                "mysql",
                "foo+bar",
                "",
                "PG",
            ]
        )
    )
    user = draw(st.sampled_from(["", "u@", "u:p@", "u:p:q@", "@", "u%@"]))
    host = draw(st.sampled_from(["", "127.0.0.1", "[::1]", "h", "h h", "[bad"]))
    port = draw(st.sampled_from(["", ":1", ":abc", ":99999", ":-1", ":"]))
    rest = draw(st.text(alphabet=URL_TEXT, max_size=12))
    return f"{scheme}://{user}{host}{port}/{rest}"


sqlite_urls = st.builds(
    lambda scheme, path, query: f"{scheme}:///{path}{query}",
    st.sampled_from(["sqlite", "sqlite+pysqlite", "SQLITE", "sqlite+nodriver"]),
    relative_path,
    st.sampled_from(["", "?mode=ro", "?timeout=abc", "?uri=true", "?foo=bar", "?check_same_thread=x"]),
)
db_urls: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=40).filter(lambda s: "sqlite" not in s.lower()),
    st.text(alphabet=URL_TEXT, max_size=40).filter(lambda s: "sqlite" not in s.lower()),
    url_shaped(),
    sqlite_urls,
    st.sampled_from(["sqlite://", "sqlite:///:memory:", "sqlite:///~nobody-fuzz/bzzz.db", "sqlite:///~/"]),
)


def check_db_url(url: str, *, open_store: bool = False) -> None:
    """``make_engine``: an engine or DatabaseError; opened (SQLite, or PostgreSQL on a closed port): a store or
    DatabaseError. Run with the working directory in a scratch folder: relative SQLite paths land there."""
    CASES["db_url"] += 1
    try:
        engine = make_engine(url)
    except DatabaseError as exc:
        assert str(exc).strip() and "\n" not in str(exc), str(exc)
        return
    backend, host = engine.url.get_backend_name(), engine.url.host
    engine.dispose()
    if not open_store or not (backend == "sqlite" or (host == "127.0.0.1" and engine.url.port == 1)):
        return
    from bzzz_console.store.repo import Store

    try:
        store = Store.open(url)
    except DatabaseError as exc:
        assert str(exc).strip() and "\n" not in str(exc), str(exc)
        return
    store.close()


@fuzz(200)
@given(url=db_urls)
def test_database_urls_give_an_engine_or_database_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    check_db_url(url)


@fuzz(25)
@given(
    url=sqlite_urls | st.sampled_from(["postgresql+psycopg://x@127.0.0.1:1/db", "postgresql://127.0.0.1:1"])
)
def test_database_urls_open_a_store_or_raise_database_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    check_db_url(url, open_store=True)


# -- P2P wire messages --------------------------------------------------------------------------------------

WIRE_REASONS = {"too_large", "not_json", "schema", "unknown_type", "bad_timestamp", "hop_limit"}
wire_timestamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(wire.format_timestamp),
    st.sampled_from(
        [
            "2026-11-26T15:20:01.123456789+01:00",
            "2026-11-26t15:20:01z",
            "2026-11-26T15:20:01+24:00",
            "2026-02-30T00:00:00Z",
            "2026-11-26T15:20:01",
            "2026-11-26 15:20:01Z",
            "",
        ]
    ),
    st.text(alphabet="0123456789-:TZ.+", max_size=30),
)


@st.composite
def wire_bodies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(wire.MessageType)))
    data = draw(
        st.one_of(
            st.fixed_dictionaries(
                {
                    k: st.just(1) if t is int else st.text(max_size=8)
                    for k, t in wire.V2_SCHEMAS.get(kind, {}).items()
                }
            ),
            st.dictionaries(st.text(max_size=8), json_values, max_size=3),
            json_values,
        )
    )
    fields = {
        "type": weighted((6, st.just(kind.value)), (1, json_scalars)),
        "from": weighted((6, st.from_regex(r"\A12D3KooW[1-9A-HJ-NP-Za-km-z]{8}\Z")), (1, json_scalars)),
        "timestamp": weighted((6, wire_timestamps), (1, json_scalars)),
        "data": st.just(data),
        "hop_count": st.integers(-2, 12) | st.sampled_from([True, 1.5, "1", None]),
        "extra": json_scalars,
    }
    body = {k: draw(v) for k, v in fields.items() if k != "extra" and draw(st.integers(0, 9)) > 0}
    if draw(st.integers(0, 9)) == 0:
        body["extra"] = draw(fields["extra"])
    return body


@st.composite
def mutated_wire(draw: st.DrawFn) -> bytes:
    raw = bytearray(json.dumps(draw(wire_bodies())).encode())
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.integers(0, 255))
        if op == "insert":
            raw[i:i] = bytes([byte])
        elif i < len(raw):
            raw[i : i + 1] = b"" if op == "delete" else bytes([byte])
    return bytes(raw)


wire_inputs: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=300),
    wire_bodies().map(lambda b: json.dumps(b).encode()),
    wire_bodies().map(lambda b: json.dumps(b, ensure_ascii=False).encode("utf-16")),
    mutated_wire(),
    st.integers(1, 40_000).map(lambda n: b"[" * n),  # nested deeper than the JSON parser's recursion
    st.integers(4_000, 6_000).map(lambda n: b'{"hop_count": ' + b"9" * n + b"}"),  # too long for int()
    st.integers(0, 3).map(lambda n: b" " * (wire.MAX_MESSAGE_BYTES - 1 + n) + b"{}"),
)


WIRE_FIELDS = {"type", "from", "timestamp", "data", "hop_count"}
WIRE_TYPES = {kind.value for kind in wire.MessageType}
RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)


def wire_timestamp_ok(text: str) -> bool:
    """RFC 3339 with an offset (ASCII digits, nothing after it), a real date and time, an offset under 24 h."""
    match = RFC3339.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    if match[8] and timedelta(hours=int(match[9]), minutes=int(match[10])) >= timedelta(hours=24):
        return False
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def expected_rejection(raw: bytes) -> str | None:
    """The reason ``decode`` must give for ``raw`` (None: it must accept it), worked out independently of the
    module from the rules of docs/wire-format.md, in the order ``decode`` checks them."""
    if len(raw) > wire.MAX_MESSAGE_BYTES:
        return "too_large"
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return "not_json"
    if not isinstance(body, dict) or set(body) - WIRE_FIELDS:
        return "schema"
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in WIRE_TYPES:
        return "unknown_type"
    sender = body.get("from")
    if not isinstance(sender, str) or not 1 <= len(sender) <= 128:
        return "schema"
    stamp = body.get("timestamp")
    if not isinstance(stamp, str) or not wire_timestamp_ok(stamp):
        return "bad_timestamp"
    data = body.get("data")
    if not isinstance(data, dict | None):
        return "schema"
    hops = body.get("hop_count", 0)
    if type(hops) is not int or hops < 0:
        return "schema"
    if hops > wire.MAX_HOPS:
        return "hop_limit"
    for name, expected in wire.V2_SCHEMAS.get(wire.MessageType(kind), {}).items():
        value = (data or {}).get(name)
        if not isinstance(value, expected) or isinstance(value, bool):
            return "schema"
    return None


def check_wire(raw: bytes) -> None:
    """``decode``: a message that encodes back to what it decodes from, or WireError with the reason that fits
    the input (:func:`expected_rejection`), never just any rejection."""
    CASES["wire"] += 1
    expected = expected_rejection(raw)
    try:
        message = wire.decode(raw)
    except wire.WireError as exc:
        assert exc.reason == expected and exc.reason in WIRE_REASONS and exc.detail, (
            exc,
            expected,
            raw[:200],
        )
        return
    assert expected is None, (expected, raw[:200])
    assert isinstance(message, wire.WireMessage)
    body = json.loads(raw)
    assert (message.type.value, message.sender, message.hop_count) == (
        body["type"],
        body["from"],
        body.get("hop_count", 0),
    )
    assert json.dumps(message.data) == json.dumps(body.get("data") or {})  # NaN != NaN: compare as JSON
    try:
        again = wire.encode(message)
    except wire.WireError as exc:  # re-encoded without the sender's padding it is smaller, but data may grow
        assert exc.reason == "too_large"
        return
    assert wire.encode(wire.decode(again)) == again


@fuzz(300)
@given(raw=wire_inputs)
def test_wire_messages_decode_or_raise_wire_error(raw: bytes) -> None:
    check_wire(raw)
