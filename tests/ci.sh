#!/bin/sh
# Installs everything the tests need on a fresh Debian 12 (as root), then runs lint and the suite.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    iptables nftables ipset conntrack iproute2 procps kmod nginx-light ripgrep util-linux \
    python3-venv python3-pip openssl git \
    systemd-journal-remote >/dev/null
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[test]'
python3 -m ruff check auditor tests
python3 -m mypy
AUDITOR_HYPOTHESIS=ci python3 -m pytest -q "$@"
