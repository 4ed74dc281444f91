"""Secrets never reach a bundle: redaction line by line (kinds, line numbers kept, records
capped), and a real nginx whose configuration holds an Authorization header, a password in a
URL and key and basic-auth files, collected from its namespace: none of the secrets is in the
bundle, the manifest lists what was redacted, and the key and password files were never read.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from auditor.bundle import writer
from auditor.bundle.logs import nginx_log_paths, secret_files
from auditor.bundle.redact import MARK, RECORD_LINES, Redactor, redact_text
from tests.bundle.collectors import auditor_argv, env, manifest, standalone_argv
from tests.lab.netlab import Lab, lab_available

CASES = [
    ('proxy_set_header Authorization "Basic dXNlcjpzM2NyZXQ=";', "dXNlcjpzM2NyZXQ=",
     "authorization-header"),
    ("proxy_set_header  'Proxy-Authorization' Bearer tok-123;", "tok-123", "authorization-header"),
    ('add_header Set-Cookie "sid=abc123; Path=/";', "abc123", "authorization-header"),
    ("GET / HTTP/1.1 Authorization: Bearer eyJhbGciOi.x.y", "eyJhbGciOi", "authorization-header"),
    ("set $u http://alice:pr0xy-pa55@10.0.0.2:8080/;", "pr0xy-pa55", "url-password"),
    ("upstream: \"https://bob:b0b-pw@api.example.com/x\"", "b0b-pw", "url-password"),
    ("# cmdline: /usr/bin/app --password=topsecret -c /etc/app", "topsecret",
     "command-line-secret"),
    ("# cmdline: mysqld --db-passwd s3cr3t --port 3306", "s3cr3t", "command-line-secret"),
    ("fastcgi_param DB_PASSWORD dbpw-99;", "dbpw-99", "secret-parameter"),
    ("env MYSQL_ROOT_PASSWORD=rootpw-7 started", "rootpw-7", "secret-assignment"),
]


@pytest.mark.parametrize(("line", "secret", "kind"), CASES)
def test_each_kind_of_secret(line: str, secret: str, kind: str) -> None:
    text = f"before\n{line}\nafter\n"
    out, records = redact_text(text, "f")
    assert secret not in out and MARK in out
    assert out.splitlines()[0::2] == ["before", "after"]
    assert [(r["kind"], r["lines"]) for r in records] == [(kind, [2])]
    assert secret not in repr(records)


@pytest.mark.parametrize("line", [
    "proxy_set_header Authorization $http_authorization;",
    "client sent invalid cookie header while reading client request headers",
    "proxy_pass http://127.0.0.1:8080/;",
    "2026-12-07 kernel: nf_conntrack: table full, dropping packet",
    "ssl_certificate_key /etc/ssl/private/site.key;",
])
def test_lines_without_secrets_stay(line: str) -> None:
    assert redact_text(line + "\n", "f") == (line + "\n", [])


def test_private_key_blocks_keep_their_line_count() -> None:
    key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKEYMATERIAL\nmore\n-----END EC PRIVATE KEY-----\n"
    out, records = redact_text("a\n" + key + "b\n", "f")
    assert "KEYMATERIAL" not in out and out.count("\n") == 6 and out.endswith("\nb\n")
    assert records == [{"path": "f", "kind": "private-key", "lines": [2], "count": 1}]


def test_records_are_capped_and_counted() -> None:
    red = Redactor("access.log")
    out = red.chunk("".join(f"Cookie: id={n}\n" for n in range(1000)))
    assert "id=5" not in out
    (record,) = red.records
    assert record["count"] == 1000 and record["lines"] == list(range(1, RECORD_LINES + 1))


def test_nginx_secret_files_are_known_and_never_logs() -> None:
    dump = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "error_log /var/log/nginx/error.log warn;  # error_log /not/this.log;\n"
        "http { access_log \"/var/log/nginx/a b.log\" main; access_log off;\n"
        "  access_log /var/log/$host.log;\n"
        "  ssl_certificate_key /etc/ssl/k.pem; auth_basic_user_file '/etc/nginx/htpasswd';\n}\n"
    )
    assert nginx_log_paths(dump) == ["/var/log/nginx/a b.log", "/var/log/nginx/error.log"]
    assert secret_files(dump) == {"/etc/ssl/k.pem", "/etc/nginx/htpasswd"}


CONF = """
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/key.pem;   # hostile: a "log" that is the private key
    server {{
        listen 443 ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{
            auth_basic "staff";
            auth_basic_user_file {d}/htpasswd;
            # old backend: http://alice:pr0xy-pa55@10.0.0.2:8080/
            set $backend "http://alice:pr0xy-pa55@127.0.0.1:9/";
            proxy_set_header Authorization "Basic c2VjcmV0LWJhc2ljLXRva2Vu";
            proxy_pass http://127.0.0.1:9;
        }}
    }}
}}
"""
SECRETS = ("pr0xy-pa55", "c2VjcmV0LWJhc2ljLXRva2Vu", "cmdline-pa55", "staff-hash-9f8e7d")


def _bundle_text(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        return "\n".join(
            (tar.extractfile(m) or open("/dev/null", "rb")).read().decode("utf-8", "replace")
            for m in tar.getmembers() if m.isfile()
        )


@pytest.mark.root
@pytest.mark.skipif(lab_available() is not None or shutil.which("nginx") is None
                    or shutil.which("openssl") is None,
                    reason=f"needs the namespace lab, nginx and openssl: {lab_available()}")
@pytest.mark.parametrize("which", ["auditor", "standalone"])
def test_real_nginx_secrets_stay_out_of_the_bundle(tmp_path: Path, which: str) -> None:
    d = tmp_path / "nginx"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "1", "-subj",
                    "/CN=lab"], capture_output=True, check=True, timeout=60)
    key_line = (d / "key.pem").read_text().splitlines()[5]
    (d / "htpasswd").write_text("alice:staff-hash-9f8e7d\n")
    (d / "nginx.conf").write_text(CONF.format(d=d))
    archive = tmp_path / "b.tar.gz"
    with Lab("h7r") as lab:
        lab.spawn(lab.srv, ["nginx", "-c", str(d / "nginx.conf"), "-g", "daemon off;"])
        lab.wait_port(lab.srv, 443)
        lab.spawn(lab.srv, ["python3", "-c", "import socket, time; s = socket.socket(); "
                            "s.bind(('0.0.0.0', 8081)); s.listen(); time.sleep(120)",
                            "--password=cmdline-pa55"])
        lab.wait_port(lab.srv, 8081)
        args = ("-o", str(archive), "--since", "10m", "--sample", "0")
        argv = auditor_argv("collect", *args) if which == "auditor" else standalone_argv(*args)
        out = subprocess.run(["ip", "netns", "exec", lab.srv, *argv], capture_output=True,
                             text=True, env=env(), timeout=300, check=False)
        assert out.returncode == 0, out.stderr
    text = _bundle_text(archive)
    assert "ssl_certificate_key" in text and "--password=" in text  # the dump and cmdline are in
    for secret in (*SECRETS, key_line):
        assert secret not in text, secret
    doc = manifest(archive)
    kinds = {(r["path"].split("/")[0], r["kind"]) for r in doc["redacted"]}
    assert {("nginx", "authorization-header"), ("nginx", "url-password"),
            ("proc", "command-line-secret")} <= kinds
    assert all(isinstance(line, int) for r in doc["redacted"] for line in r["lines"])
    never = [m for m in doc["missing"] if m["what"] == str(d / "key.pem")]
    assert never and "never read" in never[0]["why"]
    assert not any(a["source"] in (str(d / "key.pem"), str(d / "htpasswd"))
                   for a in doc["artifacts"])


def test_streamed_copies_redact_across_chunks_and_in_rotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks put a key block and secrets across chunk ends; a .gz rotation is read and
    written compressed; line numbers are those of the whole file."""
    monkeypatch.setattr(writer, "CHUNK", 32)
    lines = [f"noise line {n}" for n in range(40)]
    lines[10] = "-----BEGIN PRIVATE KEY-----"
    lines[11:14] = ["KEYLINE-A", "KEYLINE-B", "-----END PRIVATE KEY-----"]
    lines[30] = "GET /?x Authorization: Bearer tok-31"
    text = "\n".join(lines) + "\n"
    (tmp_path / "plain.log").write_text(text)
    with gzip.open(tmp_path / "old.log.1.gz", "wt") as fh:
        fh.write(text)
    col = writer.Collector(str(tmp_path / "bundle"))
    for name in ("plain.log", "old.log.1.gz"):
        with open(tmp_path / name, "rb") as fin:
            col.copy(f"logs/{name}", fin, name)
    plain = (tmp_path / "bundle/logs/plain.log").read_text()
    with gzip.open(tmp_path / "bundle/logs/old.log.1.gz", "rt") as fh:
        assert fh.read() == plain
    assert "KEYLINE" not in plain and "tok-31" not in plain
    assert plain.count("\n") == 40 and plain.splitlines()[39] == "noise line 39"
    by_file = {(r["path"], r["kind"]): r["lines"] for r in col.redactions}
    for name in ("plain.log", "old.log.1.gz"):
        assert by_file[(f"logs/{name}", "private-key")] == [11]
        assert by_file[(f"logs/{name}", "authorization-header")] == [31]
