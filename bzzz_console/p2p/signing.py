"""Signatures on payloads that must stay verifiable after they left pubsub (operator decisions).

gossipsub already signs each message with the publisher's node key, but that signature stays in the transport.
An escalation decision is also signed inside its ``data`` (``signature``: Ed25519 over the canonical JSON of the
other fields), so the node that applies it can check the decider and keep the proof in its store. A libp2p
Ed25519 peer id embeds its public key (an identity multihash), so the peer id is all a verifier needs.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from bzzz_console.security.nodekey import canonical_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ED25519_PREFIX = b"\x00\x24\x08\x01\x12\x20"  # identity multihash (36 bytes) of PublicKey{Ed25519, 32 bytes}


class SignatureError(ValueError):
    """A payload whose signature is missing, malformed, or not made by the claimed peer."""


def b58encode(data: bytes) -> str:
    """Bitcoin's base58, as peer ids are written: each leading zero byte is a ``1``."""
    number, text = int.from_bytes(data, "big"), ""
    while number:
        number, rest = divmod(number, 58)
        text = _B58[rest] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise SignatureError(f"peer id {text!r} is not base58 (bad character {char!r})")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def peer_id_of(public_key: bytes) -> str:
    """The ``12D3KooW…`` peer id of a raw 32-byte Ed25519 public key: its identity multihash, in base58."""
    return b58encode(_ED25519_PREFIX + public_key)


def public_key_of_peer(peer_id: str) -> Ed25519PublicKey:
    """The Ed25519 public key inside a ``12D3KooW…`` peer id (other key types have no inline key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = _b58decode(peer_id)
    if len(raw) != len(_ED25519_PREFIX) + 32 or not raw.startswith(_ED25519_PREFIX):
        raise SignatureError(f"peer id {peer_id!r} does not carry an Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw[len(_ED25519_PREFIX) :])


def canonical(payload: dict[str, Any]) -> bytes:
    """The signed bytes: the payload without ``signature``, keys sorted, no spaces, UTF-8."""
    body = {k: v for k, v in payload.items() if k != "signature"}
    return canonical_json(body)


def sign(payload: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The payload with its ``signature`` (base64) added."""
    return {**payload, "signature": base64.b64encode(key.sign(canonical(payload))).decode()}


def verify(payload: dict[str, Any], peer_id: str) -> None:
    """Raise SignatureError unless ``payload["signature"]`` was made by ``peer_id``'s key over the rest."""
    from cryptography.exceptions import InvalidSignature

    text = payload.get("signature")
    if not isinstance(text, str) or not text:
        raise SignatureError("data.signature: missing")
    try:
        signature = base64.b64decode(text, validate=True)
    except ValueError:
        raise SignatureError("data.signature: not base64") from None
    try:
        public_key_of_peer(peer_id).verify(signature, canonical(payload))
    except InvalidSignature:
        raise SignatureError(f"data.signature: not made by {peer_id}") from None
