"""Network-namespace lab: a server and a client namespace joined by a veth pair.

Everything the lab creates is named with a random suffix and removed on exit
(processes by PID, then namespaces); traffic stays on 192.0.2.0/24 between the
two namespaces, and every traffic loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

SERVER_IP = "192.0.2.1"
CLIENT_IP = "192.0.2.2"


def lab_available() -> str | None:
    """None when the lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "iptables", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    probe = f"labprobe{secrets.token_hex(3)}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return None
    return "cannot create network namespaces here"


class Lab:
    """Two namespaces (``srv``, ``cli``) on a veth pair, with process tracking."""

    def __init__(self, tag: str = "lab") -> None:
        suffix = secrets.token_hex(3)
        self.srv = f"{tag}s{suffix}"
        self.cli = f"{tag}c{suffix}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self._kernel_mark = 0
        self._old_log_all: str | None = None
        self._old_cost: str | None = None
        self.srv_if = self.cli_if = ""

    # -- set-up and tear-down -------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            for ns in (self.srv, self.cli):
                run(["ip", "netns", "add", ns])
            veth_s, veth_c = f"v{self.srv[-6:]}s", f"v{self.cli[-6:]}c"
            run(["ip", "link", "add", veth_s, "netns", self.srv, "type", "veth",
                 "peer", "name", veth_c, "netns", self.cli])
            for ns, dev, ip in ((self.srv, veth_s, SERVER_IP), (self.cli, veth_c, CLIENT_IP)):
                self.sh(ns, f"ip addr add {ip}/24 dev {dev} && ip link set {dev} up && ip link set lo up")
            self.srv_if, self.cli_if = veth_s, veth_c
            self._old_log_all = read_sysctl("net.netfilter.nf_log_all_netns")
            if self._old_log_all is not None:
                write_sysctl("net.netfilter.nf_log_all_netns", "1")
            self._kernel_mark = next_kmsg_seq()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()
        for ns in (self.srv, self.cli):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if self._old_log_all is not None:
            write_sysctl("net.netfilter.nf_log_all_netns", self._old_log_all)
            self._old_log_all = None
        if self._old_cost is not None:
            write_sysctl("net.core.message_cost", self._old_cost)
            self._old_cost = None

    def unthrottle_kernel_log(self) -> None:
        """net.core.message_cost=0 until close: one-shot kernel warnings (SYN flooding)
        go through net_ratelimit(), whose budget is shared by the whole host."""
        if self._old_cost is None:
            self._old_cost = read_sysctl("net.core.message_cost")
            write_sysctl("net.core.message_cost", "0")

    # -- running things ---------------------------------------------------------
    def sh(self, ns: str, script: str, check: bool = True, timeout: float = 60) -> str:
        """Run a shell script inside namespace ``ns``; its stdout."""
        out = subprocess.run(["ip", "netns", "exec", ns, "sh", "-ec", script], capture_output=True,
                             text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"in {ns}: {script!r} failed: {out.stderr.strip()}")
        return out.stdout

    def spawn(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start a long-running process in ``ns``; it is killed (by PID group) on close."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def python(self, ns: str, code: str, *args: str, timeout: float = 120) -> Any:
        """Run a Python snippet in ``ns`` and decode the JSON it prints last."""
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(code),
                              *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"python in {ns} failed: {out.stderr.strip()[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_port(self, ns: str, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f":{port} " in self.sh(ns, "ss -ltnH"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {port} in {ns} after {timeout}s")

    def http_load(self, url: str, count: int, concurrency: int = 10, timeout: float = 3,
                  source: str | None = None, hold: float = 0.0, abort: bool = False,
                  spacing: float = 0.0, pause: float = 0.0) -> Counter[str]:
        """``count`` HTTP GETs from the client namespace; outcomes counted by kind.

        ``hold`` waits after sending the request; with ``abort`` the client then closes
        without reading ("aborted"). ``spacing`` delays each start by that many seconds
        times its index over the concurrency. A body shorter than Content-Length is
        "truncated". ``pause`` waits between connecting and sending the request.
        """
        result = self.python(self.cli, CLIENT_CODE, url, str(count), str(concurrency), str(timeout),
                             source or "", str(hold), str(int(abort)), str(spacing),
                             str(pause), timeout=count * (timeout + hold + spacing + pause) + 60)
        return Counter(result)

    def log_all_netns(self) -> None:
        """(Re)assert nf_log_all_netns=1: a parallel lab may have restored it meanwhile."""
        if self._old_log_all is not None:
            write_sysctl("net.netfilter.nf_log_all_netns", "1")

    def kernel_lines(self, style: str = "dmesg", host: str = "web-01") -> list[str]:
        """Kernel log lines since the lab started.

        ``style`` "dmesg" prints them as ``dmesg --time-format iso`` does, "rsyslog" as
        rsyslog's ISO file format (``<iso> <host> kernel: <msg>``). Netfilter log lines of
        other namespaces (their IN=/OUT= name none of our interfaces) are left out.
        """
        ours = (f"IN={self.srv_if} ", f"OUT={self.srv_if} ", f"IN={self.cli_if} ",
                f"OUT={self.cli_if} ")
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        lines = []
        for seq, usec, msg in kmsg_records():
            if seq < self._kernel_mark:
                continue
            if " IN=" in msg and " OUT=" in msg and not any(o in msg for o in ours):
                continue
            stamp = datetime.fromtimestamp(boot + usec / 1e6, tz=UTC)
            if style == "rsyslog":
                short = host.split(".")[0]  # rsyslog writes the short name unless PreserveFQDN
                lines.append(f"{stamp.isoformat(timespec='microseconds')} {short} kernel: {msg}")
            else:
                iso = stamp.strftime("%Y-%m-%dT%H:%M:%S,%f+00:00")
                lines.append(f"{iso} {msg}")
        return lines

    def collect(self, dest: Path, nginx_conf: Path | None = None, logs: dict[str, Path] | None = None,
                netstat_before: dict[str, str] | None = None, host: str = "web-01",
                kernel_style: str = "dmesg", extra: dict[str, str] | None = None,
                paths: dict[str, str] | None = None) -> Path:
        """Write what the server would hold into ``dest``: an artifacts directory for diagnose.

        The machine's own host name is replaced by ``host`` in every text written, and each
        key of ``paths`` (temporary directories) by its value.
        """
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "kern.log").write_text("\n".join(self.kernel_lines(kernel_style, host)) + "\n")
        cmds = {
            "iptables-save.txt": "iptables-save -c",
            "ip6tables-save.txt": "ip6tables-save -c",
            "nft.json": "nft -j list ruleset",
            "sysctl.txt": "sysctl -a 2>/dev/null",
            "ss.txt": "ss -tlnpi",
        }
        for name, cmd in cmds.items():
            (dest / name).write_text(self.sh(self.srv, cmd, check=False))
        (dest / "hostname").write_text(host + "\n")
        for name, text in {**(netstat_before or {}), **self.counters("after")}.items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_text(text)
        if nginx_conf is not None:
            (dest / "nginx-T.txt").write_text(
                self.sh(self.srv, f"nginx -T -c {nginx_conf} 2>/dev/null", check=False))
        for name, text in (extra or {}).items():
            (dest / name).write_text(text)
        for name, path in (logs or {}).items():
            if path.exists():
                shutil.copy(path, dest / name)
        scrub(dest, host, paths or {})
        return dest

    def counters(self, phase: str = "before") -> dict[str, str]:
        """The server namespace's counter files as ``counters/<phase>/<name>`` texts, each
        headed by ``# auditor-snapshot <phase> <time>`` as ``auditor collect`` writes them."""
        mark = f"# auditor-snapshot {phase} {datetime.now(UTC).isoformat()}\n"
        out = {}
        for name, src in COUNTER_FILES:
            text = self.sh(self.srv, f"cat {src} 2>/dev/null || true")
            if text.strip():
                out[f"counters/{phase}/{name}"] = mark + text
        return out


GENERIC_RELEASE, GENERIC_VERSION = "6.1.0-13-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1"
COUNTER_FILES = (("netstat", "/proc/net/netstat"), ("snmp", "/proc/net/snmp"),
                 ("sockstat", "/proc/net/sockstat"), ("nf_conntrack", "/proc/net/stat/nf_conntrack"))


CLIENT_CODE = r"""
import errno, json, socket, sys, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor
url, count, conc, timeout, source, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], float(sys.argv[6])
abort, spacing, pause = sys.argv[7] == "1", float(sys.argv[8]), float(sys.argv[9])
u = urllib.parse.urlsplit(url)
host, port = u.hostname, u.port or 80
def one(i):
    if spacing:
        time.sleep(spacing * (i // conc))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        if pause:
            time.sleep(pause)
        s.sendall(f"GET {u.path or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        if hold:
            time.sleep(hold)
        if abort:
            return "aborted"
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data:
            return "empty"
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:") and len(body) < int(line.split(b":")[1]):
                return "truncated"
        return "status-" + data.split(b" ", 2)[1].decode()
    except ConnectionResetError:
        return "reset"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, "oserror")
    finally:
        s.close()
with ThreadPoolExecutor(conc) as ex:
    out = list(ex.map(one, range(count)))
print(json.dumps(out))
"""


def run(argv: list[str]) -> None:
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")


def read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


def kmsg_records() -> list[tuple[int, int, str]]:
    """Every record in the kernel ring buffer as (sequence, microseconds since boot, text)."""
    records = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                raw = os.read(fd, 16384)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten while reading: skip ahead
                continue
            head, _, body = raw.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            text = body.split("\n", 1)[0]
            records.append((int(fields[1]), int(fields[2]), text))
    finally:
        os.close(fd)
    return records


def next_kmsg_seq() -> int:
    """The sequence number the next kernel message will get."""
    records = kmsg_records()
    return records[-1][0] + 1 if records else 0


def scrub(dest: Path, host: str, paths: dict[str, str]) -> None:
    """Replace this machine's host name by ``host`` in every text file under ``dest``.

    The kernel release and version become generic Debian ones.
    ``kernel.hostname`` is always replaced; other occurrences only as whole names of
    at least four characters (a short name like "vm" would hit "vm.swappiness").
    """
    uname = os.uname()
    real = uname.nodename
    names = sorted({real, real.split(".")[0]} - {"", "localhost"}, key=len, reverse=True)
    words = [re.compile(rf"(?<![\w.-]){re.escape(n)}(?![\w-]|\.\w)") for n in names if len(n) >= 4]
    for path in dest.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        new = re.sub(r"^(kernel\.(?:hostname|domainname) = ).*$", rf"\g<1>{host}", text,
                     flags=re.M) if path.name == "sysctl.txt" else text
        for word in words:
            new = word.sub(host, new)
        for mine, generic in ((uname.release, GENERIC_RELEASE), (uname.version, GENERIC_VERSION),
                              *paths.items()):
            new = new.replace(mine, generic)
        if new != text:
            path.write_text(new)
