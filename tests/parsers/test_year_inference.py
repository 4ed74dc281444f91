"""Year inference for year-less syslog stamps, Feb 29 included."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.timeutil import YearInference


@pytest.mark.parametrize(("reference", "year"), [
    (datetime(2026, 11, 24, tzinfo=UTC), 2024),  # a common year: the leap year before
    (datetime(2028, 3, 1, tzinfo=UTC), 2028),    # the same year
    (datetime(2028, 2, 28, 12, tzinfo=UTC), 2028),  # a day's clock skew is allowed
    (datetime(2028, 2, 27, tzinfo=UTC), 2024),   # Feb 29, 2028 is still to come
    (datetime(2101, 6, 1, tzinfo=UTC), 2096),    # 2100 is not a leap year
])
def test_feb29_takes_the_leap_year_closest_before_the_file(reference: datetime, year: int) -> None:
    years = YearInference(reference)
    assert years.year_for(2, 29) == year
    assert years.year_for(3, 1) == year  # the lines after it carry the year on


def test_feb29_in_the_middle_of_a_common_year_file() -> None:
    years = YearInference(datetime(2026, 3, 10, tzinfo=UTC))
    assert years.year_for(2, 27) == 2026
    assert years.year_for(2, 29) == 2024  # valid, and not invented in 2026
    assert years.year_for(3, 1) == 2026


@given(st.datetimes(min_value=datetime(1972, 1, 1), max_value=datetime(9000, 1, 1)))
def test_feb29_is_always_a_valid_date_not_after_the_file(reference: datetime) -> None:
    year = YearInference(reference.replace(tzinfo=UTC)).year_for(2, 29)
    assert calendar.isleap(year)
    assert datetime(year, 2, 29) <= reference + timedelta(days=1)
    assert reference - datetime(year, 2, 29) < timedelta(days=366 * 8 + 1)
