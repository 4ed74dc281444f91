"""Ports programs said they listen on, that nothing holds at capture time.

A program's own start-up line (``app-listening`` events, see
:mod:`auditor.parsers.app_listen`) says where it listens; the listener list (``ss``)
says what is held when the bundle was taken. A port announced and no longer held is
where clients get "connection refused" (the kernel answers each SYN with a reset),
and when the same program later announced another port that is held now, it moved
(a deploy changed its port while clients still call the old one).

This module states the group facts ``announced-unheld`` (and ``announced-moved``):
on the engineer's query group when it names such a port, or on a group of its own
(``synthetic="announced"``) for a port that moved, found without ``--port``. Such a
group has no event of its own: the engine keeps it only when a cause's counters
show resets over the counter window (a moved program alone is no incident).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from auditor.correlate.grouping import Group
from auditor.correlate.scoring import GroupFacts
from auditor.limits.snapshot import HostState
from auditor.models import Event

SYNTHETIC = "announced"


@dataclass(frozen=True, slots=True)
class Unheld:
    """A port ``program`` said it listens on (``said``) that no listener holds now."""

    port: int
    program: str
    said: Event
    moved: Event | None = None  # the program's later announcement of a port held now
    moved_to: int | None = None


def unheld(listens: Mapping[tuple[str, int], Event], view: HostState) -> list[Unheld]:
    """Every announced port no listener holds, with the program's later held port if any.

    Nothing without a listener list: an unread ``ss`` says nothing about what is held."""
    if not view.listeners:
        return []
    held = {x.port for x in view.listeners}
    out: list[Unheld] = []
    for (program, port), said in sorted(listens.items(), key=lambda kv: kv[1].timestamp):
        if port in held:
            continue
        later = [
            (_when(e), p, e)
            for (other, p), e in listens.items()
            if other == program and p in held and _later(e, said)
        ]
        if later:
            _, moved_to, moved = max(later, key=lambda x: (x[0], x[1]))
            out.append(Unheld(port, program, said, moved, moved_to))
        else:
            out.append(Unheld(port, program, said))
    return out


def _when(said: Event) -> tuple[datetime, int]:
    return said.timestamp, said.location.line or 0


def _later(one: Event, other: Event) -> bool:
    """``one`` was written after ``other``: syslog stamps whole seconds, so a program that
    restarts on another port within one second is ordered by its lines in the same file."""
    if one.timestamp != other.timestamp:
        return one.timestamp > other.timestamp
    same = one.location.path == other.location.path
    return same and (one.location.line or 0) > (other.location.line or 0)


def state_facts(found: Unheld, facts: GroupFacts, group: Group) -> None:
    """The group facts of ``found`` on ``group``, each cited where the program said it."""
    _cite(facts, "announced-unheld", found.program, found.said,
          f"no listener holds port {found.port}")
    values = {"program": found.program}
    if found.moved is not None and found.moved_to is not None:
        _cite(facts, "announced-moved", found.program, found.moved,
              f"port {found.moved_to} is held")
        values["moved_to"] = str(found.moved_to)
    group.extra["values"] = {**group.extra.get("values", {}), **values}
    group.extra["announced"] = {
        "program": found.program,
        "port": found.port,
        "said": found.said.timestamp.isoformat(),
        **({"moved_to": found.moved_to} if found.moved_to is not None else {}),
    }


def _cite(facts: GroupFacts, name: str, program: str, said: Event, now: str) -> None:
    where = said.extra.get("listen") or f"port {said.destination_port}"
    facts.facts.add(name)
    facts.cited[name] = (
        said.location.path,
        said.location.line or None,
        f"{program} said it listens on {where} "
        f"({said.timestamp.isoformat(timespec='seconds')}); {now}",
    )


def announced_groups(
    listens: Mapping[tuple[str, int], Event],
    view: HostState,
    query_port: int | None,
    query_group: Group | None,
    query_facts: GroupFacts,
    end: datetime | None = None,
) -> list[tuple[Group, GroupFacts, str | None]]:
    """Facts on the query group for its port; a group of its own for each port that moved.

    A group of its own spans the counter window (its resets are counted there); without
    the snapshots' times, from the announcement to the last event of the logs (``end``)."""
    out: list[tuple[Group, GroupFacts, str | None]] = []
    taken: set[int] = set()
    for found in unheld(listens, view):
        if found.port in taken:
            continue  # two programs said the same port: the first one found speaks for it
        if query_group is not None and found.port == query_port:
            taken.add(found.port)
            state_facts(found, query_facts, query_group)
            continue
        if found.moved is None:
            continue  # a port nobody holds any more is no incident without the move
        taken.add(found.port)
        t0 = view.window_start or found.said.timestamp
        t1 = view.window_end or max(end or found.moved.timestamp, found.moved.timestamp)
        group = Group(found.port, None, min(t0, t1), t1, synthetic=SYNTHETIC)
        group.ports[found.port] += 1
        gfacts = GroupFacts(query=found.port == query_port)
        state_facts(found, gfacts, group)
        if found.port == query_port and view.has_listener(found.port) is False:
            gfacts.facts.add("no-listener")
        out.append((group, gfacts, None))
    return out
