"""Hostile text through the real commands, on real sample inputs with payloads added.

Log lines, file names (an undecodable byte included), process names and iptables
comments carry markup (``[/x]``, ``[link=...]``), terminal escapes (clear screen,
window title, OSC 8), HTML and Markdown. Every format of every command must keep
them inert: exit as usual, no raw control character, the text shown literally.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from auditor.sinks.text import inert, utf8_clean
from tests.outputs.checks import markdown_problems, raw_controls, shown, strict_json, strict_ndjson
from tests.outputs.clirun import ROOT, Run, auditor

REQ = ("/api/[/x]/[link=https://evil.example]login-here[/link]/<script>alert(1)</script>/"
       "\x1b[2J\x1b[H/\x1b]0;owned\x07/\u202egnp")
UA = "[bold red]big[/] \x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ <img src=x onerror=alert(1)>"
ODD_NAME = b"x]\x1b[2J<b>\xff.log"  # in a folder named "[": shown as [/x]\x1b[2J<b>\xff.log
SERVER = "[/x]\x1b[2J<script>x</script>[link=https://e.x]l[/link]"
PROCESS = "[/x]\x1b]0;owned\x07"
COMMENT = "[/x] \x1b[2J [bold]x[/] <b>"


def table_runs(*args: str | os.PathLike[str]) -> tuple[Run, Run]:
    """The command at 80 columns (checked inert) and wide (where no cell wraps into the
    next column, so that a value can be looked for whole)."""
    narrow, wide = auditor(*args), auditor(*args, columns=300)
    assert narrow.code == wide.code
    assert_inert(narrow)
    assert_inert(wide)
    return narrow, wide


def assert_inert(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert not raw_controls(run.stdout), raw_controls(run.stdout)[:5]
    assert not raw_controls(run.stderr), raw_controls(run.stderr)[:5]


def odd_file(folder: Path, text: str) -> str:
    """A file whose name holds markup, ESC and an undecodable byte; its name as str."""
    (folder / "[").mkdir()
    path = os.path.join(os.fsencode(folder / "["), ODD_NAME)
    with open(path, "w") as fh:
        fh.write(text)
    return os.fsdecode(path)


@pytest.fixture()
def logs(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "access.log").write_text(
        f'203.0.113.7 - - [24/Nov/2026:10:00:01 +0100] "GET {REQ} HTTP/1.1" 502 157 "-" "{UA}"\n')
    (folder / "error.log").write_text(
        "2026/11/24 10:00:02 [error] 1234#1234: *5678 readv() failed (104: Connection reset by "
        f"peer) while reading upstream, client: 203.0.113.7, server: example.org, request: "
        f'"GET {REQ} HTTP/1.1", upstream: "http://192.0.2.20:8080/", host: "{SERVER}"\n')
    return folder, odd_file(folder, "[/x] \x1b]0;owned\x07 not a log line\n")


def test_parse_table_shows_payloads_literally(logs: tuple[Path, str]) -> None:
    folder, odd = logs
    narrow, wide = table_runs("parse", folder)
    assert narrow.code == 0
    assert shown(inert(f"502 GET {REQ}"), narrow.stdout)  # markup and escapes as text
    assert shown(inert(f"502 GET {REQ}")[:100], wide.stdout)  # (cut at 120 in a table)
    assert shown(inert(odd), wide.stdout)  # the file name, in the summary
    assert "\\x1b[2J" in narrow.stdout and "login-here[/link]" in narrow.stdout


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_parse_json_is_strict_utf8_with_names_escaped(logs: tuple[Path, str], fmt: str) -> None:
    folder, odd = logs
    run = auditor("parse", folder, "--format", fmt)
    assert run.code == 0
    assert_inert(run)
    docs = [strict_json(run.out)] if fmt == "json" else strict_ndjson(run.out)
    text = json.dumps(docs, ensure_ascii=False)
    assert REQ in json.loads(text)[0]["events"][0]["url"]["original"] if fmt == "json" \
        else any(d.get("url", {}).get("original") == REQ for d in docs)  # type: ignore[union-attr]
    if fmt == "json":
        paths = [f["path"] for f in docs[0]["summary"]["files"]]  # type: ignore[index]
        assert utf8_clean(odd) in paths  # the undecodable byte written as \xff, not raw


def test_parse_strict_fails_on_a_folder_of_unrecognised_files(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("nothing auditor knows\n")
    assert auditor("parse", tmp_path).code == 0
    assert auditor("parse", tmp_path, "--strict").code == 1


@pytest.fixture()
def incident(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "incident"
    shutil.copytree(ROOT / "samples" / "incidents" / "keepalive-race", folder)
    error = folder / "error.log"
    lines = error.read_text().split("\n")
    lines[0] = lines[0].replace("server: ,", f"server: {SERVER},")
    error.write_text("\n".join(lines))
    return folder, odd_file(folder, "[/x] \x1b]0;owned\x07 not a log line\n")


def test_diagnose_table_keeps_evidence_and_names_inert(incident: tuple[Path, str]) -> None:
    folder, odd = incident
    narrow, wide = table_runs("diagnose", folder)
    assert narrow.code == 0
    for run in (narrow, wide):
        assert "upstream-keepalive-race" in run.stdout
        assert shown(inert(f"server: {SERVER}")[:40], run.stdout)  # evidence, markup as text
        assert "[error]" in run.stdout  # nginx's tag is text, not a style
        assert shown(inert(odd), run.stderr)  # "not used" line of the odd file


def test_diagnose_markdown_is_inert(incident: tuple[Path, str]) -> None:
    folder, _ = incident
    run = auditor("diagnose", folder, "--format", "markdown")
    assert run.code == 0
    assert_inert(run)
    assert markdown_problems(run.stdout) == []
    assert inert(SERVER)[:30] in run.stdout  # inside a code span, as it is


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_diagnose_json_is_strict_utf8(incident: tuple[Path, str], fmt: str) -> None:
    folder, odd = incident
    run = auditor("diagnose", folder, "--format", fmt)
    assert run.code == 0
    assert_inert(run)
    if fmt == "json":
        doc = strict_json(run.out)
        assert isinstance(doc, dict) and doc["findings"]
        assert any(s["path"] == utf8_clean(odd) for s in doc["sources"])  # type: ignore[index]
    else:
        assert strict_ndjson(run.out)


def test_limits_with_a_hostile_process_name(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "samples" / "bundles" / "listen-queue", bundle)
    ss = bundle / "listeners" / "ss-tlnpi.txt"
    ss.write_text(ss.read_text().replace('(("python"', f'(("{PROCESS}"'))
    narrow, wide = table_runs("limits", "--from", bundle)
    assert narrow.code == 0
    assert shown(inert(PROCESS), wide.stdout)  # "full accept queue ... [/x]\x1b]0;owned\x07 pid"
    assert inert(PROCESS) in narrow.stdout
    run = auditor("limits", "--from", bundle, "--format", "json")
    assert run.code == 0 and strict_json(run.out)


@pytest.fixture()
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "iptables.rules"
    path.write_text(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        f'[5:300] -A INPUT -p tcp -m tcp --dport 8443 -m comment --comment "{COMMENT}" '
        "-j REJECT --reject-with tcp-reset\nCOMMIT\n")
    return path


@pytest.mark.parametrize("args", [
    ("show",), ("lint", "--ss", os.devnull),
    ("trace", "--src", "198.51.100.7", "--dst", "192.0.2.10", "--dport", "8443"),
])
def test_rules_with_a_hostile_comment(rules_file: Path, args: tuple[str, ...]) -> None:
    narrow, wide = table_runs("rules", args[0], "--from", rules_file, *args[1:])
    assert narrow.code == 0, narrow.stderr
    assert shown(inert(COMMENT), wide.stdout)
    run = auditor("rules", args[0], "--from", rules_file, *args[1:], "--format", "json")
    assert run.code == 0 and strict_json(run.out)
