"""One typed settings tree: a TOML file plus ``BZZZ_*`` environment variables, a docstring per field.

Precedence (later wins): defaults < TOML file < environment < command-line options. Environment variables
name a key by its path, ``BZZZ_<SECTION>__<KEY>`` (e.g. ``BZZZ_RUNTIME__MAX_TURNS=30``); ``BZZZ_DB_URL`` is a
short alias of ``BZZZ_STORE__URL``. A bad file or value raises :class:`ConfigError` naming the key, where the
value came from and what was expected.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from bzzz_console.config_sections import (
    BudgetSettings,
    ConsoleSettings,
    DemoSettings,
    EscalationSettings,
    IntegrationsSettings,
    MCPSettings,
    ModelSettings,
    NotifySettings,
    OptimizerSettings,
    P2PSettings,
    RuntimeSettings,
    Section,
    SecuritySettings,
    StoreSettings,
)
from bzzz_console.domain.errors import (
    ConfigError as ConfigError,  # raised by load_settings; defined below all
)

ENV_PREFIX = "BZZZ_"
ENV_ALIASES = {"BZZZ_DB_URL": ("store", "url"), "BZZZ_CONFIG": None}


class Settings(Section):
    """The whole tree; ``Settings()`` is the embedded defaults."""

    model: ModelSettings = ModelSettings()
    """The chat model provider: which server agents talk to, timeouts, retries and output limits."""
    demo: DemoSettings = DemoSettings()
    """The scripted demo model used when no API key is configured."""
    runtime: RuntimeSettings = RuntimeSettings()
    """The agent fleet, thread limits and how the runtime schedules work."""
    budgets: BudgetSettings = BudgetSettings()
    """Spend limits and warnings."""
    escalation: EscalationSettings = EscalationSettings()
    """Escalation rules and decisions."""
    optimizer: OptimizerSettings = OptimizerSettings()
    """The context and model optimizer."""
    mcp: MCPSettings = MCPSettings()
    """The MCP server for outside agents and IDEs."""
    console: ConsoleSettings = ConsoleSettings()
    """The interactive console."""
    models: dict[str, str] = Field(default_factory=dict)
    """The model of each role, and ``default`` for the others: ``{architect = "llama3.1:8b", default =
    "qwen2.5:7b"}`` (names as the server lists them). A role named here gets this model at every start, over the
    agent spec's and over a downgrade made earlier; unnamed roles keep their spec's model."""
    pricing: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Price overrides or additions, USD per million tokens: ``{"my-model": {"input": 1, "output": 2}}``; local
    models are free: ``{"llama3.1:8b": {"input": 0, "output": 0}}`` (else their cost shows as unknown)."""
    store: StoreSettings = StoreSettings()
    """Where threads, tasks, decisions and episodes are persisted."""
    data_dir: Path | None = None
    """Where the database, node key and logs live; unset = the platform's user data dir."""
    security: SecuritySettings = SecuritySettings()
    """Redaction of API keys, emails, phone and card numbers, and how often API keys are looked up again."""
    integrations: IntegrationsSettings = IntegrationsSettings()
    """Outbound hooks of the seed's integrations: SLURP context events on consensus, WHOOSH agent registration
    and health reports (off unless a URL is set)."""
    p2p: P2PSettings = P2PSettings()
    """The libp2p node that joins this console to other BZZZ nodes (off by default)."""
    notify: NotifySettings = NotifySettings()
    """Announcing escalations off-screen (Slack, Matrix, ntfy, email … through Apprise): off unless URLs are set."""

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            try:
                return self.data_dir.expanduser()
            except RuntimeError:  # "~nobody/data": no such user (or no home folder at all)
                raise ConfigError(
                    f"key 'data_dir': cannot find the home folder of {str(self.data_dir)!r}"
                ) from None
        from platformdirs import user_data_path

        return user_data_path("bzzz-console", appauthor=False)

    def database_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{self.resolved_data_dir() / 'bzzz.db'}"

    def with_overrides(self, **dotted: Any) -> Settings:
        """A copy with ``section.key`` values replaced (None values are ignored), validated again."""
        data = self.model_dump()
        for key, value in dotted.items():
            if value is None:
                continue
            _assign(data, key.split("__"), value)
        return _validate(data, {}, "command line")


def default_config_path() -> Path:
    from platformdirs import user_config_path

    return user_config_path("bzzz-console", appauthor=False) / "config.toml"


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (``path``, else ``$BZZZ_CONFIG``, else the default path if it exists) and the env."""
    env = os.environ if environ is None else environ
    explicit = path or (Path(env["BZZZ_CONFIG"]) if env.get("BZZZ_CONFIG") else None)
    file = explicit or default_config_path()
    data: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    if explicit is not None and not file.is_file():
        raise ConfigError(f"config file {file} does not exist")
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file} cannot be read: {exc}") from None
        except (ValueError, RecursionError) as exc:  # an integer too long to read, values nested too deep
            why = "values nested too deep" if isinstance(exc, RecursionError) else str(exc)
            raise ConfigError(f"config file {file} is not valid TOML: {why}") from None
        _mark(data, (), f"config file {file}", sources)
    for name, raw in env.items():
        if (
            not name.startswith(ENV_PREFIX)
            or name == "BZZZ_CONFIG"
            or name.startswith(("BZZZ_TEST_", "BZZZ_KEY_"))
        ):
            continue
        key = ENV_ALIASES.get(name) or tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        _assign(data, list(key), _env_value(raw))
        sources[key] = f"environment variable {name}"
    return _validate(data, sources, f"config file {file}")


def _env_value(raw: str) -> Any:
    """Env values are text; JSON arrays and tables are allowed for list/dict keys."""
    stripped = raw.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):  # not JSON, nested too deep, or an integer too long to read
            return raw
    return raw


def _assign(data: dict[str, Any], key: list[str], value: Any) -> None:
    node = data
    for part in key[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[key[-1]] = value


def _mark(
    data: Mapping[str, Any], prefix: tuple[str, ...], source: str, out: dict[tuple[str, ...], str]
) -> None:
    for key, value in data.items():
        out[(*prefix, key)] = source
        if isinstance(value, Mapping):
            _mark(value, (*prefix, key), source, out)


def _validate(data: dict[str, Any], sources: dict[tuple[str, ...], str], default_source: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            source = next(
                (sources[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in sources), default_source
            )
            got = "" if err["type"] in ("missing", "extra_forbidden") else f", got {err.get('input')!r}"
            if err["type"] == "extra_forbidden":
                problem = "unknown key (check the spelling against `bzzz-console config show`)"
            else:
                problem = err["msg"][:1].lower() + err["msg"][1:]
            problems.append(f"key '{'.'.join(loc)}' in {source}: {problem}{got}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None
