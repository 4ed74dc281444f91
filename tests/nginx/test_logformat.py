"""log_format compilation: variables, lists, JSON, needles, and how the format is chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.models import Location
from auditor.nginx.access_format import FormatLookupError, format_for_log
from auditor.nginx.logformat import LogFormatError, compile_format, split_format
from auditor.nginx.model import COMBINED
from auditor.parsers.base import LineError, ParseContext
from auditor.parsers.nginx_access import NginxAccessParser
from auditor.sources.files import SourceError

DUMP = Path(__file__).resolve().parents[2] / "samples" / "nginx" / "nginx-T.txt"


def test_split_and_match_combined() -> None:
    parts = split_format("a $x ${y}z")
    assert parts == [("lit", "a "), ("var", "x"), ("lit", " "), ("var", "y"), ("lit", "z")]
    fmt = compile_format(COMBINED)
    got = fmt.match('192.0.2.1 - bob [24/Nov/2026:10:00:00 +0000] "GET /a b HTTP/1.1" 502 5 "-" "x y"')
    assert got is not None
    assert got["remote_user"] == "bob" and got["request"] == "GET /a b HTTP/1.1"
    assert got["status"] == "502" and got["http_user_agent"] == "x y"
    assert fmt.needles == (b'" 444 ', b'" 499 ', b'" 502 ', b'" 503 ', b'" 504 ')
    assert fmt.match("garbage") is None


def test_lists_and_adjacent_free_text() -> None:
    fmt = compile_format('$remote_addr $http_x_forwarded_for $upstream_addr $status end')
    got = fmt.match("192.0.2.1 198.51.100.1, 198.51.100.2 192.0.2.5:80, 192.0.2.6:80 502 end")
    assert got is not None
    assert got["http_x_forwarded_for"] == "198.51.100.1, 198.51.100.2"
    assert got["upstream_addr"] == "192.0.2.5:80, 192.0.2.6:80"


def test_an_upstream_state_without_a_peer_is_empty() -> None:
    """A request that failed before nginx chose a peer (socket() failed with EMFILE) has an
    upstream state without an address: nginx writes $upstream_addr as nothing, not "-"."""
    fmt = '$remote_addr - [$time_local] "$request" $status $body_bytes_sent ' \
          'rt=$request_time ua="$upstream_addr" us="$upstream_status"'
    line = '192.0.2.2 - [07/Dec/2026:12:41:27 +0000] "GET / HTTP/1.1" 500 177 rt=0.000 ua="" us="-"'
    got = compile_format(fmt).match(line)
    assert got is not None and got["upstream_addr"] == "" and got["status"] == "500"
    parser = NginxAccessParser(ParseContext(options={"log_format": fmt}), "access.log")
    event = parser.parse(line.replace(" 500 ", " 502 "), Location("access.log", 1))
    assert event is not None and event.action == "http-bad-gateway"
    assert "upstream_addr" not in (event.extra or {})
    bare = compile_format("$remote_addr $upstream_addr $status")  # unquoted: two spaces
    assert (bare.match("192.0.2.2  500") or {}).get("status") == "500"


def test_json_needles_and_fallback() -> None:
    fmt = compile_format('{"s":"$status","u":"$upstream_addr"}', "json")
    assert fmt.is_json and b'{"s":"502","u' in fmt.needles
    assert fmt.match('{"s":"502","u":"192.0.2.5:80"}') == {"status": "502", "upstream_addr": "192.0.2.5:80"}
    # Same shape written with default escaping (\x22 is not JSON): the regex still reads it.
    fmt2 = compile_format('{"s":"$status","ua":"$http_user_agent"}')
    assert fmt2.match('{"s":"499","ua":"a \\x22b\\x22"}') == {"status": "499", "http_user_agent": "a \\x22b\\x22"}
    unquoted = compile_format('{"status":$status}', "json")
    assert unquoted.needles[0] == b'{"status":444}'


def test_bad_formats() -> None:
    with pytest.raises(LogFormatError):
        compile_format("no variables")
    with pytest.raises(LogFormatError):
        compile_format("$status", "yaml")


def options_for(log: str, name: str | None = None) -> dict[str, str]:
    found = format_for_log(Path(log), DUMP, name)
    assert found is not None
    return {"log_format": found.format, "log_format_escape": found.escape}


def test_format_from_config_by_log_path() -> None:
    parser = NginxAccessParser(ParseContext(options=options_for("/copy/example.access.log.1")))
    assert parser.formats[0].source.startswith("$remote_addr:$remote_port")
    line = ('192.0.2.1:5000 [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 502 5 rt=0.001 '
            'ua="192.0.2.5:80" us="502" urt="0.001" uct="0.000" cn=7 cr=1')
    event = parser.parse(line, Location("x", 1))
    assert event is not None and event.source_port == 5000 and event.extra["connection"] == 7
    named = NginxAccessParser(ParseContext(options=options_for("other.log", "json")), "other.log")
    assert named.formats[0].is_json
    with pytest.raises(LineError):
        named.parse('192.0.2.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 502 5 "-" "-"',
                    Location("x", 1))


def test_config_problems_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatLookupError, match="no log_format named 'nope'"):
        format_for_log(Path("x.log"), DUMP, "nope")
    bad = tmp_path / "bad.conf"
    bad.write_text("http {\n")
    with pytest.raises(FormatLookupError, match=r"bad\.conf:2: unexpected end of file"):
        format_for_log(Path("x.log"), bad)
    with pytest.raises(SourceError, match="log_format"):
        NginxAccessParser(ParseContext(options={"log_format": "plain text"}))

