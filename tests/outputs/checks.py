"""Payloads and the properties every output must keep, shared by the output tests.

A terminal output must hold no raw control character (so no escape sequence), show
markup-looking input literally, and a Markdown output must render to HTML with only
the tags auditor writes itself, no autolink from input, one line per one-line field.
JSON must be strict UTF-8.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from markdown_it.token import Token

# markup rich would read, and the texts it would drop
MARKUP = ("[/x]", "[link=https://evil.example]login-here[/link]", "[bold red]big[/]", "[warn]")
# sequences a terminal acts on: clear screen, window title, hyperlink, CSI in C1, bidi
ESCAPES = ("\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
           "\x9b31m", "\u202egnp.exe")
HTML = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
MARKDOWN = ("# heading", "[click](https://evil.example)", "![img](https://evil.example/x.png)",
            "`tick`", "www.evil.example", "*em* _em_ ~~del~~")
SURROGATE = "\udcff"  # an undecodable byte of a file name, kept by surrogateescape

RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                 "\ud800-\udfff]")
BOX = re.compile(r"[\s\u2500-\u257f]+")  # whitespace and box drawing: what wrapping adds


def raw_controls(text: str) -> list[str]:
    """The raw control characters (and lone surrogates) in ``text``."""
    return RAW.findall(text)


def flat(text: str) -> str:
    """``text`` without whitespace and table borders, to find a value a table wrapped."""
    return BOX.sub("", text)


def shown(value: str, output: str) -> bool:
    """True when ``value`` appears in ``output`` (wrapping and borders aside)."""
    return flat(value) in flat(output)


# -- Markdown ------------------------------------------------------------------------

ALLOWED_TAGS = {"h2", "h3", "p", "ul", "li", "strong", "code", "table", "thead", "tbody",
                "tr", "th", "td"}
_MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def md_tokens(markdown: str) -> list[Token]:
    """The inline tokens of ``markdown`` (text, code_inline, ...), flattened."""
    return [child for tok in _MD.parse(markdown) for child in (tok.children or ())]


def markdown_tags(markdown: str) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The HTML tags (and their attributes) a CommonMark+GFM-tables renderer makes."""
    parser = _Tags()
    parser.feed(_MD.render(markdown))
    return parser.tags, parser.attrs


def outside_code(markdown: str) -> str:
    """The Markdown source outside code spans, each backslash-escaped character as ``·``.

    Follows CommonMark: outside a code span a backslash escapes the punctuation after
    it; a backtick run opens a span closed by the next run of the same length, else it
    is literal text.
    """
    out: list[str] = []
    i, n = 0, len(markdown)
    while i < n:
        c = markdown[i]
        if c == "\\" and i + 1 < n and markdown[i + 1] in PUNCT:
            out.append("·")
            i += 2
        elif c == "`":
            j = i
            while j < n and markdown[j] == "`":
                j += 1
            run = j - i
            close = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(markdown, j)
            if close is None:
                out.append("`" * run)
                i = j
            else:
                out.append(" ")
                i = close.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def markdown_problems(markdown: str) -> list[str]:
    """What in ``markdown`` could come from an input acting as markup (empty: none)."""
    problems = []
    tags, attrs = markdown_tags(markdown)
    problems += [f"tag <{t}>" for t in tags if t not in ALLOWED_TAGS]
    problems += [f"attribute {a}" for a in attrs if a[0] != "align"]
    if re.search(r"[A-Za-z]://|(?i:www)\.(?=\w)|\w@\w", outside_code(markdown)):
        problems.append("autolink outside code")
    problems += [f"raw {c!r}" for c in raw_controls(markdown)]
    return problems


# -- JSON ----------------------------------------------------------------------------


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def strict_json(data: bytes) -> object:
    """``data`` as strict UTF-8 JSON whose strings hold no lone surrogate (escaped or not)."""
    doc = json.loads(data.decode("utf-8"))  # decoding raises on invalid UTF-8
    for text in _strings(doc):
        text.encode("utf-8")  # raises on a lone surrogate written as an escape
    return doc


def strict_ndjson(data: bytes) -> list[object]:
    return [strict_json(line) for line in data.splitlines() if line.strip()]
