"""``bzzz-console key set|status|delete``: API keys in the OS keyring or a 0600 file, never on the screen.

``key set`` asks for the key twice with hidden input on the terminal (``--stdin`` reads it from a pipe instead);
nothing here ever prints a key, only a fingerprint such as ``sk-…abcd``. The console itself never prompts for a
key: it reads what these commands stored, and a running node picks up a new key without a restart.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated, Any, Literal

import typer

from bzzz_console.cli.common import ConfigOption

key_app = typer.Typer(
    help="Store, inspect and delete API keys (OS keyring, or a 0600 file when there is none).",
    no_args_is_help=True,
)

EntryArgument = Annotated[
    str | None,
    typer.Argument(
        help="Key entry: 'default' (the shared key) or the api_key_entry an agent spec names.",
        show_default=False,
    ),
]
EntryOption = Annotated[
    str | None, typer.Option("--entry", help="The key entry (same as the argument).", show_default=False)
]


def _entry(argument: str | None, option: str | None) -> str:
    from bzzz_console.cli import common
    from bzzz_console.security.secrets import DEFAULT_ENTRY, validate_entry

    if argument and option and argument != option:
        common.fail(f"two different entries given: {argument!r} and --entry {option!r}", 2)
    return validate_entry(argument or option or DEFAULT_ENTRY)


def _read_key(entry: str, from_stdin: bool) -> str:
    """The key from stdin, or asked twice with hidden input on the terminal; never echoed."""
    from bzzz_console.cli import common

    if from_stdin:
        return sys.stdin.read()
    if not sys.stdin.isatty():
        common.fail(
            "no terminal to ask for the key on: pipe it in with --stdin (e.g. `… | bzzz-console key set --stdin`)",
            2,
        )
    import getpass

    try:
        first = getpass.getpass(f"API key for {entry!r} (input hidden): ")
        if not first.strip():
            common.fail("the key is empty", 2)
        second = getpass.getpass("Repeat the key: ")
    except (EOFError, KeyboardInterrupt):
        typer.echo("", err=True)
        common.fail("cancelled: no key was stored")
    if first.strip() != second.strip():
        common.fail("the two keys differ: no key was stored", 2)
    return first


@key_app.command("set")
def key_set(
    entry: EntryArgument = None,
    entry_option: EntryOption = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the key from standard input (no prompt).")
    ] = False,
    file: Annotated[
        bool,
        typer.Option("--file", help="Store it in the 0600 key file even when an OS keyring is available."),
    ] = False,
    keyring: Annotated[
        bool, typer.Option("--keyring", help="Store it in the OS keyring or fail (no file fallback).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Store an API key (the OS keyring when a real one is available, else a 0600 file in the config dir).

    A running node uses the new key from its next model call (a key file at once, the keyring within
    security.key_cache_s seconds)."""
    from bzzz_console.cli import common
    from bzzz_console.security.secrets import set_key

    with common.errors():
        if file and keyring:
            common.fail("--file and --keyring exclude each other", 2)
        name = _entry(entry, entry_option)
        settings = common.read_settings(config, None)
        value = _read_key(name, stdin)
        store: Literal["auto", "keyring", "file"] = "file" if file else "keyring" if keyring else "auto"
        result = set_key(name, value, store=store, settings=settings)
        del value
        typer.echo(f"stored key {result.entry!r} ({result.fingerprint}) in {result.where}")
        for note in result.notes:
            typer.echo(f"note: {note}", err=True)


@key_app.command("status")
def key_status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    config: ConfigOption = None,
) -> None:
    """Where each key entry resolves from (environment, systemd credential, OS keyring, file) — never the key."""
    from bzzz_console.cli import common
    from bzzz_console.security.keyring_backend import keyring_backend, keyring_name
    from bzzz_console.security.secrets import key_status as statuses
    from bzzz_console.security.secrets import keys_dir, no_keyring_message

    with common.errors():
        settings = common.read_settings(config, None)
        rows = [asdict(s) for s in statuses(settings)]
        backend = keyring_backend()
        provider = _provider_label(settings)
        if as_json:
            common.emit_json(
                {
                    "keyring": keyring_name(backend) if backend is not None else None,
                    "keys_dir": str(keys_dir()),
                    "provider": provider,
                    "entries": rows,
                }
            )
            return
        common.table(
            [
                {
                    **r,
                    "source": r["source"] or "— (no key)",
                    "used_by": ", ".join(r["used_by"]) or "—",
                }
                for r in rows
            ],
            ["entry", "fingerprint", "used_by", "source"],
        )
        for r in rows:
            for problem in r["problems"]:
                typer.echo(f"problem with {r['entry']!r}: {problem}")
        typer.echo(
            f"OS keyring: {keyring_name(backend)}"
            if backend is not None
            else f"OS keyring: none — {no_keyring_message(None, settings)}"
        )
        typer.echo(f"key files: {keys_dir()}")
        typer.echo(f"the console would use: {provider}")


def _provider_label(settings: Any) -> str:
    from bzzz_console.domain.errors import ConfigError
    from bzzz_console.runtime.llm.provider import choose_provider

    try:
        return choose_provider(settings).label
    except ConfigError as exc:
        return f"nothing: {exc}"


@key_app.command("delete")
def key_delete(
    entry: EntryArgument = None,
    entry_option: EntryOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a stored key from the OS keyring and the key file (environment and systemd credentials stay)."""
    from bzzz_console.cli import common
    from bzzz_console.security.secrets import delete_key

    with common.errors():
        name = _entry(entry, entry_option)
        settings = common.read_settings(config, None)
        removed, remaining = delete_key(name, settings=settings)
        for note in remaining:
            typer.echo(f"note: {note}", err=True)
        if not removed:
            common.fail(f"no stored key {name!r} (neither in the OS keyring nor in a key file)")
        typer.echo(f"deleted key {name!r} from {' and '.join(removed)}")
