"""Builds real Events, Limits, rule sets and check Findings from the compact YAML of cause cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from auditor.correlate.engine import correlate
from auditor.correlate.report import Report
from auditor.correlate.scoring import Query
from auditor.correlate.state import StateView
from auditor.models import Event, Finding, Limit, Location

T0 = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
CASES = Path(__file__).parent / "cases"
KERNEL = {
    "firewall-reject",
    "firewall-drop",
    "firewall-rate-limit",
    "conntrack-table-full",
    "conntrack-drop",
    "syn-flood",
    "orphan-sockets",
    "tcp-memory-pressure",
    "file-max-reached",
    "oom-kill",
    "conntrack-invalid",
    "firewall-log",
}


def dataset_of(action: str) -> str:
    if action in KERNEL:
        return "kernel"
    return "nginx.access" if action.startswith("http-") else "nginx.error"


def make_events(specs: list[dict[str, Any]], path: str = "case.log") -> list[Event]:
    events: list[Event] = []
    line = 0
    for spec in specs:
        for i in range(int(spec.get("count", 1))):
            line += 1
            extra: dict[str, Any] = {}
            if "upstream" in spec:
                key = "upstream_addr" if spec["action"].startswith("http-") else "upstream"
                extra[key] = spec["upstream"]
            if "flags" in spec:
                extra["tcp_flags"] = spec["flags"].split(",")
            if "cgroup" in spec:
                extra["cgroup"] = spec["cgroup"]
            extra.update(spec.get("extra", {}))
            for key in ("zone", "excess"):
                if key in spec:
                    extra[key] = spec[key] if key == "zone" else float(spec[key]) + i / 10
            events.append(
                Event(
                    timestamp=T0 + timedelta(seconds=float(spec.get("at", 0)) + i),
                    location=Location(spec.get("file", path), line),
                    dataset=spec.get("dataset", dataset_of(spec["action"])),
                    action=spec["action"],
                    source_ip=spec.get("src"),
                    destination_ip=spec.get("dst"),
                    destination_port=spec.get("port"),
                    source_port=spec.get("sport"),
                    transport=spec.get("proto", "tcp") if spec.get("src") else None,
                    process_pid=spec.get("pid"),
                    process_name=spec.get("process"),
                    rule_name=spec.get("prefix"),
                    ingress_interface=spec.get("iif"),
                    egress_interface=spec.get("oif"),
                    extra=extra,
                    original=spec.get("text", f"{spec['action']} #{i + 1}"),
                )
            )
    return events


def make_state(case: dict[str, Any]) -> StateView:
    limits = tuple(
        Limit(d["name"], d.get("value"), d.get("observed"), d.get("unit", ""),
              location=Location("nginx.conf", d["line"]) if "line" in d else None)
        for d in case.get("limits", [])
    )
    checks = tuple(
        Finding(
            cause=c, title=c, confidence="low", score=0.3, summary=f"check {c} fired", remedy=""
        )
        for c in case.get("checks", [])
    )
    return StateView(
        limits=limits,
        counters=dict(case.get("counters", {})),
        since_boot=bool(case.get("since_boot", False)),
        window_seconds=60.0,
        listeners=tuple(("0.0.0.0", int(p)) for p in case.get("listeners", [])),
        facts=frozenset(case.get("facts", [])),
        checks=checks,
        host="case-host",
        known=True,
    )


def make_rulesets(case: dict[str, Any]) -> list[Any]:
    import auditor.firewall as firewall

    out = []
    if "iptables" in case:
        out.append(firewall.read_text(case["iptables"], "case.rules"))
    return out


def run_case(case: dict[str, Any]) -> Report:
    query = Query(**case["query"]) if "query" in case else None
    return correlate(
        make_events(case.get("events", [])), make_rulesets(case), make_state(case), query, now=T0
    )


def load_cases() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in sorted(CASES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for case in doc["cases"]:
            out.append((doc["cause"], case["name"], case))
    return out
