"""Reads the SLA policy file: the shipped one inside the package, or one the operator names.

This module does the I/O, validates the structure (`sla_policy_from_dict`) and turns
TOML syntax errors into the same `PolicyError`, naming file and line. The policy's shape
and the calendar arithmetic are in `workflows.sla`, which the workflow imports; parsing
stays out of it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from workflows.case.vocabulary import KINDS, PRIORITIES, REFUNDING_GRADES, TIERS
from workflows.sla import (
    DEFAULT_TARGETS,
    STAGE_KEYS,
    WEEKDAYS,
    BusinessCalendar,
    CalendarSpec,
    InstantRefundRule,
    PriorityRules,
    SlaPolicy,
    StageTargets,
    load_zone,
    parse_duration,
    parse_holiday,
    parse_hours,
    parse_weekday,
)

__all__ = ["SHIPPED_POLICY", "PolicyError", "load_policy", "parse_policy"]

SHIPPED_POLICY = "sla_policy.toml"

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_policy(path: str | None = None) -> SlaPolicy:
    """The SLA policy in the file at `path`, or the shipped policy when `path` is None.

    Raises `PolicyError` if the file cannot be read, is not valid TOML, or does not
    describe a valid policy; the message names the file and, where known, the line.
    """
    if path is None:
        source = f"aftersales/{SHIPPED_POLICY}"
        text = resources.files("aftersales").joinpath(SHIPPED_POLICY).read_text(encoding="utf-8")
    else:
        source = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(
                f"{source}: cannot read the SLA policy file: {exc.strerror or exc}", source=source
            ) from None
        except UnicodeDecodeError:
            raise PolicyError(
                f"{source}: the SLA policy file is not UTF-8 text", source=source
            ) from None
    return parse_policy(text, source)


def toml_error_at(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    """The line a TOML error is on, and what it says without the position; the policy
    files (SLA, routing) name the line this way."""
    message = str(exc)
    position = _TOML_POSITION.search(message)
    if position is not None:
        return (int(position.group(1)),
                f"{message[: position.start()]} (column {position.group(2)})")
    return max(1, len(text.splitlines())), message.removesuffix(" (at end of document)")


def parse_policy(text: str, source: str = "<policy>") -> SlaPolicy:
    """The SLA policy written in TOML `text`; `source` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, detail = toml_error_at(exc, text)
        raise PolicyError(
            f"{source} line {line}: not valid TOML: {detail}", source=source, line=line
        ) from None
    return sla_policy_from_dict(data, source=source, text=text)


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
    "four_eyes",
    "approval_timeout",
    "quote_window",
    "exchange_payment_window",
    "revisit_grace",
    "escalate_again_at",
    "reassign_on_overdue",
    "return_window",
    "excluded_categories",
    "logistics_proposals",
    "grades",
    "instant_refund",
)
_PRIORITY_KEYS = (
    "default", "tier_boost", "repeat_window", "repeat_boost", "escalation_words",
    "escalation_boost", "amount_boost",
)
_TOP_KEYS = ("calendar", "calendars", "targets", "rules", "priority")
# A named calendar: what a team's `calendar` in the routing file may say.
_CALENDAR_NAME = re.compile(r"[A-Za-z0-9._-]{1,40}")


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
        calendar=_calendar(check, data.get("calendar", {}), ["calendar"]),
        calendars=_calendars(check, data.get("calendars", {})),
        targets=_targets(check, data.get("targets", {})),
        priority=_priority(check, data.get("priority", {})),
        source=source,
        version=hashlib.sha256((text or repr(data)).encode()).hexdigest()[:12],
        **_rules(check, data.get("rules", {})),
    )


def _calendars(check: _Checker, value: Any) -> dict[str, CalendarSpec]:
    """The named calendars, `[calendars.<name>]`, each written like `[calendar]`."""
    table = check.table(value, ["calendars"])
    named: dict[str, CalendarSpec] = {}
    for name, spec in table.items():
        if not _CALENDAR_NAME.fullmatch(name):
            raise check.fail(["calendars", name], f"calendar name {name!r} must be 1-40 "
                             "letters, digits, '.', '-' or '_'")
        named[name] = _calendar(check, spec, ["calendars", name])
    return named


def _calendar(check: _Checker, value: Any, path: list[str]) -> CalendarSpec:
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
        raise check.fail([*path, key], f"{key} in {_section(path)}: {exc}") from None
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
                "return_window", "quote_window", "exchange_payment_window"):
        if key in table:
            rules[key] = check.duration(table[key], [*path, key])
    if "approval_timeout" in table:
        # "0s" turns the escalation of a waiting approval off.
        rules["approval_timeout"] = check.duration(
            table["approval_timeout"], [*path, "approval_timeout"], allow_zero=True)
    if "warn_at" in table:
        rules["warn_at"] = _warn_at(check, table["warn_at"], [*path, "warn_at"])
    if "approval_limit" in table:
        rules["approval_limit"] = _approval_limit(
            check, table["approval_limit"], [*path, "approval_limit"]
        )
    if "four_eyes" in table:
        if not isinstance(table["four_eyes"], bool):
            raise check.fail([*path, "four_eyes"], "four_eyes in [rules] must be true or "
                             f"false, not {table['four_eyes']!r}")
        rules["four_eyes"] = table["four_eyes"]
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
    if "grades" in table:
        rules["grades"] = _grades(check, table["grades"], [*path, "grades"])
    if "instant_refund" in table:
        rules["instant_refund"] = _instant_refund(check, table["instant_refund"],
                                                  [*path, "instant_refund"])
    return rules


def _instant_refund(check: _Checker, value: Any, path: list[str]) -> InstantRefundRule:
    """Who gets a return's refund at pickup: all three keys, or none of the rule."""
    table = check.table(value, path)
    keys = ("tiers", "max_amount", "per_customer_90d")
    check.known(table, keys, path, "instant_refund key")
    for key in keys:
        if key not in table:
            raise check.fail(path, f"instant_refund in [rules] needs {', '.join(keys)}; "
                             f"{key} is missing")
    tiers = table["tiers"]
    if not isinstance(tiers, list) or not all(t in TIERS for t in tiers):
        raise check.fail([*path, "tiers"], "instant_refund.tiers in [rules] must be a list "
                         f"of customer tiers ({', '.join(TIERS)}), not {tiers!r}")
    count = table["per_customer_90d"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise check.fail([*path, "per_customer_90d"], "instant_refund.per_customer_90d in "
                         f"[rules] must be a whole number 0 or more, not {count!r}")
    return InstantRefundRule(
        tiers=list(tiers), per_customer_90d=count,
        max_amount=_approval_limit(check, table["max_amount"], [*path, "max_amount"],
                                   "instant_refund.max_amount"))


def _grades(check: _Checker, value: Any, path: list[str]) -> dict[str, str]:
    """Refund shares by inspection grade: A and B only (C and D pay nothing, they go back
    to analyze), each above 0 and at most 1; a grade not given keeps its default."""
    table = check.table(value, path)
    check.known(table, REFUNDING_GRADES, path, "refunding grade (C and D pay no refund)")
    shares = dict(SlaPolicy().grades)
    for grade, share in table.items():
        # A TOML float such as 0.9 is read through its shortest text, "0.9", exactly.
        number = (None if isinstance(share, bool) or not isinstance(share, int | float | str)
                  else _decimal(str(share)))
        if number is None or not number.is_finite() or not 0 < number <= 1:
            raise check.fail([*path, grade], f"grades.{grade} in [rules] must be a share "
                             f"above 0 and at most 1, e.g. 0.9, not {share!r}")
        shares[grade] = str(number)
    return shares


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


def _approval_limit(check: _Checker, value: Any, path: list[str],
                    name: str = "approval_limit") -> str:
    # A TOML float would already have lost the cents; only strings and integers are exact.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    amount = _decimal(text) if isinstance(text, str) else None
    if amount is None or not amount.is_finite() or amount < 0:
        raise check.fail(
            path,
            f"{name} in [rules] must be a decimal string like '500.00', not {value!r}",
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
