"""world.dress: a clean capture dressed as a host's bundle keeps every incident line,
moves each stamp by the same instant, and splits rotated logs at one moment (no root)."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.lab.world import World, dress

T0 = datetime(2026, 12, 31, 23, 50, 0, tzinfo=UTC)  # the incident crosses midnight and a year


def stage(tmp: Path) -> Path:
    st = tmp / "stage"
    (st / "counters/before").mkdir(parents=True)
    (st / "counters/after").mkdir(parents=True)
    kern, err, acc = [], [], []
    for i in range(20):
        t = T0 + timedelta(minutes=i)
        kern.append(f"{t.strftime('%Y-%m-%dT%H:%M:%S,%f')}+00:00 fw-reject: IN=v1s OUT= "
                    f"SRC=192.0.2.2 DST=192.0.2.1 PROTO=TCP SPT={40000 + i} DPT=8443 SYN URGP=0")
        err.append(f"{t:%Y/%m/%d %H:%M:%S} [error] 7#7: *{i} recv() failed (104: Connection "
                   f"reset by peer) while reading response header from upstream")
        acc.append(f'192.0.2.2 - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /{i} HTTP/1.1" 502 157 '
                   f'"-" "curl/8.0"')
    (st / "kern.log").write_text("\n".join(kern) + "\n")
    (st / "error.log").write_text("\n".join(err) + "\n")
    (st / "access.log").write_text("\n".join(acc) + "\n")
    for phase, t in (("before", T0), ("after", T0 + timedelta(minutes=20))):
        for name in ("netstat", "snmp"):
            (st / f"counters/{phase}/{name}").write_text(
                f"# auditor-snapshot {phase} {t.isoformat()}\nTcpExt: ListenOverflows\n"
                f"TcpExt: {1 if phase == 'before' else 9}\n")
    (st / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    (st / "sysctl.txt").write_text("net.core.somaxconn = 4096\n")
    return st


INCIDENT = (T0, T0 + timedelta(minutes=19))


def lines(root: Path, *names: str) -> list[str]:
    out = []
    for name in names:
        p = root / name
        if p.exists():
            out += p.read_text().splitlines()
    return out


def test_plain_zone_age_rotation_noise(tmp_path: Path) -> None:
    world = World(layout="plain", hostlog="debian", zone="Asia/Kolkata",
                  age=timedelta(days=1), noise=80, rotate=True, rotate_at=0.5, seed="x")
    got = dress(stage(tmp_path), tmp_path / "out", world, "web-01.example.com", INCIDENT)
    out = got.path
    kern = lines(out, "kern.log.1", "kern.log")
    for i in range(20):  # every incident line once, in order across the rotation
        assert sum(f"SPT={40000 + i} " in ln for ln in kern) == 1
    assert len(kern) > 20  # kernel noise interleaved
    assert "kern.log.1" in {p.name for p in out.iterdir()}
    err_old, err_new = lines(out, "error.log.1"), lines(out, "error.log")
    ours = [ln for ln in err_old + err_new if "recv() failed" in ln]
    assert len(ours) == 20
    # 23:50 UTC on Dec 31, one day earlier, in Kolkata (+05:30): 05:20 on Dec 31
    assert ours[0].startswith("2026/12/31 05:20:00 ")
    acc = [ln for ln in lines(out, "access.log.1", "access.log") if '" 502 ' in ln]
    assert len(acc) == 20 and "[31/Dec/2026:05:20:00 +0530]" in acc[0]
    mark = (out / "counters/before/netstat").read_text().splitlines()[0]
    assert mark == f"# auditor-snapshot before {(T0 - timedelta(days=1)).isoformat()}"
    assert got.start == (T0 - timedelta(days=1)).astimezone(got.start.tzinfo)


def test_collect_archive_manifest(tmp_path: Path) -> None:
    world = World(layout="collect", hostlog="rhel", zone="America/New_York", seed="y")
    got = dress(stage(tmp_path), tmp_path / "out", world, "api-2.example.net", INCIDENT)
    assert got.path.name.endswith(".tar.gz")
    with tarfile.open(got.path) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        manifest = json.load(tar.extractfile(f"{top}/manifest.json"))  # type: ignore[arg-type]
        messages = tar.extractfile(f"{top}/logs/var/log/messages").read().decode()  # type: ignore[union-attr]
    assert manifest["host"]["timezone"] == "America/New_York"
    assert manifest["snapshots"]["before"] == T0.isoformat()
    assert f"{top}/rules/iptables-nft-save.txt" in names
    assert f"{top}/counters/after/netstat" in names
    assert "Dec 31 18:50:00 api-2 kernel: fw-reject:" in messages  # BSD syslog, local time


def test_sos_has_no_before_counters(tmp_path: Path) -> None:
    world = World(layout="sos", hostlog="debian", seed="z")
    got = dress(stage(tmp_path), tmp_path / "out", world, "web-01", INCIDENT)
    assert (got.path / "sos_commands/firewall_tables/iptables-save").exists()
    assert (got.path / "var/log/nginx/error.log").exists()
    netstat = (got.path / "proc/net/netstat").read_text()
    assert "auditor-snapshot" not in netstat and "TcpExt: 9" in netstat
    assert not list(got.path.rglob("before*"))


@pytest.mark.parametrize("zone", ["UTC", "Australia/Sydney"])
def test_journald_export_keeps_instants(tmp_path: Path, zone: str) -> None:
    world = World(layout="plain", hostlog="journald", zone=zone, age=timedelta(hours=5),
                  seed="j")
    got = dress(stage(tmp_path), tmp_path / "out", world, "web-01", INCIDENT)
    docs = [json.loads(ln) for ln in lines(got.path, "journal/journal-o-json.txt")]
    first = next(d for d in docs if "SPT=40000 " in d["MESSAGE"])
    assert first["SYSLOG_IDENTIFIER"] == "kernel" and first["_TRANSPORT"] == "kernel"
    when = datetime.fromtimestamp(int(first["__REALTIME_TIMESTAMP"]) / 1e6, tz=UTC)
    assert when == T0 - timedelta(hours=5)
    assert not (got.path / "kern.log").exists()
