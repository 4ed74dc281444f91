"""Builds real Events, Limits, rule sets and host facts from the compact YAML of cause cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from auditor.correlate.engine import correlate
from auditor.correlate.report import Report
from auditor.correlate.scoring import Query
from auditor.limits.snapshot import HostState
from auditor.models import Event, Limit, Location
from auditor.parsers.host.listeners import Listener
from auditor.vocabulary import Fact, fact

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


def make_state(case: dict[str, Any]) -> HostState:
    """The typed host facts a case describes: limits, counters over 60 s (or since boot),
    listeners and facts by name (a fact builder's values are not needed to name a cause)."""
    limits = tuple(
        Limit(d["name"], d.get("value"), d.get("observed"), d.get("unit", ""),
              d.get("scope", "host"),
              Location("nginx.conf", d["line"]) if "line" in d else None)
        for d in case.get("limits", [])
    )
    counters = dict(case.get("counters", {}))
    since_boot = bool(case.get("since_boot", False))
    # The counters were read 30 s before and after T0 + window_at seconds.
    at = T0 + timedelta(seconds=float(case.get("window_at", 0)))
    return HostState(
        limits=limits,
        after=counters,
        deltas={} if since_boot else counters,
        window_seconds=None if since_boot else 60.0,
        window_start=None if since_boot else at - timedelta(seconds=30),
        window_end=None if since_boot else at + timedelta(seconds=30),
        listeners=tuple(_listener(x) for x in case.get("listeners", [])),
        facts=tuple(_fact(f) for f in case.get("facts", [])),
        host="case-host",
    )


def _listener(spec: int | dict[str, Any]) -> Listener:
    """A port, or ``{port, process}`` (the process ``ss -p`` names)."""
    if isinstance(spec, int):
        return Listener("0.0.0.0", spec, 0, 128)
    return Listener("0.0.0.0", int(spec["port"]), 0, 128,
                    processes=((str(spec["process"]), 1000, 3),))


def _fact(spec: str | dict[str, Any]) -> Fact:
    """A fact by name, or ``{name, ports, <param>: value...}``."""
    if isinstance(spec, str):
        return Fact(spec)
    params = {k: v for k, v in spec.items() if k not in ("name", "ports")}
    return fact(spec["name"], ports=tuple(spec.get("ports", ())), **params)


def make_rulesets(case: dict[str, Any]) -> list[Any]:
    import auditor.firewall as firewall

    out = []
    if "iptables" in case:
        out.append(firewall.read_text(case["iptables"], "case.rules"))
    if "nft" in case:  # `nft -j list ruleset` JSON
        out.append(firewall.read_text(case["nft"], "case.nft.json"))
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
