"""nginx access log: ``combined`` or any ``log_format`` (text or JSON), statuses that matter.

The format comes from ``ctx.options``: ``log_format`` (a string; a leading
``escape=json`` is understood), or ``nginx_config`` (nginx.conf or ``nginx -T``
output) with an optional ``log_format_name``; without a name, the format of the
config's ``access_log`` for this file's path is used. Without options: ``combined``,
and JSON lines are read by their usual key names.

Only the statuses that bear on resets become events (444, 499, 502, 503, 504);
other well-formed lines give None, and a line that does not fit the format is
not understood (LineError).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from auditor.models import Event, Location
from auditor.nginx.logformat import (
    STATUS_ACTIONS,
    CompiledFormat,
    LogFormatError,
    compile_format,
    generic_json_keys,
)
from auditor.nginx.model import COMBINED, NginxConfigError
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.nginx_error import host_port, split_request
from auditor.sources.files import SourceError
from auditor.timeutil import MONTHS

if TYPE_CHECKING:
    from auditor.nginx.config import NginxConfig

_COMBINED = compile_format(COMBINED)
_GENERIC_JSON = CompiledFormat(
    "(json)", "json", (), _COMBINED.regex, generic_json_keys(), ()
)
# Without a format, JSON lines are only found by their status key (every JSON line is offered).
_JSON_NEEDLES = (b'"status"',)
_LISTS = ("upstream_addr", "upstream_status", "upstream_response_time", "upstream_connect_time")


@lru_cache(maxsize=8)
def _config(path: str, mtime_ns: int, size: int) -> NginxConfig:
    # Imported here: the config grammar (pyparsing) costs a tenth of a second to
    # load, and most scans never read a config.
    from auditor.nginx.config import load

    return load(path)


def config_for(path: str) -> NginxConfig:
    """A parsed nginx config, cached while the file is unchanged."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(f"nginx config {path}: {exc.strerror or exc}") from None
    try:
        return _config(path, st.st_mtime_ns, st.st_size)
    except NginxConfigError as exc:
        raise SourceError(f"nginx config: {exc}") from None


def format_for(options: dict[str, Any], log_path: str) -> CompiledFormat | None:
    """The compiled format the options name for ``log_path``; None = combined or any JSON."""
    try:
        fmt = options.get("log_format")
        if fmt:
            text, escape = str(fmt), str(options.get("log_format_escape", "default"))
            if text.startswith("escape="):
                head, _, text = text.partition(" ")
                escape = head.split("=", 1)[1]
            return compile_format(text.strip().strip("'"), escape)
        conf = options.get("nginx_config")
        if not conf:
            return None
        cfg = config_for(str(conf))
        name = options.get("log_format_name")
        if name:
            lf = cfg.log_formats.get(str(name))
            if lf is None:
                raise SourceError(f"nginx config {conf}: no log_format named {name!r}")
        else:
            lf = cfg.access_log_format(log_path)
            if lf is None:
                used = {a.format_name for a in cfg.access_logs}
                lf = cfg.log_formats.get(used.pop()) if len(used) == 1 else None
            if lf is None:
                return None
        return compile_format(lf.format, lf.escape)
    except LogFormatError as exc:
        raise SourceError(f"log_format: {exc}") from None


def _time_local(text: str) -> datetime:
    # 24/Nov/2026:10:00:01 +0100
    off = int(text[22:24]) * 60 + int(text[24:26])
    tz = timezone(timedelta(minutes=-off if text[21] == "-" else off))
    return datetime(int(text[7:11]), MONTHS[text[3:6]], int(text[0:2]), int(text[12:14]),
                    int(text[15:17]), int(text[18:20]), tzinfo=tz)


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.replace(" : ", ", ").split(",") if p.strip())


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class NginxAccessParser(LineParser):
    """nginx access log lines -> events for 444/499/502/503/504 responses."""

    name: ClassVar[str] = "nginx-access"
    description: ClassVar[str] = "nginx access log (combined or any log_format, JSON included)"
    patterns: ClassVar[tuple[str, ...]] = tuple(STATUS_ACTIONS[c] for c in sorted(STATUS_ACTIONS))
    needles: tuple[bytes, ...] = (*_COMBINED.needles, *_JSON_NEEDLES)

    def __init__(self, ctx: ParseContext, path: str = "-") -> None:
        super().__init__(ctx, path)
        compiled = format_for(ctx.options, path)
        self.formats: tuple[CompiledFormat, ...]
        if compiled is None:
            self.formats = (_COMBINED, _GENERIC_JSON)
            self.needles = (*_COMBINED.needles, *_JSON_NEEDLES)
        else:
            self.formats = (compiled,)
            self.needles = compiled.needles

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        lines = [line for line in head if line.strip()]
        if not lines:
            return 0.0
        hits = 0
        for line in lines:
            if _COMBINED.regex.match(line):
                hits += 1
            elif line.startswith("{") and '"status"' in line and "MESSAGE" not in line:
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and "status" in doc and (
                    {"request", "remote_addr", "uri", "request_uri"} & set(doc)
                ):
                    hits += 1
        return 0.9 * hits / len(lines)

    def parse(self, line: str, location: Location) -> Event | None:
        values = None
        for fmt in self.formats:
            values = fmt.match(line)
            if values is not None:
                break
        if values is None:
            raise LineError("line does not match the log_format")
        status_text = values.get("status", "")
        if not status_text.isdigit():
            if "status" in values and status_text not in ("-", ""):
                raise LineError(f"status is not a number: {status_text[:20]!r}")
            return None
        action = STATUS_ACTIONS.get(int(status_text))
        if action is None:
            return None
        return self._event(line, location, values, int(status_text), action)

    def _timestamp(self, values: dict[str, str]) -> tuple[datetime, bool]:
        try:
            if "time_iso8601" in values:
                return datetime.fromisoformat(values["time_iso8601"].replace("Z", "+00:00")), True
            if "time_local" in values:
                return _time_local(values["time_local"]), True
            if "msec" in values:
                return datetime.fromtimestamp(float(values["msec"]), UTC), True
        except (ValueError, KeyError, IndexError, OverflowError) as exc:
            raise LineError(f"bad time: {exc}") from None
        return self.ctx.reference_time, False

    def _event(
        self, line: str, location: Location, v: dict[str, str], status: int, action: str
    ) -> Event:
        stamp, has_time = self._timestamp(v)
        extra: dict[str, Any] = {}
        if not has_time:
            extra["time_source"] = "file-mtime"
        method = v.get("request_method")
        url = v.get("request_uri") or v.get("uri")
        if v.get("request"):
            r_method, r_url, version = split_request(v["request"])
            method, url = method or r_method, url or r_url
            if version:
                extra["http_version"] = version
            if r_method is None and v["request"] != "-":
                extra["request"] = v["request"]
        for key in _LISTS:
            text = v.get(key)
            if text and text != "-":
                items = _split_list(text)
                extra[key] = items if key == "upstream_addr" else tuple(
                    _num(i) if "time" in key else (int(i) if i.isdigit() else None) for i in items
                )
        if "upstream_addr" in extra:
            extra["upstream_ip"], extra["upstream_port"] = host_port(extra["upstream_addr"][-1])
        for key in ("connection", "connection_requests"):
            if v.get(key, "").isdigit():
                extra[key] = int(v[key])
        if v.get("request_time") not in (None, "", "-"):
            extra["request_time"] = _num(v["request_time"])
        for key, out in (("http_user_agent", "user_agent"), ("http_referer", "referrer"),
                         ("host", "host"), ("server_name", "server_name")):
            if v.get(key) not in (None, "", "-"):
                extra[out] = v[key]
        if "pipe" in v:
            extra["pipelined"] = v["pipe"] == "p"
        size = v.get("bytes_sent") or v.get("body_bytes_sent") or ""
        return Event(
            timestamp=stamp,
            location=location,
            dataset="nginx.access",
            action=action,
            category=("web", "network"),
            type=("access", "connection"),
            outcome="failure",
            source_ip=_ip(v.get("remote_addr")),
            source_port=_int(v.get("remote_port")),
            destination_ip=_ip(v.get("server_addr")),
            destination_port=_int(v.get("server_port")),
            transport="tcp",
            http_method=method,
            url=url,
            status_code=status,
            response_bytes=int(size) if size.isdigit() else None,
            process_name="nginx",
            host_name=self.ctx.host_name,
            original=line,
            extra={k: val for k, val in extra.items() if val is not None},
        )


def _ip(text: str | None) -> str | None:
    return text if text and text != "-" else None


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None
