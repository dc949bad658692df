"""``bzzz-console audit …`` (verify and show the signed audit trail) and ``bzzz-console db prune``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bzzz_console.cli.common import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from bzzz_console.store.repo import Store

audit_app = typer.Typer(help="Verify and show the hash-chained, signed audit trail.", no_args_is_help=True)

INTACT, TAMPERED, CANNOT_CHECK = 0, 1, 2
"""``audit verify``'s exit codes."""


@contextmanager
def _reading(url: str) -> Iterator[Store]:
    """The store as found: no migration (verifying must not change the evidence). A database that is missing,
    corrupt, unreadable or has no audit table is one line on stderr and exit 2 ("cannot check"), never a
    traceback and never exit 1 ("tampered")."""
    from bzzz_console.cli import common
    from bzzz_console.store.errors import (
        DatabaseError,
        driver_detail,
        driver_error,
        missing_sqlite_file,
        redact_url,
    )
    from bzzz_console.store.repo import Store

    missing = missing_sqlite_file(url)
    if missing is not None:
        common.fail(f"no database at {missing}", CANNOT_CHECK)
    store: Store | None = None
    try:
        store = Store.open(url, migrate=False)
        yield store
    except DatabaseError as exc:
        common.fail(str(exc), CANNOT_CHECK)
    except driver_error() as exc:  # "file is not a database", no audit table, a server that went away …
        common.fail(f"cannot read the audit trail in {redact_url(url)}: {driver_detail(exc)}", CANNOT_CHECK)
    finally:
        if store is not None:
            store.close()


@audit_app.command("verify")
def audit_verify(
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            help="Trust a signer: every entry must be signed by one of these public keys (hex; repeat). "
            "Default: this node's key (`bzzz-console audit key`); add each peer of a shared trail.",
            show_default=False,
        ),
    ] = None,
    any_signer: Annotated[
        bool,
        typer.Option("--any-signer", help="Accept each entry's recorded signer (names them; trusts none)."),
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Check the whole trail: contiguous indices, hash links, hashes and signatures, then that it still holds
    the head this node last signed in its checkpoint (beside the node key), so entries cut off the end, or all
    of them, are found missing.

    Exit codes: 0 intact; 1 tampered — names the first bad entry (modified, missing, inserted, duplicate, bad
    signature), the missing entries of a trail shorter than its checkpoint, or a checkpoint that does not
    verify; 2 cannot check — no database, a corrupt or unreadable one, or bad options or settings (one line on
    stderr)."""
    from bzzz_console.cli import common
    from bzzz_console.security.audit_checkpoint import CheckpointError, Checkpoints
    from bzzz_console.security.audit_verify import VerifyResult, verify
    from bzzz_console.security.nodekey import load_node_key, public_key_from_hex, public_key_hex

    with common.errors():
        settings = common.read_settings(config, db)
        pinned = []
        for value in key or []:
            try:
                pinned.append(public_key_hex(public_key_from_hex(value)))
            except ValueError as exc:
                common.fail(f"--key: {exc}", CANNOT_CHECK)
        node_key = load_node_key(settings)
        own = public_key_hex(node_key) if node_key is not None else None
        if not pinned and not any_signer and own is not None:
            # By default only this node's key is trusted: a trail re-chained and re-signed by another key fails.
            pinned.append(own)
        with _reading(settings.database_url()) as store:
            book = Checkpoints.for_store(settings.resolved_data_dir(), store)
            try:
                checkpoint = book.read(own) if book is not None else None
            except CheckpointError as exc:
                result = VerifyResult(False, 0, reason="bad checkpoint", detail=str(exc))
            else:
                result = verify(store, node_key, pinned=pinned, checkpoint=checkpoint)
                if checkpoint is None and result.ok:
                    result = replace(
                        result,
                        note="no checkpoint of this database on this node: a cut-off end would not show",
                    )
        if as_json:
            path = str(book.path) if book is not None else None
            report = {**result.to_dict(), "node_key": own, "checkpoint_file": path}
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
        else:
            from bzzz_console.domain.text import inert

            typer.echo(inert(result.message()))  # it may quote authors and types from the trail
            if result.signers and (len(result.signers) > 1 or own not in result.signers):
                typer.echo(
                    "signed by: "
                    + ", ".join(
                        f"{signer[:16]}…{' (this node)' if signer == own else ''} {count}"
                        for signer, count in sorted(result.signers.items(), key=lambda kv: -kv[1])
                    )
                )
    raise typer.Exit(INTACT if result.ok else TAMPERED)


@audit_app.command("show")
def audit_show(
    last: Annotated[int, typer.Option("--last", help="The last N entries (0 = all).", min=0)] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The latest audit entries: index, time, author, type and what happened."""
    from bzzz_console.cli import common
    from bzzz_console.security.audit import read_entries

    with common.errors():
        with _reading(common.read_settings(config, db).database_url()) as store:
            entries = read_entries(store, last=last or None)
        if as_json:
            from bzzz_console.domain.text import json_safe

            # the same JSON, with nothing in it that acts on a terminal
            entries_json = json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False)
            sys.stdout.write(json_safe(entries_json) + "\n")
            return
        rows: list[dict[str, Any]] = []
        for e in entries:
            shown = {k: v for k, v in e.data.items() if k not in ("signer", "node")}
            rows.append(
                {
                    "idx": e.idx,
                    "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    "author": e.author,
                    "type": e.type,
                    "hash": e.hash[:12],
                    "data": _cut(json.dumps(shown, ensure_ascii=False, separators=(",", ":")), 64),
                }
            )
        common.table(rows, ["idx", "at", "author", "type", "hash", "data"])


@audit_app.command("key")
def audit_key(config: ConfigOption = None) -> None:
    """Print this node's public key (hex); the key is created on first use, 0600 in the data dir."""
    from bzzz_console.cli import common
    from bzzz_console.security.nodekey import load_or_create_node_key, public_key_hex

    with common.errors():
        typer.echo(public_key_hex(load_or_create_node_key(common.read_settings(config, None))))


def db_prune(
    older_than: Annotated[
        int,
        typer.Option("--older-than", metavar="DAYS", help="Prune what is older than this many days (>= 1)."),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete threads closed more than DAYS ago (with their messages, participants, decisions, finished
    escalations and tasks) and token usage older than DAYS. Open, stalled and waiting threads, open
    escalations, agents' memory and the audit trail are kept: audit entries are never pruned, so the chain
    stays verifiable."""
    from bzzz_console.cli import common
    from bzzz_console.store.retention import prune

    if older_than < 1:
        common.fail(f"--older-than must be at least 1 day (got {older_than})", 2)
    with common.errors():
        store = common.open_db(config, db, create=False)
        try:
            if not yes:
                preview = prune(store, older_than, dry_run=True)
                if not preview.total:
                    typer.echo(f"nothing older than {older_than} days to prune", err=True)
                else:
                    typer.echo(f"would delete {_counts(preview.deleted)}", err=True)
                    if not sys.stdin.isatty():
                        common.fail("not a terminal: pass --yes to prune without asking")
                    if not typer.confirm("prune?", default=False, err=True):
                        raise typer.Exit(1)
            report = prune(store, older_than)
        finally:
            store.close()
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
            return
        typer.echo(
            f"deleted {_counts(report.deleted)} (older than {older_than} days, before "
            f"{report.cutoff.isoformat(timespec='seconds')})"
        )
        kept = report.kept
        typer.echo(
            f"kept {kept['open_threads']} open threads, {kept['open_escalations']} open escalations and the "
            f"audit trail ({kept['audit_entries']} entries)"
        )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _counts(deleted: dict[str, int]) -> str:
    return ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in deleted.items())
