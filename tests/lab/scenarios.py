"""Registry of lab incidents: each scenario sets up, makes bounded traffic and collects.

A scenario is a function of a :class:`Ctx` that builds the incident inside the
lab's server namespace, drives traffic from the client namespace, writes the
artifacts directory with :meth:`Ctx.collect`, and checks that the raw evidence
(kernel lines, nginx log lines, counter deltas, rule counters) is really there.
Its :class:`Expect` says what ``auditor diagnose`` must report for it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.netlab import SERVER_IP, Lab
from tests.lab.web import Nginx, NginxSpec


@dataclass(frozen=True)
class Expect:
    """The report diagnose must give.

    ``cause`` is the top finding (None: no finding at all); ``also`` are further causes
    that must share the top places with it, in any order; ``rule`` is a subset of the
    finding's ``rule`` object; ``limit`` are fnmatch patterns, one of which the finding's
    limit name must match; ``mentions`` are strings the finding must contain; ``absent``
    are causes that must not be reported at all; ``args`` the engineer's query options.
    """

    cause: str | None
    also: tuple[str, ...] = ()
    rule: dict[str, Any] | None = None
    limit: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    args: tuple[str, ...] = ()

    def as_json(self, rule: dict[str, Any] | None = None) -> dict[str, Any]:
        doc = {"cause": self.cause, "also": list(self.also), "rule": rule or self.rule,
               "limit": list(self.limit), "mentions": list(self.mentions),
               "absent": list(self.absent), "args": list(self.args)}
        return {k: v for k, v in doc.items() if v not in (None, [], {})} | {"cause": self.cause}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    expect: Expect
    run: Callable[[Ctx], None]
    host: str
    kernel_style: str = "dmesg"
    needs: Callable[[], str | None] | None = None
    startup_logged: bool = False


@dataclass
class Ctx:
    """What a scenario works with; ``problems`` collects missing raw evidence."""

    lab: Lab
    work: Path
    out: Path
    scenario: Scenario
    problems: list[str] = field(default_factory=list)
    nginx: Nginx | None = None
    before: dict[str, str] = field(default_factory=dict)
    rule: dict[str, Any] | None = None  # the expected rule, completed at run time (nft handles)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    def srv(self, script: str) -> str:
        return self.lab.sh(self.lab.srv, script)

    def start_nginx(self, spec: NginxSpec, port: int = 80) -> Nginx:
        self.nginx = Nginx(self.lab, self.work, spec)
        self.nginx.start(port)
        return self.nginx

    def mark(self) -> None:
        """Take the "before" counters: call once the set-up is done, before the traffic.

        Unless the scenario says ``startup_logged``, the nginx error log is emptied here, as
        in a capture whose log window opens long after nginx started (nginx appends).
        """
        if self.nginx is not None and not self.scenario.startup_logged:
            os.truncate(self.nginx.error, 0)
        self.lab.log_all_netns()
        self.before = self.lab.counters()

    def background(self, fn: Callable[[], Any]) -> Future[Any]:
        return self.pool.submit(fn)

    def load(self, count: int, port: int = 80, path: str = "/", **kw: Any) -> Any:
        return self.lab.http_load(f"http://{SERVER_IP}:{port}{path}", count, **kw)

    def collect(self, extra: dict[str, str] | None = None) -> Path:
        logs, conf = {}, None
        if self.nginx is not None:
            logs = {"access.log": self.nginx.access, "error.log": self.nginx.error}
            conf = self.nginx.conf
            extra = {**self.nginx.process_limits(), **(extra or {})}
        sc = self.scenario
        self.lab.collect(self.out, conf, logs, self.before, host=sc.host,
                         kernel_style=sc.kernel_style, extra=extra,
                         paths={str(self.work): "/srv/lab"})
        return self.out

    # -- raw evidence ---------------------------------------------------------
    def text(self, name: str) -> str:
        path = self.out / name
        return path.read_text(errors="replace") if path.exists() else ""

    def delta(self, name: str) -> int:
        """How much a /proc/net/netstat or snmp counter (e.g. TcpExtListenOverflows) moved."""
        before = counters(self.before.get("counters/before/netstat", "")
                          + self.before.get("counters/before/snmp", ""))
        after = counters(self.text("counters/after/netstat") + self.text("counters/after/snmp"))
        return after.get(name, 0) - before.get(name, 0)

    def rule_packets(self, needle: str) -> int:
        """Packet counter of the first iptables-save rule containing ``needle``."""
        for line in self.text("iptables-save.txt").splitlines():
            m = re.match(r"\[(\d+):\d+\] (-A .*)", line)
            if m and needle in m.group(2):
                return int(m.group(1))
        return -1

    def nft_rule(self, needle: str) -> dict[str, Any]:
        """The rule object of ``nft.json`` whose statements contain ``needle``, or {}."""
        doc = json.loads(self.text("nft.json") or '{"nftables": []}')
        for item in doc["nftables"]:
            rule = item.get("rule")
            if rule and needle in json.dumps(rule["expr"]):
                return dict(rule)
        return {}


def counters(text: str) -> dict[str, int]:
    """``{"TcpExtListenOverflows": 3, "TcpOutRsts": 9, ...}`` from netstat/snmp text."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, vals in itertools.pairwise(lines):
        hk, _, hn = head.partition(":")
        vk, _, vn = vals.partition(":")
        if hk != vk or not hn.strip() or not vn.strip() or not vn.split()[0].lstrip("-").isdigit():
            continue
        for name, value in zip(hn.split(), vn.split(), strict=False):
            if value.lstrip("-").isdigit():
                out[hk + name] = int(value)
    return out


_REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, title: str, expect: Expect, host: str, kernel_style: str = "dmesg",
             needs: Callable[[], str | None] | None = None, startup_logged: bool = False
             ) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    """Register the decorated function as scenario ``name``."""
    def deco(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        _REGISTRY[name] = Scenario(name, title, expect, fn, host, kernel_style, needs,
                                   startup_logged)
        return fn
    return deco


def registry() -> dict[str, Scenario]:
    """Every scenario, by name, in registration order."""
    from tests.lab import sc_gates, sc_keepalive, sc_net, sc_web  # noqa: F401  (registers them)
    return _REGISTRY


@dataclass(frozen=True)
class Outcome:
    out: Path
    problems: list[str]
    rule: dict[str, Any] | None


def reproduce(sc: Scenario, out: Path, tag: str = "hx",
              hold: Callable[[Lab], None] | None = None) -> Outcome:
    """Run scenario ``sc`` in a fresh lab, leave its artifacts in ``out`` and expected.json.

    ``hold``, when given, is called with the lab still up (to look around) before tear-down.
    """
    with tempfile.TemporaryDirectory(prefix=f"{tag}-{sc.name}-") as tmp, Lab(tag) as lab:
        ctx = Ctx(lab, Path(tmp), out, sc)
        try:
            sc.run(ctx)
        finally:
            ctx.pool.shutdown(wait=True)
        rule = ctx.rule or sc.expect.rule
        (out / "expected.json").write_text(json.dumps(sc.expect.as_json(rule), indent=2) + "\n")
        if hold is not None:
            hold(lab)
        return Outcome(out, ctx.problems, rule)
