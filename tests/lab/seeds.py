"""Which seeds of each shape family tune the engine and which are held out.

NOBODY MAY TUNE weights, evidence or catalog entries on a held-out seed: do not run
them while changing the engine, do not read their captures or reports to decide a
change, do not add a held-out failure to a GAPS list. They are for scoring only
(``python -m tests.lab score``, ``test_shapes.py::test_held_out_accuracy``). A
change that raises the tuning score and lowers the held-out one is a regression.
When the held-out set has been looked at too closely, draw new seeds (a new range)
rather than fixing the old ones.

Seeds were taken in order (1, 2..., 101, 102... and 201, 202...), not chosen by outcome; each
draws its shape from ``random.Random(f"{family}:{seed}")`` (see shapes.py).
"""

from __future__ import annotations

FAMILIES = ("fw-limit", "fw-reject", "overflow", "synflood", "up-reset", "client-abort",
            "ka-race", "restart", "moved", "nofile", "healthy", "two")

# Seeds 1-6 of every family (seeds 2-6 were added as the second session's development pool).
TUNING: dict[str, tuple[int, ...]] = {fam: (1, 2, 3, 4, 5, 6) for fam in FAMILIES}

# The first held-out range (101-103), retired: its failure classes were printed and read once
# at the end of the first session. Neither tuned on nor scored; kept so nobody draws it again.
RETIRED: dict[str, tuple[int, ...]] = {fam: (101, 102, 103) for fam in FAMILIES}

# The held-out range drawn at the start of the second session, before any change of that
# session: three seeds of every family. Its report is read as two figures only (the score
# command prints held-out failures as counts per class, never by case).
HELD_OUT: dict[str, tuple[int, ...]] = {fam: (201, 202, 203) for fam in FAMILIES}

# Held-out accuracy (judgements right / all) that test_held_out_accuracy requires: what
# the engine of main measured when the split was made, 36-39% (16-17 of 44 judgements;
# three runs at 5dae44e, one at a72c917), rounded down to 30% for what other labs on a
# shared host leak into a capture (host-wide sysctls, kernel messages). The lead raises it as
# the engine improves; it is never lowered to let a change through. Raised to 50% after the
# engine fixes of classes 2, 3, 4, 5 and 6 (made and checked on tuning seeds only) measured
# 61.4% held-out (27 of 44), rounded down for what a shared host leaks into a capture.
# A new range (201-203) was drawn before the third session's changes, which were made and
# checked on tuning seeds 1-6 only; main then measured 98.5% (66 of 67) and 100% (67 of 67)
# on it. Raised to 90%, the accuracy the diagnosis must hold on incidents it was not tuned on.
FLOOR = 0.90


def cases(split: dict[str, tuple[int, ...]]) -> list[str]:
    """``<family>-<seed>`` names of a split, in order."""
    return [f"{fam}-{seed}" for fam, seeds in split.items() for seed in seeds]
