"""Grouping: stream events into compact per-group aggregates, in bounded memory.

A group is (port, upstream, time bucket); adjacent buckets of the same key are merged
into bursts at the end. Each group keeps counts per action, first/last seen, a
per-minute histogram, a bounded set of clients and ports, and a few evidence samples
per action: never every event. Host-wide events (OOM kills, nginx restarts, kernel
"table full" lines) also go to the :class:`~auditor.correlate.context.ContextIndex`, which
scoring asks for events "near" a group's time span.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor import vocabulary
from auditor.correlate.context import ContextIndex
from auditor.models import Event

WINDOW = timedelta(minutes=5)  # bucket width; adjacent buckets merge into one burst
MAX_CELLS = 500_000  # beyond this, new cells fold into one overflow cell per minute and action
CLIENTS_PER_CELL = 8  # clients counted per cell (minute x action x key)
MAX_CLIENTS = 200
MAX_PORTS = 64
SAMPLES_PER_ACTION = 3
PACKETS_PER_GROUP = 8

# How each action is read is declared once, in the vocabulary (roles of each action).
CONTEXT_ONLY = vocabulary.actions_with(vocabulary.CONTEXT)
HOST_WIDE = vocabulary.actions_with(vocabulary.HOST_WIDE)
# Logged packets worth tracing. "firewall-log" (a LOG rule whose prefix names no verdict)
# counts as a failure only when the trace shows the packet rejected or dropped.
NETFILTER = vocabulary.actions_with(vocabulary.PACKET)
UNCERTAIN = vocabulary.actions_with(vocabulary.UNCERTAIN)
# Logged packets whose line says they were dropped: no reset, unless a trace says otherwise.
DROPPED = vocabulary.actions_with(vocabulary.DROPPED)
ZONE_LIMITED = vocabulary.actions_with(vocabulary.ZONE)  # nginx events that name a limit zone
LISTENS = vocabulary.actions_with(vocabulary.LISTEN)  # a program says where it listens
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPHEMERAL = 32768  # start of Linux's default ip_local_port_range


def upstream_of(event: Event) -> str | None:
    """The upstream address (``host:port``) an nginx event names, normalised."""
    extra = event.extra
    raw = extra.get("upstream") or extra.get("upstream_addr")
    if not raw or not isinstance(raw, str) or raw == "-":
        return None
    raw = raw.split(",")[-1].split(" : ")[-1].strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
        raw = raw.split("/", 1)[0]
    return raw or None


@dataclass
class Group:
    """The aggregate of one burst of failures sharing a port and an upstream."""

    port: int | None
    upstream: str | None
    first: datetime
    last: datetime
    counts: Counter[str] = field(default_factory=Counter)
    without_syn: Counter[str] = field(default_factory=Counter)
    datasets: Counter[str] = field(default_factory=Counter)
    minutes: Counter[tuple[int, str, str]] = field(default_factory=Counter)  # (minute, ds, act)
    clients: Counter[str] = field(default_factory=Counter)
    ports: Counter[int] = field(default_factory=Counter)
    samples: dict[str, list[Event]] = field(default_factory=dict)
    packets: list[Event] = field(default_factory=list)
    synthetic: str = ""  # "", "query", "counter:<cause>", "rule"
    fixed_resets: int | None = None  # resets of a synthetic group
    # Actions whose logged packets were dropped (the engine's trace, or the prefix): no reset
    # was sent for them, so they are not counted as resets.
    silent: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)
    _packet_keys: set[tuple[Any, ...]] = field(default_factory=set, repr=False)

    def add_cell(
        self, minute: int, action: str, dataset: str, dport: int | None, cell: list[Any]
    ) -> None:
        """Fold one aggregator cell (count, first, last, without-SYN count) into the group."""
        n = cell[0]
        self.first = min(self.first, cell[1])
        self.last = max(self.last, cell[2])
        self.counts[action] += n
        self.datasets[dataset] += n
        self.minutes[(minute, dataset, action)] += n
        if cell[3]:
            self.without_syn[action] += cell[3]
        if dport is not None and (dport in self.ports or len(self.ports) < MAX_PORTS):
            self.ports[dport] += n
        seen = cell[4]
        if seen:
            clients = self.clients
            if len(clients) + len(seen) <= MAX_CLIENTS:
                clients.update(seen)
            else:
                for ip, k in seen.items():
                    if ip in clients or len(clients) < MAX_CLIENTS:
                        clients[ip] += k

    def add_samples(self, events: list[Event]) -> None:
        for event in events:
            kept = self.samples.setdefault(event.action, [])
            if len(kept) < SAMPLES_PER_ACTION:
                kept.append(event)
            if event.action in NETFILTER and len(self.packets) < PACKETS_PER_GROUP:
                key = _packet_key(event)
                if key not in self._packet_keys:
                    self._packet_keys.add(key)
                    self.packets.append(event)

    def merge(self, other: Group) -> None:
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        self.counts.update(other.counts)
        self.without_syn.update(other.without_syn)
        self.datasets.update(other.datasets)
        self.minutes.update(other.minutes)
        for client, n in other.clients.items():
            if client in self.clients or len(self.clients) < MAX_CLIENTS:
                self.clients[client] += n
        for port, n in other.ports.items():
            if port in self.ports or len(self.ports) < MAX_PORTS:
                self.ports[port] += n
        for action, events in other.samples.items():
            kept = self.samples.setdefault(action, [])
            kept.extend(events[: max(0, SAMPLES_PER_ACTION - len(kept))])
        for event in other.packets:
            key = _packet_key(event)
            if len(self.packets) < PACKETS_PER_GROUP and key not in self._packet_keys:
                self._packet_keys.add(key)
                self.packets.append(event)

    @property
    def resets(self) -> int:
        """Failures in the group; one failure seen in two logs (error + access) counts once.

        Packets that were dropped (:attr:`silent`) got no reset and are not counted."""
        if self.fixed_resets is not None:
            return self.fixed_resets
        if not self.silent:
            return max(self.datasets.values(), default=0)
        per: Counter[str] = Counter()
        for (_minute, dataset, action), n in self.minutes.items():
            if action not in self.silent:
                per[dataset] += n
        return max(per.values(), default=0)

    @property
    def dropped(self) -> int:
        """Logged packets of the group that were dropped: no reset was sent for them."""
        return self.count(self.silent)

    def per_minute(self) -> dict[int, int]:
        """Failures per minute, each failure once (the largest count of any one dataset)."""
        per: Counter[tuple[int, str]] = Counter()
        for (minute, dataset, action), n in self.minutes.items():
            if action not in self.silent:
                per[(minute, dataset)] += n
        out: dict[int, int] = {}
        for (minute, _dataset), n in per.items():
            out[minute] = max(out.get(minute, 0), n)
        return out

    def count(self, actions: Iterable[str], without_syn: bool = False) -> int:
        table = self.without_syn if without_syn else self.counts
        return sum(table.get(a, 0) for a in actions)

    def sample_events(self, actions: Iterable[str] | None = None) -> list[Event]:
        wanted = None if actions is None else set(actions)
        out = [e for a, evs in self.samples.items() if wanted is None or a in wanted for e in evs]
        return sorted(out, key=lambda e: e.timestamp)

    @property
    def label(self) -> str:
        parts = []
        if self.port is not None:
            parts.append(f"port {self.port}")
        if self.upstream:
            parts.append(f"upstream {self.upstream}")
        return ", ".join(parts) or "host"


def _flags(value: Any) -> set[str]:
    if isinstance(value, str):
        return {f.strip().upper() for f in value.replace(",", " ").split()}
    return {str(f).upper() for f in value}


def _service_port(event: Event, dport: int) -> int:
    """The service's port of a packet going from a low port to an ephemeral one.

    Such a packet is an answer (the server's RST or ACK), not a connection attempt, so
    it belongs with the server's port; a SYN always names the service as destination.
    """
    flags = event.extra.get("tcp_flags") if event.extra else None
    if flags is not None:
        names = _flags(flags)
        if "SYN" in names and "ACK" not in names:
            return dport
    return event.source_port or dport


def _packet_key(e: Event) -> tuple[Any, ...]:
    """Packets that trace alike: same source, destination, port, protocol, verdict and flags."""
    return (
        e.source_ip,
        e.destination_ip,
        e.destination_port,
        e.transport,
        e.action,
        str(e.extra.get("tcp_flags")),
    )


class Aggregator:
    """Feed events one at a time (:meth:`add`); :meth:`groups` gives the bursts.

    The hot path touches one "cell" per event, keyed (port, upstream, minute, action,
    dataset, destination port): a count and first/last seen. Clients are counted per
    burst bucket; samples and traceable packets are kept only when a cell is new.
    """

    def __init__(self, window: timedelta = WINDOW, watch: str | None = None) -> None:
        self.window = window
        self.watch = watch  # the engineer's --client: always counted, even in a full cell
        self._per = max(1, int(window.total_seconds()) // 60)  # minutes per bucket
        self.cells: dict[tuple[Any, ...], list[Any]] = {}
        self.samples: dict[tuple[Any, ...], list[Event]] = {}
        self.context = ContextIndex()
        self.events = 0
        self._upstreams: dict[str, str] = {}
        self._context = CONTEXT_ONLY | HOST_WIDE
        self._last_ts: datetime | None = None
        self._last_minute = 0

    @property
    def buckets(self) -> set[tuple[Any, ...]]:
        return {(k[0], k[1], k[2] // self._per) for k in self.cells}

    @property
    def first(self) -> datetime | None:
        return min((c[1] for c in self.cells.values()), default=self.context.first)

    @property
    def last(self) -> datetime | None:
        return max((c[2] for c in self.cells.values()), default=self.context.last)

    def add(self, event: Event) -> None:
        self.events += 1
        action = event.action
        if action in ZONE_LIMITED:
            self.context.note_zone(event)
        if action in self._context:
            self.context.add(event)
            if action in CONTEXT_ONLY:
                if action in LISTENS:
                    self.context.note_listen(event)
                return
        extra = event.extra
        upstream = None
        if extra:
            raw = extra.get("upstream") or extra.get("upstream_addr")
            if raw and isinstance(raw, str):
                upstream = self._upstreams.get(raw)
                if upstream is None:
                    upstream = upstream_of(event) or ""
                    if len(self._upstreams) < 10000:
                        self._upstreams[raw] = upstream
                upstream = upstream or None
        ts = event.timestamp
        if ts is self._last_ts:  # parsers share one datetime per logged second
            minute = self._last_minute
        else:
            minute = self._last_minute = int(ts.timestamp()) // 60
            self._last_ts = ts
        dport = event.destination_port
        if dport is not None and dport >= EPHEMERAL and (event.source_port or dport) < EPHEMERAL:
            dport = _service_port(event, dport)
        if action in HOST_WIDE:
            upstream = ""  # a lane of its own: host-wide failures never mix with nginx's
            port = dport
        else:
            port = None if upstream else dport
        key = (port, upstream, minute, action, event.dataset, dport)
        cell = self.cells.get(key)
        if cell is None:
            if len(self.cells) >= MAX_CELLS:
                key = (None, None, minute, action, event.dataset, None)
                cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = [0, ts, ts, 0, {}]
                self._sample(key, event)
        elif ts < cell[1]:
            cell[1] = ts
        elif ts > cell[2]:
            cell[2] = ts
        cell[0] += 1
        ip = event.source_ip
        if ip:
            seen = cell[4]
            n = seen.get(ip)
            if n is not None:
                seen[ip] = n + 1
            elif len(seen) < CLIENTS_PER_CELL or ip == self.watch:
                seen[ip] = 1
        if action in NETFILTER:
            flags = extra.get("tcp_flags") if extra else None
            if flags is not None and "SYN" not in (
                flags if isinstance(flags, tuple) else _flags(flags)
            ):
                cell[3] += 1

    def _sample(self, key: tuple[Any, ...], event: Event) -> None:
        skey = (key[0], key[1], key[2] // self._per, key[3])
        kept = self.samples.get(skey)
        if kept is None:
            self.samples[skey] = [event]
        elif len(kept) < SAMPLES_PER_ACTION or (
            event.action in NETFILTER and len(kept) < PACKETS_PER_GROUP
        ):
            kept.append(event)

    def feed(self, events: Iterable[Event]) -> Aggregator:
        add = self.add
        for event in events:
            add(event)
        return self

    def groups(self) -> list[Group]:
        """Bursts: buckets of the same key, adjacent in time, merged; ordered by first seen."""
        per = self._per
        buckets: dict[tuple[Any, ...], Group] = {}
        for (port, upstream, minute, action, dataset, dport), cell in self.cells.items():
            bkey = (port, upstream, minute // per)
            group = buckets.get(bkey)
            if group is None:
                group = buckets[bkey] = Group(port, upstream or None, cell[1], cell[2])
            group.add_cell(minute, action, dataset, dport, cell)
        for (port, upstream, bucket, _action), events in self.samples.items():
            group = buckets.get((port, upstream, bucket))
            if group is not None:
                group.add_samples(events)
        _fold_unnamed_upstreams(buckets)
        out: list[Group] = []
        by_key: dict[tuple[Any, ...], list[tuple[int, Group]]] = {}
        for (port, upstream, bucket), group in buckets.items():
            by_key.setdefault((port, upstream), []).append((bucket, group))
        for items in by_key.values():
            items.sort(key=lambda bg: bg[0])
            current: Group | None = None
            prev = -2
            for bucket, group in items:
                if current is not None and bucket == prev + 1:
                    current.merge(group)
                else:
                    current = group
                    out.append(current)
                prev = bucket
        return sorted(out, key=lambda g: (g.first, g.label))


def _fold_unnamed_upstreams(buckets: dict[tuple[Any, ...], Group]) -> None:
    """Fold a bucket whose events name no upstream into the one bucket beside it that does.

    An access log without ``$upstream_addr`` and the error log describe the same failed
    requests; when only one upstream failed on that port in that time bucket, they are one
    group, so each failure counts once. With several upstreams it stays apart (ambiguous).
    """
    named: dict[tuple[Any, ...], list[Group]] = {}
    for (port, upstream, bucket), group in buckets.items():
        if upstream:
            named.setdefault((port, bucket), []).append(group)
    for key in [k for k in buckets if not k[1]]:
        candidates = named.get((key[0], key[2]), [])
        if len(candidates) == 1 and buckets[key].datasets.keys() - candidates[0].datasets.keys():
            candidates[0].merge(buckets.pop(key))
