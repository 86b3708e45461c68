"""Properties of the SLA clocks over real calendars: pauses never shorten, used time
survives pauses and new targets, and shares fall where the calendar puts them."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.test_sla_calendar import instants, properties, specs
from workflows.case import clocks
from workflows.sla import HOUR, BusinessCalendar

targets = st.integers(min_value=60, max_value=14 * 24 * HOUR)
offsets = st.floats(min_value=0, max_value=30 * 24 * HOUR, allow_nan=False)


@properties
@given(specs, instants, targets, offsets, offsets)
def test_a_pause_never_brings_the_due_time_forward(spec, start, target, run, pause):
    calendar = BusinessCalendar.from_spec(spec)
    straight = clocks.start_clock("confirm", target, start, calendar)
    paused = clocks.start_clock("confirm", target, start, calendar)
    stop_at = start + timedelta(seconds=run)
    clocks.pause_clock(paused, stop_at, "waiting_on_customer", calendar)
    used_at_pause = paused.used
    clocks.resume_clock(paused, stop_at + timedelta(seconds=pause), calendar)
    assert abs(paused.used - used_at_pause) < 1e-6
    assert paused.due_at >= straight.due_at - timedelta(microseconds=1) or (
        used_at_pause >= target)


@properties
@given(specs, instants, targets, targets, offsets)
def test_a_new_target_keeps_the_time_used(spec, start, old, new, run):
    calendar = BusinessCalendar.from_spec(spec)
    clock = clocks.start_clock("analyze", old, start, calendar)
    now = start + timedelta(seconds=run)
    used = clocks.used_at(clock, now, calendar)
    clocks.retarget_clock(clock, new, now, calendar)
    assert abs(clock.used - used) < 1e-6
    if new > used:
        assert abs(calendar.working_seconds(now, clock.due_at) - (new - used)) < 1e-3
    else:
        assert clock.due_at == now


@properties
@given(specs, instants, targets, st.sampled_from([0.5, 0.75, 0.9, 1.0, 1.5]))
def test_a_share_falls_after_that_share_of_working_time(spec, start, target, share):
    calendar = BusinessCalendar.from_spec(spec)
    clock = clocks.start_clock("resolution", target, start, calendar)
    at = clocks.instant_at_share(clock, share, calendar)
    assert abs(calendar.working_seconds(start, at) - share * target) < 1e-3
    clocks.pause_clock(clock, at, "parcel_in_transit", calendar)
    assert clocks.instant_at_share(clock, share, calendar) is None


@properties
@given(specs, instants, targets, offsets)
def test_stopping_records_met_or_breached_for_good(spec, start, target, run):
    calendar = BusinessCalendar.from_spec(spec)
    clock = clocks.start_clock("confirm", target, start, calendar)
    end = start + timedelta(seconds=run)
    clocks.stop_clock(clock, end, calendar)
    assert clock.state == ("breached" if clock.used > target else "met")
    clocks.resume_clock(clock, end + timedelta(hours=1), calendar)
    assert clock.state in ("met", "breached") and clock.running_since is None
