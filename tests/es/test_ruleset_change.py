"""A ruleset change between runs is visible in the snapshot (real nft, in our own netns)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from auditor.commands._audit_snapshot import HostSnapshot, snapshot_body

CHILD = (
    "from auditor.commands._audit_snapshot import read_host; "
    "s = read_host(); print(s.ruleset_fingerprint or 'none:' + s.skipped.get('ruleset', ''))"
)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None,
                    reason="needs root, nft and ip to create a network namespace")
def test_ruleset_change_changes_fingerprint() -> None:
    ns = "he" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def fingerprint() -> str:
            out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CHILD],
                                 capture_output=True, text=True, check=True, timeout=120,
                                 env={**os.environ, "PYTHONPATH": os.getcwd()})
            return out.stdout.strip().splitlines()[-1]

        before = fingerprint()
        assert not before.startswith("none:"), before
        assert fingerprint() == before  # stable when nothing changed
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "he_t"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "he_t", "in",
                        "{ type filter hook input priority 0 ; }"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "he_t", "in",
                        "tcp", "dport", "443", "reject", "with", "tcp", "reset"], check=True)
        after = fingerprint()
        assert after != before
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    body = snapshot_body(HostSnapshot(ruleset_fingerprint=after), before, {}, 0, 0)
    assert body["ruleset"] == {"fingerprint": after, "previous": before, "changed": True}
