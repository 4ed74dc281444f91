"""Every command's output and ``--help`` read at 80 columns (COLUMNS=80, a pipe).

Nothing wider than 80 cells; no table cell cut to an ellipsis stub (names and paths
whole, folded or shortened from the left); evidence cut with an ellipsis, never
silently; wrapped lines indented under their item; text in square brackets kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.cells import cell_len

from tests.outputs.clirun import ROOT, Run, auditor

SAMPLES = ROOT / "samples"
INCIDENT = SAMPLES / "incidents" / "keepalive-race"
BUNDLE = SAMPLES / "bundles" / "listen-queue"
SOSREPORT = SAMPLES / "sosreport" / "sosreport-lab-host-2026-11-24-abcdef"
HELP = [("diagnose",), ("parse",), ("limits",), ("rules", "show"), ("rules", "trace"),
        ("rules", "lint"), ("fleet",), ("audit",), ("causes",), ("collect",)]
STUB = re.compile(r"\w…(?!/)")  # a word cut by an ellipsis (a left-cut path is "…/...")


def within_80(run: Run) -> None:
    """No line wider than 80 cells; an error stays one line (for grep), whatever its length."""
    for text in (run.stdout, run.stderr):
        wide = [x for x in text.splitlines()
                if cell_len(x.rstrip()) > 80 and not x.startswith("auditor: error:")]
        assert not wide, wide[:3]


def column(text: str, index: int) -> list[str]:
    """The pieces of table column ``index``, one per printed row (a folded cell spans
    several pieces; joined, the pieces give the column's text in order)."""
    pieces = []
    for row in text.splitlines():
        parts = re.split("[│┃]", row)
        if len(parts) >= index + 2 and parts[index + 1].strip():
            pieces.append(parts[index + 1].strip())
    return pieces


@pytest.mark.parametrize("command", HELP, ids=" ".join)
def test_help_pages(command: tuple[str, ...]) -> None:
    run = auditor(*command, "--help")
    assert run.code == 0
    within_80(run)
    assert not re.search(r"<(bool|str|int|float|list\[)", run.stdout)
    assert "Exit status" in run.stdout and "Examples" in run.stdout
    examples = run.stdout.split("Examples", 1)[-1].split("Exit status", 1)[0]
    for row in examples.splitlines():  # an example wrapped to column 0 starts " x"
        assert not re.match(r"^ \S", row) or row.strip().startswith("auditor"), row


def test_diagnose_table() -> None:
    run = auditor("diagnose", INCIDENT)
    assert run.code == 0
    within_80(run)
    out = run.stdout
    assert "[error]" in out  # nginx's tag, from the evidence line
    block = out.split("\n1. ", 1)[1].split("resets per minute", 1)[0]
    rows = [r for r in block.splitlines()[1:] if r.strip()]
    assert rows and all(r.startswith("   ") for r in rows), rows  # wrapped lines indented
    doc = json.loads(auditor("diagnose", INCIDENT, "--format", "json").stdout)
    flat = re.sub(r"\s+", "", out)
    for ev in doc["findings"][0]["evidence"]:
        text = re.sub(r"\s+", " ", ev["text"])
        if len(text) > 200:  # cut with an ellipsis, not silently
            assert re.sub(r"\s+", "", text[:199]) + "…" in flat
        else:
            assert re.sub(r"\s+", "", text) in flat


def test_parse_table_and_summary() -> None:
    run = auditor("parse", SAMPLES / "logs" / "nginx-error", SAMPLES / "logs" / "nginx-access")
    assert run.code == 0
    within_80(run)
    files = "".join(column(run.stdout.split("summary", 1)[1], 0))
    for d in ("nginx-error", "nginx-access"):
        for p in (SAMPLES / "logs" / d).iterdir():  # every file told apart: its whole path
            assert str(p.relative_to(ROOT)) in files or str(p) in files, p
    summary = run.stdout.split("summary", 1)[1].split("┘", 1)[0]
    assert not STUB.search(summary)  # (an event's detail is clipped on purpose, with …)


@pytest.mark.parametrize("source", [BUNDLE, SOSREPORT], ids=["bundle", "sosreport"])
def test_limits_table(source: Path) -> None:
    run = auditor("limits", "--from", source)
    assert run.code == 0
    within_80(run)
    assert not STUB.search(run.stdout), STUB.findall(run.stdout)[:3]
    doc = json.loads(auditor("limits", "--from", source, "--format", "json").stdout)
    rows = run.stdout.splitlines()
    for limit in doc["limits"]:
        name = limit["name"]
        # whole, or folded in its column: the rest begins the next row
        firsts = [(r.strip().split("  ")[0], rows[i + 1]) for i, r in enumerate(rows[:-1])
                  if r.strip().startswith(name[:30])]
        assert any(name.startswith(first) and (first == name or name[len(first):] in after)
                   for first, after in firsts), name


def test_rules_show_lint_trace() -> None:
    rules = SAMPLES / "firewall" / "ufw.rules"
    for args in (("show",), ("lint", "--ss", "/dev/null"),
                 ("trace", "--src", "198.51.100.7", "--dst", "192.0.2.10", "--dport", "22")):
        run = auditor("rules", args[0], "--from", rules, *args[1:])
        assert run.code == 0, run.stderr
        within_80(run)
        assert not STUB.search(run.stdout)
    lint = auditor("rules", "lint", "--from", rules, "--ss", "/dev/null").stdout
    assert "[UFW BLOCK]" in re.sub(r"\s*│\s*", " ", lint) or "[UFW" in lint


def test_causes_table_keeps_every_id_whole() -> None:
    run = auditor("causes")
    assert run.code == 0
    within_80(run)
    ids = {p.stem for p in (ROOT / "auditor" / "catalog").glob("*.yaml")}
    assert ids <= set(column(run.stdout, 0))  # no_wrap: an id is never folded


def test_audit_dry_run_message_keeps_brackets(tmp_path: Path) -> None:
    cfg = tmp_path / "auditor.toml"
    cfg.write_text("[elasticsearch]\nhosts = [\"https://es.invalid:9200\"]\n")
    run = auditor("audit", "--config", cfg, "--dry-run")
    assert run.code == 2
    within_80(run)
    assert "add [[inputs]] path" in run.stderr  # not "add [] path"
