"""The node key: one Ed25519 key per data dir, created once, so the node's identity is stable across restarts.

It signs the audit trail (:mod:`bzzz_console.security.audit`) and is meant to be the node's libp2p identity too, so the
file holds exactly the raw 32-byte Ed25519 private key seed (no PEM, no newline). It lives in
``<data dir>/node.key``, mode 0600, in a folder created 0700; a key file that group or others may read is refused,
never silently used or "fixed", because the key may already have leaked.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bzzz_console.domain.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from bzzz_console.config import Settings

NODE_KEY_FILE = "node.key"
SEED_BYTES = 32


class NodeKeyError(ConfigError):
    """The node key file is unusable (readable by others, corrupt, unreadable); the message names it.

    A :class:`~bzzz_console.config.ConfigError`, so every command reports it as one line, never a traceback.
    """


def node_key_path(settings: Settings) -> Path:
    return settings.resolved_data_dir() / NODE_KEY_FILE


def _check_private(path: Path) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there; the user profile's ACL protects the data dir
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise NodeKeyError(f"cannot read the node key {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise NodeKeyError(
            f"node key {path} is accessible by group or others (mode {mode:04o}); it must be private to its "
            f"owner. If nobody else could have read it: chmod 600 {path}; otherwise move it away and a new key "
            "(and peer id) is created at the next start"
        )


def _read_seed(path: Path) -> bytes:
    _check_private(path)
    try:
        seed = path.read_bytes()
    except OSError as exc:
        raise NodeKeyError(f"cannot read the node key {path}: {exc.strerror or exc}") from None
    if len(seed) != SEED_BYTES:
        raise NodeKeyError(
            f"node key {path} is corrupt: expected the {SEED_BYTES}-byte Ed25519 seed, found {len(seed)} bytes. "
            "Restore it from a backup, or move it away to create a new key (the node's peer id changes)"
        )
    return seed


def _private_key(seed: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed)


def load_node_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The node key if this data dir has one (never creates it): for commands that only verify."""
    path = node_key_path(settings)
    if not path.exists():
        return None
    return _private_key(_read_seed(path))


def load_or_create_node_key(settings: Settings) -> Ed25519PrivateKey:
    """The node's Ed25519 key, created on first use.

    Creation is atomic and race-free across processes: the seed is written to a private temporary file that is
    then hard-linked into place, which fails if another process got there first (its key is used instead). So
    the file is never seen half-written, and two processes starting at once agree on one key.
    """
    path = node_key_path(settings)
    if path.exists():
        return _private_key(_read_seed(path))
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise NodeKeyError(
            f"cannot create the data dir {folder} for the node key: {exc.strerror or exc}"
        ) from None
    seed = secrets.token_bytes(SEED_BYTES)
    tmp = folder / f".{NODE_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(seed)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _private_key(_read_seed(path))  # another process created it a moment ago
        except OSError:  # a file system without hard links: exclusive create, then write
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(seed)
    except FileExistsError:
        return _private_key(_read_seed(path))
    except OSError as exc:
        raise NodeKeyError(f"cannot write the node key {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return _private_key(seed)


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key as 64 hex digits (what audit entries record as their ``signer``)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def public_key_from_hex(value: str) -> Ed25519PublicKey:
    """Parse 64 hex digits into a public key; ValueError with a clear message otherwise."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = value.strip().lower()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not a hex Ed25519 public key: {value!r}") from None
    if len(raw) != SEED_BYTES:
        raise ValueError(f"an Ed25519 public key is 64 hex digits, got {len(text)}: {value!r}")
    return Ed25519PublicKey.from_public_bytes(raw)


def canonical_json(value: Any, *, ascii_only: bool = False, allow_nan: bool = True) -> bytes:
    """The bytes a hash or a signature covers (audit entries, checkpoints, decisions sent to peers): keys sorted,
    no spaces, UTF-8. ``ascii_only`` writes non-ASCII characters as ``\\u`` escapes; ``allow_nan=False`` refuses
    NaN and the infinities (ValueError), which are not JSON."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=allow_nan
    ).encode("utf-8")
