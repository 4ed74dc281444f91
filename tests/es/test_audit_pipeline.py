"""The scheduled audit runs the same diagnosis as ``auditor diagnose`` (one pipeline).

On a capture from an iptables host and one from an nftables host, ``auditor audit
--from CAPTURE`` against a real search server ships the findings that ``diagnose``
prints for the same capture, with the same rule named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor.commands._audit_job import run_audit
from auditor.config import load_config
from tests.es.conftest import Backend
from tests.lab.verdict import diagnose

pytestmark = pytest.mark.es

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "incidents"
RULE_KEYS = ("backend", "table", "chain", "position", "handle", "text")


def _rule(finding: dict[str, Any]) -> tuple[Any, ...]:
    rule = finding.get("rule") or {}
    return tuple(rule.get(k) for k in RULE_KEYS)


def _audit_config(backend: Backend, source: Path, zone: str) -> Path:
    path = backend.config([])
    text = path.read_text().replace(
        'since = ""', f'since = ""\nsource = "{source}"\ntimezone = "{zone}"'
    )
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["reject-logged", "nft-limit-rate"])
def test_audit_ships_what_diagnose_finds(backend: Backend, name: str) -> None:
    capture = SAMPLES / name
    expect = json.loads((capture / "expected.json").read_text())
    report = diagnose(capture, expect.get("args", []))
    wanted = {(f["cause"], _rule(f)) for f in report["findings"]}
    assert any(c == expect["cause"] for c, _ in wanted), report["findings"]

    cfg = load_config(str(_audit_config(backend, capture, "UTC")), env={})
    run = run_audit(cfg)
    assert not run.problems, run.problems
    shipped = [d["auditor"]["finding"] for d in backend.docs("findings")]
    got = {(f["cause"], _rule(f)) for f in shipped}
    assert got == wanted
    # the rule named is the expected one, on the backend of the capture
    top = next(f for f in shipped if f["cause"] == expect["cause"])
    for key, value in expect["rule"].items():
        assert top["rule"][key] == value, (key, top["rule"])
    # a second run over the same capture ships no new finding (deterministic ids)
    before = sorted((d["_id"], d["auditor"]["finding"]["scope"]) for d in backend.docs("findings"))
    run_audit(cfg)
    after = sorted((d["_id"], d["auditor"]["finding"]["scope"]) for d in backend.docs("findings"))
    assert after == before


def test_audit_without_inputs_or_source_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    cfg = tmp_path / "auditor.toml"
    cfg.write_text(f'state = "{tmp_path / "s.json"}"\n')
    res = CliRunner().invoke(app, ["audit", "--config", str(cfg), "--dry-run"], env={})
    assert res.exit_code != 0
    assert "no inputs" in res.output
    assert sys.executable  # the refusal is the CLI's, not an exception
