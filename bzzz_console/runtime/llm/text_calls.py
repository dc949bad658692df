"""Reading what small and local models write instead of a proper reply: tool calls as text, and thinking.

Many models served by Ollama, vLLM, llama.cpp or LM Studio (or served without their tool-call parser) answer with
the call written into ``content`` — a bare JSON object, a fenced JSON block, Hermes/Qwen ``<tool_call>`` tags,
Llama 3.1's ``<|python_tag|>`` or ``<function=name>`` forms, Mistral's ``[TOOL_CALLS]`` — and ``tool_calls``
empty. Reasoning models put ``<think>…</think>`` before the answer. These functions turn such text into what the
runtime understands; only calls naming a tool the agent was offered count, so ordinary JSON in prose is left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from bzzz_console.domain.llm import ToolCall

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_OPEN_THINK = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE_ONLY = re.compile(r"^(.*?)</(think|thinking|reasoning)>", re.DOTALL | re.IGNORECASE)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL | re.IGNORECASE)
_FENCED = re.compile(r"```(?:json|tool_call|tool_code)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_FUNCTION_TAG = re.compile(r"<function=([\w.-]+)>\s*(.*?)\s*</function>", re.DOTALL)
_PREFIXES = ("<|python_tag|>", "[TOOL_CALLS]", "<|tool_call|>", "functools")


@dataclass(frozen=True, slots=True)
class TextCalls:
    calls: tuple[ToolCall, ...]
    """The calls found, in order; ids ``text-1``, ``text-2`` … (the model gave none)."""
    form: str
    """Which form they were written in (``tool_call tags``, ``fenced JSON`` …), for the note to the model."""
    rest: str
    """The text around the calls (prose the model wrote as well)."""


def split_thinking(text: str | None) -> tuple[str, str]:
    """``(visible, thinking)``: ``<think>`` blocks taken out of a reply. A reply whose opening tag the server's
    chat template already consumed (only ``</think>`` is left) loses everything up to it; an opening tag that is
    never closed (the reply was cut while thinking) leaves nothing visible."""
    if not text:
        return "", ""
    thoughts = [m.group(0) for m in _THINK.finditer(text)]
    visible = _THINK.sub("", text)
    if (cut := _CLOSE_ONLY.match(visible)) is not None:
        thoughts.insert(0, cut.group(1))
        visible = visible[cut.end() :]
    if (opened := _OPEN_THINK.search(visible)) is not None:
        thoughts.append(visible[opened.start() :])
        visible = visible[: opened.start()]
    return visible.strip(), "\n".join(t.strip() for t in thoughts if t.strip())


def calls_in_text(text: str | None, known: Collection[str]) -> TextCalls | None:
    """The tool calls written in ``text`` naming one of the ``known`` tools, or None if there are none."""
    if not text or not text.strip():
        return None
    body = text.strip()
    for form, found, rest in _candidates(body):
        calls = [call for obj in found for call in _as_calls(obj, known)]
        if calls:
            numbered = tuple(
                ToolCall(id=f"text-{n}", name=c.name, arguments=c.arguments) for n, c in enumerate(calls, 1)
            )
            return TextCalls(numbered, form, rest.strip())
    return None


def _candidates(body: str) -> Iterator[tuple[str, list[Any], str]]:
    """(form, decoded JSON values, the text left around them) for each way the calls may be written."""
    tagged = _TAGGED.findall(body)
    if tagged:
        yield "<tool_call> tags", [v for t in tagged if (v := _json(t)) is not None], _TAGGED.sub("", body)
    functions = _FUNCTION_TAG.findall(body)
    if functions:
        values = [{"name": name, "arguments": _json(args) or {}} for name, args in functions]
        yield "<function=…> tags", values, _FUNCTION_TAG.sub("", body)
    for prefix in _PREFIXES:
        if body.startswith(prefix):
            value = _json(body[len(prefix) :])
            yield f"{prefix} prefix", _listed(value), ""
    fenced = _FENCED.findall(body)
    if fenced:
        yield "fenced JSON", [x for f in fenced for x in _listed(_json(f))], _FENCED.sub("", body)
    yield "JSON in the text", _listed(_json(body)), ""
    start = body.find("{")
    if start >= 0:  # an object with prose around it ("I'll post my review: {...}")
        value, end = _json_prefix(body[start:])
        if value is not None:
            yield "JSON in the text", [value], body[:start] + body[start + end :]


def _as_calls(value: Any, known: Collection[str]) -> Iterator[ToolCall]:
    if not isinstance(value, dict):
        return
    wrapped = value.get("function")
    inner: dict[str, Any] = wrapped if isinstance(wrapped, dict) else value
    name = inner.get("name") or inner.get("tool") or inner.get("tool_name")
    if not isinstance(name, str) or name not in known:
        return
    arguments: Any = next((inner[k] for k in ("arguments", "parameters", "args", "input") if k in inner), {})
    if isinstance(arguments, str):  # already JSON text (the Chat Completions shape); passed on as it is
        yield ToolCall(id="", name=name, arguments=arguments)
    else:
        yield ToolCall(id="", name=name, arguments=json.dumps(arguments, ensure_ascii=False))


def _listed(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        return list(value["tool_calls"])
    return [] if value is None else [value]


def _json(text: str) -> Any:
    try:
        return json.loads(text.strip().rstrip(";"))
    except (ValueError, RecursionError):
        return None


def _json_prefix(text: str) -> tuple[Any, int]:
    """The JSON value at the start of ``text`` and where it ends (None, 0 if there is none)."""
    try:
        return json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None, 0
