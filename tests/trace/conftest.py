"""Fixtures of the kernel trace tests: skip with the reason when tracefs cannot be used."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.trace.lab import HostTracing, TraceLab, unavailable


@pytest.fixture
def lab() -> Iterator[TraceLab]:
    why = unavailable()
    if why:
        pytest.skip(why)
    with TraceLab() as made:
        yield made


@pytest.fixture
def host_tracing() -> Iterator[HostTracing]:
    why = unavailable()
    if why:
        pytest.skip(why)
    view = HostTracing()
    try:
        yield view
    finally:
        view.close()
