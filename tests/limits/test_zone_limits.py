"""nginx ``limit_conn``/``limit_req`` become limits named by their zone, with the file:line."""

from __future__ import annotations

from auditor.limits.limit_table import zone_limits
from auditor.nginx.config import parse_text

CONF = """http {
    limit_conn_zone $binary_remote_addr zone=perip:10m;
    limit_req_zone $binary_remote_addr zone=api:10m rate=5r/s;
    limit_req_zone $server_name zone=site:1m rate=30r/m;
    server {
        listen 80;
        limit_conn perip 3;
        location /api { limit_req zone=api burst=2 nodelay; }
        location / { limit_req zone=site; }
    }
}
"""


def test_each_directive_is_one_limit() -> None:
    got = {(x.name, x.value, x.unit, x.location.line if x.location else None)
           for x in zone_limits(parse_text(CONF, "nginx.conf"))}
    assert got == {
        ("nginx limit_conn zone=perip", 3, "connections per $binary_remote_addr", 7),
        ("nginx limit_req zone=api", 2, "requests above 5r/s, nodelay", 8),
        ("nginx limit_req zone=site", 0, "requests above 30r/m", 9),
    }


def test_no_config_no_limits() -> None:
    assert zone_limits(None) == []
    assert zone_limits(parse_text("http { server { listen 80; } }\n", "nginx.conf")) == []
