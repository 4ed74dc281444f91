"""nginx config grammar and model on the shipped samples and on tricky snippets."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from auditor.nginx.config import NginxConfig, load, parse_text
from auditor.nginx.model import NginxConfigError, parse_time

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "nginx"
MULTI = SAMPLES / "multi"
DUMP = SAMPLES / "nginx-T.txt"


def directive_lines(path: Path) -> list[tuple[int, str]]:
    """(line, first word) of each line that starts a statement (samples: one per line).

    A line starts a statement when the previous significant line ended one (``;``,
    ``{`` or ``}``); lines that continue a ``log_format`` string do not.
    """
    out = []
    ended = True
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text.startswith("#") or not text:
            continue
        code = re.sub(r"\s+#[^'\"]*$", "", text)
        if ended and not code.startswith("}"):
            word = re.split(r"\s", code, maxsplit=1)[0].rstrip(";{")
            out.append((n, word.strip("'\"")))
            inner = re.search(r"\{\s+(\w+)[^;]*;", code)  # `location / { return 204; }`
            if inner:
                out.append((n, inner.group(1)))
        ended = code.endswith((";", "{", "}"))
    return out


@pytest.fixture(scope="module", params=["file", "dump"])
def cfg(request: pytest.FixtureRequest) -> NginxConfig:
    return load(str(MULTI / "nginx.conf") if request.param == "file" else str(DUMP))


def test_every_directive_is_located(cfg: NginxConfig) -> None:
    assert not cfg.problems
    for rel in ("nginx.conf", "mime.types", "conf.d/upstreams.conf", "conf.d/proxy.conf",
                "sites-enabled/example.org", "sites-enabled/status.conf"):
        got = sorted(
            (d.location.line, d.name) for d in cfg.directives
            if d.location.path.endswith("/" + rel) or d.location.path == rel
        )
        expected = sorted(directive_lines(MULTI / rel))
        assert got == expected, rel


def test_includes_in_order_and_context(cfg: NginxConfig) -> None:
    files = [os.path.basename(f) for f in cfg.files]
    assert files == ["nginx.conf", "mime.types", "proxy.conf", "upstreams.conf", "example.org",
                     "status.conf"]
    upstream = cfg.find("upstream")[0]
    assert upstream.context == ("http",) and upstream.location.line == 2
    ret = cfg.return_444
    assert [d.context[-1] for d in ret] == ["location ~* \\.(php|asp)$", "if ($request_method = POST)"]
    assert all(d.location.path.endswith("sites-enabled/example.org") for d in ret)
    assert [d.location.line for d in ret] == [29, 39]


def test_typed_accessors(cfg: NginxConfig) -> None:
    assert cfg.worker_processes.value == "auto"
    assert cfg.worker_process_count() == (os.cpu_count() or 1)
    assert cfg.worker_connections.value == 1024 and cfg.worker_connections.context == ("events",)
    rlimit = cfg.worker_rlimit_nofile
    assert rlimit is not None and rlimit.value == 4096
    listens = {(x.address, x.port): x for x in cfg.listens}
    assert listens[("*", 80)].backlog == 4096 and listens[("*", 80)].default_server
    assert listens[("::", 80)].backlog is None
    assert listens[("127.0.0.1", 8088)].reuseport
    assert listens[("127.0.0.1", 8081)].server_names == ("_",)
    assert [(z.name, z.size) for z in cfg.limit_conn_zones] == [("addr", 10 << 20)]
    assert [(z.name, z.rate) for z in cfg.limit_req_zones] == [("one", 10.0), ("perserver", 5.0)]
    assert [(r.zone, r.burst, r.nodelay, r.delay) for r in cfg.limit_reqs] == [
        ("one", 20, True, None), ("perserver", 5, False, 2)]
    assert [(c.zone, c.number) for c in cfg.limit_conns] == [("addr", 20)]
    assert [s.value for s in cfg.limit_conn_status] == [429]
    assert [s.value for s in cfg.limit_req_status] == [429]
    assert [s.value for s in cfg.keepalive_timeout] == [65.0, 10.0]
    assert [s.value for s in cfg.keepalive_requests] == [1000]
    up = {u.name: u for u in cfg.upstreams}
    assert up["backend"].keepalive == 32 and up["backend"].keepalive_timeout == 60.0
    assert up["backend"].keepalive_requests == 1000
    assert [s.address for s in up["backend"].servers] == ["127.0.0.1:8080", "127.0.0.1:8081"]
    assert up["backend"].servers[0].params == {"max_fails": "3", "fail_timeout": "10s"}
    assert up["legacy"].keepalive is None
    assert [s.value for s in cfg.proxy_http_version] == ["1.1"]
    assert [s.value for s in cfg.proxy_set_header_connection] == ["", "$connection_upgrade"]
    assert [s.value for s in cfg.proxy_connect_timeout] == [5.0]
    assert [s.value for s in cfg.proxy_read_timeout] == [90.0, 5.0]
    assert [s.value for s in cfg.proxy_send_timeout] == [60.0]
    assert [s.value for s in cfg.reset_timedout_connection] == [True]
    assert [s.value for s in cfg.lingering_close] == ["always"]
    formats = cfg.log_formats
    assert formats["json"].escape == "json" and formats["json"].format.startswith('{"time"')
    assert formats["main"].format.endswith('"$http_x_forwarded_for"')
    assert [(e.path, e.level) for e in cfg.error_logs] == [
        ("/var/log/nginx/error.log", "warn"), ("/var/log/nginx/example.error.log", "info")]
    assert [(a.path, a.format_name) for a in cfg.access_logs] == [
        ("/var/log/nginx/access.log", "main"),
        ("/var/log/nginx/example.access.log", "upstreamlog"),
        ("/var/log/nginx/example.json.log", "json")]
    fmt = cfg.access_log_format("/bundle/var/log/nginx/example.json.log.2.gz")
    assert fmt is not None and fmt.name == "json"
    assert cfg.access_log_format("/var/log/nginx/other.log") is None


def test_dump_locations_are_the_original_files() -> None:
    cfg = load(str(DUMP))
    assert cfg.dump
    d = cfg.find("keepalive")[0]
    assert (d.location.path, d.location.line) == ("/etc/nginx/conf.d/upstreams.conf", 5)
    assert d.context == ("http", "upstream backend")


def test_defaults_when_unset() -> None:
    cfg = parse_text("events {}\nhttp { server { listen 8080; } }\n", "mini.conf")
    assert cfg.worker_processes.value == 1 and cfg.worker_processes.default
    assert cfg.worker_connections.value == 512 and cfg.worker_rlimit_nofile is None
    assert cfg.keepalive_timeout[0].value == 75.0 and cfg.keepalive_timeout[0].default
    assert cfg.proxy_http_version[0].value == "1.0"
    assert cfg.proxy_set_header_connection[0].value == "close"
    assert cfg.limit_req_status[0].value == 503
    assert [(x.address, x.port) for x in cfg.listens] == [("*", 8080)]


def test_tricky_syntax() -> None:
    text = r"""
    http {  # comment after a brace
        map $uri $x { ~^/a/(?<n>\d+)$ /b/$n; default "a;b"; }
        server {
            listen [::1]:443 ssl http2 backlog=1024 default_server;
            set $v "${host}x";  set $w ${host}y;
            location ~ "^/v[0-9]{2}/" { return 444; }
            location /q { return 200 'it\'s "quoted" \\ \t'; }
            content_by_lua_block {
                local s = "}" -- } not the end
                ngx.say('{', [[ } ]])
            }
            if ($http_user_agent ~* "(bot|spider)") { return 403; }
        }
    }
    """
    cfg = parse_text(text, "tricky.conf")
    listen = cfg.listens[0]
    assert (listen.address, listen.port, listen.ssl, listen.http2, listen.backlog) == (
        "::1", 443, True, True, 1024)
    assert cfg.find("set")[0].args == ("$v", "${host}x")
    assert cfg.find("set")[1].args == ("$w", "${host}y")
    assert cfg.return_444[0].context[-1] == "location ~ ^/v[0-9]{2}/"
    assert cfg.find("return")[1].args == ("200", "it's \"quoted\" \\ \\t".replace("\\t", "\t"))
    lua = cfg.find("content_by_lua_block")[0]
    assert lua.raw is not None and "[[ } ]]" in lua.raw
    assert cfg.find("if")[0].location.line == 13
    assert cfg.find("default")[0].args == ("a;b",)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("http {\n  server {\n    listen 80\n  }\n}\n", 4, "unexpected '}'"),
        ("events {}\n}\n", 2, "unexpected '}'"),
        ("http {\n  server {\n", 3, "unexpected end of file"),
        ("a 'unterminated;\n", 1, "unexpected"),
        ("worker_connections lots;\nevents {}\n", 1, "invalid number"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, what: str) -> None:
    with pytest.raises(NginxConfigError) as exc:
        cfg = parse_text(text, "bad.conf")
        _ = cfg.worker_connections
    assert str(exc.value).startswith(f"bad.conf:{line}: ")
    assert what in str(exc.value)


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("server {\n listen 80;\n location / {\n}\n")
    (tmp_path / "nginx.conf").write_text("http {\n include conf.d/*.conf;\n}\n")
    with pytest.raises(NginxConfigError, match=r"conf\.d/a\.conf:5: unexpected end of file"):
        load(str(tmp_path / "nginx.conf"))


def test_missing_include_and_cycle(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("include missing.conf;\ninclude none-*.conf;\n")
    cfg = load(str(tmp_path / "nginx.conf"))
    assert len(cfg.problems) == 1 and "missing.conf" in cfg.problems[0]
    assert cfg.problems[0].startswith(f"{tmp_path}/nginx.conf:1:")
    (tmp_path / "loop.conf").write_text("include loop.conf;\n")
    with pytest.raises(NginxConfigError, match="nested too deeply"):
        load(str(tmp_path / "loop.conf"))
    with pytest.raises(NginxConfigError, match="cannot read"):
        load(str(tmp_path / "absent.conf"))


def test_time_values() -> None:
    assert parse_time("1m30s") == 90 and parse_time("500ms") == 0.5 and parse_time("75") == 75
    for bad in ("", "s", "1x", "10 s"):
        with pytest.raises(ValueError):
            parse_time(bad)
