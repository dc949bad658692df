"""API keys: resolution order, the keyring backends we accept, the 0600 file, rotation, per-agent keys, the
``key`` commands, and a whole session with a sentinel key that must appear in no file and no output."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import pytest
from helpers import BIN, cli_env

from bzzz_console.config import ConfigError, Settings
from bzzz_console.demo.scripted_server import ScriptedReply, ScriptedServer, ScriptedToolCall
from bzzz_console.domain.llm import ChatMessage
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.llm.client import LLMError, OpenAIBackend
from bzzz_console.runtime.llm.provider import KeyCache, choose_provider, make_backend
from bzzz_console.security.secrets import (
    KEYRING_SERVICE,
    KeyProblem,
    ResolvedKey,
    delete_key,
    fingerprint,
    key_file,
    key_status,
    keyring_backend,
    live_secrets,
    resolve_key,
    set_key,
)

CMD_TIMEOUT = 60
RUN_TIMEOUT = 120


# -- a real (in-memory) keyring backend ------------------------------------------------------------------------
@pytest.fixture
def memory_keyring() -> Iterator[Any]:
    """An in-memory backend installed with ``keyring.set_keyring`` (and the previous one put back after).

    The class is defined only after keyring chose its own backend: keyring registers every subclass of
    KeyringBackend, and a class with priority 1 defined earlier would become the process's default keyring."""
    previous = keyring.get_keyring()

    class MemoryKeyring(keyring.backend.KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.items.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.items[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.items.pop((service, username))

    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    import keyring.backends.fail

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def put_file(folder: Path, entry: str, value: str, mode: int = 0o600) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / entry
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


# -- resolution order --------------------------------------------------------------------------------------------
def test_resolution_order_environment_credential_keyring_file(
    tmp_path: Path, keys: Path, memory_keyring: Any
) -> None:
    settings = Settings()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "bzzz-key-default").write_text("cred-key-1234567890\n", encoding="utf-8")
    memory_keyring.set_password(KEYRING_SERVICE, "default", "ring-key-1234567890")
    put_file(keys, "default", "file-key-1234567890")
    env = {"OPENAI_API_KEY": "env-key-1234567890", "CREDENTIALS_DIRECTORY": str(creds)}

    def resolved(environ: dict[str, str]) -> ResolvedKey:
        return resolve_key(settings, "default", environ, folder=keys)

    key = resolved(env)
    assert (key.value, key.kind, key.source) == (
        "env-key-1234567890",
        "environment",
        "environment ($OPENAI_API_KEY)",
    )
    key = resolved({"CREDENTIALS_DIRECTORY": str(creds)})
    assert (key.value, key.kind) == ("cred-key-1234567890", "systemd credential")
    assert key.source == f"systemd credential ({creds / 'bzzz-key-default'})"
    key = resolved({})
    assert (key.value, key.kind, key.source) == (
        "ring-key-1234567890",
        "OS keyring",
        "OS keyring (test secrets MemoryKeyring)",
    )
    memory_keyring.delete_password(KEYRING_SERVICE, "default")
    key = resolved({})
    assert (key.value, key.kind) == ("file-key-1234567890", "file")
    assert key.source == f"file {keys / 'default'} (0600)"
    (keys / "default").unlink()
    key = resolved({})
    assert (key.value, key.source, key.kind) == (None, None, None)


def test_the_key_value_never_shows_in_repr_or_str(keys: Path, no_keyring: None) -> None:
    put_file(keys, "default", "sk-proj-VERYSECRETVALUE0123456789")
    key = resolve_key(Settings(), environ={}, folder=keys)
    assert "VERYSECRET" not in repr(key)
    assert key.fingerprint == "sk-proj-…6789"
    assert "sk-proj-VERYSECRETVALUE0123456789" in live_secrets()  # redaction will remove it everywhere


def test_the_variable_named_by_api_key_env_and_named_entries(keys: Path, no_keyring: None) -> None:
    settings = Settings.model_validate({"model": {"api_key_env": "MY_LLM_KEY"}})
    env = {
        "OPENAI_API_KEY": "not-this-one-123456",
        "MY_LLM_KEY": "this-one-1234567",
        "BZZZ_KEY_CODE_REVIEW": "x" * 20,
    }
    assert resolve_key(settings, "default", env, folder=keys).source == "environment ($MY_LLM_KEY)"
    named = resolve_key(settings, "code-review", env, folder=keys)
    assert (named.value, named.source) == ("x" * 20, "environment ($BZZZ_KEY_CODE_REVIEW)")
    # a named entry never falls back to the shared key
    assert resolve_key(settings, "other", env, folder=keys).value is None


def test_bzzz_key_variables_are_not_settings(tmp_path: Path) -> None:
    from bzzz_console.config import load_settings

    settings = load_settings(None, environ={"BZZZ_KEY_REVIEWER": "k" * 20})
    assert settings == Settings()


def test_entry_names_cannot_escape_the_keys_folder(keys: Path) -> None:
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(KeyProblem, match="invalid key entry name"):
            key_file(bad, keys)


# -- which keyring backends count ------------------------------------------------------------------------------
def test_fail_null_and_keyrings_alt_backends_are_not_used() -> None:
    import keyring.backends.fail
    import keyring.backends.null

    previous = keyring.get_keyring()

    class PromptingFile(keyring.backend.KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            raise AssertionError("must never be asked")

        def set_password(self, service: str, username: str, password: str) -> None:
            raise AssertionError("must never be asked")

    PromptingFile.__module__ = "keyrings.alt.file"
    try:
        for backend in (keyring.backends.fail.Keyring(), keyring.backends.null.Keyring(), PromptingFile()):
            keyring.set_keyring(backend)
            assert keyring_backend() is None, backend
    finally:
        keyring.set_keyring(previous)


def test_without_a_keyring_the_key_goes_to_a_0600_file_and_the_message_says_so(
    keys: Path, no_keyring: None
) -> None:
    result = set_key("default", "  sk-test-abcdefghijklmnop1234\n", folder=keys, environ={})
    path = keys / "default"
    assert result.where == f"file {path} (0600)"
    [note] = result.notes
    assert note.startswith("no OS keyring backend is available (no D-Bus secret service)")
    assert f"the key was stored in {path} with 0600 permissions" in note
    assert "export OPENAI_API_KEY" in note and "systemd credential" in note
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert path.read_text(encoding="utf-8") == "sk-test-abcdefghijklmnop1234\n"
    with pytest.raises(KeyProblem, match="no OS keyring backend is available"):
        set_key("default", "sk-test-abcdefghijklmnop1234", store="keyring", folder=keys)


def test_with_a_keyring_set_key_uses_it_and_removes_the_older_file(keys: Path, memory_keyring: Any) -> None:
    put_file(keys, "default", "old-file-key-12345678")
    result = set_key("default", "new-ring-key-12345678", folder=keys, environ={})
    assert result.where == "OS keyring (test secrets MemoryKeyring)"
    assert memory_keyring.items[(KEYRING_SERVICE, "default")] == "new-ring-key-12345678"
    assert not (keys / "default").exists()
    # --file takes the key out of the keyring, so the file's key is the one that resolves
    set_key("default", "newer-file-key-12345678", store="file", folder=keys, environ={})
    assert (KEYRING_SERVICE, "default") not in memory_keyring.items
    assert resolve_key(Settings(), environ={}, folder=keys).value == "newer-file-key-12345678"
    removed, remaining = delete_key("default", folder=keys, environ={})
    assert removed == [f"file {keys / 'default'}"] and remaining == []


def test_set_key_notes_a_variable_that_takes_precedence(keys: Path, no_keyring: None) -> None:
    result = set_key(
        "default", "k" * 24, folder=keys, settings=Settings(), environ={"OPENAI_API_KEY": "e" * 24}
    )
    assert any("$OPENAI_API_KEY is set" in n for n in result.notes)


@pytest.mark.parametrize("value", ["", "   ", "two words", "tab\there", "caf\u00e9-key"])
def test_bad_keys_are_refused(keys: Path, no_keyring: None, value: str) -> None:
    with pytest.raises(KeyProblem):
        set_key("default", value, folder=keys)
    assert not (keys / "default").exists()


# -- the 0600 file -------------------------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_may_read_is_refused_and_the_message_says_why(
    keys: Path, no_keyring: None, mode: int
) -> None:
    path = put_file(keys, "default", "sk-test-abcdefghijklmnop1234", mode)
    key = resolve_key(Settings(), environ={}, folder=keys)
    assert key.value is None
    [problem] = key.problems
    assert f"refusing to read key file {path}" in problem
    assert f"permissions are {mode:04o}" in problem and f"chmod 600 {path}" in problem
    assert "abcdefghijklmnop" not in problem


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_refused_key_file_stops_the_start_instead_of_falling_back_to_the_demo(
    keys: Path, no_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_file(keys, "default", "sk-test-abcdefghijklmnop1234", 0o644)
    monkeypatch.setattr("bzzz_console.security.secrets.keys_dir", lambda: keys)
    with pytest.raises(ConfigError, match="permissions are 0644"):
        choose_provider(Settings(), environ={})


def test_a_symlinked_key_file_is_refused(keys: Path, tmp_path: Path, no_keyring: None) -> None:
    target = put_file(tmp_path / "elsewhere", "k", "sk-test-abcdefghijklmnop1234")
    keys.mkdir(mode=0o700)
    (keys / "default").symlink_to(target)
    key = resolve_key(Settings(), environ={}, folder=keys)
    assert key.value is None and key.problems


# -- the provider's label --------------------------------------------------------------------------------------
def test_the_provider_label_says_where_the_key_came_from(
    keys: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bzzz_console.security.secrets.keys_dir", lambda: keys)
    assert (
        choose_provider(Settings(), environ={"OPENAI_API_KEY": "e" * 24}).label
        == "OpenAI (key from environment)"
    )
    memory_keyring.set_password(KEYRING_SERVICE, "default", "r" * 24)
    choice = choose_provider(Settings(), environ={})
    assert (choice.label, choice.kind, choice.api_key) == ("OpenAI (key from OS keyring)", "openai", "r" * 24)
    assert "r" * 24 not in repr(choice)
    memory_keyring.delete_password(KEYRING_SERVICE, "default")
    put_file(keys, "default", "f" * 24)
    assert choose_provider(Settings(), environ={}).label == "OpenAI (key from file)"
    (keys / "default").unlink()
    demo = choose_provider(Settings(), environ={})
    assert demo.is_demo and demo.label.startswith(
        "DEMO MODEL (no API key: set one with `bzzz-console key set`"
    )
    local = Settings.model_validate({"model": {"base_url": "http://127.0.0.1:9/v1"}})
    assert choose_provider(local, environ={}).label == "openai-compatible http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="bzzz-console key set"):
        choose_provider(Settings.model_validate({"model": {"provider": "openai"}}), environ={})


# -- rotation without a restart ----------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_key_cache_sees_a_new_key_file_at_once_and_a_keyring_change_after_the_ttl(
    keys: Path, memory_keyring: Any
) -> None:
    clock = FakeClock()
    cache = KeyCache(Settings(), {}, ttl_s=5, folder=keys, clock=clock)
    put_file(keys, "agent", "file-key-one-1234567")
    assert cache.get("agent").value == "file-key-one-1234567"
    set_key("agent", "file-key-two-123456789", store="file", folder=keys, environ={})
    assert cache.get("agent").value == "file-key-two-123456789"  # the file changed: looked up again at once
    memory_keyring.set_password(KEYRING_SERVICE, "agent", "ring-key-1234567890")
    assert cache.get("agent").value == "file-key-two-123456789"  # the keyring is asked again after the TTL
    clock.now = 5.1
    assert cache.get("agent").value == "ring-key-1234567890"


async def test_the_backend_calls_with_each_agents_key_and_a_rotated_key(keys: Path, no_keyring: None) -> None:
    """One client per key: the shared key, a per-agent entry, and a rotated entry, without a new backend."""
    seen: list[str | None] = []

    class KeyedServer(ScriptedServer):
        async def _chat(self, request: Any) -> Any:
            seen.append(request.headers.get("authorization"))
            return await super()._chat(request)

    put_file(keys, "default", "shared-key-123456789")
    put_file(keys, "reviewer", "reviewer-key-123456789")
    settings = Settings.model_validate({"model": {"max_attempts": 1}})
    with KeyedServer(lambda body: ScriptedReply(content="ok")) as server:
        cache = KeyCache(settings, {}, ttl_s=5, folder=keys)
        backend = OpenAIBackend(
            base_url=server.base_url,
            api_key="shared-key-123456789",
            key_source=lambda entry: cache.get(entry or "default").value or "",
        )
        try:
            hello = [ChatMessage("user", "hi")]
            await backend.complete(model="m", messages=hello)
            await backend.complete(model="m", messages=hello, key_entry="reviewer")
            set_key("reviewer", "reviewer-key-rotated-1", store="file", folder=keys, environ={})
            await backend.complete(model="m", messages=hello, key_entry="reviewer")
            await backend.complete(model="m", messages=hello, api_key="explicit-key-12345678")
        finally:
            await backend.aclose()
    assert seen == [
        "Bearer shared-key-123456789",
        "Bearer reviewer-key-123456789",
        "Bearer reviewer-key-rotated-1",
        "Bearer explicit-key-12345678",
    ]


async def test_an_agent_entry_without_a_key_fails_the_call_clearly(
    keys: Path, no_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bzzz_console.security.secrets.keys_dir", lambda: keys)
    put_file(keys, "default", "shared-key-123456789")
    settings = Settings()
    choice = choose_provider(settings, environ={})
    backend = make_backend(choice, settings, base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(LLMError, match=r"no key 'auditor'.*bzzz-console key set auditor") as info:
            await backend.complete(model="m", messages=[ChatMessage("user", "hi")], key_entry="auditor")
        assert "shared-key" not in str(info.value)
    finally:
        await backend.aclose()


async def test_per_agent_keys_in_a_running_node(
    tmp_path: Path, keys: Path, no_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's spec names its own entry: its calls carry that key, the others' the shared one."""
    from bzzz_console.app import make_runtime
    from bzzz_console.demo.team import DemoResponder

    monkeypatch.setattr("bzzz_console.security.secrets.keys_dir", lambda: keys)
    folder = tmp_path / "agents"
    shutil.copytree(agents_dir(), folder)
    spec = folder / "reviewer.toml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text('api_key_entry = "reviewer"\n' + text, encoding="utf-8")
    put_file(keys, "default", "shared-key-123456789")
    put_file(keys, "reviewer", "reviewer-key-123456789")
    by_agent: dict[str, set[str]] = {}

    class KeyedServer(ScriptedServer):
        async def _chat(self, request: Any) -> Any:
            body = json.loads(await request.body())
            agent = body["messages"][0]["content"].split("agent_id: ", 1)[1].split("\n", 1)[0]
            by_agent.setdefault(agent, set()).add(request.headers.get("authorization", ""))
            return await super()._chat(request)

    with KeyedServer(DemoResponder(7)) as server:
        settings = Settings.model_validate(
            {
                "data_dir": str(tmp_path / "data"),
                "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
                "model": {"base_url": server.base_url},
                "runtime": {
                    "poll_interval_s": 0.05,
                    "agents_dir": str(folder),
                    "fleet": {"architect": 1, "reviewer": 1},
                },
            }
        )
        rt = make_runtime(settings)
        async with rt:
            assert rt.provider is not None and rt.provider.label.endswith("(key from file)")
            rt.store.add_task(
                title="Design the rate limiter for the public API",
                description="",
                roles=["architect", "reviewer"],
                priority="high",
                project="default",
            )
            rt.capacity_changed()
            await asyncio.wait_for(rt.wait_idle(), 60)
    assert by_agent["architect-1"] == {"Bearer shared-key-123456789"}
    assert by_agent["reviewer-1"] == {"Bearer reviewer-key-123456789"}


# -- key_status ------------------------------------------------------------------------------------------------
def test_key_status_lists_entries_with_their_source_and_a_fingerprint_only(
    tmp_path: Path, keys: Path, no_keyring: None
) -> None:
    folder = tmp_path / "agents"
    shutil.copytree(agents_dir(), folder)
    spec = folder / "reviewer.toml"
    spec.write_text('api_key_entry = "reviewer"\n' + spec.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings.model_validate({"runtime": {"agents_dir": str(folder)}})
    put_file(keys, "default", "sk-proj-abcdefghijklmnopqrstuvwxyz9876")
    put_file(keys, "spare", "spare-key-1234567890", 0o644)
    rows = {s.entry: s for s in key_status(settings, {}, folder=keys)}
    assert set(rows) == {"default", "reviewer", "spare"}
    assert rows["default"].fingerprint == "sk-proj-…9876"
    assert rows["default"].used_by == ("architect", "documentation")
    assert rows["reviewer"].used_by == ("reviewer",) and rows["reviewer"].source is None
    assert rows["spare"].source is None and "permissions are 0644" in rows["spare"].problems[0]
    assert "abcdefghijklmnop" not in json.dumps([asdict(r) for r in rows.values()])


def test_fingerprints_never_give_a_short_key_away() -> None:
    assert fingerprint("sk-abcdefghijklmnopqrstuvwxyz") == "sk-…wxyz"
    assert fingerprint("short-key-12") == "…(12 chars)"


# -- the key commands, as an operator runs them ------------------------------------------------------------------
def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = CMD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_key_set_status_delete_through_the_cli(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    key = "sk-proj-" + secrets.token_hex(20)
    path = tmp_path / "xdg-config" / "bzzz-console" / "keys" / "default"
    outputs: list[str] = []

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = run_cli(env, *args, stdin=stdin)
        outputs.extend((done.stdout, done.stderr))
        assert "Traceback" not in done.stderr, done.stderr
        return done

    done = cli("key", "set", "--stdin", stdin=key + "\n")
    assert done.returncode == 0, done.stderr
    assert f"stored key 'default' (sk-proj-…{key[-4:]}) in file {path} (0600)" in done.stdout
    assert "no OS keyring backend is available (no D-Bus secret service)" in done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text(encoding="utf-8").strip() == key

    status = cli("key", "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["keyring"] is None and data["provider"] == "OpenAI (key from file)"
    [default] = [e for e in data["entries"] if e["entry"] == "default"]
    assert default["source"] == f"file {path} (0600)" and default["fingerprint"] == f"sk-proj-…{key[-4:]}"
    human = cli("key", "status")
    assert human.returncode == 0 and "OS keyring: none — no OS keyring backend is available" in human.stdout
    assert "the console would use: OpenAI (key from file)" in human.stdout

    # a named entry, with --entry as the spec's documentation spells it; then no prompt without a terminal
    assert cli("key", "set", "--entry", "reviewer", "--stdin", stdin="rev-" + key).returncode == 0
    no_tty = cli("key", "set", "reviewer")
    assert no_tty.returncode == 2 and "--stdin" in no_tty.stderr
    empty = cli("key", "set", "--stdin", stdin="\n")
    assert empty.returncode == 2 and "the key is empty" in empty.stderr

    path.chmod(0o644)
    refused = cli("key", "status")
    assert "permissions are 0644" in refused.stdout
    path.chmod(0o600)

    assert cli("key", "delete", "reviewer").returncode == 0
    deleted = cli("key", "delete")
    assert deleted.returncode == 0 and f"deleted key 'default' from file {path}" in deleted.stdout
    assert not path.exists()
    again = cli("key", "delete")
    assert again.returncode == 1 and "no stored key 'default'" in again.stderr
    assert json.loads(cli("key", "status", "--json").stdout)["provider"].startswith("DEMO MODEL (no API key")

    for text in outputs:
        assert key not in text and key[8:] not in text


# -- a whole session with a sentinel key -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_sentinel_key_reaches_no_file_and_no_output(tmp_path: Path) -> None:
    """The key comes from the 0600 file; the scripted model accepts only it, and echoes it (and the task's email)
    into every message it posts. Afterwards the key is in no file but its own, and in no command's output."""
    from bzzz_console.demo.team import DemoResponder

    sentinel = "Zq" + secrets.token_hex(24)  # no known key shape: only live-key redaction can catch it
    email = "alice.operator@example.com"
    env = cli_env(tmp_path)
    outputs: list[tuple[str, str]] = []

    def cli(
        *args: str, stdin: str | None = None, timeout: float = CMD_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        done = run_cli(env, *args, stdin=stdin, timeout=timeout)
        outputs.append((" ".join(args), done.stdout + done.stderr))
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done

    demo = DemoResponder(7)

    def leaky(body: dict[str, Any]) -> ScriptedReply:
        reply = demo(body)
        calls = []
        for call in reply.tool_calls:
            args = dict(call.arguments)
            if call.name == "bzzz_post":
                text = args["content"]["text"]
                args["content"] = {
                    **args["content"],
                    "text": f"{text} Ask {email} (+1 555 010 9999); key {sentinel}.",
                }
            if call.name == "request_human":
                args["reason"] = f"{args['reason']} The key is {sentinel}."
            calls.append(ScriptedToolCall(call.name, args))
        return ScriptedReply(content=reply.content, tool_calls=tuple(calls), usage=reply.usage)

    cli("key", "set", "--stdin", stdin=sentinel)
    with ScriptedServer(leaky, api_key=sentinel) as server:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[model]\nbase_url = "{server.base_url}"\nmax_attempts = 1\n'
            "[runtime]\npoll_interval_s = 0.05\nfleet = { architect = 1, reviewer = 1 }\n",
            encoding="utf-8",
        )
        env["BZZZ_CONFIG"] = str(config)
        cli("task", "add", "Design the rate limiter for the public API", "-d", f"Questions go to {email}.")
        cli("task", "add", "Review the schema migration for the audit table", "-d", "Online or not?")
        run = cli("run", "--headless", "--exit-when-idle", timeout=RUN_TIMEOUT)
        sent = json.dumps(server.requests)
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert events[0]["kind"] == "runtime_started"
    assert events[0]["provider"] == f"openai-compatible {server.base_url} (key from file)"
    assert any(e["kind"] == "consensus_reached" for e in events)
    assert server.requests  # the server answered only requests that carried the sentinel key
    # what went to the model: neither the key nor the task's email (the model's own output aside)
    assert sentinel not in sent and email not in sent and "[redacted:email]" in sent

    threads = json.loads(cli("threads", "list", "--json").stdout)
    exports = tmp_path / "exports"
    exports.mkdir()
    for thread in threads:
        cli("threads", "export", thread["id"], "-f", "md", "-o", str(exports / f"{thread['id']}.md"))
        cli("threads", "export", thread["id"], "-f", "json", "-o", str(exports / f"{thread['id']}.json"))
        cli("threads", "export", thread["id"], "-f", "md")
        cli("threads", "show", thread["id"])
    cli("escalations", "list", "--json")
    cli("key", "status", "--json")

    exported = "".join(p.read_text(encoding="utf-8") for p in exports.iterdir())
    assert (
        "[redacted:api_key]" in exported and "[redacted:email]" in exported and "[redacted:phone]" in exported
    )
    key_path = tmp_path / "xdg-config" / "bzzz-console" / "keys" / "default"
    searched = 0
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != key_path:
            data = path.read_bytes()
            searched += 1
            assert sentinel.encode() not in data, path
            assert email.encode() not in data or path.suffix not in (".md", ".json"), path
    assert searched >= 5  # the database (and its WAL), the log, the config, the exports
    assert any(p.name == "bzzz-console.log" for p in tmp_path.rglob("*"))
    for command, text in outputs:
        assert sentinel not in text, command


def test_a_headless_linux_box_does_not_pay_for_importing_keyring(tmp_path: Path) -> None:
    """No D-Bus session and no keyring configuration: no real backend can be active, keyring is not imported."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the shortcut is for Linux")
    env = cli_env(tmp_path)
    for name in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND", "XDG_RUNTIME_DIR"):
        env.pop(name, None)
    code = (
        "import sys; from bzzz_console.config import Settings; from bzzz_console.security.secrets import resolve_key; "
        "k = resolve_key(Settings(), environ={}); print(k.value, 'keyring' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["None", "False"]
    env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["None", "True"]
