"""Who is asking: an operator (may list and answer escalations) or one outside agent (may act only as itself).

The console and the CLI act for the OS user who runs them; a ``--operator`` name is only a label shown next to
that user, never a replacement, so a decision's record always says which account made it. Over MCP the bearer
token (or, for stdio, the command line) decides the principal; nothing a client writes in a request does.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["operator", "agent"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    name: str
    """The operator's name (an OS user or the name an operator token was issued for), or the agent id."""
    via: str = "console"
    """Where the request came from: console, cli, mcp-stdio, or "mcp token <id>"."""

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"


def os_user() -> str:
    """The account running this process; what the console's and the CLI's decisions are recorded as. Read from
    the uid (not $USER or $LOGNAME, which anyone can set) wherever there is a password database."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # Windows; or a container running as a uid with no passwd entry
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def local_operator(via: str = "console") -> Principal:
    return Principal("operator", os_user(), via)


def shown_as(name: str, label: str = "") -> str:
    """How a decider is recorded and shown: the name, and the label it chose in parentheses when different."""
    label = label.strip()
    return f"{name} (as {label})" if label and label != name else name
