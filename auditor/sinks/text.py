"""Untrusted text made inert for every output: terminal, Markdown and JSON.

Everything auditor prints may come from an input (a log line, a file name, a host
name, an iptables comment, a process name, an Elasticsearch answer). This module
is the only place that turns such text into output:

* :func:`inert` shows control characters (C0, DEL, C1, so ESC and OSC sequences
  too), bidi overrides, line/paragraph separators and lone surrogates as
  ``\\xNN``/``\\uNNNN`` text. A surrogate from ``surrogateescape`` (an undecodable
  byte of a file name) is shown as the byte it stands for.
* :func:`line` and :func:`cell` build :class:`rich.text.Text`, which rich never reads
  as markup; :func:`console` makes consoles with markup, emoji and highlighting off,
  so a plain ``str`` printed by mistake is not interpreted either.
* :func:`md_text` and :func:`md_code` write Markdown: every character that can start
  markup backslash-escaped in text (no HTML, link, heading, emphasis or autolink forms),
  code spans fenced by a backtick run longer than any inside, newlines collapsed.
* :func:`utf8_clean` makes a JSON-ready tree encodable as strict UTF-8 (lone
  surrogates written as the escape text :func:`inert` uses), and :func:`dumps` is
  :func:`json.dumps` through it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

# C0 (tab and newline too), DEL, C1, bidi marks/overrides/isolates, LS/PS, BOM, surrogates
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069"
    "\ufeff\ud800-\udfff]"
)
_UNSAFE_KEEP_NL = re.compile(_UNSAFE.pattern.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))
_SPACES = re.compile(r"\s*[\r\n]+\s*")
# what can start markup: emphasis, code, links, images, HTML, entities, headings, tables,
# strikethrough, math, and the triggers of GFM autolinks (scheme ':', e-mail '@', 'www.')
_MD_PUNCT = re.compile(r"([\\`*_\[\]<>!#|~&:@$=^{}]|(?<=[wW]{3})\.)")
_TICKS = re.compile(r"`+")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(value: object, keep_newlines: bool = False) -> str:
    """``value`` as text with no character a terminal would act on."""
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_KEEP_NL if keep_newlines else _UNSAFE).sub(_escape, text)


def one_line(value: object) -> str:
    """:func:`inert`, with line breaks (and the blanks around them) collapsed to one space."""
    text = value if isinstance(value, str) else str(value)
    return inert(_SPACES.sub(" ", text))


def clip(value: object, limit: int) -> str:
    """:func:`one_line`, cut to ``limit`` characters with an ellipsis when cut."""
    text = one_line(value)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def short_path(path: object, limit: int = 48) -> str:
    """A path cut from the left (``…/nginx/error.log``): the file name is what tells files apart."""
    text = one_line(path)
    if len(text) <= limit:
        return text
    tail = text[-(limit - 1) :]
    cut = tail.find("/")
    return "…" + (tail[cut:] if 0 <= cut < len(tail) - 8 else tail)


Part = object | tuple[object, str]


def line(*parts: Part, style: str = "") -> Text:
    """A rich ``Text`` from parts: plain values, or ``(value, style)``; nothing is markup."""
    out = Text(style=style)
    for part in parts:
        if isinstance(part, tuple):
            out.append(inert(part[0]), style=part[1])
        else:
            out.append(inert(part))
    return out


def stacked(*texts: Text) -> Text:
    """Texts one under the other in one cell (the only newlines are these)."""
    return Text("\n").join(texts)


def cell(value: object, style: str = "", keep_newlines: bool = False) -> Text:
    """A table cell: inert text (markup never read), optionally styled."""
    return Text(inert("" if value is None else value, keep_newlines), style=style)


def indented(text: Text, by: int = 3) -> Padding:
    """``text`` indented by ``by`` columns, wrapped lines included."""
    return Padding(text, (0, 0, 0, by), expand=False)


def hanging(out: Console, text: Text, by: int = 3) -> None:
    """Print ``text`` wrapped to ``out``'s width, lines after the first indented by ``by``."""
    for i, piece in enumerate(text.wrap(out, max(20, out.width - by))):
        piece.rstrip()
        out.print(Text(" " * by) + piece if i else piece, soft_wrap=True)


def console(stderr: bool = False) -> Console:
    """A console that never interprets markup, emoji codes or highlights input."""
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


# -- Markdown ------------------------------------------------------------------------


def md_text(value: object) -> str:
    """Inert Markdown text: one line, every character that can start markup escaped."""
    return _MD_PUNCT.sub(r"\\\1", one_line(value))


def md_code(value: object, in_table: bool = False) -> str:
    """``value`` as one code span, fenced by a backtick run longer than any inside it."""
    text = one_line(value)
    if in_table:
        text = text.replace("|", "\\|")  # GFM splits cells on | even inside code spans
    if not text:
        return "` `"
    longest = max((len(m) for m in _TICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -- JSON ----------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_str(text: str) -> str:
    return _SURROGATE.sub(_escape, text) if _SURROGATE.search(text) else text


def utf8_clean(value: Any) -> Any:
    """``value`` with every string (keys too) encodable as strict UTF-8.

    Lone surrogates become the escape text of :func:`inert` (``\\xff`` for the byte a
    ``surrogateescape`` decode kept). Containers are rebuilt only where needed.
    """
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, dict):
        return {utf8_clean(k): utf8_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [utf8_clean(v) for v in value]
    return value


# what JSON may hold raw but a terminal acts on (DEL, C1, bidi, LS/PS): written as \\uXXXX
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")


def dumps(doc: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` whose result is strict UTF-8 with no raw control character.

    JSON escapes C0 itself; DEL, C1, bidi controls and line separators, which it may
    leave raw, become ``\\uXXXX`` escapes (the same value once parsed). A lone
    surrogate becomes its escape text (see :func:`utf8_clean`). The fast path is one
    encode and two searches; only a document holding a surrogate is rebuilt.
    """
    kwargs.setdefault("ensure_ascii", False)
    kwargs.setdefault("default", str)
    text = json.dumps(doc, **kwargs)
    if _SURROGATE.search(text) is not None or "\\ud" in text:
        text = json.dumps(utf8_clean(_roundtrip(doc, kwargs)), **kwargs)
    if _JSON_RAW.search(text) is None:
        return text
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# the same characters as UTF-8, for JSON bytes written by orjson
_JSON_RAW_UTF8 = re.compile(
    rb"\x7f|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]"
)


def _escape_utf8(m: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(m.group().decode("utf-8"))


def json_bytes(data: bytes) -> bytes:
    """UTF-8 JSON ``data`` (as orjson writes it) with the characters :func:`dumps` escapes
    written as ``\\uXXXX`` too. The first test, in C, settles nearly every document."""
    if (data.isascii() and b"\x7f" not in data) or _JSON_RAW_UTF8.search(data) is None:
        return data
    return _JSON_RAW_UTF8.sub(_escape_utf8, data)


def _roundtrip(doc: Any, kwargs: dict[str, Any]) -> Any:
    """``doc`` as plain JSON values (``default`` applied), surrogates kept."""
    plain = {**kwargs, "ensure_ascii": True, "indent": None}
    return json.loads(json.dumps(doc, **plain))
