"""Which model provider agents talk to, and starting the scripted demo model when that is the choice."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bzzz_console.config import Settings
from bzzz_console.runtime.llm import OpenAIBackend, RetryPolicy

LOCAL_PLACEHOLDER_KEY = "not-needed"  # OpenAI-compatible local servers ignore the key, but the SDK wants one


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    kind: str
    """``demo``, ``openai`` or ``openai-compatible``."""
    base_url: str | None
    label: str
    api_key: str | None = None

    @property
    def is_demo(self) -> bool:
        return self.kind == "demo"


def choose_provider(
    settings: Settings, environ: Mapping[str, str] | None = None, *, force_demo: bool = False
) -> ProviderChoice:
    env = os.environ if environ is None else environ
    model = settings.model
    if force_demo or model.provider == "demo":
        return ProviderChoice("demo", None, f"DEMO MODEL (scripted, seed {settings.demo.seed})")
    key = env.get(model.api_key_env) or None
    if model.base_url:
        return ProviderChoice(
            "openai-compatible",
            model.base_url,
            f"openai-compatible {model.base_url}",
            key or LOCAL_PLACEHOLDER_KEY,
        )
    if key:
        return ProviderChoice("openai", None, "OpenAI", key)
    if model.provider == "openai":
        from bzzz_console.config import ConfigError

        raise ConfigError(
            f"model.provider is 'openai' but no API key was found in ${model.api_key_env}; set it, "
            "or set model.base_url for a local OpenAI-compatible server, or use --demo"
        )
    return ProviderChoice(
        "demo", None, f"DEMO MODEL (no API key in ${model.api_key_env}; seed {settings.demo.seed})"
    )


def make_backend(choice: ProviderChoice, settings: Settings, base_url: str | None = None) -> OpenAIBackend:
    policy = RetryPolicy(max_attempts=settings.model.max_attempts, timeout_s=settings.model.timeout_s)
    return OpenAIBackend(
        base_url=base_url or choice.base_url, api_key=choice.api_key or LOCAL_PLACEHOLDER_KEY, policy=policy
    )
