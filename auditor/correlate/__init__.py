"""Correlation: name the cause of each group of resets from events, rules, limits and counters."""

from __future__ import annotations
