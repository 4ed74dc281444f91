"""An access log in a log_format that only the input's nginx configuration declares is read.

Nothing recognises such a file by content; the 502s and 499s in it must not be lost
when the bundle holds ``nginx -T``. A plain directory's ``hostname`` file names the host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NGINX_T = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
events { worker_connections 512; }
http {
    log_format edge '$remote_addr|$time_iso8601|$request|$status|$upstream_addr|$request_time';
    access_log /var/log/nginx/edge.log edge;
    server {
        listen 8080;
        location / { proxy_pass http://127.0.0.1:9000; }
    }
}
"""


def _lines() -> str:
    out = []
    for i in range(12):
        status = 502 if i % 2 else 200
        out.append(f"203.0.113.{i + 1}|2026-11-24T10:00:{i:02d}+00:00|GET /api/{i} HTTP/1.1|"
                   f"{status}|127.0.0.1:9000|0.00{i}")
    return "\n".join(out) + "\n"


def test_custom_format_from_the_bundles_nginx_config(tmp_path: Path) -> None:
    (tmp_path / "nginx-T.txt").write_text(NGINX_T)
    (tmp_path / "edge.log").write_text(_lines())
    (tmp_path / "hostname").write_text("edge-7.example.net\n")
    out = subprocess.run([sys.executable, "-m", "auditor", "diagnose", str(tmp_path),
                          "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["host"] == "edge-7.example.net"
    used = {Path(s["path"]).name: s for s in report["sources"]}
    assert used["edge.log"]["used"] and used["edge.log"]["kind"] == "nginx-access"
    assert used["edge.log"]["events"] == 6  # the six 502s
    assert "hostname" not in used
    assert "not recognised" not in out.stderr
