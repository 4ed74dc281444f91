"""Facts of a group of failures read from their own pattern: timing and request methods.

A keep-alive race shows as failures that come one at a time, seconds apart (each on
the first request after an idle gap), and only on requests nginx does not retry on a
fresh connection (a non-idempotent method: POST, PATCH, LOCK): nginx logs more
upstream failures than its clients saw, since it retried the idempotent ones. A
crashing or resetting upstream fails every request, in bursts, whatever the method.
"""

from __future__ import annotations

from auditor.correlate.grouping import Group

SPREAD_MIN_GAP = 0.5  # seconds between failures, on average, to call them spread out
SPREAD_MIN_COUNT = 2
# nginx retries a request on another upstream connection unless it is non-idempotent
# (proxy_next_upstream: "non_idempotent" = POST, LOCK, PATCH).
NON_IDEMPOTENT = frozenset({"POST", "LOCK", "PATCH"})
ERROR, ACCESS = "nginx.error", "nginx.access"


def pattern_facts(group: Group) -> set[str]:
    """The group facts its failures' pattern shows (see the module docstring)."""
    out: set[str] = set()
    resets = group.resets
    span = (group.last - group.first).total_seconds()
    if resets >= SPREAD_MIN_COUNT and span / (resets - 1) >= SPREAD_MIN_GAP:
        out.add("failures-spread")
    # What clients saw (the access log's failures) tells which requests nginx did not
    # retry; without an access log, the failures nginx logged.
    seen = group.sample_events() if not group.datasets.get(ACCESS) else [
        e for e in group.sample_events() if e.dataset == ACCESS
    ]
    methods = {e.http_method.upper() for e in seen if e.http_method}
    if methods and methods <= NON_IDEMPOTENT:
        out.add("failures-non-idempotent")
    logged, answered = group.datasets.get(ERROR, 0), group.datasets.get(ACCESS, 0)
    if answered and logged > answered:
        out.add("failures-retried")
    return out
