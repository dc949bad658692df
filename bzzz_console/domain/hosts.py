"""Network addresses as the webhook allow-list spells them (``mcp.webhook_hosts``): ``host:port``, lower case,
IPv6 in brackets and compressed, so an entry and a webhook URL match however either was written."""

from __future__ import annotations

import ipaddress


def host_port(host: str, port: int) -> str:
    """The allow-list spelling of an address: ``127.0.0.1:8080``, ``[::1]:9000``, ``hooks.example:443``."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    return f"[{address.compressed}]:{port}" if address.version == 6 else f"{address.compressed}:{port}"


def parse_host_port(entry: str) -> str:
    """An allow-list entry in its one spelling; ValueError saying what is expected otherwise."""
    text = entry.strip()
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    ok = bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
    if not (ok and (bracketed or ":" not in host) and not any(c in host for c in "/@?# ")):
        raise ValueError(
            "expected host:port entries such as '127.0.0.1:8080', '[::1]:9000' or 'hooks.example:443' "
            f"(IPv6 in brackets), got {entry!r}"
        )
    return host_port(host, int(port))


def is_local(host: str) -> bool:
    """A host that reaches this machine: loopback, "any" (0.0.0.0 connects to the local host), localhost."""
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
