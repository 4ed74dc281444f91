"""Reading a host artifact whole and leniently (compressed or not), within a size budget."""

from __future__ import annotations

from auditor.sources.files import SourceError, open_binary

MAX_ARTIFACT_BYTES = 64 << 20


def read_text(path: str, limit: int = MAX_ARTIFACT_BYTES) -> str:
    """A whole (possibly compressed) artifact decoded leniently; SourceError when unreadable."""
    try:
        with open_binary(path) as fh:
            data = fh.read(limit)
    except SourceError:
        raise
    except Exception as exc:  # truncated compressed data raises EOFError, zlib.error...
        raise SourceError(f"{path}: cannot read ({exc})") from exc
    return data.decode("utf-8", "replace")
