"""Bad input never escapes as anything but the documented errors (LineError, NginxConfigError)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.models import Location
from auditor.nginx.config import parse_text
from auditor.nginx.model import NginxConfigError
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.nginx_access import NginxAccessParser
from auditor.parsers.nginx_error import NginxErrorParser
from auditor.sources.scan import ScanStats, scan

ERROR_LINE = (
    "2026/11/24 10:00:01 [error] 1234#1234: *5678 recv() failed (104: Connection reset by peer) "
    'while reading response header from upstream, client: 203.0.113.7, server: example.org, '
    'request: "GET /api HTTP/1.1", upstream: "http://127.0.0.1:8080/api", host: "example.org"'
)
ACCESS_LINE = '203.0.113.7 - - [24/Nov/2026:10:00:01 +0100] "GET /api HTTP/1.1" 502 157 "-" "curl"'
JSON_FORMAT = 'escape=json {"t":"$time_iso8601","s":$status,"u":"$upstream_addr","r":"$request"}'
CONFIG = "http {\n  upstream b { server 127.0.0.1:80; keepalive 8; }\n  server { listen 80; }\n}\n"

PARSERS: list[LineParser] = [
    NginxErrorParser(ParseContext()),
    NginxAccessParser(ParseContext()),
    NginxAccessParser(ParseContext(options={"log_format": JSON_FORMAT})),
]

texts = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    st.integers(0, len(ERROR_LINE)).map(lambda n: ERROR_LINE[:n]),
    st.integers(0, len(ACCESS_LINE)).map(lambda n: ACCESS_LINE[:n]),
    st.tuples(st.integers(0, len(ERROR_LINE)), st.text(max_size=20)).map(
        lambda t: ERROR_LINE[: t[0]] + t[1] + ERROR_LINE[t[0] :]),
    st.tuples(st.integers(0, len(ACCESS_LINE)), st.sampled_from(["\x00", '"', "\\", "{", "\ufffd"])).map(
        lambda t: ACCESS_LINE[: t[0]] + t[1] + ACCESS_LINE[t[0] :]),
)


def offer(parser: LineParser, line: str) -> None:
    with contextlib.suppress(LineError):
        parser.parse(line, Location("fuzz", 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_line_parsers_never_raise(line: str) -> None:
    for parser in PARSERS:
        offer(parser, line)


def test_huge_lines() -> None:
    for line in (ERROR_LINE + "x" * (1 << 20), ACCESS_LINE.replace("curl", "c" * (1 << 20)),
                 '{"s":502,"r":"' + "a" * (1 << 20) + '"}', "[" * 100_000, "\x00" * (1 << 20)):
        for parser in PARSERS:
            offer(parser, line)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2000))
def test_scan_counts_every_offered_line(tmp_path_factory: object, data: bytes) -> None:
    path = Path(str(tmp_path_factory.mktemp("hn-fuzz"))) / "x.log"  # type: ignore[attr-defined]
    path.write_bytes(data + b"\n" + ERROR_LINE.encode()[:15] + b" Connection reset\n")
    for cls in (NginxErrorParser, NginxAccessParser):
        stats = ScanStats(str(path), cls.name)
        events = list(scan(str(path), cls(ParseContext(), str(path)), stats, every_line=True))
        assert not any("internal error" in i.reason for i in stats.issues), stats.issues
        assert stats.events == len(events)
        assert stats.not_understood >= 1  # the truncated line is counted, not dropped


config_texts = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=400).map(lambda b: b.decode("utf-8", "replace")),
    st.integers(0, len(CONFIG)).map(lambda n: CONFIG[:n]),
    st.lists(st.sampled_from(["{", "}", ";", '"', "'", "\\", "#", "$", "${", "x", " ", "\n",
                              "_by_lua_block", "[[", "--", "include"]), max_size=60).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(config_texts)
def test_config_parser_only_raises_its_error(text: str) -> None:
    try:
        cfg = parse_text(text, "fuzz.conf")
    except NginxConfigError as exc:
        assert str(exc).startswith("fuzz.conf:")
        return
    for name in ("worker_processes", "worker_connections", "listens", "upstreams", "log_formats",
                 "access_logs", "keepalive_timeout", "limit_reqs", "limit_req_zones"):
        try:
            getattr(cfg, name)
        except NginxConfigError as exc:
            assert str(exc).startswith("fuzz.conf:")


def test_config_extremes() -> None:
    for text in ("a{" * 20_000, "x " * 500_000 + ";", "\x00" * (1 << 20), "#" * (1 << 20)):
        try:
            parse_text(text, "big.conf")
        except NginxConfigError as exc:
            assert str(exc).startswith("big.conf:")
