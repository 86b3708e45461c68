"""SLA maths: durations, the policy's shape and the business calendar that counts working time.

Pure and deterministic so the case workflow can import it: no I/O beyond the time zone
database, no wall clock, no randomness. Reading the policy file is the loader's job
(`aftersales.policy`); this module validates the parsed data and does the arithmetic.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflows.case.vocabulary import KINDS, PRIORITIES

STAGE_KEYS = ("confirm", "analyze", "resolution", "revisit_after")
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


@dataclass
class CalendarSpec:
    """When the SLA clock runs: local working hours on workdays that are not holidays."""

    timezone: str = "UTC"
    hours: str = ALWAYS_OPEN
    workdays: list[str] = field(default_factory=lambda: list(WEEKDAYS))
    holidays: list[str] = field(default_factory=list)


# DESIGN.md "Deadlines (SLA)", the shipped targets; the policy file repeats them.
DEFAULT_TARGETS: dict[str, StageTargets] = {
    "P1": StageTargets(
        confirm=30 * MINUTE, analyze=4 * HOUR, resolution=24 * HOUR, revisit_after=1 * DAY
    ),
    "P2": StageTargets(
        confirm=2 * HOUR, analyze=12 * HOUR, resolution=48 * HOUR, revisit_after=2 * DAY
    ),
    "P3": StageTargets(
        confirm=8 * HOUR, analyze=24 * HOUR, resolution=72 * HOUR, revisit_after=3 * DAY
    ),
    "P4": StageTargets(
        confirm=24 * HOUR, analyze=48 * HOUR, resolution=7 * DAY, revisit_after=7 * DAY
    ),
}


def _default_targets() -> dict[str, dict[str, StageTargets]]:
    return {
        kind: {p: StageTargets(**vars(t)) for p, t in DEFAULT_TARGETS.items()} for kind in KINDS
    }


DEFAULT_ESCALATION_WORDS = ["12315", "消协", "投诉到", "媒体", "曝光", "律师", "lawyer",
                            "chargeback"]


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
    targets: dict[str, dict[str, StageTargets]] = field(default_factory=_default_targets)
    feedback_window: int = 72 * HOUR
    warn_at: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.9])
    refund_after_goods_received: int = 7 * DAY
    approval_limit: str = "500.00"
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


# --- the policy file's structure ---------------------------------------------------------


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and, if known, the line."""

    def __init__(self, message: str, source: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.line = line


_CALENDAR_KEYS = ("timezone", "hours", "workdays", "holidays")
_RULE_KEYS = (
    "feedback_window",
    "warn_at",
    "refund_after_goods_received",
    "approval_limit",
    "revisit_grace",
    "escalate_again_at",
    "reassign_on_overdue",
    "return_window",
    "excluded_categories",
    "logistics_proposals",
)
_PRIORITY_KEYS = (
    "default", "tier_boost", "repeat_window", "repeat_boost", "escalation_words",
    "escalation_boost", "amount_boost",
)
_TOP_KEYS = ("calendar", "targets", "rules", "priority")


class _Checker:
    """Turns a problem at a key path into a PolicyError naming the file and line."""

    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.text = text

    def fail(self, path: Sequence[str], message: str) -> PolicyError:
        line = _line_of(self.text, path) if self.text is not None else None
        where = f"{self.source} line {line}" if line is not None else self.source
        return PolicyError(f"{where}: {message}", source=self.source, line=line)

    def table(self, value: Any, path: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"[{'.'.join(path)}] must be a table, not {value!r}")
        return value

    def known(
        self, table: dict[str, Any], allowed: Sequence[str], path: Sequence[str], what: str
    ) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    [*path, key],
                    f"unknown {what} {key!r} in {_section(path)} (expected one of "
                    f"{', '.join(allowed)})",
                )

    def duration(self, value: Any, path: Sequence[str], *, allow_zero: bool = False) -> int:
        try:
            seconds = parse_duration(value)
        except (TypeError, ValueError) as exc:
            raise self.fail(path, f"{path[-1]} in {_section(path[:-1])}: {exc}") from None
        if seconds == 0 and not allow_zero:
            raise self.fail(path, f"{path[-1]} in {_section(path[:-1])} must be longer than 0")
        return seconds


def _section(path: Sequence[str]) -> str:
    return f"[{'.'.join(path)}]" if path else "the top level"


def sla_policy_from_dict(
    data: dict[str, Any], source: str = "<policy>", text: str | None = None
) -> SlaPolicy:
    """Validate parsed policy TOML and resolve it into a complete `SlaPolicy`.

    Targets are layered: the shipped defaults, then `[targets.default]`, then the kind's own
    table, each overriding only the keys it gives. Raises `PolicyError` naming `source`
    and, when the raw `text` is given, the line of the offending key.
    """
    check = _Checker(source, text)
    data = check.table(data, [])
    check.known(data, _TOP_KEYS, [], "table")
    return SlaPolicy(
        calendar=_calendar(check, data.get("calendar", {})),
        targets=_targets(check, data.get("targets", {})),
        priority=_priority(check, data.get("priority", {})),
        source=source,
        version=hashlib.sha256((text or repr(data)).encode()).hexdigest()[:12],
        **_rules(check, data.get("rules", {})),
    )


def _calendar(check: _Checker, value: Any) -> CalendarSpec:
    path = ["calendar"]
    table = check.table(value, path)
    check.known(table, _CALENDAR_KEYS, path, "calendar key")
    spec = CalendarSpec()
    key = "timezone"
    try:
        if "timezone" in table:
            spec.timezone = load_zone(table["timezone"]).key
        key = "hours"
        if "hours" in table:
            parse_hours(table["hours"])
            spec.hours = table["hours"].strip().lower()
        key = "workdays"
        if "workdays" in table:
            spec.workdays = [WEEKDAYS[parse_weekday(day)] for day in _strings(table, key)]
        key = "holidays"
        if "holidays" in table:
            spec.holidays = [parse_holiday(day).isoformat() for day in _strings(table, key)]
        key = "workdays"
        BusinessCalendar.from_spec(spec)
    except (TypeError, ValueError) as exc:
        raise check.fail([*path, key], f"{key} in [calendar]: {exc}") from None
    return spec


def _strings(table: dict[str, Any], key: str) -> list[Any]:
    if not isinstance(table[key], list):
        raise TypeError(f"{key} must be a list of strings, not {table[key]!r}")
    return table[key]


def _targets(check: _Checker, value: Any) -> dict[str, dict[str, StageTargets]]:
    path = ["targets"]
    table = check.table(value, path)
    check.known(table, ("default", *KINDS), path, "kind")
    default = _target_overrides(check, table.get("default", {}), [*path, "default"])
    resolved: dict[str, dict[str, StageTargets]] = {}
    for kind in KINDS:
        own = _target_overrides(check, table.get(kind, {}), [*path, kind])
        resolved[kind] = {
            priority: StageTargets(
                **{
                    **vars(DEFAULT_TARGETS[priority]),
                    **default.get(priority, {}),
                    **own.get(priority, {}),
                }
            )
            for priority in PRIORITIES
        }
    return resolved


def _target_overrides(check: _Checker, value: Any, path: list[str]) -> dict[str, dict[str, int]]:
    table = check.table(value, path)
    check.known(table, PRIORITIES, path, "priority")
    overrides: dict[str, dict[str, int]] = {}
    for priority, given_stages in table.items():
        stages = check.table(given_stages, [*path, priority])
        check.known(stages, STAGE_KEYS, [*path, priority], "stage key")
        overrides[priority] = {
            stage: check.duration(
                given, [*path, priority, stage], allow_zero=stage == "revisit_after"
            )
            for stage, given in stages.items()
        }
    return overrides


def _rules(check: _Checker, value: Any) -> dict[str, Any]:
    path = ["rules"]
    table = check.table(value, path)
    check.known(table, _RULE_KEYS, path, "rules key")
    rules: dict[str, Any] = {}
    for key in ("feedback_window", "refund_after_goods_received", "revisit_grace",
                "return_window"):
        if key in table:
            rules[key] = check.duration(table[key], [*path, key])
    if "warn_at" in table:
        rules["warn_at"] = _warn_at(check, table["warn_at"], [*path, "warn_at"])
    if "approval_limit" in table:
        rules["approval_limit"] = _approval_limit(
            check, table["approval_limit"], [*path, "approval_limit"]
        )
    if "logistics_proposals" in table:
        proposals = check.table(table["logistics_proposals"], [*path, "logistics_proposals"])
        check.known(proposals, ("delayed", "lost", "damaged"), [*path, "logistics_proposals"],
                    "courier exception")
        allowed = ("refund", "return_refund", "exchange", "repair", "compensation", "apology")
        for status, proposal in proposals.items():
            if proposal not in allowed:
                raise check.fail([*path, "logistics_proposals", status],
                                 f"logistics_proposals.{status} must be one of "
                                 f"{', '.join(allowed)}, not {proposal!r}")
        rules["logistics_proposals"] = dict(proposals)
    if "excluded_categories" in table:
        value = table["excluded_categories"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise check.fail([*path, "excluded_categories"], "excluded_categories in [rules] "
                             "must be a list of category names")
        rules["excluded_categories"] = [v.strip().lower() for v in value]
    if "escalate_again_at" in table:
        value = table["escalate_again_at"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 1:
            raise check.fail([*path, "escalate_again_at"], "escalate_again_at in [rules] must "
                             f"be a share above 1, e.g. 1.5, not {value!r}")
        rules["escalate_again_at"] = float(value)
    if "reassign_on_overdue" in table:
        value = table["reassign_on_overdue"]
        if not isinstance(value, str) or len(value) > 64:
            raise check.fail([*path, "reassign_on_overdue"], "reassign_on_overdue in [rules] "
                             f"must be a user name or \"\", not {value!r}")
        rules["reassign_on_overdue"] = value.strip()
    return rules


def _priority(check: _Checker, value: Any) -> PriorityRules:
    path = ["priority"]
    table = check.table(value, path)
    check.known(table, _PRIORITY_KEYS, path, "priority key")
    rules = PriorityRules()

    def boost(number: Any, at: list[str]) -> int:
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 3:
            raise check.fail(at, f"{at[-1]} in [priority] must be a whole number of levels "
                             f"from 0 to 3, not {number!r}")
        return number

    if "default" in table:
        if table["default"] not in PRIORITIES:
            raise check.fail([*path, "default"], f"default in [priority] must be one of "
                             f"{', '.join(PRIORITIES)}, not {table['default']!r}")
        rules.default = table["default"]
    if "tier_boost" in table:
        tiers = check.table(table["tier_boost"], [*path, "tier_boost"])
        rules.tier_boost = {str(k).lower(): boost(v, [*path, "tier_boost", k])
                            for k, v in tiers.items()}
    if "repeat_window" in table:
        rules.repeat_window = check.duration(table["repeat_window"], [*path, "repeat_window"])
    for key in ("repeat_boost", "escalation_boost"):
        if key in table:
            setattr(rules, key, boost(table[key], [*path, key]))
    if "escalation_words" in table:
        words = table["escalation_words"]
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip()
                                                  for w in words):
            raise check.fail([*path, "escalation_words"],
                             "escalation_words in [priority] must be a list of words")
        rules.escalation_words = [w.strip() for w in words]
    if "amount_boost" in table:
        amounts = check.table(table["amount_boost"], [*path, "amount_boost"])
        parsed: dict[str, int] = {}
        for amount, levels in amounts.items():
            value = _decimal(str(amount))
            if value is None or not value.is_finite() or value < 0:
                raise check.fail([*path, "amount_boost", amount], "amount_boost keys in "
                                 f"[priority] must be amounts like \"1000.00\", not {amount!r}")
            parsed[str(amount)] = boost(levels, [*path, "amount_boost", amount])
        rules.amount_boost = parsed
    return rules


def _warn_at(check: _Checker, value: Any, path: list[str]) -> list[float]:
    numbers = value if isinstance(value, list) else None
    if numbers is None or not all(
        isinstance(n, int | float) and not isinstance(n, bool) and 0 < n < 1 for n in numbers
    ):
        raise check.fail(
            path, f"warn_at in [rules] must be a list of fractions between 0 and 1, not {value!r}"
        )
    if any(b <= a for a, b in pairwise(numbers)):
        raise check.fail(path, f"warn_at in [rules] must be in increasing order, not {value!r}")
    return [float(n) for n in numbers]


def _approval_limit(check: _Checker, value: Any, path: list[str]) -> str:
    # A TOML float would already have lost the cents; only strings and integers are exact.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    amount = _decimal(text) if isinstance(text, str) else None
    if amount is None or not amount.is_finite() or amount < 0:
        raise check.fail(
            path,
            f"approval_limit in [rules] must be a decimal string like '500.00', not {value!r}",
        )
    return str(text).strip()


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


# --- finding the line of a key in the raw TOML text ---------------------------------------

_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY_LINE = re.compile(
    r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
    r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _split_key(dotted: str) -> list[str]:
    return [
        part.strip().strip("\"'")
        for part in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", dotted)
    ]


def _line_of(text: str, path: Sequence[str]) -> int | None:
    """1-based line where the key at `path` is written; the nearest enclosing one otherwise.

    A scan, not a parser: it follows table headers, dotted keys and keys inside one-line
    inline tables, which covers how policy files are written.
    """
    target = list(path)
    best_line, best_depth = None, 0
    section: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            section = _split_key(header.group(1))
            depth = len(section) if section == target[: len(section)] else 0
        else:
            depth = _key_depth(line, section, target)
        if depth > best_depth:
            best_line, best_depth = number, depth
    return best_line


def _key_depth(line: str, section: list[str], target: list[str]) -> int:
    if section != target[: len(section)]:
        return 0
    rest = target[len(section) :]
    match = _KEY_LINE.match(line)
    if not rest or match is None:
        return 0
    keys = _split_key(match.group(1))
    if keys != rest[: len(keys)]:
        return 0
    depth = len(section) + len(keys)
    tail = line[match.end() :]
    for key in rest[len(keys) :]:
        inner = re.search(rf"(?<![\w-])[\"']?{re.escape(key)}[\"']?\s*=", tail)
        if inner is None:
            break
        depth += 1
        tail = tail[inner.end() :]
    return depth
