"""Bad input never raises and is never silently dropped: random and truncated artifacts
give issues that name the file (and line), and the rest of an input is still read."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.bundle.inputs import open_input
from auditor.bundle.reader import recognise
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.artifact import KINDS, parse_artifact
from auditor.limits.snapshot import load_state
from auditor.parsers.host import conntrack_stats, listeners, netstat, proclimits, sockstat, sysctl

ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "samples" / "artifacts"
TEXT_PARSERS = {
    "sysctl": lambda t, o: sysctl.parse_text(t, o).issues,
    "netstat": lambda t, o: netstat.parse_text(t, o).issues,
    "sockstat": lambda t, o: sockstat.parse_text(t, o).issues,
    "conntrack-stats": lambda t, o: conntrack_stats.parse_text(t, o).issues,
    "ss": lambda t, o: listeners.parse_text(t, o)[1],
    "proc-limits": lambda t, o: proclimits.parse_text(t, o)[1],
}
lines = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "TcpExt: A B",
                "TcpExt: 1",
                "entries found",
                "0000zz 01",
                "cpu=0 x",
                "LISTEN 1 x 1.2.3.4:80 *",
                "Max open files  x",
                "a.b = ",
                "TCP: inuse",
            ]
        ),
    ),
    max_size=30,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(lines)
def test_random_text_never_raises(content: list[str]) -> None:
    text = "\n".join(content)
    recognise(content)
    for parse in TEXT_PARSERS.values():
        for i in parse(text, "fuzz.txt"):
            assert i.location.path == "fuzz.txt"


def test_garbage_is_reported_with_file_and_line() -> None:
    text = "TcpExt: SyncookiesSent ListenOverflows\nthis is not a counter\n"
    issues = netstat.parse_text(text, "broken-netstat")
    assert [(i.location.path, i.location.line) for i in issues.issues] == [
        ("broken-netstat", 2),
        ("broken-netstat", 1),
    ]
    assert "truncated" in issues.issues[1].reason


def test_truncated_samples_never_raise(tmp_path: Path) -> None:
    checked = 0
    for sample in sorted(ART.glob("*/*")):
        kind = sample.parent.name
        if kind not in KINDS or sample.name.endswith(".expected.json"):
            continue
        data = sample.read_bytes()
        for cut in range(0, len(data), max(1, len(data) // 7)):
            part = tmp_path / f"{kind}-{cut}"
            part.write_bytes(data[:cut])
            parsed = parse_artifact(kind, str(part))
            assert all(
                i.location.path.startswith(str(part)) or i.location.path.startswith("/")
                for i in parsed.issues
            )
            checked += 1
    assert checked > 50


def test_directory_of_junk_is_read_and_named(tmp_path: Path) -> None:
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty").write_text("")
    (tmp_path / "half.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    netstat_half = (ART / "netstat" / "proc-net-netstat.txt").read_text().splitlines()[:3]
    (tmp_path / "netstat-cut").write_text("\n".join(netstat_half) + "\n")
    inputs = open_input(str(tmp_path))
    named = {Path(p.location.path).name for p in inputs.problems}
    assert {"random.bin", "half.gz"} <= named
    state = load_state(inputs)
    assert any(
        Path(p.location.path).name == "netstat-cut" and "truncated" in p.reason
        for p in state.problems
    )
    host_risks(load_default(), state)  # nothing to find, and nothing raises


def test_unparseable_nginx_config_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes 1;\nevents { worker_connections lots; }\nhttp { server {\n")
    parsed = parse_artifact("nginx-config", str(conf))
    assert parsed.issues and parsed.issues[0].location.path == str(conf)
