"""Operator and agent are different principals (issue 12): per-principal MCP tokens over real HTTP with the `mcp`
SDK's Client, agents bound to their own id, owners and the agent itself never deciding its escalations, the
two-person rule, and the OS user recorded with every local decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import socket
import stat
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from bzzz_console.app import make_runtime
from bzzz_console.cli.headless import run_headless
from bzzz_console.config import Settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.errors import CommandError
from bzzz_console.domain.principals import os_user
from bzzz_console.mcp.serve import HttpServer
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.security.tokens import TokenBook
from bzzz_console.store.tables import EscalationRow, now_utc
from tests.helpers import BIN, cli_env, eventually


def _settings(folder: Path, **overrides: Any) -> Settings:
    data = {
        "data_dir": str(folder / "data"),
        "store": {"url": f"sqlite:///{folder / 'bzzz.db'}"},
        "demo": {"latency_ms": 0, "seed": 7},
        "runtime": {"poll_interval_s": 0.05},
        **overrides,
    }
    return Settings.model_validate(data)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database a headless demo run left behind: one escalation open (about reviewer-1, priority high)."""
    folder = tmp_path_factory.mktemp("demo-run")
    code = asyncio.run(run_headless(_settings(folder), demo=True, exit_when_idle=True, out=io.StringIO()))
    assert code == 0
    return folder / "bzzz.db"


def _copy(demo_db: Path, folder: Path) -> None:
    for file in demo_db.parent.glob(demo_db.name + "*"):
        shutil.copy(file, folder / file.name)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Runtime, HttpServer, TokenBook]]:
    book = TokenBook(settings.resolved_data_dir())
    async with make_runtime(settings, force_demo=True) as rt:
        await asyncio.wait_for(rt.wait_idle(), 30)
        server = HttpServer(rt, _port(), book, readonly=False)
        await server.start()
        try:
            yield rt, server, book
        finally:
            await server.stop()


@contextlib.asynccontextmanager
async def client_for(server: HttpServer, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(server.url, http_client=http)) as client,
    ):
        yield client


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return str(result.content[0].text)  # type: ignore[union-attr]


def _escalation_about(rt: Runtime, agent_id: str, priority: str = "medium") -> str:
    row = EscalationRow(
        id=f"esc-about-{agent_id}",
        agent_id=agent_id,
        rule="Consensus Failure",
        reason=f"{agent_id} disagrees with everyone",
        priority=priority,
        deadline=now_utc() + timedelta(hours=1),
    )
    rt.store.raise_escalation(row, thread_status=None)
    return row.id


# -- tokens ------------------------------------------------------------------------------------------------
def test_tokens_are_kept_hashed_private_listed_and_revocable(tmp_path: Path) -> None:
    book = TokenBook(tmp_path / "data")
    token, record = book.issue("operator", "alice")
    agent_token, _ = book.issue("agent", "ext-alice", ("alice",))
    stored = book.path.read_text()
    assert token not in stored and agent_token not in stored  # only hashes are written
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    assert book.authenticate(token) is not None and book.authenticate(token)[0].name == "alice"  # type: ignore[index]
    principal, _ = book.authenticate(agent_token)  # type: ignore[misc]
    assert (principal.kind, principal.name) == ("agent", "ext-alice")
    assert book.owners_of("ext-alice") == {"alice"} and book.bound_agents() == {"ext-alice"}
    assert book.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    book.revoke(record.id)
    assert book.authenticate(token) is None
    assert [r.revoked_at is not None for r in book.records()] == [True, False]
    with pytest.raises(Exception, match="already revoked"):
        book.revoke(record.id)
    with pytest.raises(Exception, match="not a usable agent name"):
        book.issue("agent", "../etc")


async def test_http_without_an_issued_token_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with served(settings) as (_rt, server, book):
        token, record = book.issue("operator", "alice")
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient() as raw:
            for auth in ("Bearer legacy-shared-token-from-before", f"Bearer {token}x", token):
                response = await raw.post(
                    server.url, json=request, headers={**headers, "authorization": auth}
                )
                assert response.status_code == 401, auth
            assert "mcp token --operator" in response.json()["detail"]
            good = await raw.post(
                server.url, json=request, headers={**headers, "authorization": f"Bearer {token}"}
            )
            assert good.status_code != 401  # past the token check (the MCP layer wants a session)
            book.revoke(record.id)  # takes effect at the running server's next request
            again = await raw.post(
                server.url, json=request, headers={**headers, "authorization": f"Bearer {token}"}
            )
            assert again.status_code == 401


# -- agents act only as themselves ---------------------------------------------------------------------------
async def test_an_agent_token_acts_only_as_its_agent_and_never_decides(tmp_path: Path, demo_db: Path) -> None:
    _copy(demo_db, tmp_path)
    settings = _settings(tmp_path)
    async with served(settings) as (rt, server, book):
        alice_token, _ = book.issue("agent", "ext-alice")
        mallory_token, _ = book.issue("agent", "ext-mallory")
        operator_token, _ = book.issue("operator", "olga")
        [escalation] = rt.store.escalations("open")
        async with client_for(server, alice_token) as alice, client_for(server, mallory_token) as mallory:
            announced = await ok(alice, "bzzz_announce", {"agent_id": "ext-alice", "role": "reviewer"})
            assert announced["agent_id"] == "ext-alice"
            assert "acts as ext-alice only" in await refused(
                alice, "bzzz_announce", {"agent_id": "ext-bob", "role": "architect"}
            )
            # another agent's token can neither re-announce alice (changing her role) nor post as her
            assert "acts as ext-mallory only" in await refused(
                mallory,
                "bzzz_announce",
                {"agent_id": "ext-alice", "role": "architect", "capabilities": ["x"]},
            )
            assert rt.agents["ext-alice"].role == "reviewer"
            thread = await ok(
                alice, "bzzz_thread", {"action": "create", "topic": "shared", "participants": ["architect"]}
            )
            assert "ext-alice" in thread["participants"]  # the token's agent, without naming it
            post = {"target_address": f"bzzz://*@*/threads/{thread['thread_id']}", "message_type": "proposal"}
            assert "acts as ext-mallory only" in await refused(
                mallory, "bzzz_post", {**post, "agent_id": "ext-alice", "content": {"text": "I agree"}}
            )
            posted = await ok(alice, "bzzz_post", {**post, "content": {"text": "use a cache"}})
            assert (
                rt.store.messages(thread["thread_id"])[-1].author == "ext-alice"
                and posted["status"] == "posted"
            )
            # a node's own agent is nobody's to act as, not even with a token issued in its name
            local_token, _ = book.issue("agent", "reviewer-1")
            async with client_for(server, local_token) as local:
                assert "own agents" in await refused(
                    local, "bzzz_announce", {"agent_id": "reviewer-1", "role": "reviewer"}
                )
            # agents never list or answer escalations, or raise budgets
            for tool, arguments in (
                ("bzzz_escalations", {}),
                ("bzzz_decide", {"escalation_id": escalation.id, "decision": "approve"}),
                (
                    "bzzz_decide",
                    {"escalation_id": escalation.id, "decision": "raise_budget", "amount_usd": 5},
                ),
            ):
                assert "only operators" in await refused(alice, tool, arguments)
        assert rt.store.get_escalation(escalation.id).state == "open"  # type: ignore[union-attr]
        async with client_for(server, operator_token) as olga:
            # an operator token may not act as an agent that a token holds
            assert "held by an agent token" in await refused(
                olga, "bzzz_post", {**post, "agent_id": "ext-alice", "content": {"text": "I agree"}}
            )
            decided = await ok(olga, "bzzz_decide", {"escalation_id": escalation.id, "decision": "approve"})
        assert decided["by"] == "olga"
        row = rt.store.get_escalation(escalation.id)
        assert row is not None and (row.state, row.answered_by) == ("answered", "olga")


async def test_the_owner_of_an_agent_cannot_answer_its_escalation(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with served(settings) as (rt, server, book):
        book.issue("agent", "ext-alice", ("alice",))
        alice_token, _ = book.issue("operator", "alice")
        bob_token, _ = book.issue("operator", "bob")
        ident = _escalation_about(rt, "ext-alice")
        async with client_for(server, alice_token) as alice:
            text = await refused(alice, "bzzz_decide", {"escalation_id": ident, "decision": "approve"})
            assert "owner of ext-alice" in text
        assert rt.store.get_escalation(ident).state == "open"  # type: ignore[union-attr]
        async with client_for(server, bob_token) as bob:
            assert (await ok(bob, "bzzz_decide", {"escalation_id": ident, "decision": "approve"}))[
                "by"
            ] == "bob"
        # nor may an escalation be answered under the name of the agent it is about
        other = _escalation_about(rt, "ext-carol")
        with pytest.raises(CommandError, match="raised by or about ext-carol"):
            await rt.submit(cmd.Approve(escalation_id=other, operator="ext-carol"))


# -- two-person rule ---------------------------------------------------------------------------------------
async def test_two_person_rule_needs_two_distinct_operators(tmp_path: Path, demo_db: Path) -> None:
    _copy(demo_db, tmp_path)
    async with make_runtime(
        _settings(tmp_path, escalation={"two_person": ["high", "critical"]}), force_demo=True
    ) as rt:
        seen: list[Any] = []
        rt.bus.tap(seen.append)
        [escalation] = rt.store.escalations("open")
        assert escalation.priority == "high"
        first = await rt.submit(cmd.Approve(escalation_id=escalation.id, operator="alice"))
        assert first.state == "open" and [a.shown_as for a in rt.store.approvals(escalation.id)] == ["alice"]
        [approval] = [e for e in seen if isinstance(e, ev.EscalationApproval)]
        assert (approval.approvals, approval.needed, approval.decision) == (("alice",), 2, "approve")
        assert not [e for e in seen if isinstance(e, ev.EscalationAnswered)]
        with pytest.raises(CommandError, match="another operator must confirm"):
            await rt.submit(cmd.Approve(escalation_id=escalation.id, operator="alice", label="someone-else"))
        # a different decision replaces the waiting one: neither operator can push theirs through alone
        replaced = await rt.submit(cmd.Reject(escalation_id=escalation.id, reason="not now", operator="bob"))
        assert replaced.state == "open"
        assert [(a.operator, a.decision["kind"]) for a in rt.store.approvals(escalation.id)] == [
            ("bob", "reject")
        ]
        done = await rt.submit(cmd.Reject(escalation_id=escalation.id, reason="agreed", operator="carol"))
        assert done.state == "answered" and done.answered_by == "bob + carol"
        assert done.decision is not None and done.decision["kind"] == "reject"
        assert [a["by"] for a in done.decision["approvals"]] == ["bob", "carol"]
        assert rt.store.approvals(escalation.id) == []


async def test_two_person_rule_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"escalation\.two_person.*'hihg'"):
        async with make_runtime(_settings(tmp_path, escalation={"two_person": ["hihg"]}), force_demo=True):
            pass


async def test_the_console_shows_one_of_two_approvals_and_who_gave_it(tmp_path: Path, demo_db: Path) -> None:
    from textual.widgets import Static

    from bzzz_console.tui.app import BzzzApp
    from bzzz_console.tui.escalation_screen import EscalationScreen

    _copy(demo_db, tmp_path)
    app = BzzzApp(_settings(tmp_path, escalation={"two_person": ["high"]}), demo=True)
    async with app.run_test(size=(160, 48)) as pilot:
        [ident] = await eventually(lambda: list(app.view.escalations), what="the escalation in the view")
        assert app.rt is not None
        escalation = app.rt.store.get_escalation(ident)
        assert escalation is not None and escalation.state == "open"
        await app.rt.submit(cmd.Approve(escalation_id=escalation.id, operator="alice"))
        await eventually(
            lambda: app.view.escalations[escalation.id].approvals, what="the approval in the view"
        )
        app.push_screen(EscalationScreen(escalation.id))
        await pilot.pause()
        head = str(app.screen.query_one("#escalation-head", Static).render())
        assert "1 of 2 approvals (alice)" in head and "second operator" in head
        # the console's own key: the OS user is the second, distinct operator; the decision then applies
        await pilot.press("A", "Y")  # approve, and yes to the confirmation (it defaults to No)
        await eventually(
            lambda: app.rt.store.get_escalation(escalation.id).state == "answered",  # type: ignore[union-attr]
            what="the confirmed decision",
        )
        answered = app.rt.store.get_escalation(escalation.id)
        assert answered is not None and answered.answered_by == f"alice + {os_user()}"
        assert answered.decision["surface"] == "? + console"  # alice's came from code with no surface named


# -- the installed command ---------------------------------------------------------------------------------
def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=cli_env(tmp_path), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.slow
def test_mcp_token_command_issues_lists_and_revokes(tmp_path: Path) -> None:
    plain = _run(tmp_path, "mcp", "token")
    assert plain.returncode == 2 and "--operator" in plain.stderr and "Traceback" not in plain.stderr
    issued = _run(tmp_path, "mcp", "token", "--operator", "--name", "alice")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("bzzz_") and "shown once" in issued.stderr
    agent = _run(tmp_path, "mcp", "token", "--agent", "ext-alice", "--owner", "alice")
    assert agent.returncode == 0, agent.stderr
    listed = _run(tmp_path, "mcp", "token", "--list", "--json")
    records = json.loads(listed.stdout)
    assert [(r["kind"], r["name"], r["owners"]) for r in records] == [
        ("operator", "alice", []),
        ("agent", "ext-alice", ["alice"]),
    ]
    assert token not in listed.stdout and "sha256" not in listed.stdout
    revoked = _run(tmp_path, "mcp", "token", "--revoke", records[0]["id"])
    assert revoked.returncode == 0 and "revoked" in revoked.stderr
    bad = _run(tmp_path, "mcp", "token", "--agent", "no spaces allowed")
    assert bad.returncode == 2 and "not a usable agent name" in bad.stderr


@pytest.mark.slow
async def test_stdio_as_an_agent_cannot_decide(tmp_path: Path, demo_db: Path) -> None:
    _copy(demo_db, tmp_path)
    url = f"sqlite:///{tmp_path / 'bzzz.db'}"
    params = StdioServerParameters(
        command=str(BIN), args=["mcp", "--demo", "--db", url, "--agent", "ext-ide"], env=cli_env(tmp_path)
    )
    async with Client(params) as client:
        listed = await client.call_tool("bzzz_escalations", {})
        assert listed.is_error and "only operators" in listed.content[0].text  # type: ignore[union-attr]
        announced = await ok(client, "bzzz_announce", {"agent_id": "ext-ide", "role": "reviewer"})
        assert announced["agent_id"] == "ext-ide"
        other = await client.call_tool("bzzz_announce", {"agent_id": "ext-other", "role": "reviewer"})
        assert other.is_error


@pytest.mark.slow
async def test_the_cli_is_the_second_operator_and_records_its_os_user(tmp_path: Path, demo_db: Path) -> None:
    _copy(demo_db, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[store]\nurl = "sqlite:///{tmp_path / "bzzz.db"}"\n'
        '[escalation]\ntwo_person = ["high"]\n'
    )
    settings = _settings(tmp_path, escalation={"two_person": ["high"]})
    async with make_runtime(settings, force_demo=True) as rt:
        [escalation] = rt.store.escalations("open")
        # the same OS user twice is one operator, whatever label it gives
        first = await asyncio.to_thread(
            _run, tmp_path, "escalations", "answer", escalation.id, "--approve", "--config", str(config)
        )
        assert first.returncode == 0 and "1 of 2 approvals" in first.stdout, first.stderr
        again = await asyncio.to_thread(
            _run,
            tmp_path,
            "escalations",
            "answer",
            escalation.id,
            "--approve",
            "--operator",
            "other",
            "--config",
            str(config),
        )
        assert again.returncode != 0 and "another operator must confirm" in again.stderr
        assert rt.store.get_escalation(escalation.id).state == "open"  # type: ignore[union-attr]
        done = await rt.submit(cmd.Approve(escalation_id=escalation.id, operator="alice"))
        assert done.state == "answered" and done.answered_by == f"{os_user()} + alice"
