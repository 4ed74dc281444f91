"""The recorder on this machine's kernel: private instance, host state untouched, signals.

Every test compares the host's top-level tracing state (``tracing_on``, ``set_event``,
``current_tracer``, ``buffer_size_kb``, ``trace_options``, ``trace_clock``, the enable and
filter files of the tracepoints auditor uses, the list of instances) byte for byte before
and after, and checks that no ``auditor-*`` instance is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from auditor.sources import tracefs
from auditor.sources.trace_record import record
from tests.trace.lab import HostTracing, TraceLab

ROOT = Path(__file__).resolve().parents[2]


def test_reason_names_come_from_the_kernels_format_file(host_tracing: HostTracing) -> None:
    path = Path(host_tracing.root, "events/tcp/tcp_send_reset/format")
    if not path.exists():
        pytest.skip("this kernel has no tcp:tcp_send_reset")
    text = path.read_text()
    names = tracefs.reason_names(text)
    if "reason" not in tracefs.field_names(text):
        pytest.skip("tcp_send_reset has no reason before Linux 6.10")
    assert {"NO_SOCKET", "TCP_ABORT_ON_CLOSE", "TCP_STATE"} <= set(names.values())
    # the state table of the same print fmt is not taken for the reasons
    assert "TCP_ESTABLISHED" not in names.values()
    drops = tracefs.reason_names(Path(host_tracing.root, "events/skb/kfree_skb/format").read_text())
    assert "NETFILTER_DROP" in drops.values()
    assert len(set(drops)) == len(drops)


def test_old_kernel_format_has_no_reason_field() -> None:
    # tcp_send_reset as Linux 5.15 declares it: no reason (reset reasons came with 6.10)
    old = (
        "name: tcp_send_reset\nformat:\n\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n"
        "\tfield:__u8 saddr[4];\toffset:28;\tsize:4;\tsigned:0;\n\n"
        'print fmt: "sport=%hu", REC->sport\n'
    )
    assert tracefs.field_names(old) == {"skbaddr", "sport", "saddr"}
    assert tracefs.reason_names(old) == {}


def test_record_leaves_the_host_as_it_was(host_tracing: HostTracing, tmp_path: Path) -> None:
    before = host_tracing.state()
    summary = record(str(tmp_path), 0.5)
    assert host_tracing.state() == before
    assert host_tracing.ours() == []
    header = json.loads((tmp_path / "trace" / "header.json").read_text())
    assert header["kernel"] == os.uname().release
    assert header["removed"] is True and summary.removed
    names = {p["name"]: p for p in header["tracepoints"]}
    assert set(names) == {"tcp:tcp_send_reset", "tcp:tcp_receive_reset", "skb:kfree_skb"}
    for name, point in names.items():
        exists = Path(host_tracing.root, "events", *name.split(":")).is_dir()
        assert point["available"] is exists
    if names["skb:kfree_skb"]["available"]:
        assert "reason ==" in names["skb:kfree_skb"]["filter"]  # filtered in the kernel


def _auditor_in(lab: TraceLab, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return lab.spawn(sys.executable, "-m", "auditor", *args, env=env)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_killed_mid_trace_removes_its_instance(
    lab: TraceLab, host_tracing: HostTracing, tmp_path: Path, sig: int
) -> None:
    before = host_tracing.state()
    proc = _auditor_in(lab, "collect", "--trace", "60", "-o", str(tmp_path / "b.tar.gz"))
    name = host_tracing.wait_instance()
    time.sleep(0.3)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0  # it was stopped, not finished
    assert name not in host_tracing.instances()
    assert host_tracing.state() == before


def test_sigkill_leftover_is_removed_by_the_next_run(
    lab: TraceLab, host_tracing: HostTracing, tmp_path: Path
) -> None:
    before = host_tracing.state()
    proc = _auditor_in(lab, "collect", "--trace", "60", "-o", str(tmp_path / "b.tar.gz"))
    name = host_tracing.wait_instance()
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=30)
    assert name in host_tracing.instances()  # nothing could clean up after SIGKILL
    summary = record(str(tmp_path / "next"), 0.2)
    header = json.loads(Path(summary.header).read_text())
    assert name in header["removed_stale"]
    assert host_tracing.state() == before


def test_without_root_the_header_says_why(host_tracing: HostTracing) -> None:
    with tempfile.TemporaryDirectory(prefix="h4-noroot-") as where:  # nobody can reach it
        os.chmod(where, 0o777)
        _not_root(Path(where))


def _not_root(out: Path) -> None:
    code = (
        "import os; from auditor.sources.trace_record import record;"
        "os.setegid(65534); os.seteuid(65534);"  # imported first: the stdlib is root's
        f"record({str(out)!r}, 0.1)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, env=env, cwd="/")
    header = json.loads((out / "trace" / "header.json").read_text())
    whys = [m["why"] for m in header["not_recorded"]]
    assert any("root" in w for w in whys), whys
    assert header["seen"] == 0
