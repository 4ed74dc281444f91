"""Bad input for the kernel, ufw and ulogd parsers (hypothesis).

Random bytes, invalid UTF-8, truncated and mutated real lines, NUL bytes, 1 MB
lines and mixed framings go through the real scanner. Nothing may escape as an
exception or surface as an "internal error" (a parser bug caught by the
scanner); every offered line is an event, None, or counted as not understood.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.models import Location
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.parsers.ufw import UfwParser
from auditor.parsers.ulogd import UlogdParser
from auditor.sources.scan import ScanStats, scan

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
PARSERS: tuple[type[LineParser], ...] = (KernelParser, UfwParser, UlogdParser)
CTX = ParseContext(reference_time=datetime(2026, 11, 24, 12, tzinfo=UTC))


def seed_lines() -> list[bytes]:
    out: list[bytes] = []
    for name in ("kernel", "ufw", "ulogd"):
        for path in sorted((SAMPLES / name).glob("*.log")):
            for line in path.read_bytes().splitlines():
                if line.strip() and not line.startswith(b"#"):
                    out.append(line)
    return out


SEEDS = seed_lines()
NEEDLES = sorted({n for cls in PARSERS for n in cls.needles})


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    line = draw(st.sampled_from(SEEDS))
    how = draw(st.sampled_from(("truncate", "insert", "replace", "splice")))
    pos = draw(st.integers(0, len(line)))
    if how == "truncate":
        return line[:pos]
    junk = draw(st.sampled_from((b"\x00", b"\xff\xfe", b"\xc3", b"[", b"]", b"=", b" ", b"{")))
    if how == "insert":
        return line[:pos] + junk + line[pos:]
    if how == "replace":
        return line[:pos] + junk + line[pos + 1 :]
    other = draw(st.sampled_from(SEEDS))
    return line[:pos] + other[draw(st.integers(0, len(other))) :]


LINE = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")),
    mutated(),
    st.sampled_from(SEEDS),
    st.tuples(st.binary(max_size=40), st.sampled_from(NEEDLES), st.binary(max_size=80)).map(
        lambda t: b"".join(t).replace(b"\n", b" ")
    ),
)


# open_binary picks a decompressor by magic; corrupt archives are the file layer's
# concern (tested there), not these line parsers'.
MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


def run_all(data: bytes, tmp_path: Path) -> None:
    if data.startswith(MAGICS):
        data = b"x" + data
    path = tmp_path / "fuzz.log"
    path.write_bytes(data)
    expected_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    for cls in PARSERS:
        stats = ScanStats(str(path), cls.name)
        events = list(scan(str(path), cls(CTX, str(path)), stats))
        internal = [i for i in stats.issues if i.reason.startswith("internal error")]
        assert not internal, internal[:3]
        assert stats.lines == expected_lines
        assert len(events) == stats.events
        assert stats.events + stats.not_understood <= stats.candidates
        for event in events:
            assert event.timestamp.tzinfo is not None
            assert 1 <= event.location.line <= expected_lines


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=25))
def test_scanner_survives_mixed_garbage(lines: list[bytes], tmp_path: Path) -> None:
    run_all(b"\n".join(lines) + b"\n", tmp_path)


@settings(max_examples=120, deadline=None)
@given(LINE)
def test_parse_raises_only_line_error(line: bytes) -> None:
    text = line.decode("utf-8", "replace")
    for cls in PARSERS:
        parser = cls(CTX, "fuzz")
        with contextlib.suppress(LineError):
            parser.parse(text, Location("fuzz", 1))
        score = cls.sniff([text, text])
        assert 0.0 <= score <= 1.0


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), filler=st.sampled_from((b"A", b"\x00", b"SRC=1.2.3.4 ", b"\xff")))
def test_one_megabyte_lines(seed: bytes, filler: bytes, tmp_path: Path) -> None:
    big = seed + filler * ((1 << 20) // len(filler))
    run_all(seed + b"\n" + big + b"\n" + seed + b"\n" + big, tmp_path)


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.name)
def test_every_needle_line_is_offered_and_accounted(cls: type[LineParser], tmp_path: Path) -> None:
    """Each seed line holding a needle is a candidate; the counts add up exactly."""
    path = tmp_path / "seeds.log"
    path.write_bytes(b"\n".join(SEEDS) + b"\n")
    stats = ScanStats(str(path), cls.name)
    events = list(scan(str(path), cls(CTX, str(path)), stats))
    offered = sum(1 for line in SEEDS if any(n in line for n in cls.needles))
    assert stats.candidates == offered
    assert stats.events == len(events) > 0
    assert not [i for i in stats.issues if i.reason.startswith("internal error")]
