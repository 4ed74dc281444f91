"""Lab scenarios whose cause is nginx, its upstreams or its clients."""

from __future__ import annotations

import secrets
import time

from tests.lab.sc_net import BASE_RULES, PROXY
from tests.lab.scenarios import Ctx, Expect, scenario
from tests.lab.web import MemoryCgroup, NginxSpec, cgroup_available, upstream


@scenario("worker-connections", "nginx worker_connections 16 for 40 concurrent proxied requests",
          Expect("nginx-worker-connections", limit=("*worker_connections*",)),
          host="web-11.example.com")
def worker_connections(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080, "ok", 1.0)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), worker_connections=16,
                              log_format="custom"))
    ctx.mark()
    got = ctx.load(40, concurrency=40, timeout=4)
    ctx.collect()
    ctx.check(got["status-200"] < 40, f"some requests fail: {dict(got)}")
    ctx.check("worker_connections are not enough" in ctx.text("error.log"), "error.log says so")


@scenario("rlimit-nofile", "nginx worker_rlimit_nofile 24: accept()/socket() fail with errno 24",
          Expect("fd-exhaustion", limit=("*nofile*", "*open files*", "*NOFILE*")),
          host="web-12.example.org")
def rlimit_nofile(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080, "ok", 1.0)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), rlimit_nofile=24, log_format="json"))
    ctx.mark()
    got = ctx.load(40, concurrency=40, timeout=4)
    ctx.collect()
    ctx.check(got["status-200"] < 40, f"some requests fail: {dict(got)}")
    ctx.check("(24: Too many open files)" in ctx.text("error.log"), "errno 24 in error.log")


@scenario("limit-conn", "nginx limit_conn perip 3 with slow responses",
          Expect("nginx-conn-limit", limit=("*perip*",)), host="shop-13.example.com")
def limit_conn(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080, "ok", 1.0)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080).replace(
        "location /", "limit_conn perip 3; location /"),
        http="limit_conn_zone $binary_remote_addr zone=perip:1m;", log_format="custom"))
    ctx.mark()
    got = ctx.load(15, concurrency=15, timeout=4)
    ctx.collect()
    ctx.check(got["status-503"] >= 8, f"503 for most: {dict(got)}")
    ctx.check('limiting connections by zone "perip"' in ctx.text("error.log"), "error.log says so")


@scenario("limit-req", "nginx limit_req zone=api rate=5r/s burst=2 nodelay",
          Expect("nginx-rate-limit", limit=("*api*",)), host="api-14.example.net")
def limit_req(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080).replace(
        "location /", "limit_req zone=api burst=2 nodelay; location /"),
        http="limit_req_zone $binary_remote_addr zone=api:1m rate=5r/s;", log_format="json"))
    ctx.mark()
    got = ctx.load(30, concurrency=6)
    ctx.collect()
    ctx.check(got["status-503"] >= 15, f"503 for most: {dict(got)}")
    ctx.check('limiting requests, excess' in ctx.text("error.log"), "error.log says so")


@scenario("upstream-reset", "upstream closes every request with SO_LINGER 0 (RST)",
          Expect("upstream-reset", mentions=("127.0.0.1:8081",)), host="gw-15.example.com")
def upstream_reset(ctx: Ctx) -> None:
    upstream(ctx.lab, 8081, "linger0")
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8081), log_format="custom"))
    ctx.mark()
    got = ctx.load(20, concurrency=5)
    ctx.collect()
    ctx.check(got["status-502"] == 20, f"all 502: {dict(got)}")
    ctx.check("(104: Connection reset by peer) while reading response header from upstream"
              in ctx.text("error.log"), "error.log names the upstream reset")


@scenario("no-listener", "nginx proxies to 127.0.0.1:8090 where nothing listens (service down)",
          Expect("no-listener", mentions=("127.0.0.1:8090",)), host="svc-22.example.com")
def no_listener(ctx: Ctx) -> None:
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8090)))
    ctx.mark()
    got = ctx.load(15, concurrency=5)
    ctx.collect()
    ctx.check(got["status-502"] == 15, f"all 502: {dict(got)}")
    ctx.check("connect() failed (111: Connection refused)" in ctx.text("error.log"),
              "error.log says refused")
    ctx.check(ctx.delta("TcpOutRsts") >= 15, "the kernel answered with RSTs")


@scenario("upstream-oom", "upstream OOM-killed in a memory-limited cgroup",
          Expect("upstream-crash", mentions=("python",)), host="app-16.example.com",
          kernel_style="rsyslog", needs=cgroup_available)
def upstream_oom(ctx: Ctx) -> None:
    with MemoryCgroup(f"hx-oom-{secrets.token_hex(3)}", 64 << 20) as cg:
        upstream(ctx.lab, 8082, "hog", 24, cgroup=cg)
        ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8082)))
        ctx.mark()
        got = ctx.load(10, concurrency=2, timeout=5)
    ctx.collect()
    ctx.check(got["status-502"] >= 5, f"502 after the crash: {dict(got)}")
    kern = ctx.text("kern.log")
    ctx.check("Killed process" in kern and "python" in kern, "OOM kill of python in kern.log")


@scenario("client-abort", "clients give up after 0.3 s on a 2 s upstream (499)",
          Expect("client-abort"), host="m-17.example.org", startup_logged=True)
def client_abort(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080, "ok", 2.0)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), error_level="info"))
    ctx.mark()
    got = ctx.load(12, concurrency=12, hold=0.3, abort=True)
    time.sleep(0.5)
    ctx.collect()
    ctx.check(got["aborted"] == 12, f"clients aborted: {dict(got)}")
    ctx.check(ctx.text("access.log").count('" 499 ') >= 10, "499 in access.log")


@scenario("nginx-restart", "nginx stopped and started during long downloads",
          Expect("service-restart", args=("--port", "80")), host="dl-18.example.com")
def nginx_restart(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080, "slow", 400_000)
    ng = ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), log_format="custom",
                                   http="proxy_buffering off;"))
    ctx.mark()
    fut = ctx.background(lambda: ctx.load(6, concurrency=6, timeout=5))
    time.sleep(1.5)
    ng.stop()
    ng.start()
    got = fut.result()
    ctx.collect()
    ctx.check(got["reset"] + got["truncated"] + got["empty"] >= 4, f"downloads cut: {dict(got)}")
    err = ctx.text("error.log")
    stop = err.find("signal 15 (SIGTERM) received")
    ctx.check(stop >= 0 and "start worker process" in err[stop:], "error.log shows stop and start")


@scenario("two-causes", "a logged REJECT on 8443 and an upstream that resets behind port 80",
          Expect("firewall-reject", also=("upstream-reset",),
                 rule={"table": "filter", "chain": "INPUT", "position": 5}),
          host="web-19.example.com", kernel_style="rsyslog")
def two_causes(ctx: Ctx) -> None:
    upstream(ctx.lab, 8443)
    upstream(ctx.lab, 8081, "linger0")
    ctx.srv(BASE_RULES + """
iptables -A INPUT -p tcp --dport 8443 -j LOG --log-prefix "deny-8443 "
iptables -A INPUT -p tcp --dport 8443 -j REJECT --reject-with tcp-reset""")
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8081), log_format="json"))
    ctx.mark()
    fw = ctx.background(lambda: ctx.load(20, port=8443, concurrency=5))
    up = ctx.load(15, concurrency=5)
    got = fw.result()
    ctx.collect()
    ctx.check(got["refused"] == 20 and up["status-502"] == 15, f"both: {dict(got)} {dict(up)}")
    ctx.check("deny-8443 " in ctx.text("kern.log"), "deny-8443 lines in kern.log")


@scenario("decoy-reject", "unused REJECT rule on 9999 while worker_connections is the cause",
          Expect("nginx-worker-connections", limit=("*worker_connections*",),
                 absent=("firewall-reject",)), host="web-20.example.net")
def decoy_reject(ctx: Ctx) -> None:
    ctx.srv(BASE_RULES + """
iptables -A INPUT -p tcp --dport 9999 -j LOG --log-prefix "decoy-9999 "
iptables -A INPUT -p tcp --dport 9999 -j REJECT --reject-with tcp-reset""")
    upstream(ctx.lab, 8080, "ok", 1.0)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), worker_connections=16))
    ctx.mark()
    got = ctx.load(40, concurrency=40, timeout=4)
    ctx.collect()
    ctx.check(got["status-200"] < 40, f"some requests fail: {dict(got)}")
    ctx.check(ctx.rule_packets("--dport 9999 -j REJECT") == 0, "decoy rule never matched")
    ctx.check("worker_connections are not enough" in ctx.text("error.log"), "error.log says so")


@scenario("healthy", "healthy control: nginx and upstream serve every request",
          Expect(None), host="web-21.example.com", kernel_style="rsyslog", startup_logged=True)
def healthy(ctx: Ctx) -> None:
    ctx.srv(BASE_RULES + "iptables -A INPUT -p tcp --dport 80 -j ACCEPT")
    upstream(ctx.lab, 8080)
    ctx.start_nginx(NginxSpec(PROXY.format(port=80, up=8080), log_format="json"))
    ctx.mark()
    got = ctx.load(30, concurrency=5)
    ctx.collect()
    ctx.check(got["status-200"] == 30, f"all 200: {dict(got)}")
    ctx.check(ctx.delta("TcpOutRsts") == 0, "no resets sent")
