"""Test-wide setup: a non-UTC zone (so zone bugs show) and shared helpers."""

from __future__ import annotations

import os
import time

os.environ["TZ"] = "America/New_York"
time.tzset()
