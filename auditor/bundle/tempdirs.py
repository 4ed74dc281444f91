"""Temporary folders that are removed on every exit: normal, atexit, SIGTERM, SIGINT, SIGHUP.

:func:`make` creates a private folder (0700, ``tempfile.mkdtemp``) and records it.
Recorded folders are removed at interpreter exit, and also when the process is
ended by SIGTERM or SIGHUP (whose default action kills without running
``atexit``) or SIGINT; the signal's default action then runs, so the exit
status stays what the sender expects. A handler someone else installed is kept
and not replaced.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from types import FrameType

_DIRS: list[str] = []
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_installed = False


def make(prefix: str) -> str:
    """A new private temporary folder, removed whatever way this process ends."""
    _install()
    path = tempfile.mkdtemp(prefix=prefix)
    _DIRS.append(path)
    return path


def remove(path: str) -> None:
    """Remove a folder made by :func:`make` now (an input that was refused)."""
    shutil.rmtree(path, ignore_errors=True)
    if path in _DIRS:
        _DIRS.remove(path)


def remove_all() -> None:
    """Remove every recorded folder (atexit and the signal handler call this)."""
    while _DIRS:
        shutil.rmtree(_DIRS.pop(), ignore_errors=True)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    remove_all()
    if signum == signal.SIGINT:
        signal.signal(signum, signal.default_int_handler)
        raise KeyboardInterrupt
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(remove_all)
    for sig in _SIGNALS:
        try:
            current = signal.getsignal(sig)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread: atexit still cleans up
            pass
