"""pyparsing grammar for one nginx configuration file (no include handling here).

Tokens follow nginx's own reader (``ngx_conf_read_token``): words end at
whitespace, ``;`` or ``{``; ``${var}`` inside a word does not open a block;
``"..."`` and ``'...'`` quote, and ``\\"``, ``\\'``, ``\\\\``, ``\\t``, ``\\r``,
``\\n`` are unescaped (other backslashes stay, so regexes keep ``\\d``);
``#`` starts a comment where a word could start. ``*_by_lua_block`` directives
take their body raw (balanced braces, Lua strings and comments respected).

Parse actions turn tokens into the frozen :class:`Node` tree, so pyparsing's
ParseResults never leave this module. Errors come out as :class:`GrammarError`
with the 1-based line of the problem.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

import pyparsing as pp

pp.ParserElement.enable_packrat()

_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
_ESCAPE_RE = re.compile(r"\\([\"'\\trn])")


class GrammarError(ValueError):
    """Text that is not a valid nginx configuration; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class Words:
    """The words of a statement with the position of the first."""

    items: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Node:
    """One directive: name, arguments, 1-based line, and its block (None for ``;``)."""

    name: str
    args: tuple[str, ...]
    line: int
    block: tuple[Node, ...] | None = None
    raw: str | None = None  # the verbatim body of a raw (Lua) block


@dataclass(frozen=True, slots=True)
class _Pre:
    """A directive before line numbers are known (``pos`` is its offset in the text)."""

    name: str
    args: tuple[str, ...]
    pos: int
    block: tuple[_Pre, ...] | None = None
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class _Block:
    children: tuple[_Pre, ...]


@dataclass(frozen=True, slots=True)
class _Raw:
    body: str


def unescape(word: str) -> str:
    """nginx's unescaping of a word (quotes already removed)."""
    if "\\" not in word:
        return word
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(1)], word)


class _RawBraces(pp.Token):
    """A ``{ ... }`` body taken verbatim: braces balanced outside Lua strings and comments."""

    def __init__(self) -> None:
        super().__init__()
        self.mayReturnEmpty = False
        self.errmsg = "expected '{' starting a Lua block"

    def parseImpl(self, instring: str, loc: int, do_actions: bool = True) -> tuple[int, Any]:
        if loc >= len(instring) or instring[loc] != "{":
            raise pp.ParseException(instring, loc, self.errmsg, self)
        depth, i, n = 0, loc, len(instring)
        while i < n:
            ch = instring[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return i + 1, instring[loc + 1 : i]
            elif ch in "\"'":
                i = _skip_quoted(instring, i, ch)
            elif instring.startswith("--", i):
                i = _skip_lua_comment(instring, i)
            elif ch == "[" and (end := _long_bracket_end(instring, i)) is not None:
                i = end
            elif ch == "#" and _starts_line(instring, i):
                nl = instring.find("\n", i)
                i = n if nl == -1 else nl
            i += 1
        raise pp.ParseException(instring, loc, "unterminated Lua block", self)


def _starts_line(s: str, i: int) -> bool:
    j = s.rfind("\n", 0, i) + 1
    return not s[j:i].strip()


def _skip_quoted(s: str, i: int, quote: str) -> int:
    j = i + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == quote or s[j] == "\n":
            return j
        j += 1
    return len(s) - 1


def _long_bracket_end(s: str, i: int) -> int | None:
    m = re.match(r"\[(=*)\[", s[i : i + 64])
    if not m:
        return None
    close = "]" + m.group(1) + "]"
    end = s.find(close, i + len(m.group(0)))
    return len(s) - 1 if end == -1 else end + len(close) - 1


def _skip_lua_comment(s: str, i: int) -> int:
    end = _long_bracket_end(s, i + 2) if s.startswith("[", i + 2) else None
    if end is not None:
        return end
    nl = s.find("\n", i)
    return len(s) - 1 if nl == -1 else nl - 1


_DQ = r'"(?:\\[\s\S]|[^"\\])*"'
_SQ = r"'(?:\\[\s\S]|[^'\\])*'"
_BARE = r"(?![#}\"'])(?:\\[\s\S]|\$\{|[^\s;{\\])+"
_WORD = f"(?:{_DQ}|{_SQ}|{_BARE})"
# Words of one statement, with whitespace and comments between them (one regex per
# statement keeps pyparsing's per-element cost off long argument lists).
_WORDS = f"{_WORD}(?:(?:\\s|#[^\\n]*(?![^\\n]))*{_WORD})*"
_SPLIT = re.compile(f"{_DQ}|{_SQ}|{_BARE}|#[^\\n]*")


def _word_text(text: str) -> str:
    if text[:1] in "\"'" and len(text) >= 2 and text[-1] == text[0]:
        text = text[1:-1]
    return unescape(text)


def _words_action(s: str, loc: int, toks: pp.ParseResults) -> Words:
    found = [m.group(0) for m in _SPLIT.finditer(toks[0])]
    return Words(tuple(_word_text(w) for w in found if not w.startswith("#")), loc)


def _directive_action(s: str, loc: int, toks: pp.ParseResults) -> _Pre:
    items = list(toks)
    tail = items[-1] if items and isinstance(items[-1], _Block | _Raw) else None
    words: list[str] = []
    pos = loc
    for t in items:
        if isinstance(t, Words):
            if not words:
                pos = t.pos
            words.extend(t.items)
    name, args = words[0], tuple(words[1:])
    if isinstance(tail, _Block):
        return _Pre(name, args, pos, tail.children)
    if isinstance(tail, _Raw):
        return _Pre(name, args, pos, (), tail.body)
    return _Pre(name, args, pos)


def _build() -> pp.ParserElement:
    words = pp.Regex(_WORDS).set_parse_action(_words_action).set_name("word")
    comment = pp.Regex(r"#[^\n]*")
    semi = pp.Suppress(";")
    directive = pp.Forward()
    directive.set_name("directive")
    block = (pp.Suppress("{") - pp.Group(pp.ZeroOrMore(directive)) - pp.Suppress("}")).set_name(
        "block"
    )
    block.set_parse_action(lambda t: _Block(tuple(t[0])))
    lua_name = pp.Regex(r"[A-Za-z0-9_]*_by_lua_block(?=[\s{])").set_parse_action(_words_action)
    raw = _RawBraces().set_parse_action(lambda t: _Raw(t[0]))
    lua = lua_name + pp.Optional(words) + raw
    plain = words - (semi | block).set_name("';' or '{'")
    directive <<= (lua | plain).set_parse_action(_directive_action)
    config = pp.ZeroOrMore(directive) + pp.StringEnd().set_name("end of file")
    config.ignore(comment)
    config.parse_with_tabs()
    return config


_GRAMMAR = _build()


def parse(text: str) -> tuple[Node, ...]:
    """The directives of one file's text, or GrammarError naming the line."""
    try:
        result = _GRAMMAR.parse_string(text, parse_all=True)
    except pp.ParseBaseException as exc:
        loc = min(max(exc.loc, 0), len(text))
        line = text.count("\n", 0, loc) + 1
        found = text[loc : loc + 30].split("\n", 1)[0].strip()
        what = f"unexpected {found!r}" if found else "unexpected end of file"
        raise GrammarError(f"{what} (expected {_expected(exc)})", line) from None
    except RecursionError:
        raise GrammarError("blocks nested too deeply", 1) from None
    finally:
        pp.ParserElement.reset_cache()
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    return tuple(_lined(n, newlines) for n in result if isinstance(n, _Pre))


def _lined(pre: _Pre, newlines: list[int]) -> Node:
    line = bisect.bisect_left(newlines, pre.pos) + 1
    block = None if pre.block is None else tuple(_lined(c, newlines) for c in pre.block)
    return Node(pre.name, pre.args, line, block, pre.raw)


def _expected(exc: pp.ParseBaseException) -> str:
    msg = str(exc.msg)
    if msg.startswith("Expected "):
        msg = msg[len("Expected ") :]
    return msg or "a directive"
