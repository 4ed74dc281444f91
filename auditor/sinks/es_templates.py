"""Index and component templates with ECS mappings, and the names of auditor's streams.

Names follow Elastic's data stream naming scheme ``<type>-<dataset>-<namespace>``:
``logs-auditor.resets-<ns>``, ``logs-auditor.findings-<ns>`` and
``metrics-auditor.snapshot-<ns>``. The same templates serve data streams
(Elasticsearch 8/9) and plain indices behind a write alias (servers without data
streams); only the ``data_stream`` member of the index templates differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEMPLATE_VERSION = 1
PRIORITY = 250  # above Elastic's built-in logs-*-* / metrics-*-* (priority 100)

KINDS = ("resets", "findings", "snapshot")
_TYPES = {"resets": "logs", "findings": "logs", "snapshot": "metrics"}


@dataclass(frozen=True, slots=True)
class StreamNames:
    """The write target of each kind of document for one namespace."""

    namespace: str = "default"

    def dataset(self, kind: str) -> str:
        return f"auditor.{kind}"

    def type(self, kind: str) -> str:
        return _TYPES[kind]

    def name(self, kind: str) -> str:
        return f"{_TYPES[kind]}-auditor.{kind}-{self.namespace}"

    def pattern(self, kind: str) -> str:
        return f"{_TYPES[kind]}-auditor.{kind}-*"

    def data_stream_fields(self, kind: str) -> dict[str, str]:
        return {"type": _TYPES[kind], "dataset": self.dataset(kind), "namespace": self.namespace}


KW = {"type": "keyword", "ignore_above": 1024}
LONG = {"type": "long"}
DATE = {"type": "date"}
IP = {"type": "ip"}
DOUBLE = {"type": "double"}
TEXT = {"type": "match_only_text"}


def _obj(**props: Any) -> dict[str, Any]:
    return {"properties": props}


ECS_PROPERTIES: dict[str, Any] = {
    "@timestamp": DATE,
    "message": TEXT,
    "data_stream": _obj(type=KW, dataset=KW, namespace=KW),
    "ecs": _obj(version=KW),
    "event": _obj(
        dataset=KW, action=KW, kind=KW, category=KW, type=KW, outcome=KW, severity=LONG,
        original={"type": "keyword", "index": False, "doc_values": False},
        id=KW, created=DATE, start=DATE, end=DATE,
    ),
    "log": _obj(level=KW, offset=LONG, file=_obj(path=KW, line=LONG)),
    "source": _obj(ip=IP, port=LONG, mac=KW),
    "destination": _obj(ip=IP, port=LONG),
    "network": _obj(transport=KW, type=KW),
    "observer": _obj(ingress=_obj(interface=_obj(name=KW)), egress=_obj(interface=_obj(name=KW))),
    "rule": _obj(name=KW, id=KW, ruleset=KW),
    "http": _obj(request=_obj(method=KW), response=_obj(status_code=LONG, bytes=LONG)),
    "url": _obj(original={"type": "wildcard"}),
    "error": _obj(code=KW, message=TEXT),
    "process": _obj(pid=LONG, name=KW, thread=_obj(id=LONG)),
    "host": _obj(name=KW, hostname=KW),
    "agent": _obj(name=KW, type=KW, version=KW),
    "auditor": _obj(
        time_relative={"type": "boolean"},
        run=_obj(id=KW, window=_obj(start=DATE, end=DATE), files=LONG, events=LONG),
        limits=_obj(name=KW, scope=KW, unit=KW, value=DOUBLE, value_text=KW, observed=DOUBLE,
                    usage={"type": "float"}),
        counters=_obj(name=KW, delta=LONG),
        skipped=_obj(part=KW, reason=KW),
        finding=_obj(
            cause=KW, title=KW, confidence=KW, score={"type": "float"}, summary=TEXT, remedy=TEXT,
            resets=LONG, ports=LONG, first_seen=DATE, last_seen=DATE, side=KW, scope=KW,
            intentional={"type": "boolean"},
            evidence=_obj(source=KW, line=LONG, text=TEXT, weight={"type": "float"}, kind=KW),
            runners_up=_obj(cause=KW, score={"type": "float"}),
            # free-form records kept whole, not indexed (their value types vary)
            rule={"type": "object", "enabled": False},
            limit={"type": "object", "enabled": False},
            limit_name=KW,
        ),
        ruleset=_obj(fingerprint=KW, previous=KW, changed={"type": "boolean"}, skipped=KW),
        spool=_obj(dropped=LONG, pending=LONG),
    ),
}

DYNAMIC_TEMPLATES = [
    {"auditor_strings": {"match_mapping_type": "string", "mapping": KW}},
]


def component_templates() -> dict[str, dict[str, Any]]:
    meta = {"managed_by": "auditor", "version": TEMPLATE_VERSION}
    return {
        "auditor-ecs@mappings": {
            "template": {
                "mappings": {
                    "dynamic_templates": DYNAMIC_TEMPLATES,
                    "properties": ECS_PROPERTIES,
                }
            },
            "_meta": meta,
        },
        "auditor@settings": {
            "template": {"settings": {"index": {"mapping": {"total_fields": {"limit": 2000}}}}},
            "_meta": meta,
        },
    }


def index_template(names: StreamNames, kind: str, data_stream: bool) -> dict[str, Any]:
    """The body of the index template for ``kind`` (with or without ``data_stream``)."""
    body: dict[str, Any] = {
        "index_patterns": [names.pattern(kind)],
        "composed_of": ["auditor@settings", "auditor-ecs@mappings"],
        "priority": PRIORITY,
        "_meta": {"managed_by": "auditor", "version": TEMPLATE_VERSION, "data_stream": data_stream},
    }
    if data_stream:
        body["data_stream"] = {}
    return body


def template_name(kind: str) -> str:
    return f"auditor.{kind}"
