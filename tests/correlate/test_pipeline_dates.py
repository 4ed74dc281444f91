"""``parse`` and ``diagnose`` date year-less lines alike: by the file's own time.

A kern.log that crosses New Year, written in a year that is not the current one,
must give the same instants in both commands (the stamps carry no year; the
file's modification time says which New Year it was).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ZONE = "Europe/Berlin"


def _line(stamp: str, port: int) -> str:
    return (
        f"{stamp} web1 kernel: [12.000001] REJECT-IN: IN=eth0 OUT= "
        "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=203.0.113.7 DST=192.0.2.10 LEN=60 "
        f"TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT={port} DPT=443 WINDOW=64240 "
        "RES=0x00 SYN URGP=0\n"
    )


def _auditor(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout


def test_new_year_log_dated_by_file_time_in_parse_and_diagnose(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    stamps = ["Dec 31 23:59:50", "Dec 31 23:59:58", "Jan  1 00:00:03", "Jan  1 00:00:09"]
    log.write_text("".join(_line(s, 40000 + i) for i, s in enumerate(stamps)))
    zone = ZoneInfo(ZONE)
    written = datetime(2023, 1, 1, 0, 5, tzinfo=zone).timestamp()  # not this year
    os.utime(log, (written, written))

    events = [json.loads(x) for x in _auditor(
        "parse", str(log), "--format", "ndjson", "--timezone", ZONE).splitlines() if x.strip()]
    parsed = sorted(datetime.fromisoformat(e["@timestamp"]) for e in events)
    assert [t.astimezone(zone).year for t in parsed] == [2022, 2022, 2023, 2023]

    report = json.loads(_auditor("diagnose", str(tmp_path), "--format", "json",
                                 "--timezone", ZONE))
    seen = [
        datetime.fromisoformat(x[key])
        for x in [*report["findings"], *report["unexplained"]]
        for key in ("first_seen", "last_seen")
        if x.get(key)
    ]
    assert seen, report
    assert min(seen) == parsed[0] and max(seen) == parsed[-1]


def test_diagnose_of_nothing_readable_exits_nonzero_with_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# nothing here\n")
    out = subprocess.run([sys.executable, "-m", "auditor", "diagnose", str(tmp_path / "notes.md")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "notes.md: nothing auditor can read was found" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
