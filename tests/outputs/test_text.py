"""auditor.sinks.text: the one place untrusted text becomes terminal, Markdown or JSON."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.sinks.text import (
    clip,
    console,
    dumps,
    hanging,
    inert,
    json_bytes,
    line,
    md_code,
    md_text,
    one_line,
    short_path,
    utf8_clean,
)
from tests.outputs.checks import (
    ESCAPES,
    HTML,
    MARKDOWN,
    MARKUP,
    markdown_problems,
    raw_controls,
    strict_json,
)
from tests.outputs.checks import (
    md_tokens as tokens,
)

# any code point, surrogates included (what a surrogateescape decode or a JSON \\u escape gives)
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))
PAYLOAD = st.sampled_from([*MARKUP, *ESCAPES, *HTML, *MARKDOWN, "\udcff", "\r\n", "\\", "|"])
MIXED = st.lists(st.one_of(PAYLOAD, ANY_TEXT), max_size=6).map("".join)


def printed(*parts: object) -> str:
    out = io.StringIO()
    c = console()
    c.file = out
    c.width = 80
    c.print(line(*parts))
    return out.getvalue()


def test_controls_are_shown_as_escapes() -> None:
    assert inert("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert inert("\x9b31m\x7f\x00") == "\\x9b31m\\x7f\\x00"
    assert inert("\u202egnp.exe") == "\\u202egnp.exe"
    assert inert("name\udcff.log") == "name\\xff.log"  # the byte surrogateescape kept
    assert inert("tab\tnew\nline") == "tab\\x09new\\x0aline"
    assert inert("keep\nlines", keep_newlines=True) == "keep\nlines"
    assert inert("plain [x] ü 中 ✓") == "plain [x] ü 中 ✓"


def test_markup_is_printed_literally() -> None:
    for payload in MARKUP:
        assert printed(("x", "bold"), " ", payload).rstrip("\n") == "x " + payload
    out = printed("[link=https://evil.example]login-here[/link]")
    assert "evil.example" in out  # the target is text, not a hidden hyperlink


def test_a_plain_string_is_not_markup_either() -> None:
    out = io.StringIO()
    c = console()
    c.file = out
    c.print("[/x] [bold]b[/bold] :smile:")
    assert out.getvalue() == "[/x] [bold]b[/bold] :smile:\n"


def test_wrapped_lines_are_indented_under_the_first() -> None:
    out = io.StringIO()
    c = console()
    c.file = out
    c.width = 40
    hanging(c, line(("head", "bold"), " " + "word " * 30 + "[/x] \x1b[2J"))
    rows = out.getvalue().splitlines()
    assert len(rows) > 2 and rows[0].startswith("head word")
    assert all(r.startswith("   ") and len(r) <= 40 for r in rows[1:])
    assert rows[-1].strip().endswith("[/x] \\x1b[2J")


def test_clip_and_short_path_say_when_they_cut() -> None:
    assert clip("a" * 10, 10) == "a" * 10
    assert clip("a" * 11, 10) == "a" * 9 + "…"
    assert clip("one\n  two", 20) == "one two"
    path = "/tmp/auditor-input-x/samples/incidents/keepalive-race/nginx/error.log"
    short = short_path(path, 30)
    assert short.startswith("…/") and short.endswith("/nginx/error.log") and len(short) <= 30
    assert short_path("/a/b.log", 30) == "/a/b.log"


def test_markdown_code_span_fences_longer_than_any_run_inside() -> None:
    assert md_code("plain") == "`plain`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("``x```") == "```` ``x``` ````"
    assert md_code("a|b", in_table=True) == "`a\\|b`"
    assert md_code("two\nlines") == "`two lines`"


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_inert_leaves_no_raw_control(text: str) -> None:
    shown = inert(text)
    assert not raw_controls(shown)
    assert not raw_controls(printed(text))
    assert not raw_controls(one_line(text)) and "\n" not in one_line(text)


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_markdown_text_and_code_render_inert(text: str) -> None:
    doc = f"## head\n\n- text: {md_text(text)}\n- code: {md_code(text)}\n\n" \
          f"| a | b |\n|---|---|\n| {md_text(text)} | {md_code(text, in_table=True)} |\n"
    assert markdown_problems(doc) == []
    assert "\n" not in md_text(text) and "\n" not in md_code(text)
    # exactly the two code spans written, each holding the text itself
    codes = [t for t in tokens(doc) if t.type == "code_inline"]
    if one_line(text).strip(" "):
        assert [c.content for c in codes] == [one_line(text)] * 2
    texts = "".join(t.content for t in tokens(doc) if t.type == "text")
    assert one_line(text).strip() in texts  # the escaped text renders as the text itself


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(MIXED, st.integers(), st.none()),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(MIXED, inner, max_size=4)),
                    max_leaves=12))
def test_json_is_always_strict_utf8(doc: object) -> None:
    for kwargs in ({}, {"indent": 2}, {"ensure_ascii": True}, {"separators": (",", ":")}):
        text = dumps(doc, **kwargs)
        strict_json(text.encode("utf-8"))
    if not any("\ud800" <= c <= "\udfff" for c in json.dumps(doc, ensure_ascii=False)):
        assert json.loads(dumps(doc)) == json.loads(json.dumps(doc))  # unchanged otherwise


def test_surrogates_become_their_escape_text() -> None:
    assert utf8_clean({"p\udcff": ["x\udcfe", 1]}) == {"p\\xff": ["x\\xfe", 1]}
    assert json.loads(dumps({"path": "bad\udc80name"})) == {"path": "bad\\x80name"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4))
def test_orjson_bytes_carry_no_raw_control(doc: dict[str, str]) -> None:
    import orjson

    data = json_bytes(orjson.dumps(doc))
    assert json.loads(data) == doc  # the same value
    assert not raw_controls(data.decode("utf-8"))
