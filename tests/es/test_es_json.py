"""The fast event serialiser (orjson) against the reference: ``to_ecs`` and the json module."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.models import Event, Location, to_ecs
from auditor.sinks.es_docs import DocBuilder
from auditor.sinks.es_ids import EventIds, event_id
from auditor.sinks.es_json import doc_bytes, event_bytes, event_doc, stdlib_event_bytes
from auditor.sinks.es_templates import StreamNames
from auditor.sinks.events import write_json, write_ndjson
from auditor.sinks.text import utf8_clean

TAIL = {"agent": {"name": "auditor"}, "data_stream": {"type": "logs", "namespace": "t"}}

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
opt_text = st.none() | text | st.just("")
opt_int = st.none() | st.integers(-(2**63), 2**63 - 1)
times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.none() | st.just(UTC)
                     | st.sampled_from([ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"),
                                        timezone(timedelta(hours=-3, minutes=-30))]))
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
           | st.floats(allow_nan=False, allow_infinity=False) | times)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.lists(inner, max_size=3)
    | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    loc = Location(draw(text), draw(st.integers(0, 10**9)),
                   draw(st.none() | st.integers(0, 10**12)))
    return Event(
        timestamp=draw(times),
        location=loc,
        dataset=draw(text),
        action=draw(text),
        category=draw(st.lists(text, max_size=3).map(tuple)),
        type=draw(st.lists(text, max_size=3).map(tuple)),
        outcome=draw(opt_text),
        severity=draw(opt_int),
        log_level=draw(opt_text),
        source_ip=draw(opt_text),
        source_port=draw(st.none() | st.integers(0, 65535)),
        destination_ip=draw(opt_text),
        destination_port=draw(st.none() | st.integers(0, 65535)),
        ingress_interface=draw(opt_text),
        egress_interface=draw(opt_text),
        status_code=draw(opt_int),
        host_name=draw(opt_text),
        message=draw(opt_text),
        original=draw(opt_text),
        time_relative=draw(st.booleans()),
        extra=draw(st.dictionaries(text, values, max_size=5)),
    )


def reference(event: Event, host: str) -> Any:
    want = to_ecs(event)
    if event.host_name is None:
        want.setdefault("host", {})["name"] = host
    want.update(TAIL)
    return json.loads(json.dumps(want, default=str))


@settings(max_examples=300, deadline=None)
@given(events())
def test_fast_serialiser_equals_json_of_to_ecs(event: Event) -> None:
    fast = event_bytes(event, "fallback-host", TAIL)
    assert b"\n" not in fast
    assert json.loads(fast) == reference(event, "fallback-host")
    assert json.loads(fast) == json.loads(stdlib_event_bytes(event, "fallback-host", TAIL))


def test_values_orjson_refuses_fall_back_to_the_reference() -> None:
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    odd: list[dict[Any, Any]] = [
        {1: "int key", "x": 2},  # non-string key: orjson refuses, json writes "1"
        {"big": 2**70},  # beyond 64 bits
        {"lone": "\udc80"},  # lone surrogate: written as the escape text \x80 (valid UTF-8)
        {"when": date(2026, 11, 24), "set": frozenset({"a"}), "b": b"raw"},
        {"nested": {"k": (t0, {"d": t0})}},
    ]
    for extra in odd:
        ev = Event(t0, Location("/var/log/x.log", 3, 120), extra=extra)
        fast = event_bytes(ev, "h").decode("utf-8")
        slow = stdlib_event_bytes(ev, "h").decode("utf-8")
        assert json.loads(fast) == json.loads(slow)
        want = utf8_clean(json.loads(json.dumps(to_ecs(ev)["auditor"], default=str)))
        assert json.loads(fast)["auditor"] == want


def test_document_shape_and_missing_host() -> None:
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    ev = Event(t0, Location("/l", 0), time_relative=True, extra={"uptime": 1.5})
    doc = event_doc(ev, "web-1", None)
    assert doc["host"] == {"name": "web-1"} and doc["log"] == {"file": {"path": "/l"}}
    assert doc["auditor"] == {"time_relative": True, "uptime": 1.5}
    assert "outcome" not in doc["event"]
    named = Event(t0, Location("/l", 2, 10), host_name="db-2")
    assert json.loads(event_bytes(named, "web-1"))["host"] == {"name": "db-2"}


def test_event_ids_reuse_the_prefix_and_match_event_id() -> None:
    ids = EventIds("web-1")
    for source, identity, offset in [("kern", "abc", 0), ("kern", "abc", 1234),
                                     ("nginx", "abc", -7), ("kern", "ünï", 2**40)]:
        assert ids.id(source, identity, offset) == event_id("web-1", source, identity, offset)
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    doc = DocBuilder("web-1", StreamNames("prod")).event(
        Event(t0, Location("/l", 5)), "kern", "ident")
    assert doc.id == event_id("web-1", "kern", "ident", -5)


@settings(max_examples=100, deadline=None)
@given(st.lists(events(), max_size=4))
def test_parse_ndjson_is_to_ecs_by_the_fast_serialiser(evs: list[Event]) -> None:
    """``auditor parse --format ndjson`` writes exactly ``to_ecs`` of each event (no host added),
    whether its output is a text stream with a byte buffer (stdout) or without one."""
    want = [json.loads(json.dumps(to_ecs(e), default=str)) for e in evs]
    raw = io.BytesIO()
    wrapped = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogatepass")
    assert write_ndjson(iter(evs), wrapped) == len(evs)
    assert [json.loads(line) for line in raw.getvalue().split(b"\n")[:-1]] == want
    plain_text = io.StringIO()
    write_ndjson(iter(evs), plain_text)
    # records end at "\n" only (str.splitlines would also split at U+0085 inside a value)
    assert [json.loads(line) for line in plain_text.getvalue().split("\n")[:-1]] == want
    whole = io.StringIO()
    write_json(iter(evs), whole, {"files": 0})
    assert json.loads(whole.getvalue()) == {"events": want, "summary": {"files": 0}}


def test_report_ndjson_uses_the_fast_serialiser_for_every_document() -> None:
    doc = {"a": {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}, "big": 2**70, "nan": None}
    assert json.loads(doc_bytes(doc)) == json.loads(json.dumps(doc, default=lambda v: v.isoformat()))
