"""``auditor rules``: show the firewall as auditor reads it, trace packets, lint the rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from enum import StrEnum
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from auditor.commands._common import clean_errors, err_console, fail
from auditor.firewall import FirewallError, read_file, read_ipsets, read_live, trace
from auditor.firewall.ipset import IpSets
from auditor.firewall.lint import LintFinding, lint, listening_ports
from auditor.firewall.model import Packet, PacketError, RuleRef, Ruleset, TraceEnv, TraceResult
from auditor.sinks.text import cell, clip, dumps, hanging, indented, json_bytes, line, stacked
from auditor.sinks.text import console as text_console

EXAMPLES = """
[bold]Examples[/]

  auditor rules show                       # live rules of every backend
  auditor rules show --from iptables.rules --backend iptables-nft
  auditor rules trace --src 198.51.100.7 --dst 192.0.2.10 --dport 443 \\
      --in eth0
  auditor rules trace --from ruleset.json --src 2001:db8::7 \\
      --dst 2001:db8::1 --dport 22 -f json
  auditor rules trace --from iptables.rules --packets p.ndjson > v.ndjson
  auditor rules lint --from iptables.rules --ss ss-ltn.txt --fail-on high

[bold]Exit status[/]

  0  printed (lint: no finding at the --fail-on severity)
  1  trace --packets: a packet line could not be read;
     lint --fail-on: a finding of that severity or higher
  2  bad option or unreadable rules
"""


SEVERITY = {"high": 0, "medium": 1, "low": 2, "info": 3}


class Severity(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"


class Fmt(StrEnum):
    table = "table"
    json = "json"


def _load(sources: list[str], ipsets_file: str | None, backend: str | None
          ) -> tuple[list[Ruleset], TraceEnv]:
    sets: IpSets | None = read_ipsets(ipsets_file) if ipsets_file else None
    if sources:
        try:
            rulesets = [read_file(s, sets) for s in sources]
        except FirewallError as exc:
            fail(str(exc))
        env = TraceEnv()
    else:
        state = read_live()
        for p in state.problems:
            hanging(err_console, line(("auditor: could not read ", "yellow"), p))
        for w in state.warnings:
            hanging(err_console, line(("auditor: warning: ", "bold yellow"), w))
        rulesets, env = state.rulesets, state.env
    for rs in rulesets:
        for issue in rs.issues[:20]:
            hanging(err_console, line((issue.location, "yellow"), f" {issue.reason}: ",
                                   (repr(clip(issue.text, 200)), "dim")))
        if len(rs.issues) > 20:
            hanging(err_console, line((f"{rs.origin}: {len(rs.issues) - 20} more issues", "dim")))
    if backend:
        rulesets = [rs for rs in rulesets if rs.backend == backend]
    return rulesets, env


def _rule_cells(r: RuleRef) -> list[str]:
    where = f"#{r.position}" if r.position is not None else f"h{r.handle}"
    counters = "" if r.packets is None else f"{r.packets}/{r.bytes}"
    return [f"{r.family} {r.table} {r.chain} {where}", r.text, counters, r.owner or ""]


def _show(rulesets: list[Ruleset], fmt: Fmt) -> None:
    if fmt is Fmt.json:
        doc = [{"backend": rs.backend, "origin": rs.origin,
                "policies": [p.to_json() for p in rs.policies()],
                "rules": [{**r.to_json(), "can_reset": r.can_reset} for r in rs.rules()],
                "issues": [{"location": str(i.location), "reason": i.reason} for i in rs.issues]}
               for rs in rulesets]
        print(dumps(doc, indent=2))
        return
    console = text_console()
    for rs in rulesets:
        table = Table(title=line(f"{rs.backend} ({rs.origin})"), header_style="bold",
                      expand=False)
        table.add_column("where", overflow="fold", max_width=24)
        table.add_column("rule", overflow="fold", ratio=1)
        table.add_column("pkts/bytes", overflow="fold", max_width=12)
        table.add_column("owner", overflow="fold", max_width=12)
        for p in rs.policies():
            table.add_row(cell(f"{p.family} {p.table} {p.chain}"), cell(f"policy {p.policy}"),
                          cell("" if p.packets is None else f"{p.packets}/{p.bytes}"), cell(""))
        for r in rs.rules():
            style = "bold red" if r.can_reset else ("red" if r.target == "reject" else None)
            table.add_row(*map(cell, _rule_cells(r)), style=style)
        console.print(table)
    hanging(console, line(("bold red", "bold red"), ": rules that answer with a TCP reset; ",
                       ("red", "red"), ": other REJECTs"))


def _print_trace(result: TraceResult, console: Console) -> None:
    how = result.verdict.upper() + (f" ({result.reject_with})" if result.reject_with else "")
    hanging(console, line(("verdict: ", "bold"), how))
    if result.rule is not None:
        r = result.rule
        hanging(console, line(("decided by: ", "bold"), r.label, "  ", (r.location or "", "dim")))
        console.print(indented(line(r.text), 2))
        if r.packets is not None:
            console.print(indented(line(f"counters: {r.packets} packets, {r.bytes} bytes"), 2))
    elif result.policy is not None:
        p = result.policy
        hanging(console, line(("decided by: ", "bold"),
                           f"policy {p.policy} of {p.backend} {p.family} {p.table} {p.chain}"))
    for step in result.nat:  # the addresses the later chains saw
        hanging(console, line(("nat: ", "bold"), step.text,
                           (f" at {step.hook}, by {step.rule.label}", "dim")))
        if step.note:
            console.print(indented(line((step.note, "dim")), 2))
    for note in result.notes:
        hanging(console, line(("note: ", "cyan"), note))
    if result.path:
        hanging(console, line(("path:", "bold")))
        for r in result.path:
            console.print(indented(line(f"{r.label}: ", r.text), 2))
    for c in result.conditional:
        hanging(console, line(("may decide", "yellow"), f" ({c.verdict}) when ", c.condition,
                           ": ", c.rule.label, ": ", c.rule.text))
    for n in result.not_evaluated:
        hanging(console, line(("not evaluated", "magenta"), f" ({n.reason}): ", n.rule.label, ": ",
                           n.rule.text))


def _packets_stream(path: str, rulesets: list[Ruleset], env: TraceEnv) -> int:
    """Trace every NDJSON packet of ``path``; one NDJSON verdict (or error) line each.

    Lines are written by orjson, and each rule's JSON is made once (bench_trace.py --cli,
    100,000 packets, best of 3: output took 2.1 s of CPU with json.dumps, print and
    to_json per rule, 0.6 s now); a document orjson refuses (a lone surrogate from a ``\\ud800``
    escape in the input) falls back to :mod:`json`."""
    fh = sys.stdin if path == "-" else open(path, errors="replace")  # noqa: SIM115
    out = sys.stdout.buffer
    bad = 0
    memo: dict[int, tuple[RuleRef, dict[str, Any]]] = {}  # one entry per rule of the rulesets

    def rule_json(ref: RuleRef) -> dict[str, Any]:
        got = memo.get(id(ref))  # the ref is kept in the entry, so its id stays its own
        if got is None:
            got = memo[id(ref)] = (ref, ref.to_json())
        return got[1]

    try:
        for no, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                packet = Packet.from_json(json.loads(text))
            except (ValueError, PacketError) as exc:
                bad += 1
                out.write(_ndjson({"error": str(exc), "line": no, "file": path}))
                hanging(err_console, line((f"{path}:{no}", "yellow"), " ", exc))
                continue
            result = trace(rulesets, packet, env)
            out.write(_ndjson({"packet": packet.to_json(), **result.to_json(rule_json)}))
    finally:
        out.flush()
        if fh is not sys.stdin:
            fh.close()
    return bad


def _ndjson(doc: dict[str, object]) -> bytes:
    try:
        return json_bytes(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
    except orjson.JSONEncodeError:  # a lone surrogate: written as text, valid UTF-8
        return (dumps(doc) + "\n").encode("utf-8")


def register(app: typer.Typer) -> None:
    rules = typer.Typer(help="Firewall rules: show, trace a packet, lint.", no_args_is_help=True,
                        rich_markup_mode="rich")
    app.add_typer(rules, name="rules", epilog=EXAMPLES)
    from_opt = typer.Option([], "--from", help="iptables-save dump or nft -j JSON (repeatable).")
    ipsets_opt = typer.Option(None, "--ipsets", help="'ipset save' output for -m set matches.")

    @rules.command("show", epilog=EXAMPLES)
    @clean_errors
    def show_cmd(
        backend: str | None = typer.Option(
            None, help="Only this backend: iptables-legacy, iptables-nft, nftables."),
        sources: list[str] = from_opt,
        ipsets: str | None = ipsets_opt,
        fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
    ) -> None:
        """The ruleset as auditor understands it; rules that can reset are highlighted."""
        rulesets, _ = _load(sources, ipsets, backend)
        _show(rulesets, fmt)

    @rules.command("trace", epilog=EXAMPLES)
    @clean_errors
    def trace_cmd(
        src: str | None = typer.Option(None, help="Source address."),
        dst: str | None = typer.Option(None, help="Destination address."),
        sport: int | None = typer.Option(None, help="Source port."),
        dport: int | None = typer.Option(None, help="Destination port."),
        proto: str = typer.Option("tcp", help="tcp, udp, icmp, ..."),
        iif: str | None = typer.Option(None, "--in", help="Input interface."),
        oif: str | None = typer.Option(None, "--out", help="Output interface."),
        state: str = typer.Option("new", help="new, established, related, invalid, untracked."),
        direction: str = typer.Option("input", help="input, forward or output."),
        flags: str | None = typer.Option(None, help="TCP flags, e.g. SYN or ACK,RST."),
        mark: int | None = typer.Option(None, help="Packet mark."),
        sources: list[str] = from_opt,
        ipsets: str | None = ipsets_opt,
        local: list[str] = typer.Option([], "--local", help="A local address (addrtype LOCAL)."),
        packets: str | None = typer.Option(None, help="NDJSON packets file, or - for stdin."),
        fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
    ) -> None:
        """The verdict for a packet, the rule that decides it, and the path of matched rules."""
        rulesets, env = _load(sources, ipsets, None)
        if local:
            env = TraceEnv(frozenset(local) | env.local_addresses)
        if packets is not None:
            if _packets_stream(packets, rulesets, env):
                raise typer.Exit(1)
            return
        if src is None or dst is None:
            fail("give --src and --dst (or --packets FILE)")
        try:
            packet = Packet.build(src=src, dst=dst, sport=sport, dport=dport, proto=proto,
                                  iif=iif, oif=oif, ct_state=state, direction=direction,
                                  tcp_flags=flags, mark=mark)
        except PacketError as exc:
            fail(str(exc))
        result = trace(rulesets, packet, env)
        if fmt is Fmt.json:
            print(dumps(result.to_json(), indent=2))
        else:
            _print_trace(result, text_console())

    @rules.command("lint", epilog=EXAMPLES)
    @clean_errors
    def lint_cmd(
        sources: list[str] = from_opt,
        ipsets: str | None = ipsets_opt,
        ss: str | None = typer.Option(None, help="Saved 'ss -ltnH' output (default: run ss)."),
        zero: bool = typer.Option(True, "--zero/--no-zero", help="Report zero-counter rules."),
        fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
        fail_on: Severity | None = typer.Option(
            None, "--fail-on", help="Exit 1 when a finding has this severity or higher."),
    ) -> None:
        """Resetting rules, INVALID drops, low limits, shadowed and never-matched rules."""
        rulesets, _ = _load(sources, ipsets, None)
        if ss:
            with open(ss) as fh:
                listening = listening_ports(fh.read())
        else:
            listening = listening_ports(_ss_live())
        found = [f for f in lint(rulesets, listening) if zero or f.kind != "zero-counters"]
        if fmt is Fmt.json:
            print(dumps([f.to_json() for f in found], indent=2))
        else:
            _print_lint(found)
        if fail_on is not None and any(
                SEVERITY.get(f.severity, 9) <= SEVERITY[fail_on.value] for f in found):
            raise typer.Exit(1)


def _print_lint(found: list[LintFinding]) -> None:
    table = Table(title="firewall lint", header_style="bold")
    for col in ("severity", "kind", "rule", "why"):
        table.add_column(col, overflow="fold")
    for f in sorted(found, key=lambda f: SEVERITY.get(f.severity, 9)):
        table.add_row(cell(f.severity), cell(f.kind),
                      stacked(cell(f.rule.label), cell(f.rule.text)), cell(f.message))
    text_console().print(table)


def _ss_live() -> str:
    exe = shutil.which("ss")
    if exe is None:
        return ""
    try:
        proc = subprocess.run([exe, "-ltnH"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout
