"""Writing events: a rich table, one JSON document, or NDJSON (ECS-shaped), streamed.

The ECS documents are written by :mod:`auditor.sinks.es_json`, as Elasticsearch gets them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from auditor.models import Event
from auditor.sinks.es_json import event_bytes, event_json


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


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


def write_table(events: Iterable[Event], console: Console, limit: int) -> int:
    table = Table(show_lines=False, header_style="bold", expand=False)
    for col in ("time", "action", "source", "destination", "detail", "at"):
        table.add_column(col, overflow="fold")
    n = 0
    for event in events:
        n += 1
        if n > limit:
            continue
        detail = event.rule_name or event.error_message or event.message or ""
        if event.status_code is not None:
            detail = f"{event.status_code} {event.http_method or ''} {event.url or ''}".strip()
        table.add_row(
            event.timestamp.isoformat(timespec="seconds")
            + (" (rel)" if event.time_relative else ""),
            event.action,
            _endpoint(event.source_ip, event.source_port),
            _endpoint(event.destination_ip, event.destination_port),
            detail[:120],
            f"{event.location.path}:{event.location.line}",
        )
    console.print(table)
    if n > limit:
        console.print(f"[dim]{n - limit} more events not shown (use --limit or --format ndjson)[/]")
    return n
