"""Provider-neutral chat types: what the runtime sends to a model and what comes back.

These mirror the Chat Completions wire shapes closely enough that any OpenAI-compatible server fits, while
keeping the runtime free of the SDK's own classes (the SDK is imported lazily, only by the backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ChatRole = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the raw JSON text the model produced."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: ChatRole
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool offered to the model: JSON Schema ``parameters`` as in the Chat Completions API."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True, slots=True)
class ChatResult:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    model: str
    finish_reason: str
    latency_s: float
    """Wall time of the successful HTTP exchange only (retries and back-off excluded)."""
    attempts: int = 1
    usage_estimated: bool = False
    """The server sent no token counts: ``usage`` is an estimate from the text (costs are labelled so)."""


@dataclass(frozen=True, slots=True)
class RetryInfo:
    """Why a call is being retried and how long the backend waits before the next attempt."""

    attempt: int
    delay_s: float
    reason: str
    status: int | None = None
