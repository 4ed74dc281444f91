"""Each fact builder states its fact with its values on the condition and stays quiet on a
healthy host; the catalog's causes scored on those facts alone (``host_risks``) carry the
YAML title and a remedy filled from the values; counters moved in a window raise the score,
totals since boot do not."""

from __future__ import annotations

from pathlib import Path

from auditor.bundle.inputs import open_input
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import HostState, load_state
from auditor.models import Finding
from auditor.vocabulary import Fact

HEALTHY_SYSCTL = """\
net.core.somaxconn = 4096
net.ipv4.tcp_max_syn_backlog = 4096
net.ipv4.tcp_syncookies = 1
net.ipv4.tcp_abort_on_overflow = 0
net.ipv4.tcp_max_orphans = 65536
net.ipv4.tcp_max_tw_buckets = 65536
net.ipv4.tcp_mem = 1000 2000 3000
net.ipv4.tcp_keepalive_time = 7200
net.netfilter.nf_conntrack_max = 262144
net.netfilter.nf_conntrack_count = 1200
net.netfilter.nf_conntrack_tcp_timeout_established = 432000
net.netfilter.nf_conntrack_tcp_loose = 1
fs.file-nr = 1000 0 100000
"""
SOCKSTAT = "sockets: used 90\nTCP: inuse 20 orphan {orphan} tw {tw} alloc 30 mem {mem}\n"
NGINX = """\
# configuration file /etc/nginx/nginx.conf:
worker_processes {wp};
{rlimit}
events {{ worker_connections {wc}; }}
http {{
    keepalive_timeout {kat};
    upstream app {{ server 127.0.0.1:8081; keepalive 8; {ukt} }}
    server {{ listen 80 {backlog}; location / {{ proxy_pass http://app; }} }}
    server {{ listen 127.0.0.1:8081; keepalive_timeout {app_kat}; }}
}}
"""


def state(tmp_path: Path, files: dict[str, str]) -> HostState:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return load_state(open_input(str(tmp_path)))


def causes(found: list[Finding]) -> dict[str, Finding]:
    return {f.cause: f for f in found}


def risks(state: HostState) -> list[Finding]:
    return host_risks(load_default(), state)


def facts(state: HostState) -> dict[str, Fact]:
    return {f.name: f for f in state.facts}


def nginx(
    wp: int = 2,
    wc: int = 1024,
    rlimit: str = "worker_rlimit_nofile 8192;",
    kat: str = "65",
    ukt: str = "",
    backlog: str = "",
    app_kat: str = "75s",
) -> str:
    return NGINX.format(
        wp=wp, wc=wc, rlimit=rlimit, kat=kat, ukt=ukt, backlog=backlog, app_kat=app_kat
    )


def test_healthy_host_has_no_findings(tmp_path: Path) -> None:
    s = state(
        tmp_path,
        {
            "sysctl": HEALTHY_SYSCTL,
            "sockstat": SOCKSTAT.format(orphan=3, tw=100, mem=10),
            "nginx": nginx(),
        },
    )
    assert risks(s) == []
    assert [f.name for f in s.facts] == ["upstream-keepalive"]  # a fact, not a risk
    assert s.since_boot


def test_conntrack_full_and_abort_on_overflow(tmp_path: Path) -> None:
    text = HEALTHY_SYSCTL.replace("nf_conntrack_count = 1200", "nf_conntrack_count = 250000")
    text = text.replace("tcp_abort_on_overflow = 0", "tcp_abort_on_overflow = 1")
    found = causes(risks(state(tmp_path, {"s": text})))
    ct = found["conntrack-table-full"]
    assert ct.title == load_default().get("conntrack-table-full").title  # type: ignore[union-attr]
    assert ct.limit is not None
    assert (ct.limit.name, ct.limit.value, ct.limit.observed) == (
        "net.netfilter.nf_conntrack_max", 262144, 250000
    )
    assert "nf_conntrack_max=524288" in ct.remedy
    assert ct.confidence == "medium"
    assert ct.evidence[0].line == 9 and ct.evidence[0].source.endswith("/s")
    ab = found["tcp-abort-on-overflow"]
    assert "tcp_abort_on_overflow=0" in ab.remedy


def test_nginx_worker_connections_over_rlimit(tmp_path: Path) -> None:
    s = state(
        tmp_path,
        {
            "sysctl": HEALTHY_SYSCTL,
            "nginx": nginx(wp=4, wc=4096, rlimit="worker_rlimit_nofile 2048;"),
        },
    )
    found = causes(risks(s))
    f = found["fd-exhaustion"]  # the workers' open-file limit is what runs out
    assert f.limit is not None and f.limit.value == 2048
    assert "worker_rlimit_nofile 8192;" in f.remedy
    # nginx -T dumps give the original file and its own line numbers
    assert [(e.source, e.line) for e in f.evidence if e.kind == "config"] == [
        ("/etc/nginx/nginx.conf", 2),  # worker_rlimit_nofile
    ]
    fact = facts(s)["worker-connections-above-nofile"]
    assert fact.text == (
        "worker-connections-above-nofile worker_connections=4096 worker_processes=4 "
        "nofile=2048 total=16384"
    )


def test_small_worker_connections_and_capped_backlog(tmp_path: Path) -> None:
    text = HEALTHY_SYSCTL.replace("somaxconn = 4096", "somaxconn = 128")
    s = state(tmp_path, {"sysctl": text, "nginx": nginx(wc=64, backlog="backlog=1024")})
    found = causes(risks(s))
    assert found["nginx-worker-connections"].confidence == "low"
    assert "worker_connections 1024;" in found["nginx-worker-connections"].remedy
    capped_all = [f for f in s.facts if f.name == "listen-backlog-capped"]
    assert sorted(f.ports for f in capped_all) == [(80,), (8081,)]  # 8081: nginx's default 511
    assert capped_all[0].get("backlog") == 1024 and capped_all[0].get("somaxconn") == 128
    capped = found["listen-backlog-capped"]
    assert capped.ports == (80, 8081)
    assert "net.core.somaxconn=1024" in capped.remedy  # the larger backlog asked for


def test_keepalive_timeouts(tmp_path: Path) -> None:
    text = HEALTHY_SYSCTL.replace("established = 432000", "established = 600").replace(
        "tcp_loose = 1", "tcp_loose = 0"
    )
    s = state(
        tmp_path,
        {"sysctl": text, "nginx": nginx(kat="900s", ukt="keepalive_timeout 120s;", app_kat="60s")},
    )
    found = causes(risks(s))
    short = found["conntrack-timeout-short"]
    assert short.limit is not None and short.limit.observed == 7200.0  # tcp_keepalive_time
    assert "nf_conntrack_tcp_timeout_established=7260" in short.remedy
    assert "loose=0" in short.summary
    race = found["upstream-keepalive-race"]
    assert race.limit is not None
    assert (race.limit.value, race.limit.observed) == (60.0, 120.0)  # theirs, ours
    assert "keepalive_timeout 59s;" in race.remedy


def test_no_race_when_upstream_outlasts_nginx(tmp_path: Path) -> None:
    found = causes(
        risks(
            state(
                tmp_path,
                {
                    "sysctl": HEALTHY_SYSCTL,
                    "nginx": nginx(ukt="keepalive_timeout 30s;", app_kat="75s"),
                },
            )
        )
    )
    assert "upstream-keepalive-race" not in found


def test_counters_over_a_window_raise_the_score(tmp_path: Path) -> None:
    head = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPAbortOnMemory\n"
    before = "# auditor-snapshot before 2026-11-24T10:00:00+00:00\n" + head + "TcpExt: 0 10 10 0\n"
    after = "# auditor-snapshot after 2026-11-24T10:00:10+00:00\n" + head + "TcpExt: 0 25 25 4\n"
    orph = HEALTHY_SYSCTL.replace("tcp_max_orphans = 65536", "tcp_max_orphans = 100")
    s = state(
        tmp_path,
        {
            "sysctl": orph,
            "n1": before,
            "n2": after,
            "sockstat": SOCKSTAT.format(orphan=95, tw=1, mem=10),
        },
    )
    assert s.window_seconds == 10.0
    assert s.deltas == {
        "TcpExt.SyncookiesSent": 0,
        "TcpExt.ListenOverflows": 15,
        "TcpExt.ListenDrops": 15,
        "TcpExt.TCPAbortOnMemory": 4,
    }
    found = causes(risks(s))
    assert found["listen-queue-overflow"].score == 0.6
    assert "+15 over 10s" in found["listen-queue-overflow"].evidence[0].text
    orphans = found["orphan-sockets"]
    assert orphans.limit is not None
    assert (orphans.limit.name, orphans.limit.value, orphans.limit.observed) == (
        "net.ipv4.tcp_max_orphans", 100, 95
    )
    assert orphans.score == 0.55


def test_since_boot_totals_are_weaker(tmp_path: Path) -> None:
    head = "TcpExt: ListenOverflows ListenDrops\n"
    s = state(tmp_path, {"sysctl": HEALTHY_SYSCTL, "n": head + "TcpExt: 99 99\n"})
    assert s.since_boot and s.counter("TcpExt.ListenOverflows") == 99
    assert "listen-queue-overflow" not in causes(risks(s))


def test_tcp_mem_remedy_is_filled_from_sysctl_and_sockstat(tmp_path: Path) -> None:
    """tcp_mem pages come from sysctl, the pages in use from sockstat: no '?' in the remedy."""
    s = state(
        tmp_path,
        {"sysctl": HEALTHY_SYSCTL, "sockstat": SOCKSTAT.format(orphan=3, tw=100, mem=1900)},
    )
    mem = causes(risks(s))["tcp-memory-pressure"]
    assert mem.limit is not None
    assert (mem.limit.name, mem.limit.value, mem.limit.observed) == (
        "net.ipv4.tcp_mem[pressure]", 2000, 1900
    )
    assert "2000 pages with 1900 in use" in mem.remedy
    assert "at least 4096" in mem.remedy  # twice the use, a power of two
    assert "?" not in mem.remedy and "None" not in mem.remedy


def test_builders_state_exactly_the_registered_host_facts() -> None:
    """Fact builders declare what they state; the registry's host facts are those."""
    from auditor.limits import facts as builders
    from auditor.vocabulary import FACTS

    assert {n for n, spec in FACTS.items() if not spec.group} == builders.STATES


def test_shipped_samples_state_only_declared_facts() -> None:
    from auditor.limits import facts as builders

    root = Path(__file__).resolve().parents[2] / "samples"
    inputs = [*root.glob("sosreport/sosreport-*"), *root.glob("bundles/*"), *root.glob("incidents/*")]
    seen: set[str] = set()
    for path in inputs:
        if path.is_dir():
            seen |= {f.name for f in load_state(open_input(str(path))).facts}
    assert seen <= builders.STATES
    assert {"listener-queue-full", "listen-backlog-capped", "upstream-keepalive"} <= seen


def test_unset_worker_rlimit_nofile_is_named_for_errno_24(tmp_path: Path) -> None:
    """Without worker_rlimit_nofile (and no /proc limits, as in a sosreport), errno 24 names
    the workers' own limit as not set, not a far-from-full fs.file-max."""
    from auditor.correlate.engine import correlate
    from tests.correlate.casekit import make_events

    s = state(tmp_path, {"sysctl": HEALTHY_SYSCTL, "nginx": nginx(rlimit="")})
    unset = [x for x in s.limits if x.name == "nginx worker_rlimit_nofile"]
    assert [x.value for x in unset] == ["not set (the unit's LimitNOFILE applies)"]
    events = make_events([{"action": "fd-exhausted", "count": 5, "pid": 4242,
                           "text": "accept4() failed (24: Too many open files)"}])
    top = correlate(events, [], s).findings[0]
    assert top.cause == "fd-exhaustion"
    assert top.limit is not None and top.limit.name == "nginx worker_rlimit_nofile"
    assert "fs.file-max = " not in top.remedy
