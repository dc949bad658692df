"""A model call that failed for good, and what the operator can do about it.

Local servers fail in ways retrying never fixes: the model is not pulled (Ollama's 404 "model … not found, try
pulling it first"), the model or server does not do tool calling (Ollama's 400 "… does not support tools", vLLM
without ``--enable-auto-tool-choice``, llama.cpp without ``--jinja``), the key is refused. Those are *setup*
errors: the call is not retried, and the advice says what to change.
"""

from __future__ import annotations

import re

_MISSING_MODEL = re.compile(
    r"not found|does not exist|no such model|model_not_found|unknown model|pull", re.I
)
_NO_TOOLS = re.compile(
    r"does not support tools|tools? (?:are|is) not supported|not support(?:ed)? .*(?:tool|function)"
    r"|tool[ _-]?choice|tool-call-parser|enable-auto-tool-choice|--jinja|function calling",
    re.I,
)


class LLMError(Exception):
    """A model call that failed for good (after retries, or at once for a non-retryable error).

    ``setup``: when retrying cannot help (the model is missing, it takes no tools, the key is refused), what
    the operator should do instead; None for failures that may pass (overload, timeouts, broken replies)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        retryable: bool = False,
        setup: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retryable = retryable
        self.setup = setup


def setup_advice(status: int | None, server_says: str, model: str) -> str | None:
    """What to change when the server's answer shows a setup problem (None: not one)."""
    if status in (401, 403):
        return "the server refused the API key: set the right one (`bzzz-console key set`) or check model.base_url"
    if status is not None and status >= 400 and _NO_TOOLS.search(server_says):
        return (
            f"{model} on this server does not take tool calls: choose a tool-capable model ([models] in the "
            "settings, or downgrade the agent), or enable tool calling on the server (vLLM: "
            "--enable-auto-tool-choice --tool-call-parser …; llama.cpp: --jinja)"
        )
    if status == 404 and _MISSING_MODEL.search(server_says):
        return (
            f"the server has no model {model!r}: pull or load it (Ollama: `ollama pull {model}`), or name one "
            "the server lists ([models] in the settings, or downgrade the agent)"
        )
    return None
