"""Semantic addresses: ``bzzz://[agent][:role]@project[:task][/kind/id]``.

Every name (agent, role, project, task, path id) is ``[A-Za-z0-9][A-Za-z0-9._-]{0,63}`` or the wildcard
``*``. The optional path names one thing: ``/threads/<id>``, ``/escalations/<id>``, ``/tasks/<id>``,
``/agents/<id>`` or ``/subscriptions/<id>``; nothing may follow it. The parser is strict: any other input
raises :class:`AddressError`, whose message says what is wrong and at which 0-based column.

Meaning of the part before ``@``:

* ``bzzz://name@p`` -- one name: matches an agent whose id **or** role is ``name``.
* ``bzzz://id:role@p`` -- both must match; ``bzzz://:role@p`` -- role only.
* ``bzzz://@p`` -- no agent part at all: matches every agent (and everything) in project ``p``.

The scheme is case-insensitive; everything else is case-sensitive. The canonical text (:meth:`format`)
lowercases the scheme and is otherwise the input unchanged, so ``parse(a.format()) == a`` always holds.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

SCHEME = "bzzz://"
MAX_LENGTH = 512
MAX_NAME_LENGTH = 64
WILDCARD = "*"
PATH_KINDS = ("threads", "escalations", "tasks", "agents", "subscriptions")

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_START | frozenset("._-")
_NAME_HINT = "a name ([A-Za-z0-9._-]) or '*'"
_Fields = tuple[str | None, str | None, str, str | None, str | None, str | None]


class AddressError(ValueError):
    """A semantic address could not be parsed; ``position`` is the 0-based column of the problem."""

    address: str
    position: int
    reason: str

    def __init__(self, address: str, position: int, reason: str) -> None:
        self.address = address
        self.position = position
        self.reason = reason
        shown = address if len(address) <= 80 else address[:77] + "..."
        super().__init__(f"invalid semantic address {shown!r}: {reason}")

    def __reduce__(self) -> tuple[type[AddressError], tuple[str, int, str]]:
        return (type(self), (self.address, self.position, self.reason))


class _Scanner:
    """Single-pass reader over the address text that tracks the column for error messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, problem: str, expected: str | None = None, pos: int | None = None) -> AddressError:
        at = self.pos if pos is None else pos
        reason = f"{problem} at column {at}" + (f"; expected {expected}" if expected else "")
        return AddressError(self.text, at, reason)

    def unexpected(self, expected: str) -> AddressError:
        ch = self.peek()
        if not ch:
            return self.fail("unexpected end of address", expected)
        if ch == "@" and "@" in self.text[: self.pos]:
            return self.fail("duplicate '@'", expected)
        return self.fail(f"unexpected {ch!r}", expected)

    def name(self, what: str) -> str:
        """Read one name or ``*``; ``what`` describes it in error messages."""
        start = self.pos
        ch = self.peek()
        if ch == WILDCARD:
            self.pos += 1
            return WILDCARD
        if ch == "@" and "@" in self.text[: self.pos]:
            raise self.unexpected(_NAME_HINT)
        if ch in ("", "@", ":", "/"):
            raise self.fail(f"missing {what}", _NAME_HINT)
        if ch in _NAME_CHARS and ch not in _NAME_START:
            raise self.fail(f"{what} must start with a letter or digit, not {ch!r}", _NAME_HINT)
        if ch not in _NAME_START:
            raise self.unexpected(_NAME_HINT)
        while self.peek() and self.peek() in _NAME_CHARS:
            self.pos += 1
            if self.pos - start > MAX_NAME_LENGTH:
                raise self.fail(
                    f"{what} is longer than {MAX_NAME_LENGTH} characters", None, start + MAX_NAME_LENGTH
                )
        return self.text[start : self.pos]

    def accept(self, ch: str) -> bool:
        if self.peek() == ch:
            self.pos += 1
            return True
        return False


def _scan(text: object) -> _Fields:
    """Parse ``text`` into the six address fields, raising :class:`AddressError` on any problem."""
    if not isinstance(text, str):
        raise AddressError(repr(text), 0, f"expected a string, got {type(text).__name__} at column 0")
    if not text:
        raise AddressError(text, 0, "address is empty at column 0; expected 'bzzz://...'")
    if len(text) > MAX_LENGTH:
        raise AddressError(
            text,
            MAX_LENGTH,
            f"address is too long ({len(text)} characters, at most {MAX_LENGTH}) at column {MAX_LENGTH}",
        )
    s = _Scanner(text)
    for i, ch in enumerate(text):
        if ch.isspace():
            raise s.fail(f"whitespace {ch!r} is not allowed", None, i)
        if unicodedata.category(ch).startswith("C"):
            raise s.fail(f"control character {ch!r} is not allowed", None, i)
    for i, want in enumerate(SCHEME):
        if i >= len(text) or text[i] not in (want, want.upper()):
            raise s.fail("address must start with the scheme 'bzzz://'", None, i)
    s.pos = len(SCHEME)

    agent: str | None = None
    role: str | None = None
    if s.peek() != "@":
        if s.peek() != ":":
            agent = s.name("agent")
        if s.accept(":"):
            role = s.name("role after ':'")
        if s.peek() != "@":
            if "@" not in text:
                raise s.fail("missing '@' before the project", "'@project'" if role else "':' or '@project'")
            raise s.unexpected("':' or '@'" if role is None else "'@'")
    s.pos += 1
    project = s.name("project after '@'")
    task = s.name("task after ':'") if s.accept(":") else None

    path_kind: str | None = None
    path_id: str | None = None
    if s.accept("/"):
        start = s.pos
        while s.peek() and s.peek() in _NAME_CHARS:
            s.pos += 1
        path_kind = text[start : s.pos]
        kinds = ", ".join(PATH_KINDS)
        if not path_kind:
            raise s.unexpected(f"a path kind ({kinds})")
        if path_kind not in PATH_KINDS:
            raise s.fail(f"unknown path kind {path_kind!r}", f"one of {kinds}", start)
        if not s.accept("/"):
            if not s.peek():
                raise s.fail(f"missing id after '/{path_kind}'", f"'/{path_kind}/<id>'")
            raise s.unexpected("'/'")
        path_id = s.name(f"id after '/{path_kind}/'")
    if s.peek():
        if s.peek() == "/" and path_kind is not None:
            raise s.fail("nothing may follow the path id", "end of address")
        expected = (
            "end of address"
            if path_kind
            else ("':', '/' or end of address" if task is None else "'/' or end of address")
        )
        raise s.unexpected(expected)
    return agent, role, project, task, path_kind, path_id


def _match(pattern: str | None, value: str | None) -> bool:
    """``None`` (not given) and ``*`` match anything; otherwise exact, case-sensitive equality."""
    return pattern is None or pattern in (WILDCARD, value)


@dataclass(frozen=True, slots=True)
class SemanticAddress:
    """A parsed ``bzzz://`` address. ``None`` means the segment was not given; ``"*"`` is a wildcard.

    Constructing one directly validates it the same way :meth:`parse` does (raising :class:`AddressError`).
    """

    agent: str | None
    role: str | None
    project: str
    task: str | None = None
    path_kind: str | None = None
    path_id: str | None = None

    def __post_init__(self) -> None:
        fields = (self.agent, self.role, self.project, self.task, self.path_kind, self.path_id)
        text = self._unchecked_format()
        if _scan(text) != fields:
            raise AddressError(text, 0, f"fields {fields!r} do not form a valid address at column 0")

    @classmethod
    def parse(cls, text: str) -> SemanticAddress:
        return cls(*_scan(text))

    def _unchecked_format(self) -> str:
        who = (self.agent or "") + ("" if self.role is None else f":{self.role}")
        where = self.project + ("" if self.task is None else f":{self.task}")
        path = "" if self.path_kind is None and self.path_id is None else f"/{self.path_kind}/{self.path_id}"
        return f"{SCHEME}{who}@{where}{path}"

    def format(self) -> str:
        """The canonical text: lowercase scheme, every given segment verbatim."""
        return self._unchecked_format()

    def __str__(self) -> str:
        return self.format()

    @property
    def target(self) -> tuple[str, str] | None:
        """``(path_kind, path_id)`` when the address names one thing, else ``None``."""
        if self.path_kind is None or self.path_id is None:
            return None
        return (self.path_kind, self.path_id)

    def matches_agent(self, agent_id: str, role: str, project: str | None = None) -> bool:
        """Whether an agent is addressed.

        A lone name before ``@`` matches the agent id or the role; ``id:role`` needs both; no agent part
        matches every agent. ``project=None`` (agent not bound to a project) matches any project pattern.
        An ``/agents/<id>`` path further restricts to that agent id; the task and other paths are ignored.
        """
        if project is not None and not _match(self.project, project):
            return False
        if self.agent is not None and self.role is None:
            who = self.agent in (WILDCARD, agent_id, role)
        else:
            who = _match(self.agent, agent_id) and _match(self.role, role)
        if self.path_kind == "agents" and not _match(self.path_id, agent_id):
            return False
        return who

    def matches_thread(self, thread_id: str, project: str, task_id: str | None = None) -> bool:
        """Whether a thread (in ``project``, optionally belonging to ``task_id``) is addressed.

        The agent part is ignored. A task segment needs the thread's task to match; a ``/threads/<id>``
        path needs the thread id to match, a ``/tasks/<id>`` path needs the thread's task to match, and any
        other path kind names something that is not a thread.
        """
        if not _match(self.project, project):
            return False
        if self.task not in (None, WILDCARD) and self.task != task_id:
            return False
        if self.path_kind is None:
            return True
        if self.path_kind == "threads":
            return _match(self.path_id, thread_id)
        if self.path_kind == "tasks":
            return task_id is not None and _match(self.path_id, task_id)
        return False

    def matches_task(self, task_id: str, project: str) -> bool:
        """Whether a task is addressed: project and task segment match, and any path is ``/tasks/<id>``."""
        if not _match(self.project, project) or not _match(self.task, task_id):
            return False
        if self.path_kind is None:
            return True
        return self.path_kind == "tasks" and _match(self.path_id, task_id)


def parse_address(text: str) -> SemanticAddress:
    """Parse ``text``; raises :class:`AddressError` (a ``ValueError``) on any malformed input."""
    return SemanticAddress.parse(text)


def agent_address(agent_id: str, role: str, project: str = WILDCARD) -> str:
    """The canonical address of one agent, e.g. ``bzzz://architect-1:architect@*``."""
    return SemanticAddress(agent=agent_id, role=role, project=project).format()
