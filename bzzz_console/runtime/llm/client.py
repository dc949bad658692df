"""The LLM backend: one Chat Completions call with our own retry policy, mapped to provider-neutral types.

``openai`` is imported lazily (when the first client is built): it costs about 0.3 s of start-up time.
The SDK's own retries are switched off (``max_retries=0``) so back-off, Retry-After and reporting are ours.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bzzz_console.domain.llm import ChatMessage, ChatResult, RetryInfo, ToolCall, ToolSpec, Usage
from bzzz_console.runtime.llm.errors import LLMError, setup_advice

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion

__all__ = ["LLMBackend", "LLMError", "OpenAIBackend", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUS = frozenset({408, 409, 429})


class LLMBackend(Protocol):
    async def complete(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        max_tokens: int | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        key_entry: str | None = None,
    ) -> ChatResult:
        """``key_entry``: the API key entry of the calling agent (None = the shared key). Callers pass it only
        when an agent names its own entry, so a backend that has no keys may leave it out."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    timeout_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Back-off after failed attempt ``attempt`` (1-based): Retry-After wins, else full jitter."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay_s)
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** max(attempt - 1, 0))
        return self.rng.uniform(0.0, cap)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date; None if absent."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds >= 0 and seconds != float("inf"):
            return seconds
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is not None:
            return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return None


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": tc.id,
                        "type": "function",
                        "function": {"name": tc.name, "arguments": tc.arguments},
                    }
                    for tc in m.tool_calls
                ]
            out.append(item)
        elif m.role == "tool":
            if m.tool_call_id is None:
                raise ValueError("a tool message needs tool_call_id")
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""})
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters) or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]


class _Attempt(Exception):
    """One failed attempt: why, and whether another is worth it."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None,
        retryable: bool,
        retry_after: float | None = None,
        timed_out: bool = False,
    ):
        super().__init__(reason)
        self.reason, self.status, self.retryable, self.retry_after = reason, status, retryable, retry_after
        self.timed_out = timed_out


def _server_message(body: object, fallback: str) -> str:
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return fallback


class OpenAIBackend:
    """Chat Completions over the ``openai`` SDK; works with any OpenAI-compatible server."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        policy: RetryPolicy = RetryPolicy(),
        organization: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        key_source: Callable[[str | None], str] | None = None,
    ) -> None:
        """``key_source`` (optional) gives the current key of a key entry (None = the shared one) before each
        call, so keys rotate without a restart and an agent can use its own key; it raises when there is none.
        Without it every call uses ``api_key``."""
        self.base_url = base_url
        self.policy = policy
        self._api_key = api_key
        self._organization = organization
        self._sleep = sleep
        self._key_source = key_source
        self._client: AsyncOpenAI | None = None
        self._keyed: dict[str, AsyncOpenAI] = {}
        """Clients of other keys than ``api_key`` (rotated or per-agent keys), closed with the backend."""

    def prepare(self) -> None:
        """Import the SDK and build the client now (callers run this in a thread: it takes ~0.5 s cold)."""
        self._ensure_client()

    def _new_client(self, api_key: str) -> AsyncOpenAI:
        import openai  # lazy: keeps start-up fast

        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key,
            organization=self._organization,
            max_retries=0,
            timeout=self.policy.timeout_s,
        )

    def client(self) -> AsyncOpenAI:
        """The SDK client of the shared key (for other endpoints than chat completions, e.g. ``models.list``)."""
        return self._ensure_client()

    def _ensure_client(self) -> AsyncOpenAI:
        if self._client is None:
            self._client = self._new_client(self._api_key)
        return self._client

    def _client_for(self, api_key: str | None) -> AsyncOpenAI:
        """The client of a key: one per key, built on first use (a rotated key gets a new one)."""
        if api_key is None or api_key == self._api_key:
            return self._ensure_client()
        client = self._keyed.get(api_key)
        if client is None:
            client = self._keyed[api_key] = self._new_client(api_key)
        return client

    def _key_for(self, key_entry: str | None) -> str | None:
        if self._key_source is None:
            return None
        try:
            return self._key_source(key_entry)
        except Exception as exc:  # no key for the entry, a refused key file: the message names no key value
            raise LLMError(f"no API key for this call: {exc}") from None

    async def aclose(self) -> None:
        clients = [c for c in (self._client, *self._keyed.values()) if c is not None]
        self._client = None
        self._keyed.clear()
        for client in clients:
            await client.close()

    async def complete(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        max_tokens: int | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        api_key: str | None = None,
        key_entry: str | None = None,
    ) -> ChatResult:
        """One completion. ``api_key`` overrides the key of this call; else ``key_entry`` names the entry the
        backend's key source looks up (None = the shared key)."""
        client = self._client_for(api_key if api_key is not None else self._key_for(key_entry))
        where = str(client.base_url).rstrip("/")
        kwargs: dict[str, Any] = {"model": model, "messages": to_openai_messages(messages)}
        if tools:
            kwargs["tools"] = to_openai_tools(tools)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        attempts = max(1, self.policy.max_attempts)
        timeout = self.policy.timeout_s
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = await self._call(client, kwargs, where, timeout)
                latency = time.monotonic() - started
                return _to_result(response, model, latency, attempt, where, messages)
            except _Attempt as failed:
                advice = setup_advice(failed.status, failed.reason, model)
                if advice is not None:  # retrying cannot help: the operator has to change something
                    raise LLMError(
                        f"model call rejected: {failed.reason}",
                        status=failed.status,
                        attempts=attempt,
                        setup=advice,
                    ) from failed
                if failed.timed_out:
                    if timeout > self.policy.timeout_s:  # it already had twice the time: it is slow or busy
                        raise LLMError(
                            f"no answer within {self.policy.timeout_s:g}s, then {timeout:g}s, from {where}: the "
                            "server is slow or busy (a one-slot server is still working on the first request) "
                            "— raise model.timeout_s",
                            attempts=attempt,
                            retryable=True,
                        ) from failed
                    # Not resent blindly: a one-slot server may still be busy with it. Once more, with time to
                    # finish; the retry event says so while the console waits.
                    timeout = timeout * 2
                if not failed.retryable:
                    raise LLMError(
                        f"model call rejected: {failed.reason}", status=failed.status, attempts=attempt
                    ) from failed
                if attempt == attempts:
                    raise LLMError(
                        f"model call failed after {attempt} attempts: {failed.reason}",
                        status=failed.status,
                        attempts=attempt,
                        retryable=True,
                    ) from failed
                delay = self.policy.delay(attempt, failed.retry_after)
                if on_retry is not None:
                    on_retry(
                        RetryInfo(attempt=attempt, delay_s=delay, reason=failed.reason, status=failed.status)
                    )
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _call(
        self, client: AsyncOpenAI, kwargs: dict[str, Any], where: str, timeout: float
    ) -> ChatCompletion:
        import openai
        from openai.types.chat import ChatCompletion

        try:
            # The same client, auth, error mapping and typed response as ``chat.completions.create``, without
            # its per-field transformation of the request: our payload is already wire-format JSON, and that
            # transformation costs ~7 ms of CPU per 20-message prompt on the event loop the console shares.
            return await client.post(
                "/chat/completions", cast_to=ChatCompletion, body=kwargs, options={"timeout": timeout}
            )
        except openai.APIStatusError as exc:
            status = exc.status_code
            reason = f"HTTP {status} from {where}: {_server_message(exc.body, exc.message)}"
            retryable = status in RETRYABLE_STATUS or status >= 500
            raise _Attempt(
                reason,
                status=status,
                retryable=retryable,
                retry_after=parse_retry_after(exc.response.headers),
            ) from exc
        except openai.APITimeoutError as exc:
            raise _Attempt(
                f"no answer within {timeout:g}s from {where} (model.timeout_s); trying once more with "
                f"{timeout * 2:g}s",
                status=None,
                retryable=True,
                timed_out=True,
            ) from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise _Attempt(f"connection to {where} failed: {cause}", status=None, retryable=True) from exc
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            raise _Attempt(f"invalid JSON from {where}: {exc}", status=None, retryable=True) from exc


def _to_result(
    response: object, model: str, latency: float, attempts: int, where: str, sent: Sequence[ChatMessage]
) -> ChatResult:
    from openai.types.chat import ChatCompletion

    # A non-JSON content type makes the SDK hand back plain text; an empty choices list is just as useless.
    if not isinstance(response, ChatCompletion) or not response.choices:
        raise _Attempt(
            f"unusable response from {where}: {str(response)[:200]!r}", status=None, retryable=True
        )
    choice = response.choices[0]
    message = choice.message
    calls = tuple(
        ToolCall(id=tc.id, name=tc.function.name, arguments=tc.function.arguments)
        for tc in message.tool_calls or ()
        if tc.type == "function"
    )
    if response.usage is not None:
        details = response.usage.prompt_tokens_details
        cached = details.cached_tokens if details is not None else None
        usage = Usage(response.usage.prompt_tokens, response.usage.completion_tokens, cached or 0)
    else:  # many local servers send none: estimated, so costs and budgets keep counting (and say so)
        usage = estimate_usage(sent, message.content, calls)
    return ChatResult(
        content=message.content,
        tool_calls=calls,
        usage=usage,
        model=response.model or model,
        finish_reason=choice.finish_reason or ("tool_calls" if calls else "stop"),
        latency_s=latency,
        attempts=attempts,
        usage_estimated=response.usage is None,
    )


def estimate_usage(sent: Sequence[ChatMessage], content: str | None, calls: Sequence[ToolCall]) -> Usage:
    """Tokens of a call whose server reported none, by the runtime's one estimate from text (``estimate_tokens``:
    no tokenizer of the server's model is at hand), plus a few per message for the chat template."""
    from bzzz_console.runtime.llm.prompts import estimate_tokens

    def of(text: str | None, tool_calls: Sequence[ToolCall]) -> int:
        return estimate_tokens((text or "") + "".join(c.name + c.arguments for c in tool_calls))

    return Usage(
        prompt_tokens=sum(of(m.content, m.tool_calls) + 4 for m in sent),
        completion_tokens=of(content, calls),
    )
