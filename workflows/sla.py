"""SLA maths: durations, the policy's shape and the business calendar that counts working time.

Pure and deterministic so the case workflow can import it: no I/O beyond the time zone
database, no wall clock, no randomness. Reading and validating the policy file is
`aftersales.policy`'s job, outside the workflow; this module holds the policy's shape
and does the arithmetic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflows.case.vocabulary import KINDS

STAGE_KEYS = ("confirm", "analyze", "resolution", "revisit_after", "reply")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = "24x7"

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MICROSECOND = timedelta(microseconds=1)


def parse_duration(text: str) -> int:
    """Seconds in a duration written like "90s", "30m", "4h", "3d" or combined "1d12h".

    Units must come in the order d, h, m, s, each at most once. Raises ValueError otherwise,
    TypeError for something that is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"duration must be a string like '4h', not {text!r}")
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit d, h, m or s, "
            "e.g. '90s', '30m', '4h', '3d', '1d12h'"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return days * DAY + hours * HOUR + minutes * MINUTE + seconds


def format_duration(seconds: int) -> str:
    """The shortest exact policy-file spelling of `seconds`: 86400 -> "1d", 5400 -> "90m"."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass
class StageTargets:
    """Working-time targets, in seconds, for one kind and priority."""

    confirm: int
    analyze: int
    resolution: int
    revisit_after: int
    # To answer a customer's message (0: the shipped target of the priority, for cases
    # whose policy was copied in before conversations had a target).
    reply: int = 0


@dataclass
class CalendarSpec:
    """When the SLA clock runs: local working hours on workdays that are not holidays."""

    timezone: str = "UTC"
    hours: str = ALWAYS_OPEN
    workdays: list[str] = field(default_factory=lambda: list(WEEKDAYS))
    holidays: list[str] = field(default_factory=list)


# The shipped targets (docs/sla.md); the shipped policy file repeats them.
DEFAULT_TARGETS: dict[str, StageTargets] = {
    "P1": StageTargets(
        confirm=30 * MINUTE, analyze=4 * HOUR, resolution=24 * HOUR, revisit_after=1 * DAY,
        reply=15 * MINUTE,
    ),
    "P2": StageTargets(
        confirm=2 * HOUR, analyze=12 * HOUR, resolution=48 * HOUR, revisit_after=2 * DAY,
        reply=1 * HOUR,
    ),
    "P3": StageTargets(
        confirm=8 * HOUR, analyze=24 * HOUR, resolution=72 * HOUR, revisit_after=3 * DAY,
        reply=4 * HOUR,
    ),
    "P4": StageTargets(
        confirm=24 * HOUR, analyze=48 * HOUR, resolution=7 * DAY, revisit_after=7 * DAY,
        reply=8 * HOUR,
    ),
}


def _default_targets() -> dict[str, dict[str, StageTargets]]:
    return {
        kind: {p: StageTargets(**vars(t)) for p, t in DEFAULT_TARGETS.items()} for kind in KINDS
    }


DEFAULT_ESCALATION_WORDS = ["12315", "消协", "投诉到", "媒体", "曝光", "律师", "lawyer",
                            "chargeback"]


@dataclass
class InstantRefundRule:
    """Instant refund (极速退款, docs/resolutions.md): a return_refund pays at the
    courier's pickup scan instead of after inspection, for customers of these tiers, up
    to this amount, with no open dispute and fewer than `per_customer_90d` instant
    refunds in the 90 days before. No tiers: never instant."""

    tiers: list[str] = field(default_factory=list)
    max_amount: str = "0.00"
    per_customer_90d: int = 0


@dataclass
class PriorityRules:
    """How intake scores a case's priority: a base raised by what makes it urgent."""

    default: str = "P3"
    # Customer tier -> levels up (VIP one step up).
    tier_boost: dict[str, int] = field(default_factory=lambda: {"vip": 1})
    # Earlier cases by the same customer or on the same order within this window.
    repeat_window: int = 30 * DAY
    repeat_boost: int = 1
    escalation_words: list[str] = field(default_factory=lambda: list(DEFAULT_ESCALATION_WORDS))
    escalation_boost: int = 1
    # Order total (decimal string) at or above which the case goes this many levels up.
    amount_boost: dict[str, int] = field(default_factory=dict)


@dataclass
class SlaPolicy:
    """Every deadline rule a case runs under; copied into the case when it opens."""

    calendar: CalendarSpec = field(default_factory=CalendarSpec)
    # Named calendars (`[calendars.<name>]`) that other rules refer to, e.g. a team's
    # working hours in the routing file (docs/teams.md); the SLA clocks use `calendar`.
    calendars: dict[str, CalendarSpec] = field(default_factory=dict)
    targets: dict[str, dict[str, StageTargets]] = field(default_factory=_default_targets)
    feedback_window: int = 72 * HOUR
    warn_at: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.9])
    refund_after_goods_received: int = 7 * DAY
    # Refunds wait for a supervisor's approve once the order's refunds, this one
    # included, come to more than this.
    approval_limit: str = "500.00"
    # The approver must be someone other than the user who planned the refund; false
    # only for shops with a single supervisor.
    four_eyes: bool = True
    # A refund waiting this long (working time) for approval escalates to the supervisors,
    # as long again to the admins; 0 never escalates (docs/resolutions.md).
    approval_timeout: int = 4 * HOUR
    # A repair quote outside the warranty waits this long for the customer's accept or
    # decline; no answer counts as declined (docs/resolutions.md, "Warranty").
    quote_window: int = 7 * DAY
    # An exchange for a dearer item waits this long (wall-clock: the customer pays when
    # they like) for the customer to pay the difference, then falls back to a refund.
    exchange_payment_window: int = 48 * HOUR
    # Share of the refund a return pays for goods of each refunding inspection grade (a
    # decimal string; A and B only, docs/resolutions.md).
    grades: dict[str, str] = field(default_factory=lambda: {"A": "1.0", "B": "0.9"})
    # When a return's refund is paid at pickup; off unless the policy names tiers.
    instant_refund: InstantRefundRule = field(default_factory=InstantRefundRule)
    # Time a handler has for the revisit call once it is due.
    revisit_grace: int = 24 * HOUR
    # Share of a target at which an overdue case escalates a second time, to admins.
    escalate_again_at: float = 1.5
    # User an overdue case is reassigned to at the first escalation; "" keeps the assignee.
    reassign_on_overdue: str = ""
    # No-reason returns and exchanges: this long after delivery (7 days in China, 14 in
    # the EU), and never for these categories.
    return_window: int = 7 * DAY
    excluded_categories: list[str] = field(
        default_factory=lambda: ["fresh", "custom", "digital", "periodical"])
    # What to propose to the handler when the courier reports the order's parcel so.
    logistics_proposals: dict[str, str] = field(default_factory=lambda: {
        "delayed": "compensation", "lost": "refund", "damaged": "exchange"})
    priority: PriorityRules = field(default_factory=PriorityRules)
    # Where the policy came from and a hash of its text: a case keeps the policy it
    # opened under, and shows which one.
    source: str = "shipped"
    version: str = "default"

    def targets_for(self, kind: str, priority: str) -> StageTargets:
        """The targets for a case of this kind and priority; ValueError if there are none."""
        try:
            return self.targets[kind][priority]
        except KeyError:
            raise ValueError(f"no SLA targets for kind {kind!r}, priority {priority!r}") from None


# --- the business calendar -------------------------------------------------------------


def parse_hours(text: str) -> tuple[time, time | None] | None:
    """Opening and closing time of "HH:MM-HH:MM" (closing None for "24:00"); None for 24x7.

    Raises ValueError for anything else, or when closing is not after opening.
    """
    if not isinstance(text, str):
        raise TypeError(f"hours must be a string like '09:00-18:00' or '24x7', not {text!r}")
    if text.strip().lower() == ALWAYS_OPEN:
        return None
    match = _HOURS.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"invalid hours {text!r}: use 'HH:MM-HH:MM' (e.g. '09:00-18:00') or '24x7'"
        )
    oh, om, ch, cm = (int(part) for part in match.groups())
    if oh > 23 or om > 59 or cm > 59 or ch > 24 or (ch == 24 and cm != 0):
        raise ValueError(f"invalid hours {text!r}: not a time of day")
    if (ch, cm) <= (oh, om):
        raise ValueError(f"invalid hours {text!r}: closing time must be after opening time")
    return time(oh, om), (None if ch == 24 else time(ch, cm))


def parse_weekday(text: str) -> int:
    """Monday=0 … Sunday=6 for "mon" … "sun"; ValueError otherwise."""
    name = text.strip().lower() if isinstance(text, str) else text
    if name not in WEEKDAYS:
        raise ValueError(f"unknown weekday {text!r}: use one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(name)


def parse_holiday(text: str) -> date:
    """The local date of a holiday written "YYYY-MM-DD"; ValueError otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"holiday must be a string 'YYYY-MM-DD', not {text!r}")
    if not _ISO_DATE.fullmatch(text.strip()):
        raise ValueError(f"invalid holiday {text!r}: use a date 'YYYY-MM-DD'")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"invalid holiday {text!r}: no such date") from None


def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError if the time zone database does not know it."""
    if not isinstance(name, str):
        raise TypeError(f"time zone must be a string like 'Asia/Shanghai', not {name!r}")
    if not name.strip():
        raise ValueError(f"invalid time zone {name!r}: use an IANA name like 'Asia/Shanghai'")
    try:
        zone = ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name like 'Asia/Shanghai'"
        ) from None
    # Temporal's workflow sandbox hands out ZoneInfo wrapped in a proxy that datetime
    # refuses as a tzinfo; say how to fix that instead of failing deep inside `add`.
    try:
        datetime(2000, 1, 1, tzinfo=zone)
    except TypeError:
        raise RuntimeError(
            "workflows.sla got a proxied ZoneInfo: import it inside the workflow sandbox "
            "with workflow.unsafe.imports_passed_through() (or pass the module through)"
        ) from None
    return zone


def _micros(delta: timedelta) -> int:
    return delta // _MICROSECOND


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone aware datetime, got {value!r}")
    return value.astimezone(UTC)


class BusinessCalendar:
    """Counts working time: local working hours on workdays that are not holidays.

    Each day's window is computed from local wall-clock times with zoneinfo, so a
    09:00-18:00 day stays 09:00-18:00 local across a DST change. Arithmetic is done in
    whole microseconds, which keeps `working_seconds(a, add(a, s)) == s` to within 1e-6.
    """

    def __init__(
        self,
        zone: ZoneInfo,
        hours: tuple[time, time | None] | None,
        workdays: Sequence[int],
        holidays: Sequence[date],
    ) -> None:
        if not workdays:
            raise ValueError("calendar has no working days: give at least one workday")
        self.zone = zone
        self.opens = time(0) if hours is None else hours[0]
        # None closes at the next local midnight.
        self.closes = None if hours is None else hours[1]
        self.workdays = frozenset(workdays)
        self.holidays = frozenset(holidays)
        self.always_open = hours is None and len(self.workdays) == 7 and not self.holidays

    @classmethod
    def from_spec(cls, spec: CalendarSpec) -> BusinessCalendar:
        """The calendar a `CalendarSpec` describes.

        Raises ValueError for an invalid spec, TypeError for a field of the wrong type.
        """
        return cls(
            zone=load_zone(spec.timezone),
            hours=parse_hours(spec.hours),
            workdays=[parse_weekday(day) for day in spec.workdays],
            holidays=[parse_holiday(day) for day in spec.holidays],
        )

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant (UTC) reached after `seconds` of working time counted from `start`.

        Zero returns `start` itself, even outside working hours. When the time runs out
        exactly at a closing time, that closing time is the answer, not the next opening.
        """
        start = _require_aware(start, "start")
        if seconds < 0:
            raise ValueError(f"cannot add a negative amount of working time ({seconds})")
        if not math.isfinite(seconds):
            raise ValueError(f"cannot add {seconds} seconds of working time")
        remaining = round(seconds * 1_000_000)
        if remaining == 0:
            return start
        if self.always_open:
            return start + remaining * _MICROSECOND
        for opens, closes in self._windows_from(start):
            available = _micros(closes - opens)
            if remaining <= available:
                return opens + remaining * _MICROSECOND
            remaining -= available
        raise AssertionError("unreachable: the calendar has working days")

    def working_seconds(self, a: datetime, b: datetime) -> float:
        """Working time, in seconds, between `a` and `b`; 0 if `b` is not after `a`."""
        a = _require_aware(a, "a")
        b = _require_aware(b, "b")
        if b <= a:
            return 0.0
        if self.always_open:
            return _micros(b - a) / 1_000_000
        total = 0
        for opens, closes in self._windows_from(a):
            if opens >= b:
                break
            total += _micros(min(closes, b) - opens)
        return total / 1_000_000

    def is_working(self, at: datetime) -> bool:
        """Whether `at` falls in working hours (a window's opening counts, its closing
        does not)."""
        at = _require_aware(at, "at")
        if self.always_open:
            return True
        opens, _ = next(self._windows_from(at))
        return opens == at

    def _windows_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working windows in UTC, in order, clipped so none starts before `start`.

        Windows never overlap, even where a zone skips a whole local day, because each one
        is clipped to begin after the end of the one before.
        """
        cursor = start
        # Start a day early: a window of the previous local date can still be open.
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        while True:
            if day.weekday() in self.workdays and day not in self.holidays:
                opens, closes = self._window(day)
                opens = max(opens, cursor)
                if opens < closes:
                    yield opens, closes
                    cursor = closes
            day += timedelta(days=1)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.opens, tzinfo=self.zone)
        if self.closes is None:
            closes = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        else:
            closes = datetime.combine(day, self.closes, tzinfo=self.zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)
