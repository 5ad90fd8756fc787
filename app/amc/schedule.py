"""A maintenance contract's service dates, generated with ``dateutil.rrule``.

Visits fall every N months (or weeks) from the first visit, on the first visit's day of the month.
A day the month does not have is the month's last day: monthly from 31 January is 28 (or 29)
February, then 31 March again (no drift); yearly from 29 February is 28 February in common years
and 29 February in leap years. ``rrule`` alone skips such months (``bymonthday=31`` has no
February), so the rule asks for "the day, or else the last day" (``bymonthday=(day, -1)``) and
keeps the first of that set in each period (``bysetpos=1``).

Pure functions of dates: no database, no clock. ``tests/test_amc_schedule.py`` checks them against a
naive month-by-month walk with hypothesis.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Final

from dateutil.rrule import MONTHLY, WEEKLY, rrule


class Frequency(StrEnum):
    WEEKLY = "weekly"
    FORTNIGHTLY = "fortnightly"
    MONTHLY = "monthly"
    BIMONTHLY = "bimonthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"
    YEARLY = "yearly"


MONTHS: Final = {
    Frequency.MONTHLY: 1,
    Frequency.BIMONTHLY: 2,
    Frequency.QUARTERLY: 3,
    Frequency.HALF_YEARLY: 6,
    Frequency.YEARLY: 12,
}
WEEKS: Final = {Frequency.WEEKLY: 1, Frequency.FORTNIGHTLY: 2}
# No contract is scheduled beyond this many visits (a weekly 20-year contract has 1,044).
MAX_VISITS: Final = 2000


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


def visit_dates(frequency: Frequency, first_visit_on: dt.date, until: dt.date) -> list[dt.date]:
    """Every service date from ``first_visit_on`` to ``until`` (inclusive), in order."""
    if until < first_visit_on:
        return []
    start, end = _midnight(first_visit_on), _midnight(until)
    if frequency in WEEKS:
        rule = rrule(WEEKLY, interval=WEEKS[frequency], dtstart=start, until=end, count=None)
    else:
        day = first_visit_on.day
        # Days 1-28 exist in every month; later days fall back to the month's last day.
        by_day: tuple[int, ...] = (day,) if day <= 28 else (day, -1)
        rule = rrule(
            MONTHLY,
            interval=MONTHS[frequency],
            bymonthday=by_day,
            bysetpos=1 if day > 28 else None,
            dtstart=start,
            until=end,
        )
    dates: list[dt.date] = []
    for moment in rule:
        dates.append(moment.date())
        if len(dates) >= MAX_VISITS:
            break
    return dates


def visits_per_year(frequency: Frequency) -> float:
    return 52.0 / WEEKS[frequency] if frequency in WEEKS else 12.0 / MONTHS[frequency]
