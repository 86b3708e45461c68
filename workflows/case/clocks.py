"""SLA clock arithmetic over a business calendar. Pure functions on `StageClock`.

A clock counts working seconds used against a target. Pausing banks the time used so
far; resuming continues from it; a new target (priority or kind changed) keeps the
used time and only moves the due time.
"""

from __future__ import annotations

from datetime import datetime

from workflows.case.contracts import StageClock
from workflows.sla import BusinessCalendar


def start_clock(name: str, target: int, now: datetime, calendar: BusinessCalendar) -> StageClock:
    """A new clock running from `now`."""
    clock = StageClock(name=name, target=target, running_since=now)
    clock.due_at = calendar.add(now, target)
    return clock


def used_at(clock: StageClock, now: datetime, calendar: BusinessCalendar) -> float:
    """Working seconds used by `now`, including the current running stretch."""
    if clock.running_since is None:
        return clock.used
    return clock.used + calendar.working_seconds(clock.running_since, now)


def pause_clock(clock: StageClock, now: datetime, reason: str, calendar: BusinessCalendar) -> None:
    """Stop counting; the time used so far is kept."""
    if clock.state != "running":
        return
    clock.used = used_at(clock, now, calendar)
    clock.running_since = None
    clock.paused_reason = reason
    clock.state = "paused"
    clock.due_at = None


def resume_clock(clock: StageClock, now: datetime, calendar: BusinessCalendar) -> None:
    """Count again from `now`, keeping the time used before the pause."""
    if clock.state != "paused":
        return
    clock.state = "running"
    clock.paused_reason = None
    clock.running_since = now
    clock.due_at = _due(clock, now, calendar)


def retarget_clock(
    clock: StageClock, target: int, now: datetime, calendar: BusinessCalendar
) -> None:
    """Change the target from the time already used, never from zero."""
    clock.target = target
    if clock.state == "running":
        clock.used = used_at(clock, now, calendar)
        clock.running_since = now
        clock.due_at = _due(clock, now, calendar)


def stop_clock(clock: StageClock, now: datetime, calendar: BusinessCalendar) -> None:
    """The clock's goal is reached: it ends met, or breached if it went over."""
    if clock.state not in ("running", "paused"):
        return
    clock.used = used_at(clock, now, calendar)
    clock.running_since = None
    clock.paused_reason = None
    if clock.breached_at is None and clock.used > clock.target:
        clock.breached_at = now
    clock.state = "breached" if clock.breached_at is not None else "met"


def instant_at_share(
    clock: StageClock, share: float, calendar: BusinessCalendar
) -> datetime | None:
    """When a running clock reaches `share` of its target (now-or-past if it already
    has); None while it is paused or stopped."""
    if clock.state != "running" or clock.running_since is None:
        return None
    needed = share * clock.target - clock.used
    if needed <= 0:
        return clock.running_since
    return calendar.add(clock.running_since, needed)


def is_open(clock: StageClock) -> bool:
    return clock.state in ("running", "paused")


def _due(clock: StageClock, now: datetime, calendar: BusinessCalendar) -> datetime:
    remaining = clock.target - clock.used
    if remaining <= 0:
        return now
    return calendar.add(now, remaining)
