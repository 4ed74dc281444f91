"""Writing events: a rich table, one JSON document, or NDJSON (ECS-shaped), streamed.

Text from the events is inert in the table and valid UTF-8 in JSON (sinks.text); the
ECS documents are written by :mod:`auditor.sinks.es_json`, as Elasticsearch gets them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from auditor.models import Event
from auditor.sinks.es_json import event_bytes, event_json
from auditor.sinks.text import cell, clip, dumps, indented, line, short_path


def _dumps(doc: Any) -> str:
    return dumps(doc, separators=(",", ":"))


def write_ndjson(events: Iterable[Event], out: IO[str]) -> int:
    """One ECS document per line, by the serialiser the Elasticsearch sink uses."""
    raw: IO[bytes] | None = getattr(out, "buffer", None)
    n = 0
    if raw is None:
        for event in events:
            out.write(event_json(event, None))
            out.write("\n")
            n += 1
        return n
    out.flush()
    for event in events:
        raw.write(event_bytes(event, None))
        raw.write(b"\n")
        n += 1
    raw.flush()
    return n


def write_json(events: Iterable[Event], out: IO[str], summary: Any) -> int:
    """One object ``{"events": [...], "summary": ...}``, written as it streams.

    ``summary`` may be a callable, evaluated after the events have been written
    (the counts are only known then).
    """
    out.write('{"events":[')
    n = 0
    for event in events:
        if n:
            out.write(",")
        out.write("\n")
        out.write(event_json(event, None))
        n += 1
    out.write('\n],"summary":')
    out.write(_dumps(summary() if callable(summary) else summary))
    out.write("}\n")
    return n


def _endpoint(ip: str | None, port: int | None) -> str:
    if ip is None:
        return ""
    host = f"[{ip}]" if ":" in ip and port is not None else ip
    return f"{host}:{port}" if port is not None else host


WIDE = 140  # narrower terminals get two lines per event instead of a table


def _row(event: Event) -> tuple[str, str, str, str, str, str]:
    detail = event.rule_name or event.error_message or event.message or ""
    if event.status_code is not None:
        detail = f"{event.status_code} {event.http_method or ''} {event.url or ''}".strip()
    return (
        event.timestamp.isoformat(timespec="seconds") + (" (rel)" if event.time_relative else ""),
        event.action,
        _endpoint(event.source_ip, event.source_port),
        _endpoint(event.destination_ip, event.destination_port),
        detail,
        f"{event.location.path}:{event.location.line}",
    )


def write_table(events: Iterable[Event], console: Console, limit: int) -> int:
    """Up to ``limit`` events, as a table or (narrow terminal) two lines each; the count.

    Text from events is inert (see sinks.text).
    """
    wide = console.width >= WIDE
    table = Table(show_lines=False, header_style="bold", expand=False)
    for col in ("time", "action", "source", "destination", "detail", "at"):
        table.add_column(col, overflow="fold")
    n = 0
    for event in events:
        n += 1
        if n > limit:
            continue
        when, action, src, dst, detail, at = _row(event)
        if wide:
            table.add_row(cell(when), cell(action), cell(src), cell(dst), cell(clip(detail, 120)),
                          cell(short_path(at, 40)))
            continue
        flow = f"{src or '?'} -> {dst}" if dst else src
        console.print(line(when, " ", (action, "bold"), " ", flow))
        console.print(indented(line(clip(detail, 200), "  ", (short_path(at, 60), "dim"))))
    if wide:
        console.print(table)
    if n > limit:
        console.print(line(
            (f"{n - limit} more events not shown (use --limit or --format ndjson)", "dim")
        ))
    return n
