"""Walk a packet through every ruleset in the kernel's hook order, and name what decides.

For each hook the packet crosses (:data:`~auditor.firewall.model.HOOKS_BY_DIRECTION`),
the base chains of all rulesets (iptables-legacy, iptables-nft, nftables) are run by
priority. An accept ends only that base chain; a drop or reject ends the trace. The
deciding rule is the one that gave the final drop/reject, or, for an accepted packet,
the last rule that explicitly accepted it (else the last policy of a chain with rules).

NAT, as the kernel's NAT core does it: nat chains see only NEW connections; the first
nat chain of a hook that translates binds the connection and the other nat chains of
that hook are skipped; later chains see the rewritten packet. After prerouting has
changed the destination the route is decided again: a local destination (REDIRECT
always) goes to INPUT, any other to FORWARD. A packet of an existing connection is
left untranslated (its conntrack mapping is not known here), and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from auditor.firewall.model import (
    HOOKS_BY_DIRECTION,
    ChainOutcome,
    Conditional,
    Direction,
    HookChain,
    NatStep,
    NotEvaluated,
    Packet,
    Policy,
    RuleRef,
    Ruleset,
    TraceEnv,
    TraceResult,
)

NO_MAPPING = ("ct state {state}: only the first packet of a connection meets the nat chains; "
              "{label} translates a new one like it ({text}), but this connection's mapping "
              "is not known here, so the packet is traced with the addresses given")


def trace(rulesets: Sequence[Ruleset], packet: Packet, env: TraceEnv | None = None) -> TraceResult:
    """The fate of ``packet`` across ``rulesets`` (see the module docstring)."""
    env = env or TraceEnv()
    path: list[RuleRef] = []
    cond: list[Conditional] = []
    ne: list[NotEvaluated] = []
    nat: list[NatStep] = []
    notes: list[str] = []
    decided: ChainOutcome | None = None  # last explicit accept
    policy_fallback: ChainOutcome | None = None
    hooks = HOOKS_BY_DIRECTION[packet.direction]
    i = 0
    while i < len(hooks):
        hook = hooks[i]
        i += 1
        chains = []
        for order, rs in enumerate(rulesets):
            for hc in rs.hook_chains(packet.family, hook):
                chains.append((hc.priority, order, hc, rs))
        chains.sort(key=lambda c: (c[0], c[1]))
        bound = False  # a nat chain of this hook translated: the others are not consulted
        step: NatStep | None = None
        dst_before = packet.dst
        for _, _, hc, rs in chains:
            if hc.kind == "nat":
                if packet.ct_state != "new":  # invalid/untracked: no conntrack, never NATed
                    if not bound and packet.ct_state in ("established", "related"):
                        bound = _would_translate(rs, hc, packet, env, notes)
                    continue
                if bound:
                    continue
            out = rs.run_chain(hc, packet, env)
            path.extend(out.path)
            cond.extend(out.conditional)
            ne.extend(out.not_evaluated)
            if out.packet is not None:
                packet = out.packet
            if out.nat is not None:
                step = out.nat
                nat.append(step)
                bound = True
            if out.verdict != "accept":
                return TraceResult(out.verdict, out.reject_with, out.rule, out.policy,
                                   tuple(path), tuple(cond), tuple(ne), packet, tuple(nat),
                                   tuple(notes))
            if out.rule is not None:
                decided = out
            elif out.path or (out.policy is not None and _worth(out.policy, policy_fallback)):
                policy_fallback = out
        if hook == "prerouting" and step is not None and (packet.dst != dst_before
                                                          or step.kind == "redirect"):
            direction = _route(packet, dst_before, step, env, notes)
            if direction != packet.direction:
                notes.append(f"after {step.kind.upper()} to {packet.dst} the route is "
                             f"decided again: {direction}, not {packet.direction}")
                packet = replace(packet, direction=direction,
                                 oif=None if direction == "input" else packet.oif)
                hooks = hooks[:i] + HOOKS_BY_DIRECTION[direction][1:]
    final = decided or policy_fallback
    if final is None:
        return TraceResult("accept", None, None, None, tuple(path), tuple(cond), tuple(ne),
                           packet, tuple(nat), tuple(notes))
    return TraceResult("accept", None, final.rule, final.policy, tuple(path), tuple(cond),
                       tuple(ne), packet, tuple(nat), tuple(notes))


def _would_translate(rs: Ruleset, hc: HookChain, packet: Packet, env: TraceEnv,
                     notes: list[str]) -> bool:
    """For a packet of an existing connection: note the NAT a new one would get."""
    step = rs.run_chain(hc, replace(packet, ct_state="new"), env).nat
    if step is None:
        return False
    notes.append(NO_MAPPING.format(state=packet.ct_state, label=step.rule.label, text=step.text))
    return True


def _route(packet: Packet, dst_before: str, step: NatStep, env: TraceEnv,
           notes: list[str]) -> Direction:
    """INPUT or FORWARD for ``packet`` after a destination NAT in prerouting."""
    if step.kind == "redirect" or packet.dst.startswith("127.") or packet.dst == "::1":
        return "input"
    if env.local_addresses:
        return "input" if packet.dst in env.local_addresses else "forward"
    if packet.dst == dst_before:
        return packet.direction
    notes.append(f"the host's addresses are not known: {packet.dst} is taken as not local "
                 "(give --local ADDRESS if it is)")
    return "forward"


def _worth(policy: Policy, current: ChainOutcome | None) -> bool:
    """Prefer a filter-table policy as the one to name when every chain accepted by policy."""
    if current is None or current.policy is None:
        return True
    return policy.table == "filter" or current.policy.table != "filter"
