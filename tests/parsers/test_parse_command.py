"""``auditor parse``: per-file routing, unrecognised files, and where the access format comes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from auditor.cli import app
from auditor.nginx.access_format import config_beside, format_for_log

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
CUSTOM = '$remote_addr|$status|$request_time|"$request"'
CUSTOM_LINE = '192.0.2.60|502|0.004|"GET /api HTTP/1.1"\n'


def clean_sample(name: str, dest: Path) -> Path:
    text = (SAMPLES / name).read_text(encoding="utf-8")
    dest.write_text("".join(ln + "\n" for ln in text.splitlines() if not ln.startswith("#")))
    return dest


def parse_json(*args: str) -> dict[str, Any]:
    res = CliRunner().invoke(app, ["parse", "--format", "json", "--timezone", "UTC", *args])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_mixed_file_says_where_lines_went(tmp_path: Path) -> None:
    log = clean_sample("mixed/docker-nginx.log", tmp_path / "web.log")
    doc = parse_json(str(log))
    (entry,) = doc["summary"]["files"]
    assert entry["parser"] == "mixed"
    assert entry["routed"] == {"nginx-access": 1, "nginx-error": 3}
    assert {e["event"]["dataset"] for e in doc["events"]} == {"nginx.access", "nginx.error"}
    assert entry["not_understood"] == 1
    assert "errno 111" in entry["issues"][0]["reason"]


def test_unrecognised_file_is_read_and_explained(tmp_path: Path) -> None:
    log = tmp_path / "app.txt"
    log.write_text("starting\nupstream connect() failed (113: No route to host)\nready\n")
    entry = parse_json(str(log))["summary"]["files"][0]
    assert entry["notes"] and "kind not recognised" in entry["notes"][0]
    assert "--type" in entry["notes"][0] and "--log-format" in entry["notes"][0]
    assert entry["not_understood"] == 1 and entry["issues"][0]["line"] == 2
    assert "errno 113" in entry["issues"][0]["reason"]


def write_site(root: Path, include: Path | None = None) -> Path:
    """A log folder with an nginx.conf beside it; the custom format inline or in ``include``."""
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "access.log").write_text(CUSTOM_LINE)
    declare = f"include {include};" if include else f"log_format custom '{CUSTOM}';"
    (root / "nginx.conf").write_text(
        f"events {{}}\nhttp {{\n  {declare}\n  access_log /var/log/nginx/access.log custom;\n}}\n"
    )
    return logs / "access.log"


def test_format_from_a_config_beside_the_log(tmp_path: Path) -> None:
    log = write_site(tmp_path)
    assert config_beside(log) == tmp_path / "nginx.conf"
    doc = parse_json(str(log))
    entry = doc["summary"]["files"][0]
    assert entry["not_understood"] == 0, entry["issues"]
    assert any("log_format from" in n and "nginx.conf:3" in n for n in entry["notes"])
    (event,) = doc["events"]
    assert event["event"]["action"] == "http-bad-gateway"
    assert event["source"]["ip"] == "192.0.2.60" and event["auditor"]["request_time"] == 0.004


def test_includes_of_a_config_beside_the_log_are_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "formats.conf"
    elsewhere.parent.mkdir()
    elsewhere.write_text(f"log_format custom '{CUSTOM}';\n")
    log = write_site(tmp_path / "site", include=elsewhere)
    assert format_for_log(log) is None  # the include names a file of this host: unread
    entry = parse_json(str(log), "--type", "nginx-access", "--every-line")["summary"]["files"][0]
    assert entry["not_understood"] == 1  # the defaults do not read the custom line
    # Named by the user, the same configuration is read with its includes.
    found = format_for_log(log, tmp_path / "site" / "nginx.conf")
    assert found is not None and found.format == CUSTOM
    doc = parse_json(str(log), "--nginx-config", str(tmp_path / "site" / "nginx.conf"))
    assert [e["event"]["action"] for e in doc["events"]] == ["http-bad-gateway"]


def test_log_format_takes_stock_and_declared_names(tmp_path: Path) -> None:
    log = clean_sample("nginx-access/main.log", tmp_path / "access.log")
    entry = parse_json(str(log), "--log-format", "main")["summary"]["files"][0]
    assert entry["events"] == 3 and entry["not_understood"] == 2  # the combined line too
    entry = parse_json(str(log), "--log-format", "combined")["summary"]["files"][0]
    assert entry["events"] == 1
    site = write_site(tmp_path / "site")
    doc = parse_json(str(site), "--log-format", "custom")
    assert [e["event"]["action"] for e in doc["events"]] == ["http-bad-gateway"]
    res = CliRunner().invoke(app, ["parse", str(site), "--log-format", "nope"])
    assert res.exit_code != 0 and "nope" in res.output


def test_a_broken_config_beside_the_log_is_a_note_not_a_failure(tmp_path: Path) -> None:
    log = clean_sample("nginx-access/main.log", tmp_path / "access.log")
    (tmp_path / "nginx.conf").write_text("http {\n")
    entry = parse_json(str(log))["summary"]["files"][0]
    assert entry["events"] == 4
    assert any("beside the log not used" in n and "nginx.conf:2" in n for n in entry["notes"])


def test_a_config_beside_the_log_that_links_out_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "host" / "nginx.conf"
    outside.parent.mkdir()
    outside.write_text(f"http {{ log_format custom '{CUSTOM}'; access_log x.log custom; }}\n")
    logs = tmp_path / "input" / "logs"
    logs.mkdir(parents=True)
    (logs / "access.log").write_text(CUSTOM_LINE)
    (logs / "nginx.conf").symlink_to(outside)
    assert config_beside(logs / "access.log") is None
    (logs / "nginx.conf").unlink()
    (logs / "nginx").symlink_to(outside.parent, target_is_directory=True)
    assert config_beside(logs / "access.log") is None
    (logs / "nginx").unlink()
    (tmp_path / "input" / "nginx.conf").symlink_to(logs.parent / "real.conf")
    (logs.parent / "real.conf").write_text(outside.read_text())
    assert config_beside(logs / "access.log") == tmp_path / "input" / "nginx.conf"
