"""``--obfuscate``: stand-ins keep equality, containment and order, come from the documentation
ranges, are the same in every file and format, and a shipped incident diagnoses to the same
causes once obfuscated."""

from __future__ import annotations

import gzip
import ipaddress
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.bundle.obfuscate import Obfuscator, obfuscate_dir
from tests.lab.verdict import diagnose

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "incidents"
NAMES = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
POOLS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.18.0.0/15", "2001:db8::/32")]


def _run(text: str, host: str | None = None, nginx_t: str = "") -> tuple[str, Obfuscator]:
    ob = Obfuscator()
    ob.gather_names(host, nginx_t)
    ob.gather(text)
    ob.layout()
    return ob.rewrite(text), ob


def _ordinary(ip: ipaddress.IPv4Address) -> bool:
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast)


v4 = st.integers(0x0B000000, 0xDFFFFFFF).map(ipaddress.IPv4Address).filter(_ordinary).map(str)
nets = st.tuples(v4, st.integers(8, 30)).map(
    lambda t: ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False)).filter(
    lambda n: _ordinary(n.network_address)).map(str)


@given(st.lists(v4, min_size=1, max_size=40), st.lists(nets, max_size=8))
def test_containment_order_and_equality_survive(hosts: list[str], networks: list[str]) -> None:
    text = "\n".join([f"SRC={h} DPT=443" for h in hosts] + [f"-A INPUT -s {n} -j DROP"
                                                            for n in networks]) + "\n"
    _, ob = _run(text)
    mapping = ob.mapping()
    addrs = {ipaddress.ip_address(k): ipaddress.ip_address(v) for k, v in mapping["addresses"].items()}
    nmap = {ipaddress.ip_network(k): ipaddress.ip_network(v) for k, v in mapping["networks"].items()}
    assert set(addrs) == {ipaddress.ip_address(h) for h in hosts}
    assert len(set(addrs.values())) == len(addrs)  # one stand-in per address
    assert all(any(new in pool for pool in POOLS) for new in addrs.values())
    for old, new in addrs.items():
        for net, stand_in in nmap.items():
            assert (old in net) == (new in stand_in), (old, net, new, stand_in)
    for a, b in zip(sorted(addrs), sorted(addrs)[1:], strict=False):
        assert addrs[a] < addrs[b]  # ranges (ipset, --src-range) keep their members
    for net, stand_in in nmap.items():
        for other, other_new in nmap.items():
            assert net.subnet_of(other) == stand_in.subnet_of(other_new)  # type: ignore[arg-type]


def test_one_address_one_stand_in_in_every_form() -> None:
    text = (
        "SRC=2001:0db8:0000:0000:0000:0000:0000:0042 DST=fe80::1\n"
        "listen [2001:db8::42]:443;\n"
        "LISTEN 0 511 [::ffff:10.9.8.7]:80 *:*\n"
        "client: 10.9.8.7, server: _\n"
        "-A INPUT -s 10.9.8.0/24 -j ACCEPT\n"
        "kept: 127.0.0.1 0.0.0.0/0 ::1 255.255.255.0 ::/0 224.0.0.1\n"
        "not addresses: 04:25:01 52:54:00:12:34:56 1.2.3 v1.2.3.4.5\n"
    )
    out, ob = _run(text)
    lines = out.splitlines()
    six = ob.mapping()["addresses"]["2001:db8::42"]
    assert lines[0].startswith(f"SRC={six} DST=fe80::1") and f"[{six}]:443" in lines[1]
    four = ob.mapping()["addresses"]["10.9.8.7"]
    assert f"[::ffff:{four}]:80" in lines[2] and f"client: {four}," in lines[3]
    net = ob.mapping()["networks"]["10.9.8.0/24"]
    assert ipaddress.ip_address(four) in ipaddress.ip_network(net) and net in lines[4]
    assert lines[5:] == text.splitlines()[5:]


def test_host_names_but_not_nginx_words() -> None:
    nginx_t = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "upstream backend-pool { server 10.0.0.5:8080; }\n"
        "server {\n    server_name www.shop.example.org *.img.shop.example.org;\n"
        "    location / { proxy_pass http://backend-pool; }\n}\n"
    )
    text = nginx_t + "2026-12-07T04:00:00 web-01 kernel: x\nhost: \"www.shop.example.org\"\n"
    out, ob = _run(text, host="web-01", nginx_t=nginx_t)
    for secret in ("web-01", "shop.example.org", "backend-pool", "10.0.0.5"):
        assert secret not in out
    assert "server {" in out and "server_name host" in out and "proxy_pass http://host" in out
    assert ob.mapping()["names"]["web-01"] in out.splitlines()[6]


def test_bundle_files_paths_json_and_rotations(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    (root / "rules").mkdir(parents=True)
    (root / "logs/var/log/nginx").mkdir(parents=True)
    manifest = {"auditor-bundle": 1, "host": {"name": "db-7.corp.example.net"},
                "artifacts": [{"path": "logs/var/log/nginx/db-7.corp.example.net.log"}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    nft = {"nftables": [{"rule": {"expr": [{"match": {"right": {"prefix": {
        "addr": "10.20.0.0", "len": 16}}}}]}}]}
    (root / "rules/nft-ruleset.json").write_text(json.dumps(nft))
    (root / "logs/var/log/nginx/db-7.corp.example.net.log").write_text("10.20.3.4 - GET /\n")
    with gzip.open(root / "logs/var/log/nginx/access.log.2.gz", "wt") as fh:
        fh.write("10.20.3.4 - - [07/Dec/2026] db-7.corp.example.net\n")
    mapping = obfuscate_dir(str(root))
    name = mapping["names"]["db-7.corp.example.net"]
    host = mapping["addresses"]["10.20.3.4"]
    net = ipaddress.ip_network(mapping["networks"]["10.20.0.0/16"])
    assert ipaddress.ip_address(host) in net
    assert (root / f"logs/var/log/nginx/{name}.log").read_text() == f"{host} - GET /\n"
    with gzip.open(root / "logs/var/log/nginx/access.log.2.gz", "rt") as fh:
        assert fh.read() == f"{host} - - [07/Dec/2026] {name}\n"
    prefix = json.loads((root / "rules/nft-ruleset.json").read_text())["nftables"][0]["rule"][
        "expr"][0]["match"]["right"]["prefix"]
    assert f"{prefix['addr']}/{prefix['len']}" == str(net)
    doc = json.loads((root / "manifest.json").read_text())
    assert doc["host"]["name"] == name and doc["artifacts"][0]["path"].endswith(f"{name}.log")
    assert doc["obfuscated"]["addresses"] == 1 and "db-7" not in json.dumps(doc)


def _verdict(report: dict[str, object]) -> list[tuple[object, ...]]:
    out = []
    for f in report["findings"]:  # type: ignore[attr-defined]
        rule = f["rule"] or {}
        out.append((f["cause"], f["confidence"], f["score"], f["resets"], tuple(f["ports"]),
                    rule.get("chain"), rule.get("position"), (f["limit"] or {}).get("name")))
    return out


@pytest.mark.parametrize("sample", NAMES)
def test_obfuscated_incident_diagnoses_the_same(sample: str, tmp_path: Path) -> None:
    copy = tmp_path / sample
    shutil.copytree(SAMPLES / sample, copy)
    (copy / "expected.json").unlink()
    mapping = obfuscate_dir(str(copy))
    args = json.loads((SAMPLES / sample / "expected.json").read_text()).get("args", [])
    lab_addresses = any("192.0.2." in p.read_text(errors="replace")
                        for p in (SAMPLES / sample).rglob("*") if p.is_file())
    assert bool(mapping["addresses"]) == lab_addresses
    plain = diagnose(SAMPLES / sample, args)
    hidden = diagnose(copy, [mapping["addresses"].get(a, a) for a in args])
    assert _verdict(hidden) == _verdict(plain)
    assert [f["cause"] for f in plain["findings"]] or sample == "healthy"
