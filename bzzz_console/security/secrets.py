"""API keys: where they come from, where ``bzzz-console key set`` puts them, and never where they must not go.

Resolution order for an entry (``default`` is the shared key; an agent spec may name its own entry):

1. the environment: ``$OPENAI_API_KEY`` (the variable named by ``model.api_key_env``) for ``default``,
   ``$BZZZ_KEY_<ENTRY>`` for a named entry;
2. a systemd credential: ``$CREDENTIALS_DIRECTORY/bzzz-key-<entry>`` (``LoadCredential=bzzz-key-default:…``);
3. the OS keyring, only when a real backend that never prompts is active (service ``bzzz-console``);
4. a file ``<config dir>/keys/<entry>`` with 0600 permissions (refused when group or others may read it);
5. nothing: the console runs the demo model and says why.

Key values never appear in ``repr``, messages or status output: only a fingerprint such as ``sk-…abcd``.
Every value resolved in this process is remembered (:func:`live_secrets`) so redaction can remove it from any
text that passes (prompts, stored messages, exports), whatever the redaction settings say.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bzzz_console.domain.errors import ConfigError
from bzzz_console.security.keyring_backend import keyring_backend, keyring_name

if TYPE_CHECKING:
    from bzzz_console.config import Settings

DEFAULT_ENTRY = "default"
KEYRING_SERVICE = "bzzz-console"
CREDENTIAL_PREFIX = "bzzz-key-"
ENTRY_ENV_PREFIX = "BZZZ_KEY_"
MIN_SECRET_LEN = 8
"""Shorter values (placeholders such as ``test``) are not treated as secrets to redact everywhere."""

_ENTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Kind = Literal["environment", "systemd credential", "OS keyring", "file"]


class KeyProblem(ConfigError):
    """A key problem the operator can fix; the message never contains a key value."""


# -- the live secrets -----------------------------------------------------------------------------------------
_live: set[str] = set()
_live_lock = threading.Lock()


def remember_secret(value: str) -> None:
    """Remember a key value of this process so redaction removes it from every text that passes."""
    if len(value) >= MIN_SECRET_LEN:
        with _live_lock:
            _live.add(value)


def live_secrets() -> frozenset[str]:
    """Every key value resolved (or stored) in this process."""
    with _live_lock:
        return frozenset(_live)


# -- names ------------------------------------------------------------------------------------------------------
def validate_entry(entry: str) -> str:
    if not _ENTRY.match(entry):
        raise KeyProblem(f"invalid key entry name {entry!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return entry


def validate_key(value: str) -> str:
    """The key without surrounding whitespace; raises for an empty key or one that cannot be an HTTP header."""
    value = value.strip()
    if not value:
        raise KeyProblem("the key is empty")
    if any(c.isspace() for c in value):
        raise KeyProblem("the key contains whitespace: a key is one word (check what was pasted)")
    if not value.isascii() or not value.isprintable():
        raise KeyProblem("the key contains non-ASCII or control characters (check what was pasted)")
    return value


def entry_env_var(settings: Settings, entry: str) -> str:
    """The environment variable of an entry: ``model.api_key_env`` for ``default``, else ``BZZZ_KEY_<ENTRY>``."""
    if entry == DEFAULT_ENTRY:
        return settings.model.api_key_env
    return ENTRY_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", entry.upper())


def keys_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path("bzzz-console", appauthor=False) / "keys"


def key_file(entry: str, folder: Path | None = None) -> Path:
    return (folder or keys_dir()) / validate_entry(entry)


def fingerprint(value: str) -> str:
    """Enough to tell keys apart, never enough to use one: the well-known prefix and the last 4 characters."""
    prefix = re.match(r"^(sk-(?:proj-|svcacct-|admin-|ant-)?|[a-z]{2,4}_)", value)
    head = prefix.group(1) if prefix else ""
    return f"{head}…({len(value)} chars)" if len(value) < 20 else f"{head}…{value[-4:]}"


# -- the OS keyring ---------------------------------------------------------------------------------------------
def no_keyring_message(path: Path | None = None, settings: Settings | None = None) -> str:
    env = settings.model.api_key_env if settings is not None else "OPENAI_API_KEY"
    where = (
        f"the key was stored in {path} with 0600 permissions" if path else "use `bzzz-console key set --file`"
    )
    return (
        f"no OS keyring backend is available (no D-Bus secret service); {where} "
        f"— or export {env} / use a systemd credential (LoadCredential={CREDENTIAL_PREFIX + DEFAULT_ENTRY}:…)"
    )


# -- resolution -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """A key and where it came from; ``value`` None = no key (the demo model, or an error for a named entry)."""

    value: str | None = field(repr=False)
    source: str | None
    """``environment ($OPENAI_API_KEY)``, ``systemd credential (…)``, ``OS keyring (…)``, ``file … (0600)``."""
    kind: Kind | None = None
    entry: str = DEFAULT_ENTRY
    path: Path | None = None
    """The file the key was read from (a credential or key file), watched for rotation."""
    problems: tuple[str, ...] = ()
    """Sources that had something but were refused (a key file readable by others, an unreadable file)."""

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.value) if self.value is not None else None


def _read_secret_file(path: Path, *, check_mode: bool) -> str | None:
    """The stripped content of a key file, None when there is none; raises KeyProblem when it is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyProblem(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyProblem(f"refusing to read key file {path}: it is not a regular file")
        if check_mode and os.name == "posix" and info.st_mode & 0o077:
            raise KeyProblem(
                f"refusing to read key file {path}: its permissions are {stat.S_IMODE(info.st_mode):04o}, so "
                f"group or others may read it; fix with `chmod 600 {path}` (and rotate the key if others could "
                "have read it)"
            )
        if check_mode and os.name == "posix" and info.st_uid != os.getuid():
            raise KeyProblem(f"refusing to read key file {path}: it belongs to another user")
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise KeyProblem(f"key file {path} is not UTF-8 text") from None


def resolve_key(
    settings: Settings,
    entry: str = DEFAULT_ENTRY,
    environ: Mapping[str, str] | None = None,
    *,
    folder: Path | None = None,
) -> ResolvedKey:
    """The key of ``entry`` from the first source that has one (see the module docstring for the order)."""
    validate_entry(entry)
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def found(value: str, source: str, kind: Kind, path: Path | None = None) -> ResolvedKey:
        remember_secret(value)
        return ResolvedKey(value, source, kind, entry, path, tuple(problems))

    var = entry_env_var(settings, entry)
    value = (env.get(var) or "").strip()
    if value:
        return found(value, f"environment (${var})", "environment")
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds, CREDENTIAL_PREFIX + entry)
        try:
            value = _read_secret_file(path, check_mode=False) or ""
        except KeyProblem as exc:
            problems.append(str(exc))
            value = ""
        if value:
            return found(value, f"systemd credential ({path})", "systemd credential", path)
    backend = keyring_backend()
    if backend is not None:
        try:
            value = (backend.get_password(KEYRING_SERVICE, entry) or "").strip()
        except Exception as exc:
            problems.append(f"the OS keyring ({keyring_name(backend)}) failed: {type(exc).__name__}")
            value = ""
        if value:
            return found(value, f"OS keyring ({keyring_name(backend)})", "OS keyring")

    path = key_file(entry, folder)
    try:
        value = _read_secret_file(path, check_mode=True) or ""
    except KeyProblem as exc:
        problems.append(str(exc))
        value = ""
    if value:
        return found(value, f"file {path} (0600)", "file", path)
    return ResolvedKey(None, None, None, entry, None, tuple(problems))


# -- storing and deleting ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoreResult:
    entry: str
    where: str
    """``OS keyring (…)`` or ``file <path> (0600)``."""
    fingerprint: str
    notes: tuple[str, ...] = ()
    """What the operator should know: the keyring fallback, a variable that takes precedence, a removed copy."""


def _write_private(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` atomically: the folder 0700 (the config dir too, if this creates it), the file
    0600 from its creation on."""
    from bzzz_console.files import private_dir, write_private

    private_dir(path.parent)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    write_private(path, value + "\n")


def _precedence_notes(settings: Settings | None, entry: str, environ: Mapping[str, str] | None) -> list[str]:
    env = os.environ if environ is None else environ
    notes = []
    if settings is not None:
        var = entry_env_var(settings, entry)
        if env.get(var, "").strip():
            notes.append(f"${var} is set in this environment and takes precedence over the stored key")
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds, CREDENTIAL_PREFIX + entry)).is_file():
        notes.append(
            f"the systemd credential {CREDENTIAL_PREFIX + entry} takes precedence over the stored key"
        )
    return notes


def set_key(
    entry: str,
    value: str,
    *,
    store: Literal["auto", "keyring", "file"] = "auto",
    settings: Settings | None = None,
    folder: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreResult:
    """Store a key in the OS keyring (``auto`` when a real backend is active) or in the 0600 key file.

    The copy in the other place is removed, so the new key is the one that resolves (a rotation).
    """
    validate_entry(entry)
    value = validate_key(value)
    notes: list[str] = []
    backend = keyring_backend() if store in ("auto", "keyring") else None
    path = key_file(entry, folder)
    if store == "keyring" and backend is None:
        raise KeyProblem(no_keyring_message(None, settings))
    if backend is not None:
        try:
            backend.set_password(KEYRING_SERVICE, entry, value)
        except Exception as exc:
            if store == "keyring":
                raise KeyProblem(
                    f"the OS keyring ({keyring_name(backend)}) refused the key: {type(exc).__name__}"
                ) from None
            notes.append(f"the OS keyring ({keyring_name(backend)}) refused the key ({type(exc).__name__})")
            backend = None
    if backend is not None:
        where = f"OS keyring ({keyring_name(backend)})"
        if path.exists():
            path.unlink()
            notes.append(f"removed the older key file {path}")
    else:
        _write_private(path, value)
        where = f"file {path} (0600)"
        if store == "auto" and not notes:
            notes.append(no_keyring_message(path, settings))
        other = keyring_backend()
        if other is not None:
            with contextlib.suppress(Exception):
                if other.get_password(KEYRING_SERVICE, entry) is not None:
                    other.delete_password(KEYRING_SERVICE, entry)
                    notes.append(f"removed the older copy in the OS keyring ({keyring_name(other)})")
    remember_secret(value)
    notes += _precedence_notes(settings, entry, environ)
    return StoreResult(entry, where, fingerprint(value), tuple(notes))


def delete_key(
    entry: str,
    *,
    settings: Settings | None = None,
    folder: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Remove the entry from the keyring and the key file: (places it was removed from, sources that remain)."""
    validate_entry(entry)
    removed: list[str] = []
    backend = keyring_backend()
    if backend is not None:
        try:
            if backend.get_password(KEYRING_SERVICE, entry) is not None:
                backend.delete_password(KEYRING_SERVICE, entry)
                removed.append(f"OS keyring ({keyring_name(backend)})")
        except Exception as exc:
            raise KeyProblem(
                f"the OS keyring ({keyring_name(backend)}) could not delete the key: {type(exc).__name__}"
            ) from None
    path = key_file(entry, folder)
    if path.is_file() or path.is_symlink():
        path.unlink()
        removed.append(f"file {path}")
    return removed, _precedence_notes(settings, entry, environ)


# -- status -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeyStatus:
    entry: str
    source: str | None
    """Where the key resolves from; None = no key."""
    fingerprint: str | None
    used_by: tuple[str, ...] = ()
    """Roles whose spec names this entry (``default``: every role that names none)."""
    problems: tuple[str, ...] = ()


def _known_entries(settings: Settings, env: Mapping[str, str], folder: Path | None) -> dict[str, list[str]]:
    """Entries worth reporting, with the roles that use each: default, the specs' entries, stored ones."""
    entries: dict[str, list[str]] = {DEFAULT_ENTRY: []}
    try:
        from bzzz_console.domain.specs import load_specs
        from bzzz_console.resources import agents_dir

        for role, spec in sorted(load_specs(settings.runtime.agents_dir or agents_dir()).items()):
            entries.setdefault(spec.api_key_entry or DEFAULT_ENTRY, []).append(role)
    except Exception:  # a broken agents folder must not hide the keys
        pass
    directory = folder or keys_dir()
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if _ENTRY.match(path.name) and not path.name.startswith("."):
                entries.setdefault(path.name, [])
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and Path(creds).is_dir():
        for path in sorted(Path(creds).glob(CREDENTIAL_PREFIX + "*")):
            name = path.name.removeprefix(CREDENTIAL_PREFIX)
            if _ENTRY.match(name):
                entries.setdefault(name, [])
    return entries


def key_status(
    settings: Settings, environ: Mapping[str, str] | None = None, *, folder: Path | None = None
) -> list[KeyStatus]:
    """Every known entry and where its key resolves from (never the value: a fingerprint)."""
    env = os.environ if environ is None else environ
    out = []
    for entry, roles in _known_entries(settings, env, folder).items():
        key = resolve_key(settings, entry, env, folder=folder)
        out.append(KeyStatus(entry, key.source, key.fingerprint, tuple(roles), key.problems))
    return out
