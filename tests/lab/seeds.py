"""Which seeds of each shape family tune the engine and which are held out.

NOBODY MAY TUNE weights, evidence or catalog entries on a held-out seed: do not run
them while changing the engine, do not read their captures or reports to decide a
change, do not add a held-out failure to a GAPS list. They are for scoring only
(``python -m tests.lab score``, ``test_shapes.py::test_held_out_accuracy``). A
change that raises the tuning score and lowers the held-out one is a regression.
When the held-out set has been looked at too closely, draw new seeds (a new range)
rather than fixing the old ones.

Seeds were taken in order (1, 2... and 101, 102...), not chosen by outcome; each
draws its shape from ``random.Random(f"{family}:{seed}")`` (see shapes.py).
"""

from __future__ import annotations

TUNING: dict[str, tuple[int, ...]] = {
    "fw-limit": (1, 2),
    "fw-reject": (1,),
    "overflow": (1,),
    "synflood": (1,),
    "up-reset": (1,),
    "client-abort": (1,),
    "ka-race": (1,),
    "restart": (1,),
    "moved": (1,),
    "nofile": (1,),
    "healthy": (1,),
    "two": (1,),
}

HELD_OUT: dict[str, tuple[int, ...]] = {
    "fw-limit": (101, 102, 103),
    "fw-reject": (101, 102),
    "overflow": (101, 102),
    "synflood": (101, 102),
    "up-reset": (101, 102),
    "client-abort": (101,),
    "ka-race": (101, 102),
    "restart": (101, 102),
    "moved": (101, 102),
    "nofile": (101, 102),
    "healthy": (101, 102),
    "two": (101,),
}

# Held-out accuracy (judgements right / all) that test_held_out_accuracy requires: what
# the engine of main measured when the split was made, 36-39% (16-17 of 44 judgements;
# three runs at 5dae44e, one at a72c917), rounded down to 30% for what other labs on a
# shared host leak into a capture (host-wide sysctls, kernel messages). The lead raises it as
# the engine improves; it is never lowered to let a change through. Raised to 50% after the
# engine fixes of classes 2, 3, 4, 5 and 6 (made and checked on tuning seeds only) measured
# 61.4% held-out (27 of 44), rounded down for what a shared host leaks into a capture.
FLOOR = 0.50


def cases(split: dict[str, tuple[int, ...]]) -> list[str]:
    """``<family>-<seed>`` names of a split, in order."""
    return [f"{fam}-{seed}" for fam, seeds in split.items() for seed in seeds]
