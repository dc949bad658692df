"""Which model provider agents talk to, with which API key, and starting the scripted demo model when that is the
choice.

The key comes from :func:`bzzz_console.security.secrets.resolve_key` (environment, systemd credential, OS keyring, 0600
key file); the provider's label says which, and why the demo model plays when there is none. The backend looks
the key up again before each call (cached for ``security.key_cache_s``), so ``bzzz-console key set`` rotates it
without a restart, and an agent whose spec names ``api_key_entry`` calls with that entry's key.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bzzz_console.config import ConfigError, Settings
from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy
from bzzz_console.security.secrets import DEFAULT_ENTRY, KeyProblem, ResolvedKey, key_file, resolve_key

LOCAL_PLACEHOLDER_KEY = "not-needed"  # OpenAI-compatible local servers ignore the key, but the SDK wants one
NO_KEY_HINT = "set one with `bzzz-console key set`"


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    kind: str
    """``demo``, ``openai`` or ``openai-compatible``."""
    base_url: str | None
    label: str
    api_key: str | None = field(default=None, repr=False)
    key_source: str | None = None
    """Where the shared key came from (``environment ($OPENAI_API_KEY)``, ``OS keyring (…)`` …); None = none."""
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    """The environment the key was resolved from (None = the process's), for looking keys up again."""
    key: ResolvedKey | None = field(default=None, repr=False, compare=False)

    @property
    def is_demo(self) -> bool:
        return self.kind == "demo"


def choose_provider(
    settings: Settings, environ: Mapping[str, str] | None = None, *, force_demo: bool = False
) -> ProviderChoice:
    model = settings.model
    if force_demo or model.provider == "demo":
        return ProviderChoice("demo", None, f"DEMO MODEL (scripted, seed {settings.demo.seed})")
    key = resolve_key(settings, DEFAULT_ENTRY, environ)
    if key.value is None and key.problems:
        # a key was meant to be there (a key file readable by others, an unreadable credential): say so
        raise ConfigError("the API key cannot be used: " + "; ".join(key.problems))
    via = f" (key from {key.kind})" if key.kind else ""
    if model.base_url:
        return ProviderChoice(
            "openai-compatible",
            model.base_url,
            f"openai-compatible {model.base_url}{via}",
            key.value or LOCAL_PLACEHOLDER_KEY,
            key.source,
            environ,
            key,
        )
    if key.value:
        return ProviderChoice("openai", None, f"OpenAI{via}", key.value, key.source, environ, key)
    if model.provider == "openai":
        raise ConfigError(
            f"model.provider is 'openai' but no API key was found (${model.api_key_env}, a systemd "
            f"credential, the OS keyring or a key file): {NO_KEY_HINT}, or set model.base_url for a local "
            "OpenAI-compatible server, or use --demo"
        )
    return ProviderChoice("demo", None, f"DEMO MODEL (no API key: {NO_KEY_HINT}; seed {settings.demo.seed})")


def _signature(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


@dataclass(slots=True)
class _Cached:
    key: ResolvedKey
    expires: float
    watched: tuple[tuple[Path, tuple[int, int] | None], ...]


class KeyCache:
    """Resolved keys by entry, cheap enough to ask before every model call: a key is looked up again when it is
    older than ``ttl_s`` or when its key file (or credential file) changed, so ``key set`` rotates a key in a
    running node without a restart (at once for a file, within ``ttl_s`` for the keyring)."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        ttl_s: float = 5.0,
        folder: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.environ = environ
        self.ttl_s = ttl_s
        self.folder = folder
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def prime(self, key: ResolvedKey) -> None:
        """Start from a key resolved elsewhere (at start-up) instead of looking it up again."""
        self._store(key)

    def invalidate(self, entry: str | None = None) -> None:
        with self._lock:
            if entry is None:
                self._cache.clear()
            else:
                self._cache.pop(entry, None)

    def get(self, entry: str = DEFAULT_ENTRY) -> ResolvedKey:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(entry)
        if (
            cached is not None
            and now < cached.expires
            and all(_signature(path) == sig for path, sig in cached.watched)
        ):
            return cached.key
        key = resolve_key(self.settings, entry, self.environ, folder=self.folder)
        if key.value is None and cached is not None and cached.key.value is not None and key.problems:
            # a source failed (the keyring did not answer): keep the last good key rather than fail every call
            key = cached.key
        self._store(key)
        return key

    def _store(self, key: ResolvedKey) -> None:
        watched = {key_file(key.entry, self.folder)}
        if key.path is not None:
            watched.add(key.path)
        entry = _Cached(key, self._clock() + self.ttl_s, tuple((p, _signature(p)) for p in sorted(watched)))
        with self._lock:
            self._cache[key.entry] = entry


def make_backend(choice: ProviderChoice, settings: Settings, base_url: str | None = None) -> OpenAIBackend:
    policy = RetryPolicy(max_attempts=settings.model.max_attempts, timeout_s=settings.model.timeout_s)
    key_source = None
    if not choice.is_demo:
        keys = KeyCache(settings, choice.environ, ttl_s=settings.security.key_cache_s)
        if choice.key is not None:
            keys.prime(choice.key)  # the first call needs no second lookup
        local = choice.kind == "openai-compatible"

        def key_source(entry: str | None) -> str:
            key: ResolvedKey = keys.get(entry or DEFAULT_ENTRY)
            if key.value is not None:
                return key.value
            if key.problems:
                raise KeyProblem("; ".join(key.problems))
            if local:
                return LOCAL_PLACEHOLDER_KEY
            if key.entry != DEFAULT_ENTRY:
                raise KeyProblem(f"no key {key.entry!r}: set it with `bzzz-console key set {key.entry}`")
            raise KeyProblem(f"no shared key any more: {NO_KEY_HINT}")

    return OpenAIBackend(
        base_url=base_url or choice.base_url,
        api_key=choice.api_key or LOCAL_PLACEHOLDER_KEY,
        policy=policy,
        key_source=key_source,
    )
