"""The service schedule (app.amc.schedule) against a naive date walk, for every frequency and any dates."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from app.amc.schedule import MONTHS, WEEKS, Frequency, visit_dates


def naive_walk(frequency: Frequency, first: dt.date, until: dt.date) -> list[dt.date]:
    """Step k: k whole periods after the first visit, on its day of the month or the month's last day."""
    out: list[dt.date] = []
    k = 0
    while True:
        if frequency in WEEKS:
            day = first + dt.timedelta(weeks=k * WEEKS[frequency])
        else:
            months = first.year * 12 + first.month - 1 + k * MONTHS[frequency]
            year, month = divmod(months, 12)
            month += 1
            day = dt.date(year, month, min(first.day, calendar.monthrange(year, month)[1]))
        if day > until:
            return out
        out.append(day)
        k += 1


dates = st.dates(min_value=dt.date(1980, 1, 1), max_value=dt.date(2150, 12, 31))
month_ends = st.builds(
    lambda y, m, back: dt.date(y, m, calendar.monthrange(y, m)[1] - back),
    st.integers(1980, 2150),
    st.integers(1, 12),
    st.integers(0, 3),
)


@settings(max_examples=400, deadline=None)
@given(frequency=st.sampled_from(list(Frequency)), first=dates | month_ends, years=st.integers(0, 12))
def test_schedule_matches_a_naive_walk(frequency: Frequency, first: dt.date, years: int) -> None:
    until = first + dt.timedelta(days=365 * years + 40)
    expected = naive_walk(frequency, first, until)
    got = visit_dates(frequency, first, until)
    assert got == expected
    assert got[0] == first
    assert all(a < b for a, b in itertools.pairwise(got))


@settings(max_examples=200, deadline=None)
@given(frequency=st.sampled_from(list(Frequency)), first=dates, until=dates)
def test_schedule_stays_inside_its_window(frequency: Frequency, first: dt.date, until: dt.date) -> None:
    got = visit_dates(frequency, first, until)
    assert all(first <= day <= until for day in got)
    if until < first:
        assert got == []


def test_monthly_on_the_31st_clamps_to_each_month_end_and_never_drifts() -> None:
    got = visit_dates(Frequency.MONTHLY, dt.date(2027, 1, 31), dt.date(2027, 6, 30))
    assert got == [
        dt.date(2027, 1, 31),
        dt.date(2027, 2, 28),
        dt.date(2027, 3, 31),
        dt.date(2027, 4, 30),
        dt.date(2027, 5, 31),
        dt.date(2027, 6, 30),
    ]
    assert visit_dates(Frequency.MONTHLY, dt.date(2028, 1, 31), dt.date(2028, 3, 1))[1] == dt.date(2028, 2, 29)


def test_quarterly_from_the_30th_of_november_meets_february() -> None:
    got = visit_dates(Frequency.QUARTERLY, dt.date(2023, 11, 30), dt.date(2025, 3, 1))
    assert got == [
        dt.date(2023, 11, 30),
        dt.date(2024, 2, 29),
        dt.date(2024, 5, 30),
        dt.date(2024, 8, 30),
        dt.date(2024, 11, 30),
        dt.date(2025, 2, 28),
    ]


def test_yearly_on_the_29th_of_february_is_the_28th_in_common_years() -> None:
    got = visit_dates(Frequency.YEARLY, dt.date(2024, 2, 29), dt.date(2032, 12, 31))
    assert got == [
        dt.date(2024, 2, 29),
        dt.date(2025, 2, 28),
        dt.date(2026, 2, 28),
        dt.date(2027, 2, 28),
        dt.date(2028, 2, 29),
        dt.date(2029, 2, 28),
        dt.date(2030, 2, 28),
        dt.date(2031, 2, 28),
        dt.date(2032, 2, 29),
    ]
    # 2100 is not a leap year (divisible by 100, not by 400); 2000 was.
    assert dt.date(2100, 2, 28) in visit_dates(Frequency.YEARLY, dt.date(2096, 2, 29), dt.date(2101, 1, 1))
    assert dt.date(2000, 2, 29) in visit_dates(Frequency.YEARLY, dt.date(1996, 2, 29), dt.date(2001, 1, 1))


def test_weekly_and_fortnightly_step_by_days() -> None:
    assert visit_dates(Frequency.FORTNIGHTLY, dt.date(2026, 12, 24), dt.date(2027, 1, 21)) == [
        dt.date(2026, 12, 24),
        dt.date(2027, 1, 7),
        dt.date(2027, 1, 21),
    ]
