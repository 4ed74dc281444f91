"""A service moved to another port: found without --port from what it said and what ss holds.

Each test writes a real-format capture (syslog with systemd's unit lines and the
program's own "Listening on" lines, ``ss -ltn``, two ``/proc/net/snmp`` snapshots)
and runs the whole diagnosis on it, as ``auditor diagnose DIR`` would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.correlate.report import Report
from auditor.correlate.scoring import Query
from auditor.pipeline.diagnosis import diagnose

BEFORE = "2026-11-24T10:00:30+00:00"
AFTER = "2026-11-24T10:00:40+00:00"
SNMP = """# auditor-snapshot {phase} {at}
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos \
InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs \
ReasmFails FragOKs FragFails FragCreates
Ip: 2 64 100 0 0 0 0 0 100 100 0 0 0 0 0 0 0 0 0
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets \
CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 0 5 0 0 0 100 100 0 0 {rsts} 0
"""
SS = """State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=800,fd=3))
LISTEN 0      128                *:{port}            *:*    users:(("python3",pid=4300,fd=3))
"""
DEPLOY = [
    "Nov 24 09:00:00 web1 systemd[1]: Starting orders-api.service - Orders API...",
    "Nov 24 09:00:00 web1 systemd[1]: Started orders-api.service - Orders API.",
    "Nov 24 09:00:01 web1 orders-api[4242]: [INFO] Listening at: http://0.0.0.0:8080 (4242)",
    "Nov 24 09:30:00 web1 sshd[900]: Accepted publickey for deploy from 198.51.100.7 port 50522",
    "Nov 24 10:00:20 web1 systemd[1]: Stopping orders-api.service - Orders API...",
    "Nov 24 10:00:20 web1 systemd[1]: orders-api.service: Deactivated successfully.",
    "Nov 24 10:00:20 web1 systemd[1]: Stopped orders-api.service - Orders API.",
    "Nov 24 10:00:21 web1 systemd[1]: Started orders-api.service - Orders API.",
]
MOVED = "Nov 24 10:00:22 web1 orders-api[4300]: [INFO] Listening at: http://0.0.0.0:8081 (4300)"


def capture(tmp_path: Path, lines: list[str], held: int = 8081, resets: int = 23) -> Path:
    (tmp_path / "syslog").write_text("\n".join(lines) + "\n")
    (tmp_path / "ss.txt").write_text(SS.format(port=held))
    for phase, at, rsts in (("before", BEFORE, 100), ("after", AFTER, 100 + resets)):
        folder = tmp_path / "counters" / phase
        folder.mkdir(parents=True)
        (folder / "snmp").write_text(SNMP.format(phase=phase, at=at, rsts=rsts))
    return tmp_path


def no_listener(report: Report) -> list[object]:
    return [f for f in report.findings if f.cause == "no-listener"]


def test_blind_finds_the_port_the_program_left(tmp_path: Path) -> None:
    report = diagnose(str(capture(tmp_path, [*DEPLOY, MOVED])), tz=UTC)
    assert report.findings and report.findings[0].cause == "no-listener"
    found = report.findings[0]
    assert found.ports == (8080,)
    assert found.resets == 23  # Tcp.OutRsts over the counter window, not 0
    assert found.confidence == "medium"  # counters and logs, no packet of its own
    # the window is the counters' (capture time), not the time of the analysis
    assert found.first_seen == datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)
    assert found.last_seen == datetime(2026, 11, 24, 10, 0, 40, tzinfo=UTC)
    assert report.start is not None and report.start <= found.first_seen
    assert report.end is not None and report.end >= found.last_seen
    assert "orders-api said it listens on port 8080" in found.remedy
    assert "port 8081" in found.remedy
    assert found.details["announced"]["moved_to"] == 8081
    cited = {(Path(e.source).name, e.line) for e in found.evidence}
    assert ("syslog", 3) in cited and ("syslog", 9) in cited  # where it said 8080, then 8081


def test_a_move_within_one_second_is_ordered_by_its_lines(tmp_path: Path) -> None:
    """syslog stamps whole seconds: a restart onto another port in the same second as the
    first announcement is a move, told by the order of the lines."""
    quick = [
        "Nov 24 10:00:21 web1 systemd[1]: Started orders-api.service - Orders API.",
        "Nov 24 10:00:21 web1 orders-api[4242]: Listening on http://0.0.0.0:8080",
        "Nov 24 10:00:21 web1 systemd[1]: Stopped orders-api.service - Orders API.",
        "Nov 24 10:00:21 web1 systemd[1]: Started orders-api.service - Orders API.",
        "Nov 24 10:00:21 web1 orders-api[4300]: Listening on http://0.0.0.0:8081",
    ]
    found = no_listener(diagnose(str(capture(tmp_path, quick)), tz=UTC))
    assert [f.ports for f in found] == [(8080,)]
    # the reverse order is no move: 8081 was said first, and it is held
    (tmp_path / "syslog").write_text("\n".join([quick[0], quick[4], quick[2], quick[3],
                                                quick[1]]) + "\n")
    assert not no_listener(diagnose(str(tmp_path), tz=UTC))


def test_with_port_the_resets_come_from_the_counters(tmp_path: Path) -> None:
    report = diagnose(str(capture(tmp_path, [*DEPLOY, MOVED])), Query(port=8080), tz=UTC)
    found = report.findings[0]
    assert found.cause == "no-listener" and found.ports == (8080,)
    assert found.resets == 23
    assert found.confidence == "high"  # the engineer's port, unheld, and the program's move
    assert found.first_seen == datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)
    assert "port 8081" in found.remedy


def test_port_reported_without_any_announcement_still_counts_resets(tmp_path: Path) -> None:
    lines = [line for line in DEPLOY if "sshd" in line]  # nothing said, nothing restarted
    report = diagnose(str(capture(tmp_path, lines)), Query(port=8080), tz=UTC)
    found = report.findings[0]
    assert found.cause == "no-listener" and found.resets == 23
    assert "said it listens" not in found.remedy


@pytest.mark.parametrize(
    ("lines", "held", "resets", "why"),
    [
        ([*DEPLOY, MOVED], 8081, 0, "no reset sent over the window"),
        ([*DEPLOY], 8081, 23, "the program never said it moved"),
        ([*DEPLOY, MOVED.replace("8081", "8080")], 8080, 23, "the port is held again"),
        ([*DEPLOY, MOVED.replace("orders-api[4300]", "billing[4300]")], 8081, 23,
         "another program took the new port"),
    ],
)
def test_no_blind_finding_without_the_whole_story(
    tmp_path: Path, lines: list[str], held: int, resets: int, why: str
) -> None:
    report = diagnose(str(capture(tmp_path, lines, held, resets)), tz=UTC)
    assert not no_listener(report), why


def test_no_listener_list_says_nothing_of_what_is_held(tmp_path: Path) -> None:
    path = capture(tmp_path, [*DEPLOY, MOVED])
    (path / "ss.txt").unlink()
    assert not no_listener(diagnose(str(path), tz=UTC))
