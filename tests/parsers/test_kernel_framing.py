"""Syslog framing, year inference, file-kind detection and the netfilter key parser."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from auditor.models import Location
from auditor.parsers import detect
from auditor.parsers.base import LineError, ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.parsers.netfilter import classify, parse_log_line
from auditor.parsers.syslog_frame import RELATIVE_EPOCH, Framer
from auditor.sources.scan import ScanStats, scan

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
BERLIN = ZoneInfo("Europe/Berlin")
REF = datetime(2026, 11, 24, 12, tzinfo=UTC)


def framer(**kw: object) -> Framer:
    return Framer(ParseContext(timezone=kw.pop("tz", BERLIN), reference_time=REF, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "fmt", "when", "host", "program", "pid", "message"),
    [
        ("Nov 24 10:00:01 web1 kernel: hello", "rfc3164",
         datetime(2026, 11, 24, 10, 0, 1, tzinfo=BERLIN), "web1", "kernel", None, "hello"),
        ("<6>Nov  4 10:00:01 web1 sshd[42]: hi", "rfc3164",
         datetime(2026, 11, 4, 10, 0, 1, tzinfo=BERLIN), "web1", "sshd", 42, "hi"),
        ("Nov 24 10:00:01.250000 web1 kernel: x", "short-precise",
         datetime(2026, 11, 24, 10, 0, 1, 250000, tzinfo=BERLIN), "web1", "kernel", None, "x"),
        ("2026-11-24T10:00:01.5+02:00 db kernel: x", "iso",
         datetime(2026, 11, 24, 8, 0, 1, 500000, tzinfo=UTC), "db", "kernel", None, "x"),
        ("<4>1 2026-11-24T09:00:00Z h app 99 ID47 - m", "rfc5424",
         datetime(2026, 11, 24, 9, tzinfo=UTC), "h", "app", 99, "m"),
        ("[Tue Nov 24 10:00:01 2026] x", "dmesg-T",
         datetime(2026, 11, 24, 10, 0, 1, tzinfo=BERLIN), None, "kernel", None, "x"),
        ("2026-11-24T10:00:01,000001+01:00 x", "dmesg-iso",
         datetime(2026, 11, 24, 9, 0, 1, 1, tzinfo=UTC), None, "kernel", None, "x"),
    ],
)
def test_framings(
    line: str, fmt: str, when: datetime, host: str | None, program: str, pid: int | None, message: str
) -> None:
    frame = framer().frame(line)
    assert frame is not None
    assert (frame.fmt, frame.timestamp, frame.host, frame.program, frame.pid, frame.message) == (
        fmt, when, host, program, pid, message,
    )
    assert frame.timestamp.utcoffset() is not None


def test_dmesg_relative_and_absolute() -> None:
    rel = framer().frame("[   10.500000] x")
    assert rel is not None and rel.relative
    assert rel.timestamp == RELATIVE_EPOCH + timedelta(seconds=10.5)
    boot = datetime(2026, 11, 24, 8, tzinfo=UTC)
    absolute = framer(boot_time=boot).frame("[   10.500000] x")
    assert absolute is not None and not absolute.relative
    assert absolute.timestamp == boot + timedelta(seconds=10.5)


def test_year_inference_across_new_year_and_before_reference() -> None:
    f = Framer(ParseContext(timezone=UTC, reference_time=datetime(2027, 1, 2, tzinfo=UTC)))
    years = [f.frame(f"{d} web kernel: x").timestamp.year for d in  # type: ignore[union-attr]
             ("Dec 30 23:00:00", "Dec 31 23:59:59", "Jan  1 00:00:01", "Jan  2 00:00:00")]
    assert years == [2026, 2026, 2027, 2027]
    # A stamp later in the year than the file's time belongs to the year before.
    g = Framer(ParseContext(timezone=UTC, reference_time=REF))
    frame = g.frame("Dec 31 10:00:00 web kernel: x")
    assert frame is not None and frame.timestamp.year == 2025


def test_zone_from_context_applies_dst() -> None:
    july = framer().frame("Jul  1 10:00:00 web kernel: x")
    assert july is not None and july.timestamp.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    "line",
    ["", "nonsense line", "Foo 24 10:00:01 h kernel: x", "[ 12] x", "{not json", "[]",
     "2026-13-45T10:00:00Z host kernel: x", "\x00\x00\x00", "<999"],
)
def test_bad_framing_is_a_line_error(line: str) -> None:
    with pytest.raises(LineError):
        framer().frame(line)


def test_journal_separator_is_irrelevant() -> None:
    assert framer().frame("-- Boot 0123456789abcdef --") is None


def test_netfilter_keys_and_prefix() -> None:
    p = parse_log_line(
        "pfxIN=eth0 OUT=eth1 PHYSIN=v1 MAC=aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:08:00 "
        "SRC=192.0.2.1 DST=198.51.100.2 LEN=40 TOS=0x10 PREC=0x00 TTL=9 ID=7 CE DF MF FRAG:0 "
        "PROTO=TCP SPT=1 DPT=65535 SEQ=5 ACK=6 WINDOW=0 RES=0x00 CWR ECE URG ACK PSH RST SYN FIN "
        "URGP=0 OPT (020405B4) UID=1000 GID=1000 MARK=0xff"
    )
    assert p is not None
    assert (p.prefix, p.ingress, p.egress, p.source_port, p.destination_port) == ("pfx", "eth0", "eth1", 1, 65535)
    assert p.source_mac == "00-11-22-33-44-55"
    assert p.extra["tcp_flags"] == ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
    assert p.extra["ip_flags"] == ("CE", "DF", "MF")
    assert (p.extra["seq"], p.extra["ack_seq"], p.extra["uid"], p.extra["mark"]) == (5, 6, 1000, "0xff")
    assert p.extra["physin"] == "v1"
    assert parse_log_line("no packet here SRC=1.2.3.4") is None


@pytest.mark.parametrize(
    ("prefix", "action", "firewall"),
    [
        ("[UFW BLOCK] ", "firewall-drop", "ufw"),
        ("[UFW LIMIT BLOCK] ", "firewall-rate-limit", "ufw"),
        ("[UFW AUDIT] ", "firewall-audit", "ufw"),
        ("[UFW ALLOW] ", "firewall-accept", "ufw"),
        ("filter_IN_home_REJECT: ", "firewall-reject", "firewalld"),
        ("FINAL_REJECT: ", "firewall-reject", "firewalld"),
        ("my-drop ", "firewall-drop", None),
        ("reject-all ", "firewall-reject", None),
        ("allowed ", "firewall-accept", None),
        ("", "firewall-log", None),
    ],
)
def test_classify(prefix: str, action: str, firewall: str | None) -> None:
    got, extra = classify(prefix)
    assert got == action and extra.get("firewall") == firewall


def test_sample_files_are_detected() -> None:
    for path in sorted(SAMPLES.glob("*/*.log")):
        text = path.read_text()
        if '"log_format"' in text:  # a custom format is told, not guessed
            continue
        head = [line for line in text.splitlines() if not line.startswith("#")][:40]
        cls = detect(head)
        assert cls is not None and cls.name == path.parent.name, path


def test_gzip_rotated_kern_log(tmp_path: Path) -> None:
    text = (SAMPLES / "kernel" / "kern-rfc3164.log").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    path = tmp_path / "kern.log.2.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    ctx = ParseContext(timezone=BERLIN, reference_time=REF)
    stats = ScanStats(str(path), "kernel")
    events = list(scan(str(path), KernelParser(ctx, str(path)), stats))
    assert len(events) == stats.events > 20
    assert stats.not_understood == text.count("\n# expect-error")
    assert events[0].location == Location(str(path), 1, 0)


def test_lines_without_needles_are_irrelevant_but_framing_is_checked() -> None:
    parser = KernelParser(ParseContext(timezone=UTC, reference_time=REF), "-")
    loc = Location("-", 1)
    assert parser.parse("Nov 24 10:00:01 web1 kernel: eth0: link up", loc) is None
    assert parser.parse("Nov 24 10:00:01 web1 kernel: IN=eth0 OUT= (no SRC key)", loc) is None
    with pytest.raises(LineError):  # --every-line: a line in no known framing is reported
        parser.parse("garbage without anything", loc)
