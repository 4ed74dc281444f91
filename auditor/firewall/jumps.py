"""Bounds on walking chains: jump loops refused on reading, a visit budget when tracing.

A ruleset file is input like any other: it may hold what the kernel never would. The
kernel refuses a table in which jumps and gotos between chains form a loop
(``ELOOP``: iptables' ``mark_source_chains``, nf_tables' ``nf_tables_check_loops``),
so a loop cannot exist in a live ruleset and a file that has one is refused here too,
with the file:line of the jump that closes it (:func:`find_loop`).

Without loops a walk still can fan out: every rule of a chain may jump to the next
chain, down many levels, and each level multiplies the rules visited. The kernel
would do the same work per packet; a trace stops after :data:`MAX_RULE_VISITS` rule
visits in one base chain and says so (:func:`budget_reason`), so no ruleset makes a
trace run or grow without bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditor.models import Location

# Rule visits allowed while one base chain runs for one packet (jumps and returns
# included). A 20,000-rule chain scanned in full is 20,000 visits.
MAX_RULE_VISITS = 200_000


@dataclass(frozen=True, slots=True)
class Jump:
    """``chain`` jumps (or goes) to ``target`` in the rule at ``location``."""

    target: str
    location: Location | None


def find_loop(edges: Mapping[str, Sequence[Jump]]) -> tuple[list[str], Location | None] | None:
    """A loop of jumps as (chains in order, location of the closing jump), or None.

    Iterative depth-first search: linear in chains plus jumps, no recursion whatever
    the depth. Targets that are not keys of ``edges`` (verdicts, unknown chains) end a path.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(edges[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            tgt = nxt.target
            if tgt not in edges:
                continue
            seen = state.get(tgt)
            if seen == 1:
                return [*path[path.index(tgt):], tgt], nxt.location
            if seen is None:
                state[tgt] = 1
                path.append(tgt)
                iters.append(iter(edges[tgt]))
    return None


def loop_message(chains: list[str], what: str) -> str:
    """``jumps between chains form a loop (A -> B -> A); the kernel refuses ...``."""
    return (f"jumps between {what} chains form a loop ({' -> '.join(chains)}); the kernel "
            "refuses such a table (ELOOP), so this file was never a live ruleset")


def budget_reason(chain: str) -> str:
    return (f"trace of base chain {chain} stopped after {MAX_RULE_VISITS} rule visits "
            "(jumps fan out too far); the verdict below is the chain's policy, not a finding")
