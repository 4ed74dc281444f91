"""Core data model: locations, events, limits, findings and parse issues.

Every record is a frozen, typed dataclass. Fields that have an Elastic Common
Schema (ECS) name carry it in their metadata (``ecs``), and :func:`to_ecs`
turns any of these records into the nested document Elasticsearch expects,
so that no mapping layer sits between auditor and the index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def ecs(name: str, default: Any = None) -> Any:
    """A dataclass field whose value lands at ECS path ``name``."""
    return field(default=default, metadata={"ecs": name})


@dataclass(frozen=True, slots=True)
class Location:
    """Where a record came from: a file (or command) and a 1-based line."""

    path: str
    line: int = 0
    offset: int | None = None  # byte offset of the line start, when known

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a log, a counter or a rule told us, in ECS terms.

    ``action`` is auditor's classification (``event.action``), e.g.
    ``netfilter-reject``, ``upstream-reset``, ``conntrack-table-full``.
    """

    timestamp: datetime = ecs("@timestamp")
    location: Location = field(default=Location("-"), metadata={"ecs": None})
    dataset: str = ecs("event.dataset", "auditor.unknown")
    action: str = ecs("event.action", "unknown")
    kind: str = ecs("event.kind", "event")
    category: tuple[str, ...] = ecs("event.category", ("network",))
    type: tuple[str, ...] = ecs("event.type", ("connection",))
    outcome: str | None = ecs("event.outcome")
    severity: int | None = ecs("event.severity")
    log_level: str | None = ecs("log.level")
    source_ip: str | None = ecs("source.ip")
    source_port: int | None = ecs("source.port")
    source_mac: str | None = ecs("source.mac")
    destination_ip: str | None = ecs("destination.ip")
    destination_port: int | None = ecs("destination.port")
    transport: str | None = ecs("network.transport")
    network_type: str | None = ecs("network.type")
    ingress_interface: str | None = ecs("observer.ingress.interface.name")
    egress_interface: str | None = ecs("observer.egress.interface.name")
    rule_name: str | None = ecs("rule.name")
    http_method: str | None = ecs("http.request.method")
    url: str | None = ecs("url.original")
    status_code: int | None = ecs("http.response.status_code")
    response_bytes: int | None = ecs("http.response.bytes")
    error_code: str | None = ecs("error.code")
    error_message: str | None = ecs("error.message")
    process_pid: int | None = ecs("process.pid")
    process_name: str | None = ecs("process.name")
    thread_id: int | None = ecs("process.thread.id")
    host_name: str | None = ecs("host.name")
    message: str | None = ecs("message")
    original: str | None = ecs("event.original")
    # True when the timestamp is only relative to boot (dmesg, boot time unknown).
    time_relative: bool = field(default=False, metadata={"ecs": "auditor.time_relative"})
    # auditor-specific fields (upstream address, TCP flags, nginx connection id...),
    # rendered under ``auditor.<key>``.
    extra: Mapping[str, Any] = field(default_factory=dict, metadata={"ecs": "auditor"})

    @property
    def file(self) -> str:
        return self.location.path

    @property
    def line(self) -> int:
        return self.location.line


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """A line (or file) that a parser could not understand. Never dropped: counted and shown."""

    location: Location
    parser: str
    reason: str
    text: str = ""  # the offending input, truncated for display


@dataclass(frozen=True, slots=True)
class Limit:
    """A resource limit next to its current use, e.g. nf_conntrack_max vs nf_conntrack_count."""

    name: str  # e.g. "net.netfilter.nf_conntrack_max"
    value: int | float | str | None
    observed: int | float | None = None  # current use, when known
    unit: str = ""
    scope: str = "host"  # "host", "pid:1234", "nginx", "listener 0.0.0.0:80"
    location: Location | None = None

    @property
    def usage(self) -> float | None:
        """Observed use as a fraction of the limit, when both are numeric."""
        if isinstance(self.value, int | float) and self.value and self.observed is not None:
            return float(self.observed) / float(self.value)
        return None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence behind a finding, citable as file:line."""

    source: str  # path, command or "counter"
    line: int | None
    text: str
    weight: float = 0.0
    kind: str = "log"  # log | rule | limit | counter | config | report


@dataclass(frozen=True, slots=True)
class FindingRule:
    """The firewall rule a finding names: where it is, what it does, what it counted.

    Built from :func:`auditor.correlate.fwlink.rule_doc` (:meth:`from_doc`); the fields
    keep that document's order and names, so :meth:`to_doc` gives it back."""

    backend: str | None = None
    family: str | None = None
    table: str | None = None
    chain: str | None = None
    position: int | None = None  # left out of the document when unknown
    handle: int | None = None  # left out of the document when unknown
    text: str = ""
    packets: int | None = None
    bytes: int | None = None
    target: str | None = None
    reject_with: str | None = None
    owner: str | None = None
    comment: str | None = None
    location: str | None = None  # file:line of the rule in the saved rule set
    condition: str | None = None  # when traced: the condition under which it decided
    leads_to: RuleJump | None = None  # a conditional jump: the rule that answers its packets

    def to_doc(self) -> dict[str, Any]:
        """The report's ``rule`` object (keys stable: auditor.report/1)."""
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.leads_to is not None:
            doc["leads_to"] = self.leads_to.to_doc()
        return {
            k: v for k, v in doc.items() if k not in _OPTIONAL_RULE_KEYS or v not in (None, "")
        }

    @property
    def counted(self) -> str:
        """`` (N packets)`` when the rule's counter was read, else nothing."""
        return f" ({self.packets} packets)" if self.packets is not None else ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> FindingRule:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        if isinstance(doc.get("leads_to"), Mapping):
            jump = {f.name for f in dataclasses.fields(RuleJump)}
            values["leads_to"] = RuleJump(**{k: v for k, v in doc["leads_to"].items() if k in jump})
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RuleJump:
    """The rule a conditional jump leads to (e.g. the REJECT of a rate limit's chain)."""

    chain: str | None = None
    position: int | None = None
    handle: int | None = None
    text: str = ""
    target: str | None = None
    reject_with: str | None = None
    packets: int | None = None
    location: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_OPTIONAL_RULE_KEYS = frozenset({"position", "handle", "condition", "leads_to"})


@dataclass(frozen=True, slots=True)
class FindingLimit:
    """The limit a finding names, with its use and the value the remedy suggests."""

    name: str
    value: int | float | str | None
    observed: int | float | None = None
    unit: str = ""
    scope: str = "host"
    usage: float | None = None
    suggested: int | float | str | None = None
    location: str | None = None  # file:line where it is set

    def to_doc(self) -> dict[str, Any]:
        """The report's ``limit`` object (keys stable: auditor.report/1)."""
        return {
            "name": self.name,
            "value": self.value,
            "observed": self.observed,
            "unit": self.unit,
            "scope": self.scope,
            "usage": self.usage,
        }

    @property
    def brief(self) -> str:
        """``name = value, observed N``, without the parts that are not known."""
        text = self.name if self.value is None else f"{self.name} = {self.value}"
        return text + (f", observed {self.observed}" if self.observed is not None else "")

    @classmethod
    def of(cls, limit: Limit, suggested: int | float | str | None = None) -> FindingLimit:
        return cls(
            limit.name,
            limit.value,
            limit.observed,
            limit.unit,
            limit.scope,
            limit.usage,
            suggested,
            str(limit.location) if limit.location else None,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """A named cause for a group of resets, with its evidence, confidence and remedy."""

    cause: str  # stable id from rules/, e.g. "conntrack-table-full"
    title: str
    confidence: str  # high | medium | low
    score: float
    summary: str
    remedy: str
    resets: int = 0
    ports: tuple[int, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    side: str = ""  # client | firewall | kernel | nginx | upstream
    intentional: bool = False
    rule: FindingRule | None = None
    limit: FindingLimit | None = None
    evidence: tuple[Evidence, ...] = ()
    runners_up: tuple[tuple[str, float], ...] = ()
    # upstreams, clients, killed process, intentional reason...: shown in reports, not scored
    details: Mapping[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


# (attribute, ECS path split on dots) for every mapped Event field but ``extra``.
_EVENT_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (f.name, tuple(f.metadata["ecs"].split(".")))
    for f in dataclasses.fields(Event)
    if f.metadata.get("ecs") and f.name != "extra"
)


_SCALARS = (str, int, float, bool)


def to_ecs(event: Event) -> dict[str, Any]:
    """The event as a nested ECS document; empty fields are left out."""
    doc: dict[str, Any] = {}
    for name, parts in _EVENT_PATHS:
        value = getattr(event, name)
        if value is None or value == () or value is False:
            continue
        if not isinstance(value, _SCALARS):
            value = _plain(value)
        node = doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if event.extra:
        doc.setdefault("auditor", {}).update(_plain(event.extra))
    loc = event.location
    log = doc.setdefault("log", {})
    log["file"] = {"path": loc.path, "line": loc.line} if loc.line else {"path": loc.path}
    if loc.offset is not None:
        log["offset"] = loc.offset
    return doc


def plain(record: Any) -> Any:
    """Any model record (dataclass, tuple, mapping, datetime) as JSON-ready data."""
    return _plain(record)
