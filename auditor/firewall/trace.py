"""Walk a packet through every ruleset in the kernel's hook order, and name what decides.

For each hook the packet crosses (:data:`~auditor.firewall.model.HOOKS_BY_DIRECTION`),
the base chains of all rulesets (iptables-legacy, iptables-nft, nftables) are run by
priority. An accept ends only that base chain; a drop or reject ends the trace. The
deciding rule is the one that gave the final drop/reject, or, for an accepted packet,
the last rule that explicitly accepted it (else the last policy of a chain with rules).
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.firewall.model import (
    HOOKS_BY_DIRECTION,
    ChainOutcome,
    Conditional,
    NotEvaluated,
    Packet,
    Policy,
    RuleRef,
    Ruleset,
    TraceEnv,
    TraceResult,
)


def trace(rulesets: Sequence[Ruleset], packet: Packet, env: TraceEnv | None = None) -> TraceResult:
    """The fate of ``packet`` across ``rulesets`` (see the module docstring)."""
    env = env or TraceEnv()
    path: list[RuleRef] = []
    cond: list[Conditional] = []
    ne: list[NotEvaluated] = []
    decided: ChainOutcome | None = None  # last explicit accept
    policy_fallback: ChainOutcome | None = None
    for hook in HOOKS_BY_DIRECTION[packet.direction]:
        chains = []
        for order, rs in enumerate(rulesets):
            for hc in rs.hook_chains(packet.family, hook):
                chains.append((hc.priority, order, hc, rs))
        chains.sort(key=lambda c: (c[0], c[1]))
        for _, _, hc, rs in chains:
            if hc.kind == "nat" and packet.ct_state != "new":
                continue
            out = rs.run_chain(hc, packet, env)
            path.extend(out.path)
            cond.extend(out.conditional)
            ne.extend(out.not_evaluated)
            if out.packet is not None:
                packet = out.packet
            if out.verdict != "accept":
                return TraceResult(out.verdict, out.reject_with, out.rule, out.policy,
                                   tuple(path), tuple(cond), tuple(ne), packet)
            if out.rule is not None:
                decided = out
            elif out.path or (out.policy is not None and _worth(out.policy, policy_fallback)):
                policy_fallback = out
    final = decided or policy_fallback
    if final is None:
        return TraceResult("accept", None, None, None, tuple(path), tuple(cond), tuple(ne), packet)
    return TraceResult("accept", None, final.rule, final.policy, tuple(path), tuple(cond),
                       tuple(ne), packet)


def _worth(policy: Policy, current: ChainOutcome | None) -> bool:
    """Prefer a filter-table policy as the one to name when every chain accepted by policy."""
    if current is None or current.policy is None:
        return True
    return policy.table == "filter" or current.policy.table != "filter"
