"""The settings tree written out for people: each field's documentation and ``config show``'s commented TOML."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from bzzz_console.config import Settings, default_config_path


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The docstring under each field of a settings class (its documentation), read from the source."""
    import ast
    import inspect
    import itertools
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe_settings(settings: Settings) -> str:
    """The effective settings as commented TOML: every key with its meaning, ready to copy into a file."""
    lines = [f"# effective settings (file: {default_config_path()} unless --config / BZZZ_CONFIG)"]
    top: list[str] = []
    top_docs = field_docs(Settings)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            lines.append(f"\n[{name}]  # {top_docs.get(name, '')}")
            docs = field_docs(type(value))
            for key in type(value).model_fields:
                lines.append(f"# {docs.get(key, '')}")
                lines.append(_toml_line(key, getattr(value, key)))
        else:
            top += [f"# {top_docs.get(name, '')}", _toml_line(name, value)]
    return "\n".join(lines[:1] + top + lines[1:])


def _toml_line(key: str, value: Any) -> str:
    """``key = value``; an unset key is commented out, so the output can be pasted into a config file."""
    return f"# {key} =   (unset)" if value is None else f"{key} = {_toml_value(value)}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def shareable(settings: Settings) -> Settings:
    """The settings as they may be shown: notification URLs carry tokens (Slack, Telegram …), so only their
    schemes are left."""
    if not settings.notify.urls:
        return settings
    masked = [url.split("://", 1)[0] + "://…" for url in settings.notify.urls]
    return settings.model_copy(update={"notify": settings.notify.model_copy(update={"urls": masked})})
