"""``auditor fleet``: causes of resets across hosts, from Elasticsearch aggregations.

One search with aggregations (no document is downloaded): per cause, how many
hosts, which hosts, how many resets and the trend over the period; plus the
reset events per host. "The same conntrack limit is hit on 14 web servers" is
one row.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from auditor.commands._common import clean_errors, fail
from auditor.config import ConfigError, load_config
from auditor.sinks.text import cell, dumps, hanging, line
from auditor.sinks.text import console as text_console
from auditor.timeutil import parse_duration

SPARK = " ▁▂▃▄▅▆▇█"
EXAMPLES = """
[bold]Examples[/]

  auditor fleet --es https://es1:9200 --since 7d
  auditor fleet --config /etc/auditor/auditor.toml --format json

[bold]Exit status[/]

  0  the summary was printed
  2  no server, a bad option, credentials refused, or an answer that could
     not be read (one line names the field)
"""


class Format(StrEnum):
    table = "table"
    json = "json"

BUCKETS = 12


def fleet_query(since: timedelta) -> tuple[dict[str, Any], dict[str, Any]]:
    """The findings and resets aggregation requests for the last ``since``."""
    interval = max(60, int(since.total_seconds()) // BUCKETS)
    rng = {"range": {"@timestamp": {"gte": f"now-{int(since.total_seconds())}s"}}}
    findings = {
        "size": 0,
        "query": rng,
        "aggs": {
            "causes": {
                "terms": {"field": "auditor.finding.cause", "size": 50},
                "aggs": {
                    "hosts": {"cardinality": {"field": "host.name"}},
                    "top_hosts": {"terms": {"field": "host.name", "size": 5}},
                    "resets": {"sum": {"field": "auditor.finding.resets"}},
                    "title": {"terms": {"field": "auditor.finding.title", "size": 1}},
                    "trend": {
                        "date_histogram": {
                            "field": "@timestamp",
                            "fixed_interval": f"{interval}s",
                            "min_doc_count": 0,
                            "extended_bounds": {"min": f"now-{int(since.total_seconds())}s",
                                                "max": "now"},
                        },
                        "aggs": {"resets": {"sum": {"field": "auditor.finding.resets"}}},
                    },
                },
            }
        },
    }
    resets = {
        "size": 0,
        "query": rng,
        "aggs": {"hosts": {"terms": {"field": "host.name", "size": 50},
                           "aggs": {"actions": {"terms": {"field": "event.action", "size": 3}}}}},
    }
    return findings, resets


def sparkline(values: list[float]) -> str:
    peak = max(values, default=0)
    if peak <= 0:
        return "·" * len(values)
    return "".join(SPARK[min(8, round(8 * v / peak))] for v in values)


class AnswerError(ValueError):
    """An aggregation answer without a field we need, or with a field of the wrong type."""


def _at(node: Any, where: str, *path: str | int, kind: type | tuple[type, ...] = object) -> Any:
    """``node[path...]``, checked; a missing or mistyped field raises :class:`AnswerError`."""
    for step in path:
        where += f"[{step}]" if isinstance(step, int) else f".{step}"
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            raise AnswerError(f"{where}: missing") from None
    if not isinstance(node, kind) or isinstance(node, bool):
        raise AnswerError(f"{where}: expected {getattr(kind, '__name__', 'a value')}, "
                          f"got {type(node).__name__}")
    return node


def _number(node: Any, where: str, *path: str | int) -> float:
    value = _at(node, where, *path, kind=(int, float, type(None)))
    return float(value or 0)


def _key(node: Any, where: str) -> str:
    return str(_at(node, where, "key", kind=(str, int, float)))


def _buckets(node: Any, where: str, *path: str) -> list[tuple[str, Any]]:
    """``(location, bucket)`` of the ``buckets`` list at ``path``, each named for errors."""
    name = ".".join((where, *path, "buckets"))
    items = _at(node, where, *path, "buckets", kind=list)
    return [(f"{name}[{i}]", item) for i, item in enumerate(items)]


def _top(answer: dict[str, Any], where: str, agg: str) -> list[tuple[str, dict[str, Any]]]:
    """The top-level buckets of ``agg`` (none when there are no aggregations: no index yet)."""
    if answer.get("aggregations") is None:
        return []
    return [(at, _at(b, at, kind=dict))
            for at, b in _buckets(answer, where, "aggregations", agg)]


def summarise(findings: dict[str, Any], resets: dict[str, Any]) -> dict[str, Any]:
    """The aggregation answers as rows: causes across hosts, and resets per host.

    Raises :class:`AnswerError` (naming the field) on an answer of another shape.
    """
    causes = []
    for at, b in _top(findings, "findings", "causes"):
        titles = _buckets(b, at, "title") if "title" in b else []
        causes.append({
            "cause": _key(b, at),
            "title": _key(titles[0][1], titles[0][0]) if titles else "",
            "hosts": int(_number(b, at, "hosts", "value")),
            "top_hosts": [_key(h, hat) for hat, h in _buckets(b, at, "top_hosts")],
            "findings": int(_number(b, at, "doc_count")),
            "resets": int(_number(b, at, "resets", "value")),
            "trend": [_number(t, tat, "resets", "value") for tat, t in _buckets(b, at, "trend")],
        })
    hosts = [
        {"host": _key(b, at), "events": int(_number(b, at, "doc_count")),
         "actions": {_key(a, aat): int(_number(a, aat, "doc_count"))
                     for aat, a in _buckets(b, at, "actions")}}
        for at, b in _top(resets, "resets", "hosts")
    ]
    return {"causes": causes, "hosts": hosts}


def register(app: typer.Typer) -> None:
    @app.command("fleet", epilog=EXAMPLES)
    @clean_errors
    def fleet_cmd(
        es: list[str] = typer.Option([], "--es", help="Elasticsearch URL (repeatable)."),
        since: str = typer.Option("24h", help="Period to look at, e.g. 24h or 7d."),
        config: str | None = typer.Option(None, "--config", "-c", help="TOML configuration."),
        allow_http: bool = typer.Option(
            False, "--allow-http-credentials",
            help="Send credentials to a plain http:// URL (refused otherwise).",
        ),
        fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
        json_out: bool = typer.Option(False, "--json", hidden=True),
    ) -> None:
        """Causes of resets across hosts: which hosts, which causes, how many, trend."""
        try:
            cfg = load_config(config, overrides={"es_hosts": es,
                                                 "allow_http_credentials": allow_http})
            period = parse_duration(since)
        except (ConfigError, ValueError) as exc:
            fail(str(exc))
        if not cfg.es.hosts:
            fail("no Elasticsearch URL: use --es, AUDITOR_ES_URL or the config file")
        from elastic_transport import TransportError  # the client loads only when used
        from elasticsearch import ApiError

        from auditor.sinks.elasticsearch import credentials_refused, make_client
        from auditor.sinks.es_templates import StreamNames

        names = StreamNames(cfg.es.namespace)
        client = make_client(cfg.es).options(ignore_status=404)
        fq, rq = fleet_query(period)
        try:
            fres = client.search(index=names.name("findings"), **fq).body
            rres = client.search(index=names.name("resets"), **rq).body
        except (ApiError, TransportError) as exc:
            fail(credentials_refused(exc) or f"Elasticsearch: {type(exc).__name__}: {exc}")
        if not isinstance(fres, dict) or not isinstance(rres, dict):
            fail("Elasticsearch: the search answer is not a JSON object")
        try:
            rows = summarise(fres, rres)
        except AnswerError as exc:
            fail(f"Elasticsearch answer not understood: {exc}")
        if json_out or fmt is Format.json:
            sys.stdout.write(dumps(rows, indent=1) + "\n")
            return
        print_fleet(rows, since, names.name("findings"), names.name("resets"), text_console())


def print_fleet(rows: dict[str, Any], since: str, findings_index: str, resets_index: str,
                console: Console) -> None:
    """The summary as two tables; host names, causes and titles come from any host: inert."""
    table = Table(title=line(f"causes across the fleet, last {since}"), header_style="bold")
    table.add_column("cause", overflow="fold")
    for col in ("hosts", "resets", "findings"):
        table.add_column(col, justify="right")
    table.add_column("trend", no_wrap=True)
    table.add_column("hosts (top)", overflow="fold")
    for c in rows["causes"]:
        table.add_row(cell(c["cause"]), cell(c["hosts"]), cell(c["resets"]), cell(c["findings"]),
                      cell(sparkline(c["trend"])), cell(", ".join(c["top_hosts"])))
    console.print(table)
    hosts = Table(title="reset events per host", header_style="bold")
    for col in ("host", "events", "top actions"):
        hosts.add_column(col, overflow="fold")
    for h in rows["hosts"]:
        hosts.add_row(cell(h["host"]), cell(h["events"]),
                      cell(", ".join(f"{k} {v}" for k, v in h["actions"].items())))
    console.print(hosts)
    if not rows["causes"] and not rows["hosts"]:
        hanging(console, line((f"nothing in {findings_index} / {resets_index} "
                            f"for the last {since}", "dim")))
