"""``auditor fleet``: causes of resets across hosts, from Elasticsearch aggregations.

One search with aggregations (no document is downloaded): per cause, how many
hosts, which hosts, how many resets and the trend over the period; plus the
reset events per host. "The same conntrack limit is hit on 14 web servers" is
one row.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from auditor.commands._common import clean_errors, fail
from auditor.config import ConfigError, load_config
from auditor.timeutil import parse_duration

SPARK = " ▁▂▃▄▅▆▇█"
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


def summarise(findings: dict[str, Any], resets: dict[str, Any]) -> dict[str, Any]:
    """The aggregation answers as rows: causes across hosts, and resets per host."""
    causes = []
    for b in findings.get("aggregations", {}).get("causes", {}).get("buckets", []):
        titles = b.get("title", {}).get("buckets", [])
        causes.append({
            "cause": b["key"],
            "title": titles[0]["key"] if titles else "",
            "hosts": int(b["hosts"]["value"]),
            "top_hosts": [h["key"] for h in b["top_hosts"]["buckets"]],
            "findings": b["doc_count"],
            "resets": int(b["resets"]["value"] or 0),
            "trend": [float(t["resets"]["value"] or 0) for t in b["trend"]["buckets"]],
        })
    hosts = [
        {"host": b["key"], "events": b["doc_count"],
         "actions": {a["key"]: a["doc_count"] for a in b["actions"]["buckets"]}}
        for b in resets.get("aggregations", {}).get("hosts", {}).get("buckets", [])
    ]
    return {"causes": causes, "hosts": hosts}


def register(app: typer.Typer) -> None:
    @app.command("fleet")
    @clean_errors
    def fleet_cmd(
        es: list[str] = typer.Option([], "--es", help="Elasticsearch URL (repeatable)."),
        since: str = typer.Option("24h", help="Period to look at, e.g. 24h or 7d."),
        config: str | None = typer.Option(None, "--config", "-c", help="TOML configuration."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ) -> None:
        """Causes of resets across hosts: which hosts, which causes, how many, trend."""
        try:
            cfg = load_config(config, overrides={"es_hosts": es})
            period = parse_duration(since)
        except (ConfigError, ValueError) as exc:
            fail(str(exc))
        if not cfg.es.hosts:
            fail("no Elasticsearch URL: use --es, AUDITOR_ES_URL or the config file")
        from elastic_transport import TransportError  # the client loads only when used
        from elasticsearch import ApiError

        from auditor.sinks.elasticsearch import make_client
        from auditor.sinks.es_templates import StreamNames

        names = StreamNames(cfg.es.namespace)
        client = make_client(cfg.es).options(ignore_status=404)
        fq, rq = fleet_query(period)
        try:
            fres = client.search(index=names.name("findings"), **fq).body
            rres = client.search(index=names.name("resets"), **rq).body
        except (ApiError, TransportError) as exc:
            fail(f"Elasticsearch: {type(exc).__name__}: {exc}")
        rows = summarise(fres, rres)
        if json_out:
            sys.stdout.write(json.dumps(rows, indent=1) + "\n")
            return
        console = Console()
        table = Table(title=f"causes across the fleet, last {since}", header_style="bold")
        numeric = ("hosts", "resets", "findings")
        for col in ("cause", "hosts", "resets", "findings", "trend", "hosts (top)"):
            table.add_column(col, justify="right" if col in numeric else "left")
        for c in rows["causes"]:
            table.add_row(c["cause"], str(c["hosts"]), str(c["resets"]), str(c["findings"]),
                          sparkline(c["trend"]), ", ".join(c["top_hosts"]))
        console.print(table)
        hosts = Table(title="reset events per host", header_style="bold")
        for col in ("host", "events", "top actions"):
            hosts.add_column(col)
        for h in rows["hosts"]:
            hosts.add_row(h["host"], str(h["events"]),
                          ", ".join(f"{k} {v}" for k, v in h["actions"].items()))
        console.print(hosts)
        if not rows["causes"] and not rows["hosts"]:
            console.print(f"[dim]nothing in {names.name('findings')} / {names.name('resets')} "
                          f"for the last {since}[/]")
