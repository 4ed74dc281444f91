"""The parsers' shortcuts for common line shapes give exactly what the general paths give.

Each shortcut (one-match syslog framing with a remembered day, the one-match
IPv4 netfilter reader, the cached nginx upstream address, the slot-filling
``__init__`` of the model records) is compared with the general path it
bypasses, on the sample logs, on the benchmark generator's lines and on
hypothesis-mutated lines. Each test also checks that the shortcut is really
taken, so that a shortcut that silently stops matching fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import pickle
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.fastinit import slot_maker
from auditor.models import Event, Location, to_ecs
from auditor.parsers import netfilter
from auditor.parsers.base import LineError, ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.parsers.nginx_error import NginxErrorParser, host_port
from auditor.parsers.syslog_frame import Frame, Framer
from auditor.parsers.ufw import UfwParser
from auditor.parsers.ulogd import UlogdParser
from tests.benchmarks.gen_logs import error_line, syslog_line

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
CTX = ParseContext(timezone=ZoneInfo("Europe/Berlin"), reference_time=datetime(2026, 11, 24, 12, tzinfo=UTC))
CANONICAL = (
    "REJECT-443 IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 "
    "DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=4444 DF PROTO=TCP SPT=5555 DPT=443 "
    "WINDOW=64240 RES=0x00 SYN URGP=0 "
)


def sample_lines(*kinds: str) -> list[str]:
    out: list[str] = []
    for kind in kinds:
        for path in sorted((SAMPLES / kind).glob("*.log")):
            out += [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    return out


# -- netfilter -----------------------------------------------------------------------


def packet_outcome(text: str, fast: bool) -> Any:
    try:
        packet = netfilter.parse_log_line(text, fast)
    except LineError as exc:
        return ("LineError", str(exc))
    if packet is None:
        return None
    return packet, list(packet.extra.items())  # the key order too (it shows in JSON)


def test_fast_netfilter_is_taken_for_the_common_shapes() -> None:
    udp = CANONICAL.replace("PROTO=TCP SPT=5555 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 ",
                            "PROTO=UDP SPT=5555 DPT=53 LEN=40 UID=0 GID=0 MARK=0x2a")
    for text in (CANONICAL, udp, CANONICAL.replace(" MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00", "")):
        m = netfilter._START.search(text)
        assert m is not None
        assert netfilter._fast_v4(text[: m.start()], m, text[m.end() :]) is not None, text
        assert packet_outcome(text, True) == packet_outcome(text, False)


def test_fast_netfilter_matches_the_token_walk_on_samples() -> None:
    lines = [ln for ln in sample_lines("kernel", "ufw", "ulogd") if "IN=" in ln]
    assert len(lines) > 20
    for line in lines:
        assert packet_outcome(line, True) == packet_outcome(line, False), line


TOKEN_EDITS = st.sampled_from([
    "SRC=203.0.113.300", "SRC=01.2.3.4", "SRC=2001:db8::1", "DST=1.2.3", "SPT=70000", "DPT=065535",
    "DPT=٣", "LEN=²", "LEN=99999999999999999999999", "TTL=x", "ID=0x1", "TOS=12", "RES=0x0",
    "PROTO=ICMP", "PROTO=6", "PROTO=UDP", "SEQ=1", "ACK=2", "ACK", "FIN", "CE", "MF", "INCOMPLETE",
    "MAC=", "MAC=aa:bb", "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00\x1c", "UID=0", "GID=0",
    "MARK=0x1", "MARK=7", "FRAG=1", "[SRC=1.2.3.4", "]", "URGP=0", "WINDOW=1", "X=1", "lower=1", "",
    "IN=ethé", "OUT=\xa0", "IN=eth\x1c0",
])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["replace", "insert", "drop"]), TOKEN_EDITS),
        max_size=3,
    ),
    st.sampled_from([" ", "  ", "\t"]),
)
def test_fast_netfilter_matches_the_token_walk_on_mutations(
    edits: list[tuple[int, str, str]], sep: str
) -> None:
    tokens = CANONICAL.split(" ")
    for pos, how, tok in edits:
        pos %= len(tokens)
        if how == "replace":
            tokens[pos] = tok
        elif how == "insert":
            tokens.insert(pos, tok)
        elif len(tokens) > 3:
            del tokens[pos]
    for text in (" ".join(tokens), sep.join(tokens)):
        assert packet_outcome(text, True) == packet_outcome(text, False), text


# -- syslog framing ------------------------------------------------------------------


def frame_outcome(framer: Framer, line: str) -> Any:
    try:
        frame = framer.frame(line)
    except LineError as exc:
        out: Any = ("LineError", str(exc))
    else:
        out = frame if frame is None else (frame, list(frame.extra.items()))
    return out, framer.years._year, framer.years._last


def compare_framing(lines: list[str]) -> int:
    """Frames both ways, in order (year inference is stateful); returns how many took the shortcut."""
    fast, slow = Framer(CTX), Framer(CTX)
    slow.fast = False
    taken = 0
    for line in lines:
        taken += fast._rfc3164_tagged(line.rstrip("\r\n")) is not None
        assert frame_outcome(fast, line) == frame_outcome(slow, line), line
    return taken


def test_fast_framing_matches_on_samples() -> None:
    assert compare_framing(sample_lines("kernel", "ufw", "ulogd")) > 10


DAYS = ["Dec 31", "Jan  1", "Jan 1", "Jan 01", "Feb 28", "Feb 29", "Feb 30", "Jun 30", "Jun 31",
        "Nov 24", "Nov 4", "Nov  4", "Xyz 12", "Nov 24.5"]
TIMES = ["10:00:01", "23:59:59", "25:00:00", "10:61:00", "10:00:01.250000", "1:00:00"]
TAILS = [" web1 kernel: [ 12.5] x IN=eth0 OUT= SRC=1.2.3.4", " web1 kernel: [12.5]x", " web1 sshd[42]: hi",
         " web1 sshd[99999999999]: hi", "  web1 kernel: x", " kernel: no host", " web1:  kernel: x",
         " web1 kernel:x", " web1 [kernel]: x", " web1", " web1 ", " web1 a:b: c", "\tweb1 kernel: x",
         " web1 sshd[4]: [ 1.5] x", " web1 kernel:  [1.5] x", " web1 kernel: [1.5]", " web1 kernel: [ ١.٥] x"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DAYS), st.sampled_from(TIMES), st.sampled_from(TAILS),
                          st.sampled_from(["", "<6>", "\r"])), min_size=1, max_size=12))
def test_fast_framing_matches_on_mixed_sequences(parts: list[tuple[str, str, str, str]]) -> None:
    lines = []
    for day, time, tail, extra in parts:
        line = f"{day} {time}{tail}"
        lines.append(extra + line if extra.startswith("<") else line + extra)
    compare_framing(lines)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DAYS), st.sampled_from(TIMES), st.sampled_from(TAILS)),
                min_size=1, max_size=12))
def test_kernel_parsers_own_frames_match_the_framer(parts: list[tuple[str, str, str]]) -> None:
    parser = KernelParser(CTX, "k.log")
    for day, time, tail in parts:
        line = f"{day} {time}{tail}"
        own = parser._kernel_frame(line)  # changes no state
        general = frame_outcome(parser.framer, line)
        if own is not None:
            assert general[0] == (own, list(own.extra.items())), line


def test_kernel_parsers_own_frames_are_used() -> None:
    parser = KernelParser(CTX, "k.log")
    parser.parse("Nov 24 10:00:00 web1 kernel: x", Location("k.log", 1))
    assert parser._kernel_frame("Nov 24 10:00:01 web1 kernel: [ 5.5] nf_conntrack: table full") is not None


def test_fast_framing_across_new_year_and_fractions() -> None:
    lines = ["Dec 31 23:59:58 h kernel: a", "Dec 31 23:59:59.5 h kernel: b", "Dec 31 23:59:59 h kernel: c",
             "Jan  1 00:00:01 h kernel: d", "Jan  1 00:00:02 h kernel: e", "Dec 31 23:59:59 h kernel: f",
             "Jan  1 00:00:03 h kernel: g"]
    compare_framing(lines)
    framer = Framer(CTX)
    stamps = [f.timestamp for f in map(framer.frame, lines) if isinstance(f, Frame)]
    assert [s.year for s in stamps] == [2025, 2025, 2025, 2026, 2026, 2026, 2027]


# -- whole parsers on the benchmark's lines ----------------------------------------------


def events_both_ways(make: Any, lines: list[str]) -> tuple[list[Any], list[Any]]:
    fast, slow = make(), make()
    slow.fast = False
    if hasattr(slow, "framer"):
        slow.framer.fast = False
    out: list[list[Any]] = [[], []]
    for i, line in enumerate(lines, 1):
        loc = Location("bench.log", i, i * 100)
        for parser, got in ((fast, out[0]), (slow, out[1])):
            try:
                event = parser.parse(line, loc)
            except LineError as exc:
                got.append(("LineError", str(exc)))
            else:
                got.append(None if event is None else (event, to_ecs(event)))
    return out[0], out[1]


def test_kernel_parser_same_events_on_benchmark_lines() -> None:
    rnd = random.Random(7)
    t = datetime(2026, 11, 24)
    generated = [ln for ln in (syslog_line(rnd, t) for _ in range(4000)) if "kernel:" in ln]
    fast, slow = events_both_ways(lambda: KernelParser(CTX, "bench.log"), generated + sample_lines("kernel"))
    assert fast == slow
    assert sum(1 for e in fast if isinstance(e, tuple) and isinstance(e[0], Event)) > 20
    # the one-match packet path is really taken (once the day is known)
    parser = KernelParser(CTX, "bench.log")
    packets = [ln for ln in generated if "SRC=" in ln]
    assert len(packets) > 10
    parser.parse(packets[0], Location("bench.log", 1))
    assert all(parser._fast_packet(ln, Location("bench.log", 1)) is not None for ln in packets)


@pytest.mark.parametrize("cls", [KernelParser, UfwParser, UlogdParser])
def test_packet_lines_without_the_parsers_needle(cls: type[KernelParser]) -> None:
    day = "Nov 24 10:00:00 web1 kernel: [UFW BLOCK] " + CANONICAL
    lines = [day, "Nov 24 10:00:01 web1 kernel: " + CANONICAL, "Nov 24 10:00:02 web1 kernel: [UFW ALLOW] " + CANONICAL]
    fast, slow = events_both_ways(lambda: cls(CTX, "bench.log"), lines)
    assert fast == slow
    assert (fast[1] is None) == (cls is UfwParser)  # ufw.log's parser wants "[UFW "


def test_packet_lines_outside_ascii_take_the_general_path() -> None:
    lines = ["Nov 24 10:00:00 web1 kernel: " + CANONICAL,
             "Nov 24 10:00:01 web1 kernel: [ ١٢.٥] " + CANONICAL,
             "Nov 24 10:00:01 web\xa01 kernel: " + CANONICAL,
             "Nov 24 10:00:01 wéb1 kernel: " + CANONICAL,
             "Nov 24 10:00:01 web1 kernel: " + CANONICAL.replace("IN=eth0", "IN=ethé"),
             "Nov 24 10:00:01 web1 kernel: " + CANONICAL.replace("OUT=", "OUT=\x1c")]
    fast, slow = events_both_ways(lambda: KernelParser(CTX, "bench.log"), lines)
    assert fast == slow


HEADS = ["Nov 24 10:00:01 web1 kernel: ", "Nov 24 10:00:01 web1 kernel: [UFW BLOCK] ", "Nov 24 10:00:01 web1 kernel: [ 12.500000] ",
         "Nov 24 10:00:01 web1 kernel:  [12.5] ", "Nov 24 10:00:01 web1 kernel: [12.5]",
         "Nov 24 10:00:01 web1 kernel:[ 1.0] x ", "Nov 24 10:00:01 web1 kernel[3]: ",
         "Nov 24 25:00:01 web1 kernel: ", "Nov 24 10:00:01 web1: kernel: ", "Nov 24 10:00:01 kernel: ",
         "Nov 24 10:00:01 web1 ulogd[5]: ", "Nov 24 10:00:01 web1 kernel: IN=x ", "Nov 25 10:00:01 web1 kernel: ",
         "Nov 24 10:00:01 web1 kernel: IN=a OUT=b ", "Nov 24 10:00:01 web1 kernel: [ 1.5] IN=a OUT= ",
         "Nov 24 10:00:01.5 web1 kernel: ", "Nov 24 10:00:01  web1 kernel: [UFW BLOCK] ",
         "Nov 24 10:00:01 web1 kernel: [ ١٢.٥] ", "Nov 24 10:00:01 wéb1 kernel: ", "Nov 24 10:00:01 web\xa01 kernel: ",
         "Nov 24 10:00:01 web1 kernel: [UFW ALLOW] ", "Nov 2٤ 10:00:01 web1 kernel: "]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(HEADS), st.integers(0, 30), TOKEN_EDITS,
                          st.sampled_from(["", "\r"])), min_size=1, max_size=6),
       st.sampled_from([KernelParser, UfwParser, UlogdParser]))
def test_kernel_parsers_same_events_on_mutated_packet_lines(
    parts: list[tuple[str, int, str, str]], cls: type[KernelParser]
) -> None:
    lines = []
    for head, pos, tok, end in parts:
        tokens = CANONICAL.split(" ")
        tokens[pos % len(tokens)] = tok
        lines.append(head + " ".join(tokens) + end)
    fast, slow = events_both_ways(lambda: cls(CTX, "bench.log"), lines)
    assert fast == slow


def test_host_port_on_benchmark_upstreams() -> None:
    rnd = random.Random(7)
    lines = [error_line(rnd, datetime(2026, 11, 24)) for _ in range(300)]
    upstreams = [ln.split('upstream: "', 1)[1].split('"', 1)[0] for ln in lines if 'upstream: "' in ln]
    upstreams += [f"http://127.0.0.1:{port}/api/{port}" for port in (0, 1, 8080, 65535, 65536, 99999)]
    assert upstreams
    for url in upstreams:
        assert host_port(url) == reference_host_port(url)
    parser = NginxErrorParser(CTX, "e.log")
    events = [parser.parse(ln, Location("e.log", 1)) for ln in lines if "upstream: " in ln]
    assert any(e is not None and e.destination_port == 8080 for e in events)


# -- nginx upstream address --------------------------------------------------------------


def reference_host_port(url: str) -> tuple[str | None, int | None]:
    """host_port as written before its shortcut: urlsplit and ipaddress on every call."""
    try:
        parts = urlsplit(url if "://" in url else "//" + url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None, None
    if host is None:
        return None, None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None, port
    return host, port


URLS = ["http://127.0.0.1:8080/api/77", "http://127.0.0.1:99999/x", "HTTP://10.0.0.1:80", "http://Example.org:8080/",
        "127.0.0.1:8080", "http://[::1]:80/x", "http://[::1/x", "http://a@1.2.3.4:5/", "http://1.2.3.4:5/a\tb",
        "grpc://1.2.3.4:-1/", "http://1.2.3.4:/", "http://1.2.3.4:0", "http://01.2.3.4:5", "http://1.2.3.4:5:6/",
        "unix:/tmp/x.sock", "http://unix:/tmp/x.sock:", "http://1.2.3.4:٣/", "http://1.2.3.4:+5/",
        "http://1.2.3.4: 5", "fastcgi://127.0.0.1:9000", "http://:80/", "http://1.2.3.4:00080/",
        "127.0.0.1:8080/x?u=http://y", " http://1.2.3.4:5/", "http://1.2.3.4:5?q#f", "h\ttp://1.2.3.4:5/"]


@pytest.mark.parametrize("url", URLS)
def test_host_port_matches_urlsplit(url: str) -> None:
    assert host_port(url) == reference_host_port(url)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="hts:/.@[]19a-_?#%\t :0", max_size=30))
def test_host_port_matches_urlsplit_on_random_text(url: str) -> None:
    assert host_port(url) == reference_host_port(url)


# -- slot-filling __init__ of the model records --------------------------------------


def test_event_init_keeps_the_dataclass_contract() -> None:
    fields = dataclasses.fields(Event)
    params = list(inspect.signature(Event).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        if f.default is not dataclasses.MISSING:
            assert p.default is f.default
    a, b = Event(), Event()
    assert a.extra == {} and a.extra is not b.extra  # a fresh dict per event
    assert Event(extra=None).extra is None  # passed explicitly: kept, as dataclasses do  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.action = "x"  # type: ignore[misc]
    e = Event(timestamp=datetime(2026, 1, 1, tzinfo=UTC), location=Location("f", 3, 9), action="x",
              extra={"k": 1})
    assert pickle.loads(pickle.dumps(e)) == e
    assert dataclasses.replace(e, action="y").action == "y"
    assert Location("p", 2) == Location(path="p", line=2, offset=None)
    with pytest.raises(TypeError):
        Event(nonsense=1)  # type: ignore[call-arg]


def test_slot_maker_makes_what_the_constructor_makes() -> None:
    make = slot_maker(Event, "location", "action", "source_port")
    made = make(Location("f", 1), "x", 443)
    assert made == Event(location=Location("f", 1), action="x", source_port=443)
    assert made.extra == {} and made.extra is not make(Location("f", 1), "x", 1).extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.action = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        slot_maker(Event, "nonsense")
    with pytest.raises(TypeError):
        slot_maker(Event, "action", "action")


@pytest.mark.parametrize("message", ["[ 5.5] nf_conntrack: table full, dropping packet", "[ 5.5] " + CANONICAL])
def test_remembered_instants_follow_the_year(message: str) -> None:
    stamps = ["Dec 31 23:59:59", "Dec 31 23:59:59", "Jan  1 00:00:01", "Dec 31 23:59:59", "Dec 31 23:59:59",
              "Jan  1 00:00:01", "Jan  1 00:00:01"]
    lines = [f"{stamp} web1 kernel: {message}" for stamp in stamps]
    fast, slow = events_both_ways(lambda: KernelParser(CTX, "k.log"), lines)
    assert fast == slow
    assert [e[0].timestamp.year for e in fast] == [2025, 2025, 2026, 2026, 2026, 2027, 2027]
