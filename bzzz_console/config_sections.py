"""The sections of the settings tree (``[model]``, ``[runtime]``, ``[p2p]`` …): one frozen model each, a docstring
per field. :mod:`bzzz_console.config` puts them together as :class:`~bzzz_console.config.Settings` and loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    # Field docstrings are read on demand (config_docs.field_docs), not at import: parsing them costs ~150 ms of start-up.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(Section):
    provider: Literal["auto", "openai", "demo"] = "auto"
    """Where agents' chat completions go: ``openai`` (any OpenAI-compatible server), ``demo`` (the scripted
    local model) or ``auto`` (OpenAI when an API key is found, the demo model otherwise)."""
    base_url: str | None = None
    """Base URL of an OpenAI-compatible server, e.g. ``http://127.0.0.1:11434/v1`` for Ollama; unset = OpenAI."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable that holds the API key."""
    timeout_s: float = Field(60.0, gt=0)
    """Seconds before one model call times out (it is then retried)."""
    max_attempts: int = Field(4, ge=1, le=20)
    """Attempts per model call, counting the first, on 429/5xx/timeouts."""
    max_output_tokens: int = Field(800, ge=16)
    """Upper bound on tokens a single completion may produce."""


class DemoSettings(Section):
    seed: int = 7
    """Seed of the scripted demo model: the same seed plays the same conversation."""
    latency_ms: float = Field(40.0, ge=0)
    """Simulated model think time per call, so the demo unfolds at a watchable pace."""


class RuntimeSettings(Section):
    project: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    """Project that new tasks belong to unless they name one; memory never crosses projects."""
    fleet: dict[str, int] = Field(default_factory=lambda: {"architect": 2, "reviewer": 2, "documentation": 1})
    """How many agents of each role (a spec file in the agents folder) to run on this node."""
    agents_dir: Path | None = None
    """Folder of agent role specs; unset = the ``agents/`` folder shipped with the package."""
    max_turns: int = Field(24, ge=2)
    """Agent turns after which a thread without consensus stops as ``stalled``."""
    max_tool_rounds: int = Field(4, ge=1)
    """Model calls one turn may spend on tool calls before it must post."""
    max_agents_per_role: int = Field(2, ge=1)
    """Agents invited per required role of a task (the seed's collaborative review uses two)."""
    poll_interval_s: float = Field(0.5, gt=0, le=10)
    """How often the runtime looks for tasks and decisions written by other processes."""
    episodes_in_prompt: int = Field(3, ge=0)
    """How many relevant past episodes of the same project go into an agent's prompt."""
    max_model_calls: int = Field(8, ge=1, le=1024)
    """Model calls in flight at once. Replies that come back together are parsed in one pass of the event loop,
    so more calls mean longer pauses of the console; raise it for a slow remote model and a large fleet."""


class BudgetSettings(Section):
    daily_usd: float | None = Field(5.0, ge=0)
    """Global spend limit per UTC day across all agents of this node; unset = no global limit."""
    thread_usd: float | None = Field(1.0, ge=0)
    """Spend limit of one thread over its whole life; unset = none."""
    warn_at: tuple[float, ...] = (0.8, 0.95)
    """Shares of a budget at which a warning event is published (once per budget and period)."""
    reserve_fraction: float = Field(0.05, ge=0, le=0.5)
    """Share of a budget held back so an agent stopped by a breach can still write a final answer."""
    max_raise_usd: float = Field(100.0, gt=0, allow_inf_nan=False)
    """The most one "raise budget" decision may add, in USD: a typo (an extra zero, ``1e308``) is refused with
    this figure instead of lifting the limit for good. Larger raises take several decisions."""


class EscalationSettings(Section):
    rules_file: Path | None = None
    """Escalation rules (TOML); unset = ``escalation.toml`` in the agents folder."""
    check_interval_s: float = Field(0.5, gt=0, le=60)
    """How often time-based rules and escalation deadlines are checked."""
    operator: str = Field("", max_length=64)
    """A label shown next to the OS user with decisions made in this console or CLI (``--operator`` sets it per
    command); the decision always records the OS user who made it, never only the label."""
    two_person: list[str] = Field(default_factory=list)
    """Priorities (low, medium, high, urgent; "critical" means urgent) or rule names whose escalations need two
    distinct operators to decide: the first decision waits until a second operator gives the same one."""


class OptimizerSettings(Section):
    enabled: bool = True
    """Compress long threads and use cheaper models for routine turns (the seed's cost optimizer)."""
    compress_at: float = Field(0.8, gt=0, le=1)
    """Compress a prompt when its estimate passes this share of the agent's token limit."""
    summarize_after: int = Field(6, ge=4)
    """Summarize-and-truncate threads longer than this many messages. 6 (twice ``keep_recent``): compress as soon
    as there is at least a recent window's worth of older messages to fold; decisions, open questions, human
    messages and the latest proposal stay pinned whatever is folded."""
    keep_recent: int = Field(3, ge=1)
    """Messages kept verbatim at the end of a compressed thread. 3: in a thread of up to four agents taking turns
    (the default fleet), everything said since the speaker's own last turn; older messages are in the summary."""
    model_ladder: dict[str, str] = Field(
        default_factory=lambda: {
            "gpt-4o": "gpt-4o-mini",
            "gpt-4.1": "gpt-4.1-mini",
            "gpt-4.1-mini": "gpt-4.1-nano",
            "gpt-5": "gpt-5-mini",
            "gpt-5-mini": "gpt-5-nano",
        }
    )
    """Cheaper model for each model: used for routine turns and by the operator's "downgrade model"."""
    cheaper_for_routine: bool = True
    """Use the next model down the ladder for routine turns (a vote on a settled proposal)."""


class ConsoleSettings(Section):
    theme: str = "textual-dark"
    """Textual theme of the console (e.g. textual-dark, textual-light, nord, gruvbox, dracula, tokyo-night); a name
    that is not a theme is a warning at start and the default is kept."""
    bell: bool = True
    """Ring the terminal bell when a new escalation arrives."""
    keys: dict[str, str] = Field(default_factory=dict)
    """Remapped keys by binding id, e.g. ``{"escalation.approve" = "V", "app.quit" = "ctrl+c"}``; see ``?``. An id no
    screen has, or a key two bindings of one screen would share, is a warning at start."""
    refresh_ms: int = Field(50, ge=10, le=1000)
    """How long the console collects events before it repaints: high event rates cost one repaint per window."""
    confirm_approve: bool = True
    """Ask before approving an escalation, as before every other decision (false: approve at once)."""


def console_warnings(
    console: ConsoleSettings,
    themes: Iterable[str],
    scopes: Mapping[str, Mapping[str, str]],
    normalize: Callable[[str], str] = str.strip,
) -> list[str]:
    """What in ``[console]`` cannot work as written, one line each: a theme that does not exist (the console keeps
    its default), a binding id no screen has (ignored) and a key that two bindings of one screen would share
    (only one of them would work). ``scopes`` are the bindings of each screen, ``{screen: {binding id: keys}}``
    with the app's own in each; ``normalize`` turns a key as written (``?``) into its name (``question_mark``).
    Keys two bindings share by default (a dialog's ``?`` that closes it over the app's ``?`` that opens help) are
    meant to; only a remapped key is checked."""
    from difflib import get_close_matches

    warnings: list[str] = []
    themes = sorted(themes)
    if console.theme not in themes:
        close = get_close_matches(console.theme, themes, 1)
        hint = f"did you mean {close[0]}? " if close else ""
        warnings.append(
            f'[console] theme "{console.theme}" is not a theme ({hint}themes: {", ".join(themes)}); '
            "using the default"
        )
    if not scopes:
        return warnings
    known = sorted({binding_id for scope in scopes.values() for binding_id in scope})
    for binding_id in console.keys:
        if binding_id not in known:
            close = get_close_matches(binding_id, known, 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f'[console.keys] "{binding_id}" is not a binding id{hint}: ignored; ? lists them')
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for screen, bindings in scopes.items():
        by_key: dict[str, list[str]] = {}
        for binding_id, default in bindings.items():
            for key in console.keys.get(binding_id, default).split(","):
                if key.strip():
                    by_key.setdefault(normalize(key.strip()), []).append(binding_id)
        for key, ids in sorted(by_key.items()):
            clash = (key, tuple(sorted(ids)))
            if len(ids) > 1 and any(i in console.keys for i in ids) and clash not in seen:
                seen.add(clash)
                warnings.append(
                    f'[console.keys] "{key}" is bound to both {" and ".join(clash[1])} on the {screen} screen: '
                    "only one of them works"
                )
    return warnings


class MCPSettings(Section):
    webhook_hosts: list[str] = Field(default_factory=list)
    """host:port pairs that bzzz_subscribe may POST events to, e.g. ``["127.0.0.1:8080", "[::1]:9000",
    "hooks.example:443"]`` (a URL without a port means 80 for http, 443 for https); anything else is refused,
    and so is this node's own MCP server. Empty (the default) = webhooks off."""
    readonly: bool = False
    """Refuse the MCP tools that change decisions (bzzz_decide), whatever the console does."""

    @field_validator("webhook_hosts")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        from bzzz_console.domain.hosts import parse_host_port

        try:
            return [parse_host_port(entry) for entry in value]
        except ValueError as exc:
            raise PydanticCustomError("host_port", "{problem}", {"problem": str(exc)}) from None


class StoreSettings(Section):
    url: str | None = None
    """SQLAlchemy URL; unset = SQLite (WAL) ``bzzz.db`` in the user data dir.
    PostgreSQL: ``postgresql+psycopg://user:pass@host/db``."""


RedactKind = Literal["api_key", "email", "phone", "card"]
_ALL_KINDS: tuple[RedactKind, ...] = ("api_key", "email", "phone", "card")


class SecuritySettings(Section):
    redact_llm: tuple[RedactKind, ...] = _ALL_KINDS
    """Kinds of sensitive text (api_key, email, phone, card) replaced by ``[redacted:<kind>]`` in what is sent
    to the model; ``[]`` = none. The live API keys are always redacted, whatever this says."""
    redact_store: tuple[RedactKind, ...] = _ALL_KINDS
    """Kinds redacted from messages before they are stored (and shown, and sent to outside agents)."""
    redact_export: tuple[RedactKind, ...] = _ALL_KINDS
    """Kinds redacted from ``threads show`` and ``threads export`` (Markdown and JSON)."""
    readonly: bool = False
    """Read-only everywhere on this machine: the console, ``escalations answer`` and MCP's ``bzzz_decide``
    refuse decisions, and the console only watches — it runs no agents and picks up no task (the same as
    starting it with ``--readonly``)."""
    key_cache_s: float = Field(5.0, ge=0, le=300)
    """Seconds a looked-up API key is reused before it is looked up again: ``bzzz-console key set`` rotates a
    key in a running node within this time (at once for a key file), without a restart."""


class P2PSettings(Section):
    enabled: bool = False
    """Run a libp2p node: agents, escalations and decisions are shared with the other nodes (``--peer`` and
    ``--listen`` turn it on too)."""
    listen: list[str] = Field(default_factory=lambda: ["/ip4/0.0.0.0/tcp/4001"])
    """Listen addresses, e.g. ``/ip4/0.0.0.0/tcp/4001`` (every interface) or ``/ip4/127.0.0.1/tcp/0`` (any port)."""
    peers: list[str] = Field(default_factory=list)
    """Bootstrap peers, full addresses ``/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW…``; redialed while disconnected."""
    mdns: bool = False
    """Find peers on the local network by mDNS."""
    availability_interval_s: float = Field(30.0, ge=1, le=3600)
    """How often this node broadcasts its load (``availability_broadcast``; the original nodes use 30 s)."""
    decision_timeout_s: float = Field(5.0, gt=0, le=120)
    """How long an answer to another node's escalation waits for that node to confirm it."""
    decision_peers: list[str] = Field(default_factory=list)
    """Peer ids allowed to answer this node's escalations; empty = any peer of the network (all are signed)."""
    pick_up_tasks: bool = True
    """Take on tasks announced on the network (``task_announcement``) when this node has the roles they need."""
    announce_tasks: bool = False
    """Announce tasks added on this node (console, CLI, MCP) on the network, so other nodes can take them on."""
    rate_per_s: float = Field(50.0, gt=0)
    """Messages per second accepted from one peer (token bucket, burst twice that); more are dropped."""

    @field_validator("listen", "peers")
    @classmethod
    def _multiaddrs(cls, value: list[str], info: Any) -> list[str]:
        """A quick shape check without loading libp2p (the node checks the rest when it starts)."""
        peers = info.field_name == "peers"
        for parts in (text.strip().split("/") for text in value):
            ok = len(parts) == (7 if peers else 5) and parts[0] == "" and parts[1] in ("ip4", "ip6", "dns4")
            if not (ok and parts[3] == "tcp" and parts[4].isdigit() and (not peers or parts[5] == "p2p")):
                like = "/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW…" if peers else "/ip4/0.0.0.0/tcp/4001"
                text = "/".join(parts)
                raise PydanticCustomError(
                    "multiaddr", "expected an address like {like}, got '{text}'", locals()
                )
        return [text.strip() for text in value]


class IntegrationsSettings(Section):
    slurp_url: str | None = None
    """SLURP endpoint that receives a context event (the seed's ``agent_consensus``) as a JSON POST whenever a
    thread reaches consensus; unset = off."""
    whoosh_url: str | None = None
    """WHOOSH endpoint that receives a registration of every local agent at start (``agent_registration``)
    and a health report of them every ``health_interval_s`` (``agent_health``) as JSON POSTs; unset = off."""
    health_interval_s: float = Field(30.0, gt=0, le=3600)
    """Seconds between two WHOOSH health reports (the seed's health check interval)."""
    timeout_s: float = Field(10.0, gt=0, le=300)
    """Seconds before one POST to SLURP or WHOOSH times out (it is then retried)."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Attempts per POST, counting the first, on connection errors, timeouts, 429 and 5xx."""
    backoff_s: float = Field(0.5, ge=0, le=60)
    """Wait before the first retry; it doubles with each attempt (a ``Retry-After`` answer wins, up to 60 s)."""
    slurp_token_env: str | None = None
    """Environment variable holding a bearer token sent to SLURP (``Authorization: Bearer …``); unset = none."""
    whoosh_token_env: str | None = None
    """Environment variable holding a bearer token sent to WHOOSH; unset = none."""

    @field_validator("slurp_url", "whoosh_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return None
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number, a malformed IPv6 host
            ok = False
        if not ok:
            raise PydanticCustomError(
                "http_url",
                "expected an http:// or https:// URL with a host, e.g. https://slurp.example/events",
            )
        return value


class NotifySettings(Section):
    urls: list[str] = Field(default_factory=list)
    """Where escalations are announced, as Apprise URLs (Slack, Matrix, Telegram, ntfy, email, a JSON webhook and
    100+ more: ``["ntfy://ntfy.sh/my-topic", "json://hooks.example/bzzz"]``). They hold tokens: keep the file
    private (``config show`` shows only their schemes). Empty = off."""
    before_deadline_s: float = Field(600.0, ge=0)
    """Also announce an open escalation this many seconds before its deadline (0 = no reminder)."""
    min_priority: Literal["low", "medium", "high", "urgent"] = "medium"
    """Escalations below this priority are not announced."""
    quiet_hours: str | None = None
    """Local times ``"22:00-07:00"`` during which only ``quiet_min_priority`` and above are announced."""
    quiet_min_priority: Literal["low", "medium", "high", "urgent"] = "urgent"
    """What still gets through during the quiet hours."""
    console_url: str | None = None
    """A link into the served console put in each message (e.g. ``http://console.example:8080``)."""
    max_attempts: int = Field(3, ge=1, le=10)
    """Attempts per message; a failure is shown in the console and retried, never blocking the runtime."""
    retry_delay_s: float = Field(2.0, ge=0, le=300)
    """Wait before the first retry; it doubles with each attempt."""

    @field_validator("quiet_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value):
            raise PydanticCustomError("quiet_hours", 'expected local times like "22:00-07:00"')
        return value
