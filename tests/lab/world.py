"""Dress a plain lab capture as a real host's bundle: noise, rotation, zone, age and layout.

A lab capture (:meth:`tests.lab.scenarios.Ctx.collect`) is clean: one burst, logs in
UTC, every file at the top. :func:`dress` rewrites it the way a capture looks in the
world, as a :class:`World` (chosen by a seed) says:

* **noise**: lines of other programs (sshd, cron, systemd, postfix, kernel chatter,
  an unrelated netfilter drop) and of other nginx traffic, spread over a window of
  hours before the incident and minutes after it, interleaved with the incident's own;
* **rotation**: lines before a moment inside the incident go to ``<log>.1``;
* **zone and age**: every stamp is written in the host's zone (nginx's zone-less
  stamps too) and the whole capture is moved ``age`` into the past (a bundle read
  days later);
* **host logs**: Debian (``kern.log`` + ``syslog``), RHEL (``messages``) or journald
  only (``journalctl -o json`` export);
* **layout**: the plain directory, a ``collect``-style archive with ``manifest.json``,
  or a sosreport (``sos_commands/``, ``var/log/``, ``proc/net``; it holds no counter
  snapshot from before the incident and no per-process limits, as a real one).

Only the time and place of lines change: the incident's lines are never altered.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney",
         "America/Sao_Paulo")
LAYOUTS = ("plain", "collect", "sos")
HOSTLOGS = ("debian", "rhel", "journald")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Rec:
    """One host log line: when (aware), which program (``kernel`` for the kernel), its text."""

    ts: datetime
    prog: str
    msg: str
    pid: int | None = None


@dataclass(frozen=True)
class World:
    """How the capture is dressed; see the module docstring."""

    layout: str = "plain"
    hostlog: str = "debian"
    zone: str = "UTC"
    age: timedelta = timedelta(0)
    noise: int = 0  # host log lines of noise (0: none)
    window: timedelta = timedelta(hours=1)
    rotate: bool = False
    rotate_at: float = 0.5  # where in the incident the rotation falls (0..1)
    seed: str = ""

    def describe(self) -> dict[str, object]:
        return {"layout": self.layout, "hostlog": self.hostlog, "zone": self.zone,
                "age_hours": round(self.age.total_seconds() / 3600, 1), "noise": self.noise,
                "window_hours": round(self.window.total_seconds() / 3600, 1),
                "rotate": self.rotate}


def pick_world(rng: random.Random, layouts: tuple[str, ...] = LAYOUTS,
               hostlogs: tuple[str, ...] = HOSTLOGS) -> World:
    """A world chosen by ``rng`` among the given layouts and host log styles."""
    layout = rng.choice(layouts)
    hostlog = rng.choice(tuple(h for h in hostlogs if not (layout == "sos" and h == "journald"))
                         or ("debian",))
    return World(layout=layout, hostlog=hostlog, zone=rng.choice(ZONES),
                 age=timedelta(hours=rng.choice((0, 0, 5, 30, 75, 24 * 9))),
                 noise=rng.choice((0, 40, 200, 600)),
                 window=timedelta(hours=rng.choice((1, 3, 6))),
                 rotate=rng.random() < 0.4, rotate_at=rng.uniform(0.2, 0.8),
                 seed=str(rng.random()))


# -- reading the capture's stamps ------------------------------------------------------
_KERN = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.,]\d+[+-]\d\d:\d\d) (?:\S+ kernel: )?(.*)$")
_ERR = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) ")
_CLF = re.compile(r"\[(\d\d)/(\w{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\]")
_ISO = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)"')
_ISO0 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)(?= )")
_MARK = re.compile(r"^(# auditor-snapshot \w+ )(\S+)$", re.M)


def kernel_records(text: str) -> list[Rec]:
    out = []
    for line in text.splitlines():
        m = _KERN.match(line)
        if m:
            out.append(Rec(datetime.fromisoformat(m.group(1).replace(",", ".")), "kernel",
                           m.group(2)))
    return out


class Clock:
    """Moves an instant ``age`` into the past and writes it in ``zone``."""

    def __init__(self, zone: str, age: timedelta) -> None:
        self.tz, self.age = ZoneInfo(zone), age

    def __call__(self, ts: datetime) -> datetime:
        return (ts - self.age).astimezone(self.tz)


def rewrite_nginx(text: str, clock: Clock) -> list[tuple[datetime | None, str]]:
    """Each line of an nginx log with its stamp moved by ``clock`` (and the new instant)."""
    out: list[tuple[datetime | None, str]] = []
    for line in text.splitlines():
        ts: datetime | None = None
        if m := _ERR.match(line):  # error.log: zone-less, written in UTC by the lab
            ts = datetime(*map(int, m.groups()), tzinfo=UTC)  # type: ignore[misc]
            line = clock(ts).strftime("%Y/%m/%d %H:%M:%S ") + line[m.end():]
        elif m := _CLF.search(line):
            d, mon, y, hh, mi, ss, off = m.groups()
            ts = datetime.strptime(f"{y}-{MONTHS.index(mon) + 1}-{d} {hh}:{mi}:{ss} {off}",
                                   "%Y-%m-%d %H:%M:%S %z")
            line = line[:m.start()] + clf_stamp(clock(ts)) + line[m.end():]
        elif m := _ISO.search(line):
            ts = datetime.fromisoformat(m.group(1))
            line = line[:m.start()] + f'"{clock(ts).isoformat()}"' + line[m.end():]
        elif m := _ISO0.match(line):
            ts = datetime.fromisoformat(m.group(1))
            line = clock(ts).isoformat() + line[m.end():]
        out.append((None if ts is None else clock(ts), line))
    return out


def clf_stamp(ts: datetime) -> str:
    return f"[{ts.day:02d}/{MONTHS[ts.month - 1]}/{ts.year}:{ts:%H:%M:%S} {ts:%z}]"


# -- noise -------------------------------------------------------------------------------
def _noise_line(rng: random.Random) -> tuple[str, str, int | None]:
    ip = f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randint(2, 250)}"
    port = rng.randint(30000, 65000)
    pid = rng.randint(300, 40000)
    kinds: list[tuple[str, str, int | None]] = [
        ("sshd", f"Accepted publickey for deploy from {ip} port {port} ssh2: ED25519 "
                 f"SHA256:{rng.getrandbits(64):x}", pid),
        ("sshd", f"Connection closed by {ip} port {port} [preauth]", pid),
        ("sshd", f"Invalid user admin from {ip} port {port}", pid),
        ("sshd", "pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)",
         pid),
        ("CRON", "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)", pid),
        ("CRON", "pam_unix(cron:session): session closed for user root", pid),
        ("systemd", "Starting logrotate.service - Rotate log files...", 1),
        ("systemd", "logrotate.service: Deactivated successfully.", 1),
        ("systemd", f"Started session-{rng.randint(10, 999)}.scope - Session of User deploy.", 1),
        ("systemd", "Starting apt-daily.service - Daily apt download activities...", 1),
        ("postfix/smtpd", f"connect from unknown[{ip}]", pid),
        ("postfix/smtpd", f"disconnect from unknown[{ip}] ehlo=1 quit=1 commands=2", pid),
        ("dockerd", f'time="{rng.randint(0, 59)}" level=info msg="ignoring event" '
                    f'module=libcontainerd namespace=moby topic=/tasks/delete', pid),
        ("kernel", "EXT4-fs (vda1): re-mounted. Quota mode: none.", None),
        ("kernel", f"perf: interrupt took too long ({rng.randint(2501, 9000)} > 2500), lowering "
                   f"kernel.perf_event_max_sample_rate to {rng.randint(20000, 79000)}", None),
        ("kernel", 'audit: type=1400 apparmor="DENIED" operation="open" profile="snap.lxd" '
                   'name="/proc/sys/kernel/cap_last_cap" pid=1412 comm="lxd" '
                   'requested_mask="r" denied_mask="r"', None),
        ("kernel", f"IPTables-Dropped: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
                   f"SRC={ip} DST=192.0.2.1 LEN=44 TOS=0x00 PREC=0x00 TTL=243 ID=54321 "
                   f"PROTO=TCP SPT={port} DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0", None),
        ("kernel", "virtio_net virtio0 eth0: link up", None),
    ]
    return rng.choice(kinds)


def noise_records(rng: random.Random, start: datetime, end: datetime, window: timedelta,
                  count: int) -> list[Rec]:
    """``count`` lines of other programs: most in ``window`` before ``start``, some during
    the incident and a few minutes after ``end``."""
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.75:
            ts = start - window * rng.random()
        elif r < 0.9:
            ts = start + (end - start) * rng.random()
        else:
            ts = end + timedelta(minutes=5) * rng.random()
        prog, msg, pid = _noise_line(rng)
        out.append(Rec(ts, prog, msg, pid))
    return out


PAGES = ("/", "/index.html", "/static/app.js", "/favicon.ico", "/api/health", "/login",
         "/images/logo.png", "/robots.txt")


def nginx_noise(rng: random.Random, fmt: str, start: datetime, window: timedelta, count: int,
                clock: Clock) -> tuple[list[tuple[datetime, str]], list[tuple[datetime, str]]]:
    """Other traffic of the same nginx before the incident: (access lines, error lines)."""
    access, error = [], []
    for _ in range(count):
        ts = clock(start - window * rng.random())
        ip = f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randint(2, 250)}"
        page = rng.choice(PAGES)
        status = rng.choice((200, 200, 200, 200, 304, 404))
        size = 0 if status == 304 else rng.randint(150, 40000)
        if fmt == "json":
            line = json.dumps({"time": ts.isoformat(), "remote_addr": ip,
                               "request": f"GET {page} HTTP/1.1", "status": status,
                               "body_bytes_sent": size, "request_time": 0.004,
                               "upstream_addr": "-", "upstream_status": "-"},
                              separators=(",", ":"))
        elif fmt == "custom":
            line = (f'{ip} - {clf_stamp(ts)} "GET {page} HTTP/1.1" {status} {size} rt=0.004 '
                    f'ua="-" us="-"')
        elif fmt == "combined":
            line = (f'{ip} - - {clf_stamp(ts)} "GET {page} HTTP/1.1" {status} {size} "-" '
                    f'"Mozilla/5.0 (X11; Linux x86_64)"')
        else:
            continue
        access.append((ts, line))
        if status == 404 and page == "/favicon.ico":
            error.append((ts, f'{ts:%Y/%m/%d %H:%M:%S} [error] 811#811: *{rng.randint(1, 9999)} '
                              f'open() "/var/www/html/favicon.ico" failed (2: No such file or '
                              f'directory), client: {ip}, server: _, request: "GET /favicon.ico '
                              f'HTTP/1.1", host: "www.example.com"'))
    return access, error


def access_format(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if first.startswith("{"):
        return "json"
    if " rt=" in first and ' ua="' in first:
        return "custom"
    if re.search(r'" \d{3} \d+ "[^"]*" "[^"]*"$', first):
        return "combined"
    return "other"


# -- rendering host logs -----------------------------------------------------------------
def render(recs: list[Rec], style: str, host: str, clock: Clock) -> list[tuple[datetime, str]]:
    """Host log lines in ``style`` (iso, bsd, dmesg, journal)."""
    short = host.split(".")[0]
    out = []
    for i, r in enumerate(recs):
        t = clock(r.ts)
        tag = r.prog if r.pid is None else f"{r.prog}[{r.pid}]"
        if style == "journal":
            doc = {"__CURSOR": f"s=lab;i={i + 1:x}", "__REALTIME_TIMESTAMP":
                   str(int(t.timestamp() * 1_000_000)), "_HOSTNAME": short,
                   "SYSLOG_IDENTIFIER": r.prog, "PRIORITY": "4" if r.prog == "kernel" else "6",
                   "_TRANSPORT": "kernel" if r.prog == "kernel" else "syslog", "MESSAGE": r.msg}
            if r.pid is not None:
                doc["_PID"] = str(r.pid)
            line = json.dumps(doc)
        elif style == "dmesg":
            line = f"{t.strftime('%Y-%m-%dT%H:%M:%S,%f%z')[:-2]}:{t.strftime('%z')[-2:]} {r.msg}"
        elif style == "bsd":
            line = f"{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S} {short} {tag}: {r.msg}"
        else:
            line = f"{t.isoformat(timespec='microseconds')} {short} {tag}: {r.msg}"
        out.append((t, line))
    return out


def _split(lines: list[tuple[datetime | None, str]] | list[tuple[datetime, str]],
           at: datetime | None) -> tuple[list[str], list[str]]:
    """(older, current): lines before ``at`` (a zone-less line follows the one before it)."""
    if at is None:
        return [], [ln for _, ln in lines]
    old, new, current = [], [], False
    for ts, ln in lines:
        if ts is not None:
            current = ts >= at
        (new if current else old).append(ln)
    return old, new


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln + "\n" for ln in lines))


@dataclass
class Dressed:
    """Where the dressed capture is (a directory or an archive) and its time facts."""

    path: Path
    start: datetime  # the incident's first and last line, as written (moved and zoned)
    end: datetime
    files: dict[str, str] = field(default_factory=dict)


def dress(stage: Path, out: Path, world: World, host: str, incident: tuple[datetime, datetime],
          records: list[Rec] = (), kernel_text: str | None = None) -> Dressed:  # type: ignore[assignment]
    """Write ``stage`` (a plain capture) as ``world`` says into ``out``; ``records`` are
    further host log lines of the incident (systemd, the application...), ``incident``
    its first and last instant (UTC). Returns where the capture diagnose reads is."""
    rng = random.Random(world.seed)
    clock = Clock(world.zone, world.age)
    start, end = incident
    recs = kernel_records(kernel_text if kernel_text is not None
                          else (stage / "kern.log").read_text(errors="replace"))
    recs += list(records)
    if world.noise:
        recs += noise_records(rng, start, end, world.window, world.noise)
    recs.sort(key=lambda r: r.ts)
    at = clock(start + (end - start) * world.rotate_at) if world.rotate else None

    files: dict[str, list[str]] = {}  # relative to the layout's log place

    def rotated(name: str, lines: list[tuple[datetime, str]]) -> None:
        old, new = _split(list(lines), at)
        if old:
            files[name + ".1"] = old
        files[name] = new

    kern = [r for r in recs if r.prog == "kernel"]
    if world.hostlog == "debian":
        style = rng.choice(("iso", "bsd", "dmesg") if world.layout == "plain" else ("iso", "bsd"))
        rotated("kern.log", render(kern, style, host, clock))
        rotated("syslog", render(recs, "bsd" if style == "bsd" else "iso", host, clock))
    elif world.hostlog == "rhel":
        rotated("messages", render(recs, "bsd", host, clock))
    else:
        files["journal/journal-o-json.txt"] = [ln for _, ln in render(recs, "journal", host,
                                                                       clock)]

    noise_acc: list[tuple[datetime, str]] = []
    noise_err: list[tuple[datetime, str]] = []
    if world.noise and (stage / "access.log").exists():
        fmt = access_format((stage / "access.log").read_text(errors="replace"))
        noise_acc, noise_err = nginx_noise(rng, fmt, start, world.window, world.noise, clock)
    nginx: dict[str, list[str]] = {}
    for name, more in (("access.log", noise_acc), ("error.log", noise_err)):
        if not (stage / name).exists():
            continue
        lines = rewrite_nginx((stage / name).read_text(errors="replace"), clock)
        if more:  # the capture's lines keep their order; other traffic went before them
            lines = sorted(more) + lines
        old, new = _split(lines, at)
        if old:
            nginx[name + ".1"] = old
        nginx[name] = new

    def marks(text: str) -> str:
        return _MARK.sub(lambda m: m.group(1) + (datetime.fromisoformat(m.group(2))
                                                 - world.age).isoformat(), text)

    top = {"plain": _plain, "collect": _collect, "sos": _sos}[world.layout]
    path = top(stage, out, world, host, files, nginx, marks, clock)
    return Dressed(path, clock(start), clock(end))


Marks = Callable[[str], str]


def _copy_common(stage: Path, dest: Path, names: dict[str, str], marks: Marks) -> None:
    for src, rel in names.items():
        if (stage / src).exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(marks((stage / src).read_text(errors="replace")))


def _raw(stage: Path, name: str, fallback: str) -> str:
    """A raw save from ``stage/raw`` (written by the shapes), else the plain capture's file."""
    for p in (stage / "raw" / name, stage / fallback):
        if p.exists():
            return p.read_text(errors="replace")
    return ""


def _plain(stage: Path, out: Path, world: World, host: str, files: dict[str, list[str]],
           nginx: dict[str, list[str]], marks: Marks, clock: Clock) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for p in stage.iterdir():
        if p.name in ("kern.log", "access.log", "error.log", "raw", "expected.json"):
            continue
        if p.is_dir():
            shutil.copytree(p, out / p.name)
        else:
            shutil.copy(p, out / p.name)
    for sub in ("counters/before", "counters/after"):
        for p in (out / sub).glob("*") if (out / sub).exists() else ():
            p.write_text(marks(p.read_text()))
    for name, lines in {**files, **nginx}.items():
        _write(out / name, lines)
    return out


def _collect(stage: Path, out: Path, world: World, host: str, files: dict[str, list[str]],
             nginx: dict[str, list[str]], marks: Marks, clock: Clock) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    snaps = {}
    for phase in ("before", "after"):
        text = (stage / f"counters/{phase}/netstat")
        if text.exists():
            m = _MARK.search(marks(text.read_text()))
            if m:
                snaps[phase] = m.group(2)
    stamp = datetime.fromisoformat(snaps.get("after", datetime.now(UTC).isoformat()))
    top = out / f"auditor-bundle-{stamp.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    top.mkdir()
    names = {f"counters/{ph}/{n}": f"counters/{ph}/{n}" for ph in ("before", "after")
             for n in ("netstat", "snmp", "sockstat", "nf_conntrack")}
    names |= {"sysctl.txt": "sysctl/sysctl-a.txt", "ss.txt": "listeners/ss-tlnpi.txt",
              "nginx-T.txt": "nginx/nginx-T.txt"}
    _copy_common(stage, top, names, marks)
    for p in stage.glob("limits-nginx-*.txt"):
        pid = p.stem.rsplit("-", 1)[1]
        (top / "proc").mkdir(exist_ok=True)
        (top / "proc" / f"{pid}.limits").write_text(p.read_text())
    rules = {"iptables-nft-save.txt": "iptables-save.txt",
             "iptables-legacy-save.txt": "",
             "ip6tables-nft-save.txt": "ip6tables-save.txt",
             "ip6tables-legacy-save.txt": "",
             "nft-ruleset.json": "nft.json"}
    (top / "rules").mkdir()
    for name, fallback in rules.items():
        text = _raw(stage, name, fallback or "-")
        if text.strip():
            (top / "rules" / name).write_text(text)
    for name, lines in files.items():
        _write(top / "logs/var/log" / name, lines)
    for name, lines in nginx.items():
        _write(top / "logs/var/log/nginx" / name, lines)
    artifacts = [{"path": str(p.relative_to(top)), "note": (p.parent.name if "counters" in p.parts
                                                             else "")}
                 for p in sorted(top.rglob("*")) if p.is_file()]
    manifest = {"auditor-bundle": 1, "created": stamp.isoformat(),
                "host": {"name": host, "kernel": "6.1.0-13-amd64",
                         "kernel_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1",
                         "boot_time": (stamp - timedelta(days=12, hours=3)).isoformat(),
                         "timezone": world.zone},
                "since_seconds": 7200.0, "sample_seconds": 10.0, "snapshots": snaps,
                "artifacts": artifacts, "missing": []}
    (top / "manifest.json").write_text(json.dumps(manifest, indent=1))
    archive = out / f"{top.name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    shutil.rmtree(top)
    return archive


_UNMARK = re.compile(r"^# auditor-snapshot .*\n", re.M)


def _sos(stage: Path, out: Path, world: World, host: str, files: dict[str, list[str]],
         nginx: dict[str, list[str]], marks: Marks, clock: Clock) -> Path:
    short = host.split(".")[0]
    top = out / f"sosreport-{short}-{datetime.now(UTC):%Y-%m-%d}-lab"
    top.mkdir(parents=True)
    names = {"ss.txt": "sos_commands/networking/ss_-tlnpi",
             "sysctl.txt": "sos_commands/kernel/sysctl_-a",
             "nginx-T.txt": "sos_commands/nginx/nginx_-T",
             "counters/after/netstat": "proc/net/netstat",
             "counters/after/snmp": "proc/net/snmp",
             "counters/after/sockstat": "proc/net/sockstat"}
    _copy_common(stage, top, names, lambda t: _UNMARK.sub("", t))
    fw = top / "sos_commands/firewall_tables"
    fw.mkdir(parents=True)
    for name, fallback, rel in (("iptables-save.txt", "iptables-save.txt", "iptables-save"),
                                ("ip6tables-save.txt", "ip6tables-save.txt", "ip6tables-save"),
                                ("nft.txt", "-", "nft_-a_list_ruleset")):
        text = _raw(stage, name, fallback)
        if text.strip():
            (fw / rel).write_text(text)
    for name, lines in files.items():
        _write(top / "var/log" / name, lines)
    for name, lines in nginx.items():
        _write(top / "var/log/nginx" / name, lines)
    (top / "hostname").write_text(host + "\n")
    (top / "uname").write_text(f"Linux {short} 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC Debian "
                               f"6.1.55-1 x86_64 GNU/Linux\n")
    return top
