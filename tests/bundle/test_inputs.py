"""Opening inputs: a bundle directory or archive, any directory of artifacts (by content),
a sosreport directory or tarball, one file; and what cannot be read is named."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from auditor.bundle.inputs import open_input
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import HostState, load_state
from auditor.sources.files import SourceError

ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "samples" / "artifacts"
BUNDLE = ROOT / "samples" / "bundles" / "listen-queue"
SOS = ROOT / "samples" / "sosreport" / "sosreport-lab-host-2026-11-24-abcdef"


def comparable(state: HostState) -> dict[str, object]:
    """The state without where it was read from (paths differ between copies)."""
    return {
        "limits": sorted((x.name, str(x.value), str(x.observed), x.scope) for x in state.limits),
        "before": dict(state.before),
        "after": dict(state.after),
        "deltas": dict(state.deltas),
        "window": state.window_seconds,
        "listeners": [(x.endpoint, x.recv_q, x.send_q, x.processes) for x in state.listeners],
        "processes": [(p.pid, p.name, p.nofile_soft, p.open_fds) for p in state.processes],
        "host": state.host,
    }


def test_bundle_directory() -> None:
    inputs = open_input(str(BUNDLE))
    assert inputs.host == "lab-host"
    assert inputs.problems == ()
    assert {a.phase for a in inputs.by_kind("netstat")} == {"before", "after"}
    assert [p for p, _ in inputs.snapshot_times] == ["before", "after"]
    state = load_state(inputs)
    assert state.window_seconds is not None and state.window_seconds > 2.9
    assert state.deltas["TcpExt.ListenOverflows"] > 0
    assert [x.endpoint for x in state.listeners if x.full] == ["192.0.2.1:8080"]


def test_archive_gives_the_same_state_as_its_directory(tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(BUNDLE, arcname="auditor-bundle-x")
    assert comparable(load_state(open_input(str(archive)))) == comparable(
        load_state(open_input(str(BUNDLE)))
    )


def test_directory_of_artifacts_recognised_by_content(tmp_path: Path) -> None:
    names = {
        "sysctl/sysctl-quirks.txt": "a",
        "conntrack-stats/proc-net-stat-nf_conntrack-pressure.txt": "b.log",
        "ss/ss-tlnpi-full-queue.txt": "c.dat",
        "nginx-config/nginx-T.txt": "d",
        "netstat/proc-net-netstat-after-overflow.txt": "e.json",
        "iptables-save/iptables-nft-save-c.txt": "f",
        "nft-json/nft-list-ruleset.json": "g.txt",
    }
    for src, dest in names.items():
        shutil.copy(ART / src, tmp_path / dest)
    (tmp_path / "notes.txt").write_text("call the vendor on Monday\n")
    inputs = open_input(str(tmp_path))
    kinds = {os.path.basename(a.path): a.kind for a in inputs.artifacts}
    assert kinds == {
        "a": "sysctl",
        "b.log": "conntrack-stats",
        "c.dat": "ss",
        "d": "nginx-config",
        "e.json": "netstat",
        "f": "iptables-save",
        "g.txt": "nft-json",
    }
    assert [(os.path.basename(p.location.path), p.reason) for p in inputs.problems] == [
        ("notes.txt", "kind of file not recognised; not used")
    ]
    state = load_state(inputs)
    assert state.since_boot  # one unmarked snapshot: totals since boot
    causes = {f.cause for f in host_risks(load_default(), state)}
    assert causes >= {
        "conntrack-table-full",
        "tcp-abort-on-overflow",
        "listen-queue-overflow",
        "fd-exhaustion",  # worker_connections x workers above worker_rlimit_nofile
        "listen-backlog-capped",
        "conntrack-timeout-short",
        "upstream-keepalive-race",
        "syn-backlog-small",
    }
    # the bad line of the sysctl sample is reported with its file and line
    assert any(p.location.path.endswith("/a") and p.location.line == 17 for p in state.problems)


def test_sosreport_directory_and_tarball(tmp_path: Path) -> None:
    inputs = open_input(str(SOS))
    assert inputs.host == "lab-host" and inputs.kernel == "6.1.0-27-amd64"
    kinds = sorted(a.kind for a in inputs.artifacts)
    assert "sysctl" in kinds and "ss" in kinds and "conntrack-stats" in kinds
    assert "nginx-config" in kinds and "netstat" in kinds
    assert {a.kind for a in inputs.logs()} >= {"kernel", "nginx-error"}
    assert all(a.note.startswith("sosreport ") for a in inputs.artifacts)
    assert not any("ip_-o_addr" in a.path or "ps_auxwww" in a.path for a in inputs.artifacts)
    archive = tmp_path / "sosreport-lab-host.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(SOS, arcname=SOS.name)
    again = open_input(str(archive))
    assert sorted(a.kind for a in again.artifacts) == kinds
    assert comparable(load_state(again)) == comparable(load_state(inputs))


def test_single_file_and_missing_paths(tmp_path: Path) -> None:
    one = open_input(str(ART / "ss" / "ss-tlnpi-full-queue.txt"))
    assert [a.kind for a in one.artifacts] == ["ss"]
    with pytest.raises(SourceError, match="no such file"):
        open_input(str(tmp_path / "nope"))
    bad = tmp_path / "broken.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(BUNDLE / "manifest.json", arcname="m/manifest.json")
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(SourceError, match=r"broken\.tar\.gz"):
        open_input(str(bad))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(300))
    res = open_input(str(junk))
    assert res.artifacts == () and res.problems[0].location.path == str(junk)


def test_archive_links_leaving_the_tree_are_skipped_and_named(tmp_path: Path) -> None:
    archive = tmp_path / "sos.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(SOS, arcname="sosreport-x")
        for name, target in (
            ("etc/localtime", "/usr/share/zoneinfo/UTC"),
            ("etc/escape", "../../../../etc/passwd"),
        ):
            info = tarfile.TarInfo(f"sosreport-x/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    inputs = open_input(str(archive))
    assert len(inputs.artifacts) == len(open_input(str(SOS)).artifacts)
    # One problem per member not unpacked, located at archive:member, with the reason.
    assert [p.location.path for p in inputs.problems] == [
        f"{archive}:sosreport-x/etc/localtime",
        f"{archive}:sosreport-x/etc/escape",
    ]
    assert all("symbolic link" in p.reason for p in inputs.problems)
