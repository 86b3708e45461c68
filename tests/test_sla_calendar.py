"""The business calendar: working time counted in local hours, across weekends, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.sla import HOUR, BusinessCalendar, CalendarSpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_ONLY = ["mon", "tue", "wed", "thu", "fri"]


def at(zone: ZoneInfo, text: str) -> datetime:
    """A local wall-clock time in `zone`, e.g. at(SHANGHAI, "2026-09-18 17:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def office(zone: str, holidays: list[str] | None = None, workdays: list[str] | None = None):
    return BusinessCalendar.from_spec(
        CalendarSpec(
            timezone=zone,
            hours="09:00-18:00",
            workdays=workdays or WEEKDAYS_ONLY,
            holidays=holidays or [],
        )
    )


# --- 24x7 -----------------------------------------------------------------------------------------


def test_24x7_is_plain_addition_in_utc():
    calendar = BusinessCalendar.from_spec(CalendarSpec())
    start = at(SHANGHAI, "2026-09-19 23:30")  # a Saturday night: nothing is closed
    due = calendar.add(start, 90 * 60)
    assert due == start + timedelta(minutes=90)
    assert due.tzinfo is UTC
    assert calendar.working_seconds(start, due) == 90 * 60
    assert calendar.working_seconds(due, start) == 0


# --- office hours in Shanghai ---------------------------------------------------------------------


def test_friday_afternoon_carries_over_the_weekend_to_monday():
    calendar = office("Asia/Shanghai")
    due = calendar.add(at(SHANGHAI, "2026-09-18 17:00"), 2 * HOUR)
    assert due == at(SHANGHAI, "2026-09-21 10:00")
    assert due.astimezone(SHANGHAI).strftime("%a %H:%M") == "Mon 10:00"


def test_holiday_after_the_weekend_is_skipped_too():
    calendar = office("Asia/Shanghai", holidays=["2026-09-21"])
    due = calendar.add(at(SHANGHAI, "2026-09-18 17:00"), 2 * HOUR)
    assert due.astimezone(SHANGHAI) == at(SHANGHAI, "2026-09-22 10:00")


def test_golden_week_counts_nothing():
    golden_week = [f"2026-10-0{day}" for day in range(1, 8)]
    calendar = office("Asia/Shanghai", holidays=golden_week)
    due = calendar.add(at(SHANGHAI, "2026-09-30 17:00"), 2 * HOUR)
    assert due == at(SHANGHAI, "2026-10-08 10:00")
    assert calendar.working_seconds(at(SHANGHAI, "2026-10-01"), at(SHANGHAI, "2026-10-08")) == 0


def test_time_running_out_at_closing_time_is_due_at_closing_time():
    calendar = office("Asia/Shanghai")
    assert calendar.add(at(SHANGHAI, "2026-09-18 17:00"), HOUR) == at(SHANGHAI, "2026-09-18 18:00")


@pytest.mark.parametrize(
    ("start", "due"),
    [
        ("2026-09-22 07:00", "2026-09-22 09:30"),  # before opening
        ("2026-09-22 20:00", "2026-09-23 09:30"),  # after closing
        ("2026-09-19 12:00", "2026-09-21 09:30"),  # Saturday
    ],
)
def test_clock_started_outside_hours_runs_from_the_next_opening(start, due):
    calendar = office("Asia/Shanghai")
    assert calendar.add(at(SHANGHAI, start), 30 * 60) == at(SHANGHAI, due)


def test_adding_nothing_outside_hours_stays_put():
    calendar = office("Asia/Shanghai")
    saturday = at(SHANGHAI, "2026-09-19 12:00")
    assert calendar.add(saturday, 0) == saturday


def test_working_time_between_two_instants_counts_only_open_hours():
    calendar = office("Asia/Shanghai", holidays=["2026-09-21"])
    friday_noon = at(SHANGHAI, "2026-09-18 12:00")
    tuesday_ten = at(SHANGHAI, "2026-09-22 10:00")
    assert calendar.working_seconds(friday_noon, tuesday_ten) == 7 * HOUR


def test_a_year_of_office_hours_is_counted_day_by_day_and_exactly():
    calendar = office("Asia/Shanghai")
    first = at(SHANGHAI, "2026-01-01 09:00")  # a Thursday; 2026 has 261 weekdays
    last = at(SHANGHAI, "2026-12-31 18:00")
    assert calendar.working_seconds(first, last) == 261 * 9 * HOUR
    assert calendar.add(first, 261 * 9 * HOUR) == last


# --- DST in Berlin --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("friday", "monday", "utc_offset"),
    [
        ("2026-03-27", "2026-03-30", timedelta(hours=2)),  # clocks go forward on 29 March
        ("2026-10-23", "2026-10-26", timedelta(hours=1)),  # and back on 25 October
    ],
)
def test_office_hours_stay_local_across_a_dst_weekend(friday, monday, utc_offset):
    calendar = office("Europe/Berlin")
    due = calendar.add(at(BERLIN, f"{friday} 17:00"), 2 * HOUR)
    assert due == at(BERLIN, f"{monday} 10:00")
    assert due.astimezone(BERLIN).utcoffset() == utc_offset


@pytest.mark.parametrize("sunday", ["2026-03-29", "2026-10-25"])
def test_a_dst_sunday_still_has_nine_office_hours(sunday):
    calendar = office("Europe/Berlin", workdays=["sun"])
    day = date.fromisoformat(sunday)
    start = datetime.combine(day, time(0), tzinfo=BERLIN)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=BERLIN)
    assert calendar.working_seconds(start, end) == 9 * HOUR
    assert calendar.add(start, 9 * HOUR) == at(BERLIN, f"{sunday} 18:00")


@pytest.mark.parametrize(("sunday", "hours"), [("2026-03-29", 23), ("2026-10-25", 25)])
def test_a_round_the_clock_dst_sunday_lasts_as_long_as_it_really_does(sunday, hours):
    calendar = BusinessCalendar.from_spec(
        CalendarSpec(timezone="Europe/Berlin", hours="24x7", workdays=["sun"])
    )
    day = date.fromisoformat(sunday)
    start = datetime.combine(day, time(0), tzinfo=BERLIN)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=BERLIN)
    assert calendar.working_seconds(start, end) == hours * HOUR


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (CalendarSpec(workdays=[]), "no working days"),
        (CalendarSpec(hours="18:00-09:00"), "closing time must be after opening time"),
        (CalendarSpec(hours="9am-6pm"), "invalid hours"),
        (CalendarSpec(workdays=["funday"]), "unknown weekday 'funday'"),
        (CalendarSpec(holidays=["2026-02-30"]), "no such date"),
        (CalendarSpec(timezone="Mars/Olympus_Mons"), "unknown time zone"),
    ],
)
def test_an_unusable_calendar_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_spec(spec)


def test_naive_datetimes_and_negative_amounts_are_refused():
    calendar = office("Asia/Shanghai")
    with pytest.raises(ValueError, match="aware"):
        calendar.add(datetime(2026, 9, 18, 17), HOUR)
    with pytest.raises(ValueError, match="aware"):
        calendar.working_seconds(datetime(2026, 9, 18, 17), at(SHANGHAI, "2026-09-19 00:00"))
    with pytest.raises(ValueError, match="negative"):
        calendar.add(at(SHANGHAI, "2026-09-18 17:00"), -1)


# --- properties -----------------------------------------------------------------------------------

SPECS = [
    CalendarSpec(),
    CalendarSpec(
        timezone="Asia/Shanghai",
        hours="09:00-18:00",
        workdays=WEEKDAYS_ONLY,
        holidays=["2026-01-01", *(f"2026-10-0{day}" for day in range(1, 8))],
    ),
    CalendarSpec(
        timezone="Europe/Berlin",
        hours="09:00-18:00",
        workdays=WEEKDAYS_ONLY,
        holidays=["2026-03-30", "2026-12-25", "2026-12-26"],
    ),
    CalendarSpec(
        timezone="America/New_York",
        hours="08:30-17:15",
        workdays=[*WEEKDAYS_ONLY, "sat"],
        holidays=["2026-07-03", "2026-11-26"],
    ),
    CalendarSpec(timezone="Europe/London", workdays=WEEKDAYS_ONLY, holidays=["2026-12-25"]),
    # Lord Howe Island moves its clocks by half an hour at 02:00, inside these hours.
    CalendarSpec(timezone="Australia/Lord_Howe", hours="01:00-03:00", holidays=["2026-01-26"]),
]

specs = st.sampled_from(SPECS)
instants = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 2, 1), timezones=st.just(UTC)
)
amounts = st.one_of(
    st.integers(min_value=0, max_value=60 * 24 * HOUR),
    st.floats(min_value=0, max_value=60 * 24 * HOUR, allow_nan=False),
)
properties = settings(database=None, deadline=None, max_examples=150)


@properties
@given(specs, instants, instants, amounts)
def test_add_is_monotonic_in_the_start(spec, a, b, seconds):
    calendar = BusinessCalendar.from_spec(spec)
    a, b = sorted((a, b))
    assert calendar.add(a, seconds) <= calendar.add(b, seconds)


@properties
@given(specs, instants, amounts, amounts)
def test_add_is_monotonic_in_the_amount(spec, start, s, t):
    calendar = BusinessCalendar.from_spec(spec)
    s, t = sorted((s, t))
    assert calendar.add(start, s) <= calendar.add(start, t)


@properties
@given(specs, instants, amounts)
def test_working_time_up_to_the_due_time_is_the_amount_added(spec, start, seconds):
    calendar = BusinessCalendar.from_spec(spec)
    due = calendar.add(start, seconds)
    assert due >= start
    assert calendar.working_seconds(start, due) == pytest.approx(seconds, abs=1e-6)


@properties
@given(specs, instants, instants, instants)
def test_working_time_is_additive(spec, a, b, c):
    calendar = BusinessCalendar.from_spec(spec)
    a, b, c = sorted((a, b, c))
    whole = calendar.working_seconds(a, c)
    parts = calendar.working_seconds(a, b) + calendar.working_seconds(b, c)
    assert whole == pytest.approx(parts, abs=1e-6)
    assert 0 <= whole <= (c - a).total_seconds()


@properties
@given(specs, instants, amounts.filter(lambda s: s >= 1e-6))
def test_due_times_fall_in_working_hours_on_working_days(spec, start, seconds):
    calendar = BusinessCalendar.from_spec(spec)
    # The last working microsecond before the due time must be open.
    last = (calendar.add(start, seconds) - timedelta(microseconds=1)).astimezone(calendar.zone)
    assert last.date().isoformat() not in spec.holidays
    assert last.strftime("%a").lower() in spec.workdays
    if spec.hours != "24x7":
        opens, closes = spec.hours.split("-")
        assert opens <= last.strftime("%H:%M") < closes


@properties
@given(specs, st.dates(min_value=date(2025, 12, 1), max_value=date(2027, 2, 1)))
def test_holidays_and_days_off_never_count(spec, day):
    calendar = BusinessCalendar.from_spec(spec)
    start = datetime.combine(day, time(0), tzinfo=calendar.zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=calendar.zone)
    worked = calendar.working_seconds(start, end)
    day_off = day.isoformat() in spec.holidays or day.strftime("%a").lower() not in spec.workdays
    if day_off:
        assert worked == 0
    else:
        assert worked > 0


@pytest.mark.parametrize(
    ("spec", "holiday"), [(spec, holiday) for spec in SPECS for holiday in spec.holidays]
)
def test_each_listed_holiday_counts_nothing(spec, holiday):
    calendar = BusinessCalendar.from_spec(spec)
    day = date.fromisoformat(holiday)
    start = datetime.combine(day, time(0), tzinfo=calendar.zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=calendar.zone)
    assert calendar.working_seconds(start, end) == 0
    assert calendar.add(start, 1).astimezone(calendar.zone).date() > day
