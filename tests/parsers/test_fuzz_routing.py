"""No exception and no silently lost relevant line (hypothesis), for the routing parser,
the nginx parsers and the new framings.

Lines are taken from every annotated sample, then cut, spliced, wrapped (docker's
stamp and json-file, a journal's syslog framing) and mixed with random bytes. For
each: the parser gives an event, None or LineError, nothing else; a line with a
relevant mark (:func:`auditor.parsers.markers.marker`) is never None from the
routing parser (nor an nginx error line with a relevant errno from the nginx
error parser); and every marked line holds a needle, so the scanner offers it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.models import Event, Location
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.kernel_bare import BareKernelParser
from auditor.parsers.markers import marker
from auditor.parsers.mixed import MixedParser
from auditor.parsers.nginx_access import NginxAccessParser
from auditor.parsers.nginx_error import RELEVANT_ERRNOS, NginxErrorParser
from auditor.sources.scan import ScanStats, scan

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
CTX = ParseContext(reference_time=datetime(2026, 11, 24, 12, tzinfo=UTC))
LOC = Location("fuzz", 1)
FIRST_ERRNO = re.compile(r"\((\d+): [^)]*\)")
SEEDS = sorted({
    line
    for path in SAMPLES.glob("*/*.log")
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
})
MARKS = ["(111: Connection refused)", "(113: No route to host)", "(24: x)", "SRC=192.0.2.1 DST=",
         "IN=eth0 OUT= ", "Killed process 12 (a)", "oom-kill:pid=1", '" 502 157', '" 499 -',
         "(2: No such file)", '" 500 1', ")", "(", '"', "\\", "\x00", "\udcff", " ", ","]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(SEEDS))
    pos = draw(st.integers(0, len(line)))
    how = draw(st.sampled_from(("truncate", "insert", "replace", "splice", "wrap")))
    if how == "truncate":
        return line[:pos]
    if how == "splice":
        other = draw(st.sampled_from(SEEDS))
        return line[:pos] + other[draw(st.integers(0, len(other))) :]
    if how == "wrap":
        return draw(st.sampled_from((
            "2026-11-24T10:00:01.123456789Z " + line,
            json.dumps({"log": line + "\n", "stream": "stderr"}),
            "Nov 24 10:00:01 web1 nginx[7]: " + line,
            json.dumps({"MESSAGE": line, "SYSLOG_IDENTIFIER": "nginx", "_HOSTNAME": "web1"}),
            "-- " + line,
        )))
    junk = draw(st.sampled_from(MARKS))
    end = pos + (how == "replace")
    return line[:pos] + junk + line[end:]


LINE = st.one_of(
    st.sampled_from(SEEDS),
    mutated(),
    st.text(max_size=200).map(lambda t: t.replace("\n", " ").replace("\r", " ")),
)


def outcome(parser: LineParser, line: str) -> Event | LineError | None:
    try:
        return parser.parse(line, LOC)
    except LineError as exc:
        return exc


@settings(max_examples=400, deadline=None)
@given(LINE)
def test_no_exception_and_no_silent_loss(line: str) -> None:
    mixed = MixedParser(CTX, "fuzz")
    got = outcome(mixed, line)
    mark = marker(line)
    if mark is not None:
        assert got is not None, f"silently lost ({mark}): {line!r}"
        raw = line.encode("utf-8", "surrogateescape")
        assert any(n in raw for n in mixed.needles), f"marked but offered to no parser: {line!r}"
    if outcome(NginxErrorParser(CTX, "fuzz"), line) is None:
        errno = FIRST_ERRNO.search(line)  # the one the nginx error parser reads
        assert errno is None or errno.group(1) not in RELEVANT_ERRNOS, f"lost: {line!r}"
    for cls in (NginxAccessParser, BareKernelParser):
        outcome(cls(CTX, "fuzz"), line)
        assert 0.0 <= cls.sniff([line, line]) <= 1.0
    assert 0.0 <= MixedParser.sniff([line, line]) <= 1.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=30))
def test_scanned_files_account_for_every_marked_line(lines: list[str], tmp_path: Path) -> None:
    """Through the real scanner: every marked line is an event or not understood."""
    path = tmp_path / "mixed.log"
    text = "".join(ln.replace("\n", " ").replace("\r", " ") + "\n" for ln in lines)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    stats = ScanStats(str(path), "mixed")
    events = list(scan(str(path), MixedParser(CTX, str(path)), stats))
    assert not [i for i in stats.issues if i.reason.startswith("internal error")]
    seen = {e.location.line for e in events} | {i.location.line for i in stats.issues}
    decoded = path.read_bytes().decode("utf-8", "replace").split("\n")
    for n, line in enumerate(decoded[:-1], 1):
        if line.strip() and marker(line) is not None:
            assert n in seen, f"line {n} lost: {line!r}"
