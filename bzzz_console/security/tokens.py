"""MCP bearer tokens, one per principal: operator tokens (named operators who may answer escalations) and agent
tokens (bound to one outside agent id, which only that token may then act as).

Only a SHA-256 of each token is kept, in ``<data dir>/mcp-tokens.json`` (0600, beside the node key): the tokens
are 256-bit random, so a fast hash is enough, and a leaked file gives no usable token. A token looks like
``bzzz_<id>_<secret>``: the public id names it in ``--list`` and ``--revoke`` without revealing it. The file is
re-read when it changes, so issuing or revoking a token takes effect on a running server at its next request.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bzzz_console.domain.errors import ConfigError
from bzzz_console.domain.principals import Principal, PrincipalKind

TOKENS_FILE = "mcp-tokens.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN = re.compile(r"^bzzz_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")


class TokenError(ConfigError):
    """A token request that cannot be carried out (bad name, unknown id, unreadable file): one line."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    kind: PrincipalKind
    name: str
    sha256: str
    created_at: str
    owners: tuple[str, ...] = ()
    """Agent tokens: the operators responsible for this agent; they may not answer its escalations."""
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("sha256")
        data["owners"] = list(self.owners)
        return data


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TokenBook:
    """The tokens of one data dir. Cheap to consult per request: the file is parsed again only when it changed."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / TOKENS_FILE
        self._seen: tuple[int, int] | None = None
        self._records: list[TokenRecord] = []

    # -- reading ---------------------------------------------------------------------------------------------
    def records(self) -> list[TokenRecord]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._seen, self._records = None, []
            return []
        except OSError as exc:
            raise TokenError(f"cannot read the token file {self.path}: {exc.strerror or exc}") from None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._seen:
            self._records = self._parse()
            self._seen = stamp
        return list(self._records)

    def _parse(self) -> list[TokenRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [
                TokenRecord(**{**entry, "owners": tuple(entry.get("owners", ()))}) for entry in data["tokens"]
            ]
        except OSError as exc:
            raise TokenError(f"cannot read the token file {self.path}: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError(
                f"the token file {self.path} is damaged ({exc}); move it away to start over"
            ) from None

    def authenticate(self, token: str) -> tuple[Principal, TokenRecord] | None:
        """The principal a presented token stands for, or None (unknown, malformed or revoked)."""
        match = TOKEN.match(token)
        if match is None:
            return None
        for record in self.records():
            if record.id == match.group(1) and hmac.compare_digest(record.sha256, digest(token)):
                if not record.active:
                    return None
                return Principal(record.kind, record.name, f"mcp token {record.id}"), record
        return None

    def bound_agents(self) -> set[str]:
        """Agent ids that an (unrevoked) agent token holds: nobody else may announce or act as them."""
        return {r.name for r in self.records() if r.kind == "agent" and r.active}

    def owners_of(self, agent_id: str) -> set[str]:
        return {
            o
            for r in self.records()
            if r.kind == "agent" and r.active and r.name == agent_id
            for o in r.owners
        }

    # -- writing ---------------------------------------------------------------------------------------------
    def issue(self, kind: PrincipalKind, name: str, owners: tuple[str, ...] = ()) -> tuple[str, TokenRecord]:
        """A new token (returned once, never stored) and its record."""
        if not NAME.match(name):
            raise TokenError(
                f"{name!r} is not a usable {kind} name: 1-64 letters, digits, '.', '_', '@' or '-', "
                "starting with a letter or digit"
            )
        for owner in owners:
            if not NAME.match(owner):
                raise TokenError(f"owner {owner!r} is not a usable operator name")
        token = f"bzzz_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=token[5:13], kind=kind, name=name, sha256=digest(token), created_at=_now(), owners=owners
        )
        with self._locked() as records:
            records.append(record)
        return token, record

    def revoke(self, ident: str) -> TokenRecord:
        """Revoke by token id (or by the whole token); the record stays, so ``--list`` shows when."""
        match = TOKEN.match(ident)
        wanted = match.group(1) if match else ident
        with self._locked() as records:
            for i, record in enumerate(records):
                if record.id == wanted:
                    if not record.active:
                        raise TokenError(f"token {wanted} was already revoked at {record.revoked_at}")
                    records[i] = revoked = TokenRecord(**{**asdict(record), "revoked_at": _now()})
                    return revoked
        raise TokenError(f"no token with id {wanted!r} (bzzz-console mcp token --list shows them)")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[TokenRecord]]:
        """Read-modify-write under an exclusive lock, then an atomic replace: two `mcp token` commands at once
        both land, and a server reading meanwhile sees the old or the new file, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_suffix(".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
            records = self._parse() if self.path.exists() else []
            yield records
            tmp = self.path.with_suffix(".tmp")
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(out, "w", encoding="utf-8") as handle:
                json.dump({"tokens": [asdict(r) for r in records]}, handle, indent=1)
                handle.write("\n")
            os.replace(tmp, self.path)
            self._seen = None
        finally:
            os.close(fd)


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: one `mcp token` at a time is the user's to ensure
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
