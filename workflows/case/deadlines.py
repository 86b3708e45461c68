"""The case's deadlines, pure: which marks are still ahead, when the next one falls,
and what the case's due times are at a given moment.

A mark is a share of a clock's target (the policy's warnings, the breach at 1.0, the
second escalation) or a stage deadline (the feedback window, the revisit call coming
due, the end of the reopen window). The workflow keeps one durable timer for the
earliest mark (`next_instant`) and, when it fires or the case changes, applies what
has come due; nothing here records or notifies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from workflows.case import clocks
from workflows.case.contracts import CaseState, StageClock
from workflows.case.vocabulary import AT_RISK_SHARE, OPEN_STAGES, REOPEN_WINDOW_DAYS, Stage
from workflows.sla import ALWAYS_OPEN, BusinessCalendar, CalendarSpec, SlaPolicy

# Clocks that warn before they breach and escalate a second time; the revisit clock
# only turns overdue.
WARNED_CLOCKS = ("confirm", "analyze", "resolution", "legal_refund", "reply")
# Clocks whose target follows kind and priority; the legal clock's is the law's.
RETARGETED_CLOCKS = ("confirm", "analyze", "resolution", "reply")
# Legal deadlines count calendar days, not the retailer's working hours.
LEGAL_CALENDAR = BusinessCalendar.from_spec(CalendarSpec(hours=ALWAYS_OPEN))
# The clock that measures the current stage.
STAGE_CLOCK = {Stage.RECORD: "confirm", Stage.CONFIRM: "confirm", Stage.ANALYZE: "analyze",
               Stage.RESOLVE: "resolution", Stage.REVISIT: "revisit"}

CalendarFor = Callable[[StageClock], BusinessCalendar]


def calendar_for(calendar: BusinessCalendar) -> CalendarFor:
    """The calendar each clock counts on: the law's for the legal clock, else the
    retailer's."""
    def pick(clock: StageClock) -> BusinessCalendar:
        return LEGAL_CALENDAR if clock.name == "legal_refund" else calendar
    return pick


def pending_marks(clock: StageClock, policy: SlaPolicy,
                  calendar: BusinessCalendar) -> list[tuple[datetime, float]]:
    """The shares of this clock's target still to be announced, with when they fall:
    warnings (policy's warn_at), the breach (1.0) and the second escalation. Empty while
    the clock is paused or stopped."""
    if clock.state != "running":
        return []
    shares: list[float] = []
    if clock.name in WARNED_CLOCKS:
        shares += [w for w in policy.warn_at if w not in clock.warned]
    if clock.breached_at is None:
        shares.append(1.0)
    elif clock.name in WARNED_CLOCKS and clock.escalations < 2:
        shares.append(policy.escalate_again_at)
    marks = []
    for share in shares:
        at = clocks.instant_at_share(clock, share, calendar)
        if at is not None:
            marks.append((at, share))
    return marks


def feedback_timed_out(state: CaseState, now: datetime) -> bool:
    return (state.stage == Stage.FEEDBACK and state.feedback_due_at is not None
            and state.feedback_due_at <= now)


def revisit_came_due(state: CaseState, now: datetime) -> bool:
    return (state.stage == Stage.REVISIT and not state.revisit_notified
            and state.revisit_due_at is not None and state.revisit_due_at <= now)


def reopen_window_end(state: CaseState) -> datetime | None:
    if state.stage != Stage.CLOSED or state.closed_at is None:
        return None
    return state.closed_at + timedelta(days=REOPEN_WINDOW_DAYS)


def next_instant(state: CaseState, policy: SlaPolicy, for_clock: CalendarFor
                 ) -> datetime | None:
    """When the earliest mark still ahead falls, or None when nothing is due."""
    instants = [at for clock in state.clocks
                for at, _ in pending_marks(clock, policy, for_clock(clock))]
    if state.stage == Stage.FEEDBACK and state.feedback_due_at:
        instants.append(state.feedback_due_at)
    if state.stage == Stage.REVISIT and state.revisit_due_at and not state.revisit_notified:
        instants.append(state.revisit_due_at)
    end = reopen_window_end(state)
    if end is not None:
        instants.append(end)
    return min(instants) if instants else None


def stage_clock(state: CaseState) -> StageClock | None:
    """The open clock of the current stage, if it has one."""
    name = STAGE_CLOCK.get(Stage(state.stage)) if state.stage in OPEN_STAGES else None
    if name is None:
        return None
    return next((c for c in reversed(state.clocks) if c.name == name and clocks.is_open(c)),
                None)


def due_times(state: CaseState, for_clock: CalendarFor) -> dict:
    """The due times the read model and the pages show, as of the state's clocks:
    stage_due_at, resolution_due_at, overdue and at_risk_at."""
    open_case = state.stage in OPEN_STAGES
    current = stage_clock(state)
    stage_due = current.due_at if current else None
    if state.stage == Stage.FEEDBACK:
        stage_due = state.feedback_due_at
    resolution = next((c for c in reversed(state.clocks) if c.name == "resolution"), None)
    risks = [at for c in state.clocks if c.breached_at is None and open_case
             and (at := clocks.instant_at_share(c, AT_RISK_SHARE, for_clock(c))) is not None]
    return {
        "stage_due_at": stage_due,
        "resolution_due_at": resolution.due_at if resolution and clocks.is_open(resolution)
        else None,
        "overdue": open_case and any(c.breached_at is not None and clocks.is_open(c)
                                     for c in state.clocks),
        "at_risk_at": min(risks) if risks else None,
    }
