"""Read the live iptables rules, strictly read-only, from whichever backend holds them.

* **legacy** (x_tables): through python-iptables (``iptc``), only for the tables the
  kernel already has (``/proc/net/ip_tables_names``; opening any other would load a
  module and create a table). Each rule is rendered in iptables-save syntax and read
  by the same grammar as files. Without iptc, ``iptables-legacy-save -c`` is used.
* **nf_tables** (iptables-nft): ``iptables-nft-save -c`` / ``ip6tables-nft-save -c``
  (``iptables-save -c`` when that is the nft variant); iptc cannot see these rules.

Every function returns what it read plus the problems met (binary missing, not root...),
never raising for an unreadable backend.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from auditor.firewall.iptables_save import SaveDump, parse_save

TABLES = ("raw", "mangle", "nat", "filter", "security")
PROC_NAMES = {4: "/proc/net/ip_tables_names", 6: "/proc/net/ip6_tables_names"}


@dataclass
class LiveRead:
    dumps: list[SaveDump] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _run(argv: list[str]) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def iptables_variant() -> str | None:
    """"nf_tables" or "legacy": what plain ``iptables`` on this host talks to."""
    exe = shutil.which("iptables")
    if exe is None:
        return None
    rc, out, _ = _run([exe, "-V"])
    if rc != 0:
        return None
    return "nf_tables" if "nf_tables" in out else "legacy"


def legacy_tables(family: int) -> list[str]:
    """Legacy tables the kernel holds (empty when the module is not loaded)."""
    try:
        with open(PROC_NAMES[family]) as fh:
            return [n.strip() for n in fh if n.strip() in TABLES]
    except OSError:
        return []


def read_nft_backend() -> LiveRead:
    """iptables-nft rules of both families via the *-save -c commands."""
    out = LiveRead()
    variant = iptables_variant()
    for fam, names in ((4, ("iptables-nft-save", "iptables-save")),
                       (6, ("ip6tables-nft-save", "ip6tables-save"))):
        exe = shutil.which(names[0])
        if exe is None and variant == "nf_tables":
            exe = shutil.which(names[1])
        if exe is None:
            out.problems.append(f"iptables-nft (IPv{fam}): {names[0]} not found")
            continue
        rc, text, err = _run([exe, "-c"])
        if rc != 0:
            why = err.strip().splitlines()[-1] if err.strip() else f"exit {rc}"
            if os.geteuid() != 0:
                why += " (not root)"
            out.problems.append(f"iptables-nft (IPv{fam}): {names[0]} -c failed: {why}")
            continue
        for line in (text + "\n" + err).splitlines():
            if line.startswith("# Warning:") and "legacy" in line:
                out.warnings.append(
                    "iptables-legacy tables present next to iptables-nft rules: both are "
                    "active, and plain `iptables -L` shows only one of them")
        if text.strip():
            origin = f"{os.path.basename(exe)} -c"
            out.dumps.append(parse_save(text, origin, "iptables-nft", fam))
    out.warnings = sorted(set(out.warnings))
    return out


def read_legacy_backend() -> LiveRead:
    """iptables-legacy rules (both families) via iptc, or iptables-legacy-save."""
    out = LiveRead()
    for fam in (4, 6):
        tables = legacy_tables(fam)
        if not tables:
            continue
        try:
            text = _iptc_save(fam, tables)
            origin = "python-iptables (iptc)"
        except Exception as exc:  # iptc missing, not root, libiptc errors
            exe = shutil.which("ip6tables-legacy-save" if fam == 6 else "iptables-legacy-save")
            if exe is None:
                out.problems.append(f"iptables-legacy (IPv{fam}): iptc failed ({exc}) and "
                                    "iptables-legacy-save not found")
                continue
            rc, text, err = _run([exe, "-c"])
            if rc != 0:
                out.problems.append(f"iptables-legacy (IPv{fam}): {err.strip() or rc}")
                continue
            origin = f"{os.path.basename(exe)} -c"
        out.dumps.append(parse_save(text, origin, "iptables-legacy", fam))
    return out


def _quote(value: str) -> str:
    if value and all(c not in value for c in ' "\\\t') :
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addr(value: str, family: int) -> str | None:
    neg = value.startswith("!")
    value = value.lstrip("!")
    net = ipaddress.ip_network(value, strict=False)
    if net.prefixlen == 0:
        return None
    return ("! " if neg else "") + str(net)


def _params(params: dict[str, Any]) -> list[str]:
    words: list[str] = []
    for key, vals in params.items():
        vals = list(vals) if isinstance(vals, list | tuple) else [vals]
        neg = bool(vals) and vals[0] == "!"
        if neg:
            vals = vals[1:]
        words += (["!"] if neg else []) + [f"--{key}"] + [_quote(str(v)) for v in vals]
    return words


def _iptc_save(family: int, tables: list[str]) -> str:
    """Render the legacy tables as iptables-save -c text, through iptc (read-only)."""
    import iptc

    lines = [f"# Generated by {'ip6tables' if family == 6 else 'iptables'}-save via iptc"]
    goto_flag = 0x04 if family == 6 else 0x02
    for name in TABLES:
        if name not in tables:
            continue
        table = iptc.Table6(name) if family == 6 else iptc.Table(name)
        table.autocommit = False
        table.refresh()
        lines.append(f"*{name}")
        body = []
        for chain in table.chains:
            if chain.is_builtin():
                pol = chain.get_policy().name
                pk, by = chain.get_counters()
                lines.append(f":{chain.name} {pol} [{pk}:{by}]")
            else:
                lines.append(f":{chain.name} - [0:0]")
            for rule in chain.rules:
                words: list[str] = []
                for flag, val in (("-s", rule.src), ("-d", rule.dst)):
                    a = _addr(val, family)
                    if a:
                        words += [*a.split(" ")[:-1], flag, a.split(" ")[-1]]
                proto = rule.protocol
                if proto and proto.lstrip("!") not in ("ip", "all", "0", "ipv6"):
                    words += (["!"] if proto.startswith("!") else []) + ["-p", proto.lstrip("!")]
                for flag, val in (("-i", rule.in_interface), ("-o", rule.out_interface)):
                    if val:
                        words += (["!"] if val.startswith("!") else []) + [flag, val.lstrip("!")]
                for m in rule.matches:
                    words += ["-m", m.name, *_params(m.get_all_parameters())]
                tgt = rule.target
                if tgt is not None and tgt.name:
                    flags = getattr(getattr(rule.entry, "ipv6" if family == 6 else "ip", None),
                                    "flags", 0)
                    jump = "-g" if flags & goto_flag else "-j"
                    words += [jump, tgt.name, *_params(tgt.get_all_parameters())]
                pk, by = rule.get_counters()
                body.append(f"[{pk}:{by}] -A {chain.name} " + " ".join(words))
        lines += body
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
