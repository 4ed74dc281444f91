"""The vocabulary registry: parsers emit only registered actions, the engine states only
registered facts, and the catalog loader rejects unknown actions, facts and placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from auditor import vocabulary
from auditor.correlate import engine, grouping
from auditor.correlate.catalog import CatalogError, load_catalog, load_default
from auditor.parsers import registry
from auditor.parsers.nginx_access import NginxAccessParser
from tests.correlate.casekit import make_events, make_rulesets, make_state

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "logs"


def test_every_action_on_the_samples_is_registered() -> None:
    seen: set[str] = set()
    for golden in SAMPLES.glob("*/*.expected.ndjson"):
        for line in golden.read_text(encoding="utf-8").splitlines():
            action = json.loads(line).get("event", {}).get("action")
            if action:
                seen.add(action)
    assert len(seen) > 20
    assert seen <= set(vocabulary.ACTIONS), sorted(seen - set(vocabulary.ACTIONS))


def test_every_parser_pattern_is_a_registered_action() -> None:
    for name, cls in registry().items():
        unknown = set(cls.patterns) - set(vocabulary.ACTIONS)
        assert not unknown, f"{name} emits unregistered actions {sorted(unknown)}"
    assert set(NginxAccessParser.patterns) <= set(vocabulary.ACTIONS)


def test_engine_facts_are_registered_group_facts() -> None:
    source = Path(engine.__file__).read_text(encoding="utf-8")
    stated = set(re.findall(r'facts\.add\("([a-z0-9-]+)"\)', source))
    assert stated >= {"logged-as-invalid", "rejected-only-as-invalid", "no-listener"}
    for name in stated:
        assert vocabulary.FACTS[name].group, name


def test_roles_drive_grouping() -> None:
    assert "oom-kill" in grouping.CONTEXT_ONLY and "oom-kill" not in grouping.HOST_WIDE
    assert "syn-flood" in grouping.HOST_WIDE
    assert {"firewall-log"} == grouping.UNCERTAIN
    assert {"firewall-drop"} == grouping.DROPPED
    assert {"limit-conn", "limit-req"} == grouping.ZONE_LIMITED
    for spec in vocabulary.ACTIONS.values():
        assert spec.roles and spec.roles <= set(vocabulary.ROLES), spec


def test_facts_are_typed_and_checked() -> None:
    f = vocabulary.fact("listener-queue-full", port=9000, backlog=1, queued=1, process=None)
    assert f.text == "listener-queue-full port=9000 backlog=1 queued=1"
    assert f.get("backlog") == 1 and f.get("process") is None
    with pytest.raises(ValueError, match="unregistered fact"):
        vocabulary.Fact("no-such-fact")
    with pytest.raises(ValueError, match="unregistered parameters"):
        vocabulary.fact("listener-queue-full", colour="red")


def test_catalog_names_only_registered_things() -> None:
    for cause in load_default().causes:
        for spec in cause.evidence:
            if spec.kind == "event":
                assert set(spec.strings("actions")) <= set(vocabulary.ACTIONS)
            if spec.kind == "fact":
                assert set(spec.strings("names")) <= set(vocabulary.FACTS)


def test_unknown_references_fail_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad-refs.yaml").write_text(
        "id: bad-refs\ntitle: t\ndescription: d\nside: kernel\n"
        "remedy: 'raise {limit_value} on {colour}'\n"
        "yields_to: [nowhere]\n"
        "evidence:\n"
        "  - label: x\n    event: {actions: [firewall-reject, firewall-explode]}\n"
        "    weight: 0.5\n    anchor: true\n"
        "  - label: y\n    fact: {names: [no-listener, moon-phase]}\n    weight: 0.3\n"
        "  - label: z\n    limit: {names: ['x'], zones_from: [limit-zzz]}\n    weight: 0.3\n"
        "  - label: w\n    event: {actions: [oom-kill]}\n    weight: 0.3\n    risk: true\n"
    )
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    text = "\n".join(info.value.errors)
    path = tmp_path / "bad-refs.yaml"
    assert f"{path}:5: unknown placeholder {{colour}}" in text
    assert f"{path}:8: evidence[0]: event: unknown action 'firewall-explode'" in text
    assert f"{path}:12: evidence[1]: fact: unknown fact 'moon-phase'" in text
    assert f"{path}:15: evidence[2]: limit: unknown action 'limit-zzz'" in text
    assert f"{path}:18: evidence[3]: risk: only counter, limit and fact" in text
    assert "firewall-reject'" not in text and "no-listener'" not in text
    assert f"{path}:5: remedy: {{limit_value}} may be unknown; put it in an optional section" in text
    assert len(info.value.errors) == 6  # every problem, and yields_to of a file that failed


def test_unknown_yields_to_fails(tmp_path: Path) -> None:
    text = (ROOT / "rules" / "firewall-reject.yaml").read_text()
    (tmp_path / "firewall-reject.yaml").write_text(text)
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert f"{tmp_path}/firewall-reject.yaml:" in str(info.value)
    assert "yields_to: unknown cause 'firewall-conn-limit'" in str(info.value)


CONNLIMIT = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 8080 -m connlimit --connlimit-above 2 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 9090 -j REJECT --reject-with tcp-reset
COMMIT
"""


@pytest.mark.parametrize(("port", "cause"), [(8080, "firewall-conn-limit"), (9090, "firewall-reject")])
def test_a_plain_reject_yields_to_the_more_specific_cause(port: int, cause: str) -> None:
    case = {
        "iptables": CONNLIMIT,
        "events": [
            {"action": "firewall-reject", "count": 5, "src": "198.51.100.7", "dst": "192.0.2.1",
             "port": port, "sport": 40000, "flags": "SYN", "prefix": "REJ "}
        ],
    }
    report = engine.correlate(make_events(case["events"]), make_rulesets(case), make_state(case))
    assert report.findings and report.findings[0].cause == cause
    causes = {f.cause for f in report.findings}
    if cause == "firewall-conn-limit":
        assert "firewall-reject" not in causes
