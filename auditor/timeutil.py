"""Time helpers: zones, syslog year inference, durations.

Log lines often carry a wall-clock time without a year or a zone. These helpers
turn them into absolute, timezone-aware instants.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def host_timezone() -> tzinfo:
    """The host's zone as a tzinfo that knows its DST rules when possible."""
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            return ZoneInfo(fh.read().strip())
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    import os

    tz_env = os.environ.get("TZ")
    if tz_env:
        try:
            return ZoneInfo(tz_env.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        return _localtime_zone()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC


def _localtime_zone() -> tzinfo:
    import os

    target = os.path.realpath("/etc/localtime")
    marker = "/zoneinfo/"
    if marker in target:
        return ZoneInfo(target.split(marker, 1)[1])
    local = datetime.now().astimezone().tzinfo
    return local if local is not None else UTC


def parse_timezone(name: str | None) -> tzinfo:
    """A zone from a name (``Europe/Berlin``), an offset (``+02:00``) or ``UTC``; None = host."""
    if not name:
        return host_timezone()
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(delta if m.group(1) == "+" else -delta)
    return ZoneInfo(name)


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """Attach ``tz`` to a naive wall-clock time (the first of two in a DST fold)."""
    return naive.replace(tzinfo=tz)


class YearInference:
    """Assigns years to year-less syslog stamps, in file order.

    The first stamp takes the year that puts it closest before ``reference``
    (usually the file's modification time); later stamps carry the year over and
    step into the next year when the month goes backwards by more than a
    few days (December -> January), so a log that crosses New Year comes out right.
    """

    def __init__(self, reference: datetime) -> None:
        self.reference = reference
        self._year: int | None = None
        self._last: tuple[int, int] | None = None

    def year_for(self, month: int, day: int) -> int:
        if self._year is None:
            ref = self.reference
            year = ref.year
            # A stamp more than a day after the reference belongs to last year.
            if (month, day) > (ref.month, ref.day + 1):
                year -= 1
            if (month, day) == (2, 29) and not calendar.isleap(year):
                year = self._leap_year_near(year)
            self._year = year
        elif self._last is not None and self._last[0] - month >= 6:
            # Months going backwards by a lot is a new year; small steps are clock jitter.
            self._year += 1
        self._last = (month, day)
        if (month, day) == (2, 29) and not calendar.isleap(self._year):
            return self._leap_year_near(self._year)
        return self._year

    def _leap_year_near(self, year: int) -> int:
        """The leap year whose Feb 29 is closest to the reference without being more than a
        day after it (a year-less ``Feb 29`` exists only in leap years, and a file holds no
        line written after the file itself)."""
        latest = self.reference.replace(tzinfo=None) + timedelta(days=1)
        candidates = [y for y in range(year - 8, year + 5) if calendar.isleap(y)]
        past = [y for y in candidates if datetime(y, 2, 29) <= latest]
        return max(past) if past else min(candidates)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.I)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d12h`` -> timedelta. Raises ValueError when malformed."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ValueError(f"malformed duration: {text!r}")
        total += float(m.group(1)) * _UNIT[m.group(2).lower()]
        pos = m.end()
    if pos != len(text):
        if text.isdigit():
            return timedelta(seconds=int(text))
        raise ValueError(f"malformed duration: {text!r} (use e.g. 90s, 15m, 2h, 1d)")
    return timedelta(seconds=total)


def parse_instant(text: str, tz: tzinfo, now: datetime | None = None) -> datetime:
    """An absolute time (ISO 8601, zone optional) or a duration ago (``2h``)."""
    text = text.strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        ago = parse_duration(text)
        return (now or datetime.now(UTC)) - ago
    return dt if dt.tzinfo else localize(dt, tz)
