"""Redaction of API keys, emails, phone and card numbers from what goes to the model, the store and exports.

Each finding becomes a tag, ``[redacted:<kind>]``. Which kinds are redacted is configured per target
(``security.redact_llm``, ``redact_store``, ``redact_export``); the API keys this process resolved are always
redacted (see :func:`bzzz_console.security.secrets.live_secrets`). Redacting is idempotent: a redacted text comes back
unchanged, so text may pass through several targets.

Ordinary numbers stay: years, ids, token counts, amounts, dates and times. A phone number needs a ``+`` country
code or the separators of a national format; a card number needs 13-19 digits, a card network's first digit and
a valid Luhn check digit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from bzzz_console.config_sections import RedactKind, SecuritySettings
from bzzz_console.security.secrets import MIN_SECRET_LEN

__all__ = ["KINDS", "Redactor", "Target", "luhn_ok", "redact", "redactor_for", "tag"]

Target = Literal["llm", "store", "export"]
KINDS: tuple[RedactKind, ...] = ("api_key", "email", "phone", "card")
_MAX_PASSES = 4
_CACHE_SIZE = 4096
_CACHE_TEXT_MAX = 16_384


def tag(kind: str) -> str:
    return f"[redacted:{kind}]"


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# -- the patterns -------------------------------------------------------------------------------------------
_NOT_REDACTED = r"(?!\[redacted:)"
_VALUE = r"[^\s\"'`<>,;()\[\]{}]"
_KEY_PATTERNS = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-…) style keys
    re.compile(r"(?<![\w-])sk-(?:[A-Za-z0-9]+-)*+[A-Za-z0-9_\-]{16,}"),
    # GitHub, Slack, Google, AWS access key ids, Hugging Face
    re.compile(
        r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}"
        r"|AIza[0-9A-Za-z_\-]{30,}|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,})(?![\w-])"
    ),
)
# "Authorization: Bearer <token>": the token goes, the word stays (a token has a digit: not "Bearer auth")
_BEARER = re.compile(
    r"(?i)(\bbearer\s+)" + _NOT_REDACTED + r"(?=[A-Za-z\-._~+/]*\d)([A-Za-z0-9\-._~+/]{8,}=*)"
)
# api_key = …, "api-key": "…", x-api-key: …, access_token=…, client_secret: …, password=… (a value with a
# digit or of 12+ characters: "API_KEY: rotate it" stays)
_ASSIGNED = re.compile(
    r"(?i)(\b(?:x-)?(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|secret[_-]?key"
    r"|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
    + _NOT_REDACTED
    + rf"(?={_VALUE}*\d|{_VALUE}{{12}})({_VALUE}{{4,}})"
)
# Each pattern starts with a character class and checks the character before it in a lookbehind after it, so the
# regex engine can skip ahead to candidate characters instead of trying a lookbehind at every position.
# An email is found from its "@" (a literal the regex engine finds fast), the local part by walking back.
_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-]|\.[A-Za-z0-9])"
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-_")
# card networks' first digits: Visa 4, Mastercard 51-55 and 22-27, Amex/Diners/JCB 3, Discover/UnionPay/Maestro
# 5 and 6 (not 20 or 21: compact timestamps such as 20240506123456 start so)
_CARD = re.compile(
    r"[2-6](?<![\w.,\-+/:#=][2-6])(?:(?<=[3-6])\d|(?<=2)[2-7])(?:"
    r"\d{2}([ \-])\d{4}\1\d{4}\1\d{1,7}"  # 4-4-4-4(-3): Visa, Mastercard, Discover …
    r"|(?<=3\d)\d{2}([ \-])\d{6}\2\d{4,5}"  # 4-6-5 Amex, 4-6-4 Diners
    r"|\d{11,17}"  # unseparated
    r")(?![\w.,\-]?\d)"
)
_PHONE = re.compile(
    r"[+(\d](?<![\w.,\-+/:#=][+(\d])(?:"
    # international: +<country code>, an optional (area code), groups with single separators
    r"(?<=\+)[1-9]\d{0,3}(?:[ .\-]?\(\d{1,4}\))?[ .\-]?\d++(?:[ .\-]\d++){0,5}"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567
    r"|(?<=\()[2-9]\d{2}\)[ .\-]?\d{3}[ .\-]\d{4}"
    r"|(?<=[2-9])\d{2}([.\-])\d{3}\1\d{4}"
    # national trunk prefix 0: 020 7946 0958, 07700 900123, 01 23 45 67 89, 030-1234-5678, (030) 1234567
    r"|(?<=0)\d{1,4}(?:[ \-/]\d{2,8}){1,4}"
    r"|(?<=\()0\d{1,4}\)[ \-]?\d{3,8}(?:[ \-]\d{2,6}){0,2}"
    r")(?![\w.,\-]?\d)"
)
_DIGIT = re.compile(r"\d")


def _emails(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _EMAIL_DOMAIN.finditer(text):
        at = start = match.start()
        while start > last and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        too_long = start > last and text[start - 1] in _LOCAL_CHARS
        while start < at and not text[start].isalnum():
            start += 1  # a local part starts with a letter or digit
        before = text[start - 1] if start > 0 else " "
        if start == at or too_long or before.isalnum() or before in "/@":
            continue  # no local part, longer than 64, glued to a word, or a URL's user (bzzz://role@project)
        out += [text[last:start], tag("email")]
        last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _card(match: re.Match[str]) -> str:
    digits = _digits(match.group(0))
    return tag("card") if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = _digits(text)
    if text.startswith("+"):
        ok = 8 <= len(digits) <= 15
    elif text.startswith(("0", "(0")):
        ok = 9 <= len(digits) <= 13
    else:
        ok = len(digits) == 10
    return tag("phone") if ok else text


_Step = Callable[[str], str]


def _when(test: Callable[[str], object], step: _Step) -> _Step:
    """Run ``step`` only on texts that pass a cheap test (most texts have no ``@``, many no digit)."""
    return lambda text: step(text) if test(text) else text


_KEY_HINTS = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "AIza", "AKIA", "hf_")
_ASSIGNED_HINTS = (
    *(f"{a}{sep}{b}" for a, b in (("api", "key"), ("access", "token"), ("auth", "token")) for sep in "_-"),
    *(f"{a}{sep}{b}" for a, b in (("client", "secret"), ("secret", "key")) for sep in "_-"),
    "apikey",
    "secretkey",
    "password",
    "passwd",
)


def _has_any(text: str, hints: tuple[str, ...]) -> bool:
    return any(h in text for h in hints)


def _steps(kinds: frozenset[str]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    if "api_key" in kinds:
        key_tag = tag("api_key")
        steps.append(_when(lambda t: "sk-" in t, functools.partial(_KEY_PATTERNS[0].sub, key_tag)))
        steps.append(
            _when(lambda t: _has_any(t, _KEY_HINTS), functools.partial(_KEY_PATTERNS[1].sub, key_tag))
        )
        steps.append(_when(lambda t: "bearer" in t.lower(), functools.partial(_BEARER.sub, r"\1" + key_tag)))
        steps.append(
            _when(
                lambda t: _has_any(t.lower(), _ASSIGNED_HINTS),
                functools.partial(_ASSIGNED.sub, r"\1" + key_tag),
            )
        )
    if "email" in kinds:
        steps.append(_when(lambda t: "@" in t, _emails))
    if "card" in kinds:
        steps.append(_when(_DIGIT.search, functools.partial(_CARD.sub, _card)))
    if "phone" in kinds:
        steps.append(_when(_DIGIT.search, functools.partial(_PHONE.sub, _phone)))
    return tuple(steps)


class Redactor:
    """Redacts the configured kinds per target, and the given secrets (default: this process's live keys)."""

    def __init__(
        self,
        security: SecuritySettings | None = None,
        *,
        secrets: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.security = security or SecuritySettings()
        if secrets is None:
            from bzzz_console.security.secrets import live_secrets

            self._secrets: Callable[[], Iterable[str]] = live_secrets
        elif callable(secrets):
            self._secrets = secrets
        else:
            fixed = tuple(secrets)
            self._secrets = lambda: fixed
        self._by_target: dict[Target, tuple[_Step, ...]] = {
            "llm": _steps(frozenset(self.security.redact_llm)),
            "store": _steps(frozenset(self.security.redact_store)),
            "export": _steps(frozenset(self.security.redact_export)),
        }
        self._all = _steps(frozenset(KINDS))
        # Prompts repeat a thread's history every turn: each message is redacted once, then looked up.
        self._cache: dict[tuple[Target | None, str], str] = {}
        self._cache_secrets: tuple[str, ...] = ()

    def kinds(self, target: Target) -> tuple[RedactKind, ...]:
        return tuple(getattr(self.security, f"redact_{target}"))

    def redact(self, text: str, target: Target | None = None) -> str:
        """``text`` without the kinds configured for ``target`` (every kind when None) and the live keys."""
        if not text:
            return text
        return self._redact(text, target, self._current_secrets())

    def _current_secrets(self) -> tuple[str, ...]:
        secrets = tuple(s for s in self._secrets() if len(s) >= MIN_SECRET_LEN)
        if secrets != self._cache_secrets:  # a new key was resolved: earlier results may contain it
            self._cache.clear()
            self._cache_secrets = secrets
        return secrets

    def _redact(self, text: str, target: Target | None, secrets: tuple[str, ...]) -> str:
        cacheable = len(text) <= _CACHE_TEXT_MAX
        if cacheable:
            hit = self._cache.get((target, text))
            if hit is not None:
                return hit
        steps = self._all if target is None else self._by_target[target]
        out = text
        for _ in range(_MAX_PASSES):  # a replacement can expose a new match next to its tag: to a fixed point
            before = out
            for secret in secrets:
                if secret in out:
                    out = out.replace(secret, tag("api_key"))
            for step in steps:
                out = step(out)
            if out == before:
                break
        if cacheable:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[(target, text)] = out
        return out

    def for_target(self, target: Target) -> Callable[[str], str]:
        return functools.partial(self.redact, target=target)

    def redact_data(self, data: Any, target: Target | None = None) -> Any:
        """Every string inside JSON-like data (dicts, lists, tuples), keys left as they are."""
        secrets = self._current_secrets()  # once for the whole structure, not once per string

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                return self._redact(value, target, secrets) if value else value
            if isinstance(value, Mapping):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return type(value)(walk(v) for v in value)
            return value

        return walk(data)


@functools.lru_cache(maxsize=16)
def redactor_for(security: SecuritySettings | None = None) -> Redactor:
    """One shared redactor per settings (it compiles nothing, but keeps the per-target step lists)."""
    return Redactor(security)


def redact(text: str, target: Target | None = None, security: SecuritySettings | None = None) -> str:
    return redactor_for(security).redact(text, target)
