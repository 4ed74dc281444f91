"""Test-wide setup: a non-UTC zone (so zone bugs show) and shared helpers."""

from __future__ import annotations

import os
import time

os.environ["TZ"] = "America/New_York"
time.tzset()

# Hypothesis explores new random inputs on every local run; the CI script pins the
# seed (AUDITOR_HYPOTHESIS=ci) so that a run there is reproducible, and a failure found
# locally is fixed before it lands. Both print the blob to reproduce a failure.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("AUDITOR_HYPOTHESIS", "dev"))
