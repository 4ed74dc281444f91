"""Lab scenarios whose cause is in netfilter or the kernel's TCP stack."""

from __future__ import annotations

import json
import time

from tests.lab.netlab import CLIENT_IP, read_sysctl, write_sysctl
from tests.lab.scenarios import Ctx, Expect, scenario
from tests.lab.web import NginxSpec, upstream

BASE_RULES = """iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -p tcp --dport 22 -j ACCEPT
"""

PROXY = """server {{ listen {port}; location / {{ proxy_pass http://127.0.0.1:{up}; }} }}"""


@scenario("reject-logged", "iptables REJECT --reject-with tcp-reset on 8443, with a LOG rule",
          Expect("firewall-reject", rule={"table": "filter", "chain": "INPUT", "position": 5}),
          host="web-01.example.com", kernel_style="rsyslog")
def reject_logged(ctx: Ctx) -> None:
    upstream(ctx.lab, 8443)
    ctx.srv(BASE_RULES + """
iptables -A INPUT -p tcp --dport 8443 -j LOG --log-prefix "fw-reject-8443: "
iptables -A INPUT -p tcp --dport 8443 -j REJECT --reject-with tcp-reset""")
    ctx.mark()
    got = ctx.load(20, port=8443, concurrency=5)
    ctx.collect()
    ctx.check(got["refused"] == 20, f"all 20 connections refused by RST, got {dict(got)}")
    ctx.check(ctx.rule_packets("-j REJECT") >= 20, "REJECT rule counted the SYNs")
    ctx.check(ctx.text("kern.log").count("fw-reject-8443: ") >= 20, "20 LOG lines in kern.log")


@scenario("reject-unlogged", "REJECT tcp-reset in a user chain, no LOG rule; the engineer names the port",
          Expect("firewall-reject", rule={"table": "filter", "chain": "web-in", "position": 2},
                 args=("--port", "8443", "--client", CLIENT_IP)),
          host="api-02.example.net")
def reject_unlogged(ctx: Ctx) -> None:
    upstream(ctx.lab, 8443)
    ctx.srv(BASE_RULES + """
iptables -N web-in
iptables -A INPUT -p tcp -j web-in
iptables -A web-in -p tcp --dport 443 -j ACCEPT
iptables -A web-in -p tcp --dport 8443 -s 192.0.2.0/28 -j REJECT --reject-with tcp-reset""")
    ctx.mark()
    got = ctx.load(15, port=8443, concurrency=5)
    ctx.collect()
    ctx.check(got["refused"] == 15, f"all 15 refused, got {dict(got)}")
    ctx.check(ctx.rule_packets("--dport 8443 -j REJECT") >= 15, "REJECT rule counted")
    ctx.check("8443" not in ctx.text("kern.log"), "no kernel log line about 8443")


@scenario("connlimit", "iptables connlimit above 4 per source, logged, rejects with tcp-reset",
          Expect("firewall-conn-limit", rule={"table": "filter", "chain": "INPUT", "position": 5}),
          host="web-03.example.com")
def connlimit(ctx: Ctx) -> None:
    upstream(ctx.lab, 80, "slow", 48_000)
    ctx.srv(BASE_RULES + """
iptables -A INPUT -p tcp --syn --dport 80 -m connlimit --connlimit-above 4 -j LOG --log-prefix "CONNLIMIT "
iptables -A INPUT -p tcp --syn --dport 80 -m connlimit --connlimit-above 4 -j REJECT --reject-with tcp-reset""")
    ctx.mark()
    got = ctx.load(12, concurrency=12)
    ctx.collect()
    ctx.check(got["refused"] >= 6 and got["status-200"] >= 4, f"4 served, rest refused: {dict(got)}")
    ctx.check(ctx.rule_packets("connlimit-above 4 --connlimit-mask 32 --connlimit-saddr -j REJECT")
              >= 6, "connlimit REJECT counted")
    ctx.check("CONNLIMIT " in ctx.text("kern.log"), "CONNLIMIT lines in kern.log")


@scenario("hashlimit", "iptables hashlimit above 5/sec per source rejects new connections",
          Expect("firewall-rate-limit", rule={"table": "filter", "chain": "INPUT", "position": 5}),
          host="edge-04.example.org", kernel_style="rsyslog")
def hashlimit(ctx: Ctx) -> None:
    upstream(ctx.lab, 80)
    ctx.srv(BASE_RULES + """
iptables -A INPUT -p tcp --syn --dport 80 -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name http -j LOG --log-prefix "RATE-http "
iptables -A INPUT -p tcp --syn --dport 80 -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name http2 -j REJECT --reject-with tcp-reset""")
    ctx.mark()
    got = ctx.load(40, concurrency=8)
    ctx.collect()
    ctx.check(got["refused"] >= 20, f"most of 40 quick connections refused: {dict(got)}")
    ctx.check(ctx.rule_packets("--hashlimit-name http2 -j REJECT") >= 20, "hashlimit REJECT counted")
    ctx.check("RATE-http " in ctx.text("kern.log"), "RATE-http lines in kern.log")


NFT_EDGE = """table inet edge {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "lo" accept
        tcp dport 22 accept
        {rule}
    }}
}}
"""


def _nft(ctx: Ctx, rule: str, needle: str) -> None:
    (ctx.work / "edge.nft").write_text(NFT_EDGE.format(rule=rule))
    ctx.srv(f"nft -f {ctx.work}/edge.nft")
    handle = ctx.srv("nft -a list chain inet edge input").split(needle)[1].split("# handle ")[1]
    ctx.rule = {"backend": "nftables", "table": "edge", "chain": "input",
                "handle": int(handle.split()[0])}


@scenario("nft-ct-count", "nftables `ct count over 4` with `reject with tcp reset`",
          Expect("firewall-conn-limit", rule={"backend": "nftables", "table": "edge", "chain": "input"}),
          host="cache-05.example.com")
def nft_ct_count(ctx: Ctx) -> None:
    upstream(ctx.lab, 80, "slow", 48_000)
    _nft(ctx, 'tcp dport 80 ct state new ct count over 4 counter log prefix "edge-ct-over " '
              'reject with tcp reset', "edge-ct-over")
    ctx.mark()
    got = ctx.load(12, concurrency=12)
    ctx.collect()
    ctx.check(got["refused"] >= 6 and got["status-200"] >= 4, f"4 served, rest refused: {dict(got)}")
    ctx.check("edge-ct-over " in ctx.text("kern.log"), "edge-ct-over lines in kern.log")
    rule = ctx.nft_rule("reject")
    ctx.check('"packets"' in json.dumps(rule), "nft rule with counter in nft.json")


@scenario("nft-limit-rate", "nftables `limit rate over 5/second` with `reject with tcp reset`",
          Expect("firewall-rate-limit", rule={"backend": "nftables", "table": "edge", "chain": "input"}),
          host="cache-06.example.com", kernel_style="rsyslog")
def nft_limit_rate(ctx: Ctx) -> None:
    upstream(ctx.lab, 80)
    _nft(ctx, 'tcp dport 80 ct state new limit rate over 5/second burst 5 packets counter '
              'log prefix "edge-rate " reject with tcp reset', "edge-rate")
    ctx.mark()
    got = ctx.load(40, concurrency=8)
    ctx.collect()
    ctx.check(got["refused"] >= 20, f"most of 40 refused: {dict(got)}")
    ctx.check("edge-rate " in ctx.text("kern.log"), "edge-rate lines in kern.log")


@scenario("conntrack-invalid", "conntrack flushed during downloads with nf_conntrack_tcp_loose=0",
          Expect("conntrack-invalid"), host="dl-07.example.com")
def conntrack_invalid(ctx: Ctx) -> None:
    ctx.srv("""sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
sysctl -qw net.netfilter.nf_conntrack_log_invalid=6
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -p tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
iptables -A INPUT -m conntrack --ctstate INVALID -j LOG --log-prefix "CT-INVALID "
iptables -A INPUT -p tcp -j REJECT --reject-with tcp-reset""")
    upstream(ctx.lab, 8080, "slow", 300_000)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), log_format="custom",
                              http="proxy_buffering off;"))
    ctx.mark()
    fut = ctx.background(lambda: ctx.load(6, concurrency=6, timeout=5))
    time.sleep(1.5)
    ctx.srv("conntrack -F 2>/dev/null")
    got = fut.result()
    ctx.collect()
    ctx.check(got["reset"] + got["truncated"] >= 4, f"downloads cut by resets: {dict(got)}")
    ctx.check(ctx.rule_packets("INVALID -j LOG") > 0, "INVALID LOG rule counted")
    kern = ctx.text("kern.log")
    ctx.check("CT-INVALID " in kern, "CT-INVALID lines in kern.log")


@scenario("conntrack-full", "conntrack table full (host nf_conntrack_max lowered for seconds)",
          Expect("conntrack-table-full", limit=("*nf_conntrack_max",)), host="lb-08.example.com",
          kernel_style="rsyslog")
def conntrack_full(ctx: Ctx) -> None:
    ctx.lab.unthrottle_kernel_log()  # "table full" goes through the host's net_ratelimit()
    ctx.srv("iptables -A INPUT -m conntrack --ctstate INVALID -j DROP")
    upstream(ctx.lab, 80, "slow", 400_000)
    ctx.mark()
    holders = ctx.background(lambda: ctx.load(30, concurrency=30, timeout=8))
    time.sleep(1.0)
    count = int(ctx.srv("cat /proc/sys/net/netfilter/nf_conntrack_count"))
    old = read_sysctl("net.netfilter.nf_conntrack_max") or "262144"
    try:  # nf_conntrack_max is read-only in a namespace: lower the host's, for ~2 seconds
        write_sysctl("net.netfilter.nf_conntrack_max", str(count))
        got = ctx.load(10, concurrency=10, timeout=1.5)
        sysctl = ctx.srv("sysctl -a 2>/dev/null")
    finally:
        write_sysctl("net.netfilter.nf_conntrack_max", old)
    holders.result()
    ctx.collect(extra={"sysctl.txt": sysctl})
    ctx.check(count >= 25, f"held connections tracked: count={count}")
    ctx.check(got["timeout"] >= 8, f"new connections dropped: {dict(got)}")
    ctx.check("nf_conntrack: table full" in ctx.text("kern.log"), "'table full' in kern.log")


@scenario("listen-overflow", "listener (backlog 16) that never accepts, tcp_abort_on_overflow=1",
          Expect("listen-queue-overflow", limit=("*backlog*", "*somaxconn*", "*abort_on_overflow*")),
          host="app-09.example.com")
def listen_overflow(ctx: Ctx) -> None:
    ctx.srv("sysctl -qw net.ipv4.tcp_abort_on_overflow=1")
    upstream(ctx.lab, 9000, "noaccept", 16)
    # Overflow resets need handshakes that complete after the queue filled: 12 clients hold
    # back their bare final ACK (completing with their request 1 s later) while 17 others
    # connect one by one, send and leave, filling the never-accepted queue (16 + 1).
    ctx.lab.sh(ctx.lab.cli, "iptables -A OUTPUT -p tcp --dport 9000 "
               "--tcp-flags SYN,ACK,FIN,RST,PSH ACK -j DROP")
    ctx.mark()
    late = ctx.background(lambda: ctx.load(12, port=9000, concurrency=12, timeout=2, pause=1.0))
    time.sleep(0.3)
    fill = ctx.load(17, port=9000, concurrency=1, abort=True)
    got = late.result()
    ctx.collect()
    ctx.check(fill["aborted"] == 17, f"the queue filled: {dict(fill)}")
    ctx.check(got["reset"] >= 10, f"the late handshakes are reset: {dict(got)}")
    ctx.check(ctx.delta("TcpExtListenOverflows") >= 10, "ListenOverflows moved")
    ctx.check(ctx.delta("TcpOutRsts") >= 10, "OutRsts moved")


@scenario("syn-flood", "half-open SYN flood against a listen backlog of 8, syncookies off",
          Expect("syn-flood", limit=("*syn_backlog*", "*backlog*", "*somaxconn*")),
          host="www-10.example.com", kernel_style="rsyslog")
def syn_flood(ctx: Ctx) -> None:
    # with syncookies off, tcp_max_syn_backlog below the listen backlog drops SYNs silently
    # (its last quarter is kept for proven peers); above it the queue fills and the kernel warns
    ctx.lab.unthrottle_kernel_log()
    ctx.srv("sysctl -qw net.ipv4.tcp_syncookies=0 && sysctl -qw net.ipv4.tcp_max_syn_backlog=16")
    ctx.lab.sh(ctx.lab.cli, f"ip addr add 192.0.2.3/24 dev {ctx.lab.cli_if} && iptables -A INPUT "
               f"-d {CLIENT_IP} -p tcp --sport 80 --tcp-flags SYN,ACK SYN,ACK -j DROP")
    upstream(ctx.lab, 8080)
    ctx.start_nginx(NginxSpec("server { listen 80 backlog=8; location / { proxy_pass "
                              "http://127.0.0.1:8080; } }", log_format="json"))
    ctx.mark()
    flood = ctx.background(lambda: ctx.load(40, concurrency=40, timeout=3))
    time.sleep(0.5)
    legit = ctx.load(10, concurrency=5, timeout=1.5, source="192.0.2.3")
    flood.result()
    ctx.collect()
    ctx.check(legit["timeout"] >= 5, f"legitimate clients time out: {dict(legit)}")
    ctx.check("Possible SYN flooding on port" in ctx.text("kern.log"), "SYN flooding in kern.log")
    ctx.check(ctx.delta("TcpExtListenDrops") > 0, "ListenDrops moved")
