"""Everything beyond logs that an analysis reads from an input: rule sets and host facts.

The same readers serve a bundle, a directory, a sosreport and the live host
(which is first collected into a private temporary bundle), so the scheduled
audit and ``diagnose`` see the same firewall backends and the same limits.

Counters are always handed to the engine as a window: the before/after
snapshots of a bundle or a live ``--sample``, or the previous scheduled run's
values (:func:`with_counter_window`). A single snapshot is kept as totals since
boot, which the engine treats as weak, host-wide context only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from auditor import firewall
from auditor.bundle.inputs import Artifact, Inputs
from auditor.correlate.fwlink import all_rules, rule_key
from auditor.correlate.report import SourceInfo
from auditor.firewall.ipset import IpSets
from auditor.firewall.model import Ruleset
from auditor.limits.facts import build_facts
from auditor.limits.snapshot import HostState, load_state
from auditor.sources.files import SourceError

RULE_KINDS = ("iptables-save", "ip6tables-save", "nft-json", "nft-text")
HOST_KINDS_SKIPPED = frozenset({"manifest", "ipset", "trace-header", *RULE_KINDS})


def _backend(art: Artifact) -> str:
    return "iptables-legacy" if "legacy" in art.path.rsplit("/", 1)[-1] else "iptables-nft"


def read_ipsets(inputs: Inputs, sources: list[SourceInfo]) -> IpSets | None:
    """The ipsets a bundle holds (``ipset save``), merged; None when there are none."""
    merged: IpSets | None = None
    for art in inputs.by_kind("ipset"):
        try:
            sets = firewall.read_ipsets(art.path)
        except (OSError, ValueError) as exc:
            sources.append(SourceInfo(art.path, art.kind, False, note=str(exc)))
            continue
        sources.append(SourceInfo(art.path, art.kind, True, not_understood=len(sets.issues)))
        merged = sets if merged is None else IpSets(
            {**merged.sets, **sets.sets},
            [*merged.issues, *sets.issues],
            {**merged.unsupported, **sets.unsupported},
        )
    return merged


def _one_nft_listing(arts: list[Artifact], sources: list[SourceInfo] | None) -> list[Artifact]:
    """``arts`` with at most one nftables ruleset: nft JSON when there is some, else one
    ``nft list ruleset`` text (the one with ``# handle`` numbers when there are several, as
    a sosreport's ``nft_-a_list_ruleset``); the others are noted, not traced twice."""
    nft = [a for a in arts if a.kind in ("nft-json", "nft-text")]
    texts = [a for a in nft if a.kind == "nft-text"]
    if not texts or (len(nft) == 1):
        return arts
    keep = next((a for a in nft if a.kind == "nft-json"), None)
    if keep is None:
        keep = max(texts, key=_handles)
    for a in texts:
        if a is not keep and sources is not None:
            sources.append(SourceInfo(a.path, a.kind, False,
                                      note=f"the same nftables ruleset is read from {keep.path}"))
    return [a for a in arts if a.kind != "nft-text" or a is keep]


def _handles(art: Artifact) -> int:
    """How many ``# handle`` numbers the start of a listing holds (0 when unreadable)."""
    try:
        with open(art.path, encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 16).count("# handle ")
    except OSError:
        return 0


def read_rulesets(inputs: Inputs, sources: list[SourceInfo]) -> list[Ruleset]:
    """Every firewall rule set of every backend the input holds; each file noted in sources."""
    # Rules saved at the start of a trace window ("before") are not traced twice.
    arts = _one_nft_listing(
        [a for kind in RULE_KINDS for a in inputs.by_kind(kind) if a.phase != "before"], sources)
    if not arts:
        return []
    ipsets = read_ipsets(inputs, sources)
    rulesets: list[Ruleset] = []
    for art in arts:
        try:
            ruleset = firewall.read_file(art.path, ipsets, _backend(art))
        except (OSError, firewall.FirewallError) as exc:
            sources.append(SourceInfo(art.path, art.kind, False, note=str(exc)))
            continue
        rulesets.append(ruleset)
        sources.append(SourceInfo(art.path, art.kind, True, not_understood=len(ruleset.issues)))
    return rulesets


def rule_moves(inputs: Inputs, rulesets: Sequence[Ruleset]) -> dict[tuple[Any, ...], int] | None:
    """Packets each rule of ``rulesets`` counted during a trace window, by rule key; None
    when the input saved no rules at the window's start (phase "before")."""
    before = _one_nft_listing(
        [a for k in RULE_KINDS for a in inputs.by_kind(k) if a.phase == "before"], None)
    if not before:
        return None
    start: dict[tuple[Any, ...], int] = {}
    for art in before:
        try:
            ruleset = firewall.read_file(art.path, None, _backend(art))
        except (OSError, firewall.FirewallError):  # no start: the end's counters stay as they are
            return None
        for rule in all_rules([ruleset]):
            start[rule_key(rule)] = rule.packets or 0
    return {rule_key(r): (r.packets or 0) - start.get(rule_key(r), 0) for r in all_rules(rulesets)}


def read_host_state(inputs: Inputs, sources: list[SourceInfo]) -> HostState:
    """Limits, counters, listeners, process limits and nginx configuration of the input."""
    try:
        state = load_state(inputs)
    except SourceError as exc:
        sources.append(SourceInfo(inputs.root or "(input)", "host", False, note=str(exc)))
        return HostState(host=inputs.host, kernel=inputs.kernel, root=inputs.root)
    sources.extend(
        SourceInfo(a.path, a.kind, True) for a in state.sources if a.kind not in HOST_KINDS_SKIPPED
    )
    return state


def with_counter_window(
    state: HostState,
    before: Mapping[str, int],
    before_time: datetime | None,
    after_time: datetime,
) -> HostState:
    """``state`` with ``before`` (an earlier run's counters) as the start of its counter window.

    Used by the scheduled audit: the previous run's values and time give the
    same kind of window as a bundle's before/after snapshots. A counter that went
    down restarted (a reboot or module reload): its current value is its change.
    Nothing changes when there is no earlier value or the state already has a window.
    """
    if not before or not state.since_boot or not state.after:
        return state
    deltas: dict[str, int] = {}
    for name, value in state.after.items():
        if name in state.gauges or name not in before:
            continue
        prior = before[name]
        deltas[name] = value - prior if value >= prior else value
    seconds = (after_time - before_time).total_seconds() if before_time is not None else 0.0
    windowed = dataclasses.replace(
        state, before=dict(before), deltas=deltas, window_seconds=max(seconds, 0.0),
        window_start=before_time, window_end=after_time,
    )
    return dataclasses.replace(windowed, facts=build_facts(windowed))  # facts of the window
