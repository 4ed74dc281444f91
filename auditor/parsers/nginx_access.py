"""nginx access log: ``combined``, ``main`` or any ``log_format`` (text or JSON).

The format comes from ``ctx.options["log_format"]``: a stock name (``combined``,
``main``) or a format string (a leading ``escape=json`` is understood;
``log_format_escape`` may say it too). The caller resolves it, e.g. from an
nginx configuration (:mod:`auditor.nginx.access_format`): this parser opens no
file. Without the option a line is read as ``main`` (the nginx.org packages' and
the Docker image's default), ``combined``, or JSON by its usual key names.

Only the statuses that bear on resets become events (444, 499, 502, 503, 504);
other well-formed lines give None, and a line that does not fit the format is
not understood (LineError).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

from auditor.models import Event, Location
from auditor.nginx.logformat import (
    MAIN,
    STATUS_ACTIONS,
    CompiledFormat,
    LogFormatError,
    compile_format,
    format_option,
    generic_json_keys,
)
from auditor.nginx.model import COMBINED
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.nginx_error import host_port, split_request
from auditor.paths import SourceError
from auditor.timeutil import MONTHS

_COMBINED = compile_format(COMBINED)
_MAIN = compile_format(MAIN)
_GENERIC_JSON = CompiledFormat(
    "(json)", "json", (), _COMBINED.regex, generic_json_keys(), ()
)
#: The formats tried, in order, when none is given (``main`` first: it is the longer).
DEFAULT_FORMATS = (_MAIN, _COMBINED, _GENERIC_JSON)
# Without a format, JSON lines are only found by their status key (every JSON line is offered).
_JSON_NEEDLES = (b'"status"',)
_LISTS = ("upstream_addr", "upstream_status", "upstream_response_time", "upstream_connect_time")


def format_for(options: dict[str, Any]) -> CompiledFormat | None:
    """The compiled ``log_format`` option; None = the defaults."""
    fmt = options.get("log_format")
    if not fmt:
        return None
    try:
        return format_option(str(fmt), str(options.get("log_format_escape", "default")))
    except LogFormatError as exc:
        raise SourceError(f"log_format: {exc}") from None


def looks_like_access(line: str) -> bool:
    """Whether ``line`` is an access-log line in one of the default formats."""
    if line.startswith("{"):
        if '"status"' not in line or "MESSAGE" in line:
            return False
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            return False
        return isinstance(doc, dict) and "status" in doc and bool(
            {"request", "remote_addr", "uri", "request_uri"} & set(doc)
        )
    return _COMBINED.regex.match(line) is not None or _MAIN.regex.match(line) is not None


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
        compiled = format_for(ctx.options)
        self.formats: tuple[CompiledFormat, ...]
        if compiled is None:
            self.formats = DEFAULT_FORMATS
            self.needles = (*_COMBINED.needles, *_JSON_NEEDLES)
        else:
            self.formats = (compiled,)
            self.needles = compiled.needles

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        lines = [line for line in head if line.strip()]
        if not lines:
            return 0.0
        return 0.9 * sum(1 for line in lines if looks_like_access(line)) / len(lines)

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
