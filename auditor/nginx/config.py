"""The nginx configuration model: ``load``/``parse_text`` and typed accessors.

    cfg = load("/etc/nginx/nginx.conf")      # or a saved ``nginx -T`` output
    cfg.worker_connections.value              # 512 when not set (nginx's default)
    [l.backlog for l in cfg.listens]
    cfg.log_formats["main"].format

Accessors give the values together with the file:line they were set at
(``Setting.location`` is None for nginx's built-in defaults). A value nginx
itself would reject raises :class:`NginxConfigError` naming its file:line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from auditor.nginx.loader import read_source, read_text
from auditor.nginx.model import (
    COMBINED,
    AccessLog,
    Directive,
    ErrorLog,
    LimitConn,
    LimitReq,
    LimitZone,
    Listen,
    LogFormat,
    NginxConfigError,
    Setting,
    Upstream,
    UpstreamServer,
    parse_rate,
    parse_size,
    parse_time,
    split_host_port,
)

T = TypeVar("T")

__all__ = ["NginxConfig", "NginxConfigError", "load", "parse_text"]


def load(path: str, root: str | None = None) -> NginxConfig:
    """Parse a configuration file (with its includes) or an ``nginx -T`` dump, by content.

    ``root``: the input (bundle, sosreport folder) the file belongs to; its
    includes then resolve inside it, never on the analysing host."""
    try:
        text = read_text(path, regular=root is not None)
    except OSError as exc:
        raise NginxConfigError(f"cannot read: {exc.strerror or exc}", None) from None
    return parse_text(text, path, root)


def parse_text(text: str, origin: str, root: str | None = None) -> NginxConfig:
    """Parse configuration text; ``origin`` names it and anchors relative includes."""
    directives, files, problems, dump = read_source(text, origin, root)
    return NginxConfig(origin, directives, files, problems, dump)


def _int(d: Directive, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise NginxConfigError(f"{d.name}: invalid number {text!r}", d.location) from None
    if value < 0:
        raise NginxConfigError(f"{d.name}: negative number {text!r}", d.location)
    return value


def _conv(d: Directive, fn: Callable[[str], T], text: str) -> T:
    try:
        return fn(text)
    except ValueError as exc:
        raise NginxConfigError(f"{d.name}: {exc}", d.location) from None


def _arg(d: Directive, i: int = 0) -> str:
    if len(d.args) <= i:
        raise NginxConfigError(f"{d.name}: missing argument", d.location)
    return d.args[i]


def _in_upstream(d: Directive) -> bool:
    return any(c.split(" ", 1)[0] == "upstream" for c in d.context)


def _flag(d: Directive) -> bool:
    value = _arg(d).lower()
    if value not in ("on", "off"):
        raise NginxConfigError(f"{d.name}: expected on or off, got {value!r}", d.location)
    return value == "on"


@dataclass(frozen=True)
class NginxConfig:
    """Every directive in reading order (includes expanded), with typed accessors."""

    origin: str
    directives: tuple[Directive, ...]
    files: tuple[str, ...] = ()
    # Non-fatal trouble, each "file:line: what" (e.g. an include that matched no file).
    problems: tuple[str, ...] = ()
    dump: bool = False  # read from ``nginx -T`` output

    def find(self, name: str) -> list[Directive]:
        """Every directive called ``name``, in reading order."""
        return [d for d in self.directives if d.name == name]

    def _one(self, name: str) -> Directive | None:
        found = [d for d in self.find(name) if not d.context or d.context == ("events",)]
        return found[-1] if found else None

    def _settings(
        self, name: str, conv: Callable[[Directive], T], default: T, upstream: bool = False
    ) -> list[Setting[T]]:
        found = [
            Setting(conv(d), d.location, d.context)
            for d in self.find(name)
            if _in_upstream(d) == upstream
        ]
        return found or [Setting(default)]

    @cached_property
    def _children(self) -> dict[int, list[Directive]]:
        """Directives by the index of their parent block: built once, so that
        looking up a block's children costs nothing per block (linear analysis)."""
        kids: dict[int, list[Directive]] = {}
        for d in self.directives:
            kids.setdefault(d.parent, []).append(d)
        return kids

    @cached_property
    def _position(self) -> dict[int, int]:
        return {id(d): i for i, d in enumerate(self.directives)}

    def children(self, block: Directive) -> list[Directive]:
        """The directives directly inside a block directive."""
        idx = self._position.get(id(block))
        if idx is None:
            idx = self.directives.index(block)
        return list(self._children.get(idx, ()))

    # --- main and events --------------------------------------------------------------
    @property
    def worker_processes(self) -> Setting[int | str]:
        d = self._one("worker_processes")
        if d is None:
            return Setting(1)
        value = _arg(d)
        return Setting("auto" if value == "auto" else _int(d, value), d.location, d.context)

    def worker_process_count(self) -> int:
        """worker_processes with ``auto`` resolved to this machine's CPU count."""
        value = self.worker_processes.value
        return (os.cpu_count() or 1) if value == "auto" else int(value)

    @property
    def worker_connections(self) -> Setting[int]:
        d = self._one("worker_connections")
        return Setting(512) if d is None else Setting(_int(d, _arg(d)), d.location, d.context)

    @property
    def worker_rlimit_nofile(self) -> Setting[int] | None:
        d = self._one("worker_rlimit_nofile")
        return None if d is None else Setting(_int(d, _arg(d)), d.location, d.context)

    # --- listeners ----------------------------------------------------------------------
    @property
    def listens(self) -> list[Listen]:
        out: list[Listen] = []
        for d in self.find("listen"):
            host, port = split_host_port(_arg(d))
            flags = set(d.args[1:])
            opts = dict(a.split("=", 1) for a in d.args[1:] if "=" in a)
            backlog = opts.get("backlog")
            names: tuple[str, ...] = ()
            if d.parent >= 0:
                names = tuple(
                    a for s in self._children.get(d.parent, ()) if s.name == "server_name"
                    for a in s.args
                )
            out.append(Listen(
                host, port, d.location, d.context,
                backlog=None if backlog is None else _int(d, backlog),
                ssl="ssl" in flags, http2="http2" in flags,
                default_server="default_server" in flags or "default" in flags,
                reuseport="reuseport" in flags, server_names=names,
            ))
        return out

    # --- limits ---------------------------------------------------------------------------
    def _zones(self, name: str, kind: str) -> list[LimitZone]:
        out: list[LimitZone] = []
        for d in self.find(name):
            opts = dict(a.split("=", 1) for a in d.args[1:] if "=" in a)
            zone_name, _, size = opts.get("zone", "").partition(":")
            rate_text = opts.get("rate")
            out.append(LimitZone(
                kind, zone_name, _arg(d), _conv(d, parse_size, size) if size else None, d.location,
                rate=_conv(d, parse_rate, rate_text) if rate_text else None, rate_text=rate_text,
            ))
        return out

    @property
    def limit_conn_zones(self) -> list[LimitZone]:
        return self._zones("limit_conn_zone", "conn")

    @property
    def limit_req_zones(self) -> list[LimitZone]:
        return self._zones("limit_req_zone", "req")

    @property
    def limit_conns(self) -> list[LimitConn]:
        return [
            LimitConn(_arg(d), _int(d, _arg(d, 1)), d.location, d.context)
            for d in self.find("limit_conn")
        ]

    @property
    def limit_reqs(self) -> list[LimitReq]:
        out: list[LimitReq] = []
        for d in self.find("limit_req"):
            opts = dict(a.split("=", 1) for a in d.args if "=" in a)
            delay = opts.get("delay")
            out.append(LimitReq(
                opts.get("zone", ""), d.location, d.context,
                burst=_int(d, opts.get("burst", "0")), nodelay="nodelay" in d.args,
                delay=None if delay is None else _int(d, delay),
            ))
        return out

    @property
    def limit_conn_status(self) -> list[Setting[int]]:
        return self._settings("limit_conn_status", lambda d: _int(d, _arg(d)), 503)

    @property
    def limit_req_status(self) -> list[Setting[int]]:
        return self._settings("limit_req_status", lambda d: _int(d, _arg(d)), 503)

    # --- keep-alive and proxying ---------------------------------------------------------
    @property
    def keepalive_timeout(self) -> list[Setting[float]]:
        """Client-side keep-alive idle timeouts in seconds (default 75)."""
        return self._settings("keepalive_timeout", lambda d: _conv(d, parse_time, _arg(d)), 75.0)

    @property
    def keepalive_requests(self) -> list[Setting[int]]:
        return self._settings("keepalive_requests", lambda d: _int(d, _arg(d)), 1000)

    @property
    def upstreams(self) -> list[Upstream]:
        out: list[Upstream] = []
        for idx, block in enumerate(self.directives):
            if block.name != "upstream" or not block.block:
                continue
            inner = [d for d in self.directives if d.parent == idx]
            values: dict[str, Directive] = {d.name: d for d in inner}
            servers = tuple(
                UpstreamServer(
                    _arg(d), d.location,
                    {k: v for a in d.args[1:] for k, _, v in [a.partition("=")]},
                )
                for d in inner if d.name == "server"
            )
            ka, kt, kr = (values.get(n) for n in ("keepalive", "keepalive_timeout",
                                                  "keepalive_requests"))
            out.append(Upstream(
                _arg(block), block.location, servers,
                keepalive=None if ka is None else _int(ka, _arg(ka)),
                keepalive_timeout=None if kt is None else _conv(kt, parse_time, _arg(kt)),
                keepalive_requests=None if kr is None else _int(kr, _arg(kr)),
            ))
        return out

    @property
    def proxy_http_version(self) -> list[Setting[str]]:
        return self._settings("proxy_http_version", _arg, "1.0")

    @property
    def proxy_set_header_connection(self) -> list[Setting[str]]:
        """Values given to ``proxy_set_header Connection`` (nginx's default sends ``close``)."""
        found = [
            Setting(d.args[1] if len(d.args) > 1 else "", d.location, d.context)
            for d in self.find("proxy_set_header")
            if d.args and d.args[0].lower() == "connection"
        ]
        return found or [Setting("close")]

    def _timeout(self, name: str) -> list[Setting[float]]:
        return self._settings(name, lambda d: _conv(d, parse_time, _arg(d)), 60.0)

    @property
    def proxy_connect_timeout(self) -> list[Setting[float]]:
        return self._timeout("proxy_connect_timeout")

    @property
    def proxy_read_timeout(self) -> list[Setting[float]]:
        return self._timeout("proxy_read_timeout")

    @property
    def proxy_send_timeout(self) -> list[Setting[float]]:
        return self._timeout("proxy_send_timeout")

    @property
    def reset_timedout_connection(self) -> list[Setting[bool]]:
        return self._settings("reset_timedout_connection", _flag, False)

    @property
    def lingering_close(self) -> list[Setting[str]]:
        return self._settings("lingering_close", _arg, "on")

    @property
    def return_444(self) -> list[Directive]:
        """``return 444`` directives; their ``context`` names the server/location."""
        return [d for d in self.find("return") if d.args[:1] == ("444",)]

    # --- logs -------------------------------------------------------------------------------
    @property
    def log_formats(self) -> dict[str, LogFormat]:
        formats = {"combined": LogFormat("combined", COMBINED)}
        for d in self.find("log_format"):
            args = list(d.args)
            name = _arg(d)
            escape = "default"
            if len(args) > 1 and args[1].startswith("escape="):
                escape = args.pop(1).split("=", 1)[1]
            if len(args) < 2:
                raise NginxConfigError("log_format: missing format string", d.location)
            formats[name] = LogFormat(name, "".join(args[1:]), escape, d.location)
        return formats

    @property
    def error_logs(self) -> list[ErrorLog]:
        return [
            ErrorLog(_arg(d), d.args[1] if len(d.args) > 1 else "error", d.location, d.context)
            for d in self.find("error_log")
        ]

    @property
    def access_logs(self) -> list[AccessLog]:
        """``access_log`` paths in use (``off`` left out); format ``combined`` when not named."""
        return [
            AccessLog(
                d.args[0],
                d.args[1] if len(d.args) > 1 and "=" not in d.args[1] else "combined",
                d.location,
                d.context,
            )
            for d in self.find("access_log")
            if d.args and d.args[0] != "off"
        ]

    def access_log_format(self, log_path: str) -> LogFormat | None:
        """The log_format of the access log written at ``log_path`` when the configuration
        names exactly one. Rotations (``access.log.1``, ``.2.gz``) match; a path in the same
        directory wins over one that only shares the file name (a copy in a bundle)."""
        logs = self.access_logs
        same_dir = [a for a in logs if same_log(a.path, log_path, True)]
        found = same_dir or [a for a in logs if same_log(a.path, log_path, False)]
        names = {a.format_name for a in found}
        return self.log_formats.get(names.pop()) if len(names) == 1 else None


def same_log(configured: str, actual: str, same_dir: bool) -> bool:
    """Whether ``actual`` is the file ``configured`` or one of its rotations."""
    base, name = os.path.basename(configured), os.path.basename(actual)
    if name != base and not name.startswith(base + "."):
        return False
    rest = name[len(base) :].lstrip(".")
    if rest and not all(p.isdigit() or p in ("gz", "bz2", "xz") for p in rest.split(".")):
        return False
    if not same_dir:
        return True
    return os.path.dirname(os.path.abspath(configured)) == os.path.dirname(os.path.abspath(actual))
