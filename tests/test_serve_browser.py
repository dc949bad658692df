"""The installed ``bzzz-console serve --demo`` in a real headless Chromium (Debian's, driven by Playwright):
without a token the page is refused; with the printed link it loads and shows the dashboard; two operators
(the link's and bob with his operator token) open the escalation, see each other, and both try to approve
it — it is applied once, recorded as the first one's with the browser as the surface, and the second is told
who answered.

What the page shows is read from what its terminal was sent (the websocket's frames, escape sequences removed):
xterm.js draws on a canvas, so there is no text in the DOM to read. The keys are real key presses in the page.
.ci/run installs Chromium and sets BZZZ_TEST_REQUIRE_BROWSER, so there this test cannot be skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, cli_env, wait_until
from test_serve import ANSI  # the escape sequences a terminal is sent, removed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [  # as the machine's notes say: no sandbox as root, no GPU, nothing that reaches for the network
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None and os.environ.get("BZZZ_TEST_REQUIRE_BROWSER"):
    raise RuntimeError("BZZZ_TEST_REQUIRE_BROWSER is set but chromium is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
]


class Page:
    """One browser tab and the text its terminal has been sent."""

    def __init__(self, page: Any) -> None:
        self.page, self.received = page, ""
        page.on("websocket", self._watch)

    def _watch(self, socket: Any) -> None:
        def frame(payload: str | bytes) -> None:
            if isinstance(payload, bytes):
                self.received += ANSI.sub("", payload.decode("utf-8", "replace"))

        socket.on("framereceived", frame)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := check()):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; the terminal was sent:\n{self.received[-3000:]}")
            self.page.wait_for_timeout(50)  # lets Playwright deliver the page's events meanwhile
        return result

    def shows(self, text: str, since: int = 0) -> None:
        self.wait(repr(text), lambda: text in self.received[since:])

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)
            self.page.wait_for_timeout(50)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``bzzz-console serve --demo --port 0``: its sign-in link, bob's operator token, and its database."""
    env = cli_env(tmp_path)
    env.pop("NO_COLOR")  # a browser's terminal in colour, as an operator sees it (the screenshots)
    db = tmp_path / "bzzz.db"
    config = tmp_path / "bzzz.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[demo]\nlatency_ms = 0\n')
    common = ["--config", str(config)]
    issued = subprocess.run(
        [str(BIN), "mcp", "token", "--operator", "--name", "bob", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert issued.returncode == 0, issued.stderr
    bob = issued.stdout.strip()
    server = subprocess.Popen(
        [str(BIN), "serve", "--demo", "--port", "0", "--name", "alice", "--db", f"sqlite:///{db}", *common],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        link = server.stdout.readline().strip()
        assert link.startswith("http://127.0.0.1:") and "?token=" in link, (link, server.stderr)
        yield link, bob, db
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""


def escalations(db: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            rows = list(conn.execute("SELECT id, state, decision, answered_by FROM escalations"))
        except sqlite3.OperationalError:  # not migrated yet
            return []
    return [
        {"id": i, "state": s, "decision": json.loads(d) if d else None, "answered_by": by}
        for i, s, d, by in rows
    ]


def test_the_console_in_a_real_browser_two_operators_one_decision(
    served: tuple[str, str, Path], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    link, bob_token, db = served
    address = link.split("?")[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            # no token, a wrong one: refused, with what to do
            anonymous = browser.new_context().new_page()
            response = anonymous.goto(address)
            assert response is not None and response.status == 401
            assert "needs an operator token" in anonymous.inner_text("body")
            assert anonymous.goto(address + "?token=bzzz_wrong").status == 401  # type: ignore[union-attr]

            # the link signs alice in: the page loads, the token leaves the address bar, the dashboard shows
            alice = Page(browser.new_context(viewport={"width": 1400, "height": 900}).new_page())
            alice.page.goto(link)
            assert alice.page.url == address and "alice" in alice.page.title()
            alice.page.wait_for_selector("body.-first-byte", timeout=60_000)
            alice.shows("Escalations")
            alice.page.screenshot(path=str(tmp_path / "alice-dashboard.png"))

            bob = Page(browser.new_context(viewport={"width": 1000, "height": 700}).new_page())
            bob.page.goto(f"{address}?token={bob_token}")
            bob.page.wait_for_selector("body.-first-byte", timeout=60_000)
            bob.shows("Escalations")

            # the demo's reviewer asks a human; both open it (e: the escalations pane, Enter: the first one)
            [waiting] = wait_until(
                lambda: [e for e in escalations(db) if e["state"] == "open"], "an open escalation", 90
            )
            for tab in (alice, bob):
                tab.shows("1 open")
                # keys go to xterm's input; a mouse click would land on (and open) whatever row is there
                tab.page.focus("textarea.xterm-helper-textarea")
                tab.press("e", "Enter")
                tab.shows(f"{waiting['id']} · rule")
            alice.shows("also viewing: bob")
            bob.shows("also viewing: alice")

            # both approve; alice confirms first, then bob
            for tab in (alice, bob):
                mark = len(tab.received)
                tab.press("Shift+A")
                tab.shows("Approve (Y)", mark)
            alice.press("Shift+Y")
            answered = wait_until(
                lambda: [e for e in escalations(db) if e["id"] == waiting["id"] and e["state"] == "answered"],
                "the escalation answered",
            )
            mark = len(bob.received)
            bob.press("Shift+Y")
            bob.shows("already", mark)
            bob.wait("bob told who answered", lambda: "alice" in bob.received[mark:])
            alice.page.screenshot(path=str(tmp_path / "alice-decided.png"))
        finally:
            browser.close()

    [row] = answered
    assert row["answered_by"] == "alice" and row["decision"]["kind"] == "approve"
    assert row["decision"]["surface"].startswith("browser token link-")
    shown = subprocess.run(
        [str(BIN), "escalations", "show", waiting["id"], "--json", "--db", f"sqlite:///{db}"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert '"surface": "browser token link-' in shown.stdout and shown.stdout.count('"kind": "approve"') == 1
