"""Any local user names their process: live ``auditor limits`` must print that name inert.

A real process renames itself (prctl PR_SET_NAME) to markup and an escape sequence,
listens on loopback with a full accept queue, and root's ``auditor limits`` names it
in the "full accept queue" line and the finding: literally, no crash, no raw ESC.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from auditor.sinks.text import inert
from tests.outputs.checks import raw_controls
from tests.outputs.clirun import auditor

NAME = b"[/x]\x1b]0;ow\x07"  # 12 bytes: the kernel keeps 15
CHILD = f"""
import ctypes, socket, time
ctypes.CDLL(None).prctl(15, {NAME!r}, 0, 0, 0)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""

pytestmark = pytest.mark.skipif(shutil.which("ss") is None or not sys.platform.startswith("linux"),
                                reason="needs Linux and ss (iproute2)")


@pytest.fixture()
def hostile_listener() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        for _ in range(3):  # backlog 0: one waits in the queue, the others are refused
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
        time.sleep(0.3)
        yield port
    finally:
        for c in clients:
            c.close()
        child.kill()  # by PID: our own child
        child.wait()


def test_live_limits_prints_a_hostile_process_name_inert(hostile_listener: int) -> None:
    run = auditor("limits", columns=200)
    assert run.code == 0, run.stderr
    assert not raw_controls(run.stdout) and not raw_controls(run.stderr)
    shown = inert(NAME.decode())
    full = [x for x in run.stdout.splitlines()
            if x.startswith("full accept queue") and f":{hostile_listener} " in x]
    assert full and f"{shown} pid" in full[0], full
