"""How text that came from data is shown: inert, whatever it holds.

Task titles, thread topics, messages, agent ids, roles, capabilities, escalation reasons and operator names come
from agents, models, libp2p peers and MCP clients. Written to a terminal as they are, an ``ESC ] 52`` sequence
writes the clipboard, ``ESC ] 0`` the window title, ``ESC [ 2J`` clears the screen, a bidi override reorders
what the operator reads and a zero-width character hides text. :func:`inert` is the one place that decides how
such text is shown; the console, the CLI and the exports all go through it (or :func:`inert_line`):

* C0 controls become their Unicode control pictures (ESC → ``␛``, BEL → ``␇``, NUL → ``␀``), DEL → ``␡``;
  newline and tab are kept by :func:`inert` (multi-line text: transcripts, reasons) and shown as ``⏎`` and a
  space by :func:`inert_line` (table cells, headings, titles). CR LF is a newline; a lone CR is ``␍``.
* C1 controls (U+0080–U+009F, e.g. the one-byte CSI U+009B), format characters (bidi overrides, embeddings and
  isolates, LRM/RLM/ALM, zero-width space/joiners, word joiner, BOM, the tag characters of "ASCII smuggling" —
  every ``Cf``), lone surrogates, the line and paragraph separators, and a few letters that render as nothing
  (Hangul fillers, the combining grapheme joiner) become a visible ``\\u202e``-style escape. The price: an
  emoji built with a zero-width joiner shows its parts and the escape, a flag made of tag characters its escapes.
* Runs of more than :data:`MAX_MARKS` combining diacritics ("Zalgo" text, which spills onto the rows above and
  below in many terminals) are cut to that many.

Nothing else changes: square brackets, ``*`` and ``<`` stay as they are, because the surfaces never parse data
as markup (Rich/Textual get ``Text``, not markup strings). Markdown exports add their own escaping on top
(:func:`md_text`, :func:`md_code`, :func:`md_block`), and JSON stays exact (:func:`json_safe`).
"""

from __future__ import annotations

import re
import unicodedata

MAX_MARKS = 4
"""Combining diacritics kept on one base character; Vietnamese or Hebrew with points need at most three."""

NEWLINE_GLYPH = "⏎"
"""What a newline looks like in one-line text."""

_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
"""Printable by Unicode's reckoning, yet drawn as nothing: a name made of them looks empty."""
_INVISIBLE_RE = re.compile("[" + "".join(sorted(_INVISIBLE)) + "]")
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ZALGO = re.compile(r"([\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+)")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _needs_escape(ch: str) -> bool:
    return ch in _INVISIBLE or unicodedata.category(ch) in _HIDDEN_CATEGORIES


def _clean(text: str, newline: str, tab: str) -> str:
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == "\n":
            out.append(newline)
        elif ch == "\t":
            out.append(tab)
        elif ch == "\r" and text[i + 1 : i + 2] == "\n":
            continue  # CR LF is one newline
        elif ch.isprintable() and ch not in _INVISIBLE:
            out.append(ch)
        elif _needs_escape(ch):
            out.append(_escape(ch))
        else:  # spaces other than U+0020, private use, unassigned: they draw as what they are
            out.append(ch)
    return "".join(out)


def _suspect(text: str) -> bool:
    """Whether ``text`` may hold something to escape (both checks run at C speed: the common case is cheap)."""
    return not text.isprintable() or _INVISIBLE_RE.search(text) is not None


def _cap_marks(text: str) -> str:
    return _ZALGO.sub(lambda m: m.group(1)[:MAX_MARKS], text) if len(text) > MAX_MARKS else text


def inert(text: str) -> str:
    """``text`` as it may be shown anywhere: control, format and invisible characters made visible, newline and
    tab kept (multi-line text). Idempotent; text without such characters comes back unchanged."""
    if _suspect(text):
        text = _clean(text, "\n", "\t")
    return _cap_marks(text)


def inert_line(text: str, limit: int | None = None) -> str:
    """:func:`inert` on one line (table cells, headings, titles): a newline is ``⏎``, a tab a space. With
    ``limit``, longer text is cut to that many characters, the last being ``…``."""
    if _suspect(text):
        text = _clean(text, NEWLINE_GLYPH, " ")
    text = _cap_marks(text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def json_safe(document: str) -> str:
    """A JSON document with every character :func:`inert` would change written as a ``\\u`` escape: the same
    data for a program, nothing live for a terminal (``json.dumps(..., ensure_ascii=False)`` writes C1 controls,
    bidi overrides and zero-width characters as they are; outside strings JSON is ASCII, so this only touches
    string contents)."""
    if document.isascii():
        return document

    def escape(ch: str) -> str:
        if not _needs_escape(ch):
            return ch
        raw = ch.encode("utf-16-be", "surrogatepass")
        return "".join(f"\\u{int.from_bytes(raw[i : i + 2], 'big'):04x}" for i in range(0, len(raw), 2))

    return "".join(escape(ch) if not ch.isascii() else ch for ch in document)


# -- Markdown exports ---------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~&])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FENCE_END = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")
_TICKS = re.compile(r"`+")


def md_text(text: str) -> str:
    """Data as literal text on one line of Markdown (a heading, a list item): :func:`inert_line`, and every
    character that could start a link, an image, emphasis, code, a heading's end or HTML escaped. (A viewer
    that links bare addresses, as GitHub does, still links ``https://…``: the address is what it shows.)"""
    return _MD_SPECIAL.sub(r"\\\1", inert_line(text))


def md_code(text: str) -> str:
    """Data as an inline code span, whatever backticks it holds (the fence is longer than any run inside)."""
    text = inert_line(text)
    fence = "`" * (max((len(run) for run in _TICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _outside_code(line: str) -> str:
    """Neutralise raw HTML, entities and images in one line, leaving inline code spans as written."""
    out: list[str] = []
    pos = 0
    while pos < len(line):
        tick = _TICKS.search(line, pos)
        end = tick.start() if tick else len(line)
        out.append(line[pos:end].replace("&", "&amp;").replace("<", "&lt;").replace("![", "!\\["))
        if tick is None:
            break
        run = tick.group()
        close = re.compile(rf"(?<!`){run}(?!`)").search(line, tick.end())
        stop = close.end() if close else tick.end()  # an unclosed run of backticks is literal text
        out.append(line[tick.start() : stop])
        pos = stop
    return "".join(out)


def md_block(text: str) -> str:
    """A message body (Markdown, as the agent wrote it) made safe to place in a Markdown document.

    The body is :func:`inert`, and quoted: every line starts with ``> ``, so a heading, a rule or an unclosed
    code fence inside it stays inside the quote and cannot pass for the export's own structure. Outside code
    (fences and inline spans), raw HTML and entities are escaped (``<`` → ``&lt;``, ``&`` → ``&amp;``) and
    images (``![…](…)``, which a viewer would fetch) become literal text; links stay links, since agents cite
    documents — the console and ``threads show`` print their addresses rather than making them live."""
    out: list[str] = []
    fence: str | None = None
    for line in inert(text).split("\n"):
        if fence is not None:
            end = _FENCE_END.match(line)
            if end and end.group(1)[0] == fence[0] and len(end.group(1)) >= len(fence):
                fence = None
        elif opener := _FENCE.match(line):
            fence = opener.group(1)
        else:
            line = _outside_code(line)
        out.append(f"> {line}" if line else ">")
    return "\n".join(out)


# -- amounts ---------------------------------------------------------------------------------------------------
def usd(
    amount: float | None, places: int | None = None, *, grouped: bool = False, symbol: bool = True
) -> str:
    """US dollars as every surface shows them: with ``places`` decimals, or by default as many as the amount needs
    ($5.00, $0.0044); ``grouped`` separates the thousands ($1,000.00); ``symbol=False`` leaves out the ``$`` (a
    table column that says USD in its heading). None (a model nobody priced) is ``unknown``, never $0."""
    if amount is None:
        return "unknown"
    if places is None:
        places = 2 if abs(amount) >= 1 or amount == 0 else 4
    return f"{'$' if symbol else ''}{amount:{',' if grouped else ''}.{places}f}"
