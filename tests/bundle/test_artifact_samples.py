"""Annotated artifact samples: samples/artifacts/<kind>/<file> (see samples/artifacts/README.md).

Each sample must be recognised, by content, as the kind its directory names, and
what it parses to is compared with ``<file>.expected.json`` (a golden file;
regenerate with AUDITOR_GENERATE=1). Issues are part of the golden output, so a
line that stops being understood (or starts being) shows up as a diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from auditor.bundle.reader import recognise
from auditor.limits.artifact import parse_artifact
from auditor.models import plain
from auditor.sources.files import read_head

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "artifacts"
GENERATE = bool(os.environ.get("AUDITOR_GENERATE"))
FILES = sorted(
    p for p in SAMPLES.glob("*/*") if p.is_file() and not p.name.endswith(".expected.json")
)


def test_every_kind_has_a_sample() -> None:
    kinds = {p.parent.name for p in FILES}
    assert kinds >= {
        "iptables-save",
        "ip6tables-save",
        "nft-json",
        "nft-text",
        "ipset",
        "sysctl",
        "netstat",
        "snmp",
        "sockstat",
        "conntrack-stats",
        "ss",
        "proc-limits",
        "nginx-config",
        "manifest",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample(path: Path) -> None:
    kind = path.parent.name
    assert recognise(read_head(path, 60)) == kind
    rel = str(path.relative_to(ROOT))
    if kind == "nginx-config":
        parsed = parse_artifact(kind, rel)
    else:
        parsed = parse_artifact(kind, str(path), origin=rel)
    doc = {
        "kind": kind,
        "data": parsed.data,
        "issues": [
            {"line": i.location.line, "reason": i.reason, "text": i.text} for i in parsed.issues
        ],
    }
    golden = path.with_name(path.name + ".expected.json")
    text = json.dumps(plain(doc), indent=1, sort_keys=True) + "\n"
    if GENERATE or not golden.exists():
        golden.write_text(text)
    assert json.loads(golden.read_text()) == json.loads(text)
