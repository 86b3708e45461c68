"""Reads the routing file: the shipped one inside the package, or AFTERSALES_ROUTING_FILE.

Validated at start like the SLA policy: a file that does not parse, names an unknown key,
kind, channel, priority, tier, locale, assignment or calendar (the SLA policy's named
calendars), or leaves some case without a team stops the process with a message naming
the line (docs/teams.md). What the rules mean is
in `workflows.routing`, which the workflow imports; parsing stays out of it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Any

from aftersales.policy import PolicyError, toml_error_at
from workflows.case.vocabulary import (
    ASSIGN_METHODS,
    CHANNELS,
    KINDS,
    LOCALES,
    PRIORITIES,
    TEAM_NAME,
    TIERS,
)
from workflows.routing import MATCH_KEYS, RoutingPolicy, TeamMatch, TeamRule

__all__ = ["SHIPPED_ROUTING", "RoutingError", "load_routing", "parse_routing"]

SHIPPED_ROUTING = "routing.toml"
TEAM_KEYS = ("name", "match", "assign", "max_open", "calendar")
# The values each match key may take; None: any text (stores are the order system's).
_ALLOWED: dict[str, tuple[str, ...] | None] = {
    "kind": KINDS, "channel": CHANNELS, "store": None, "priority": PRIORITIES,
    "tier": TIERS, "locale": LOCALES,
}
_TEAMS_HEADER = re.compile(r"^\s*\[\[\s*teams\s*\]\]")


class RoutingError(PolicyError):
    """The routing file cannot be used; the message names the file and the line."""


def load_routing(path: str | None = None, calendars: Collection[str] = ()) -> RoutingPolicy:
    """The routing rules in the file at `path`, or the shipped rules when `path` is None;
    a team's `calendar` must be one of `calendars` (the SLA policy's named calendars).
    Raises `RoutingError` naming the file and, where known, the line."""
    if path is None:
        source = f"aftersales/{SHIPPED_ROUTING}"
        text = resources.files("aftersales").joinpath(SHIPPED_ROUTING).read_text(
            encoding="utf-8")
    else:
        source = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RoutingError(f"{source}: cannot read the routing file: "
                               f"{exc.strerror or exc}", source=source) from None
        except UnicodeDecodeError:
            raise RoutingError(f"{source}: the routing file is not UTF-8 text",
                               source=source) from None
    return parse_routing(text, source, calendars)


def parse_routing(text: str, source: str = "<routing>",
                  calendars: Collection[str] = ()) -> RoutingPolicy:
    """The routing rules written in TOML `text`; `source` names it in error messages and
    `calendars` are the calendar names a team may give."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, detail = toml_error_at(exc, text)
        raise RoutingError(f"{source} line {line}: not valid TOML: {detail}", source=source,
                           line=line) from None
    return _Reader(source, text, calendars).policy(data)


class _Reader:
    def __init__(self, source: str, text: str, calendars: Collection[str]) -> None:
        self.source = source
        self.calendars = sorted(calendars)
        self.lines = text.splitlines()
        # The line (0-based) of each [[teams]] header: where each team's block starts.
        self.blocks = [n for n, line in enumerate(self.lines) if _TEAMS_HEADER.match(line)]

    def fail(self, message: str, team: int | None = None, key: str | None = None,
             sub: str | None = None) -> RoutingError:
        line = self.line_of(team, key, sub)
        where = f"{self.source} line {line}" if line else self.source
        return RoutingError(f"{where}: {message}", source=self.source, line=line)

    def line_of(self, team: int | None, key: str | None, sub: str | None) -> int | None:
        if team is None:
            if key is None:
                return None
            end = self.blocks[0] if self.blocks else len(self.lines)
            return self._find(0, end, key)
        if team >= len(self.blocks):
            return None
        start = self.blocks[team]
        end = self.blocks[team + 1] if team + 1 < len(self.blocks) else len(self.lines)
        if key is None:
            return start + 1
        if sub is not None:
            for n in range(start, end):
                if re.search(rf"\b{re.escape(key)}\b", self.lines[n]) and re.search(
                        rf"\b{re.escape(sub)}\s*=", self.lines[n]):
                    return n + 1
            found = self._find(start, end, sub)
            if found:
                return found
        return self._find(start, end, key) or start + 1

    def _find(self, start: int, end: int, key: str) -> int | None:
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        return next((n + 1 for n in range(start, end) if pattern.match(self.lines[n])), None)

    def policy(self, data: dict[str, Any]) -> RoutingPolicy:
        for key in data:
            if key != "teams":
                raise self.fail(f"unknown key {key!r} at the top level (expected [[teams]])",
                                key=key)
        teams = data.get("teams")
        if not isinstance(teams, list) or not teams or not all(
                isinstance(t, dict) for t in teams):
            raise self.fail("the routing file needs at least one [[teams]] table")
        rules = [self.rule(n, table) for n, table in enumerate(teams)]
        names = [rule.name for rule in rules]
        for n, name in enumerate(names):
            if name in names[:n]:
                raise self.fail(f"team {name!r} is listed twice", n, "name")
        for n, rule in enumerate(rules):
            if rule.match.is_catch_all() and n + 1 < len(rules):
                raise self.fail(f"team {rules[n + 1].name!r} comes after the catch-all team "
                                f"{rule.name!r} (match = {{}}) and can never match",
                                n + 1, "name")
        if not rules[-1].match.is_catch_all():
            raise self.fail(
                f"some cases match no team: the last team ({rules[-1].name!r}) matches only "
                "some cases; end the file with a catch-all team (match = {})",
                len(rules) - 1, "match")
        return RoutingPolicy(teams=rules, source=self.source)

    def rule(self, n: int, table: dict[str, Any]) -> TeamRule:
        for key in table:
            if key not in TEAM_KEYS:
                raise self.fail(f"unknown team key {key!r} (expected one of "
                                f"{', '.join(TEAM_KEYS)})", n, key)
        name = table.get("name")
        if not isinstance(name, str) or not re.match(TEAM_NAME, name):
            raise self.fail("every team needs a name of 1-40 letters, digits, '.', '-' or "
                            f"'_', not {name!r}", n, "name")
        if "match" not in table:
            raise self.fail(f"team {name!r} has no match (write match = {{}} for every "
                            "case)", n, "name")
        assign = table.get("assign", "none")
        if assign not in ASSIGN_METHODS:
            raise self.fail(f"unknown assign {assign!r} in team {name!r} (expected one of "
                            f"{', '.join(ASSIGN_METHODS)})", n, "assign")
        max_open = table.get("max_open")
        if max_open is not None and (isinstance(max_open, bool) or not isinstance(
                max_open, int) or max_open < 1):
            raise self.fail(f"max_open in team {name!r} must be a whole number above 0, not "
                            f"{max_open!r}", n, "max_open")
        calendar = table.get("calendar")
        if calendar is not None and (not isinstance(calendar, str)
                                     or calendar not in self.calendars):
            known = (f"one of {', '.join(self.calendars)}" if self.calendars else
                     "a [calendars.<name>] table of the SLA policy, which has none")
            raise self.fail(f"unknown calendar {calendar!r} in team {name!r} (expected "
                            f"{known})", n, "calendar")
        return TeamRule(name=name, match=self.match(n, name, table["match"]), assign=assign,
                        max_open=max_open, calendar=calendar)

    def match(self, n: int, name: str, value: Any) -> TeamMatch:
        if not isinstance(value, dict):
            raise self.fail(f"match in team {name!r} must be a table, like "
                            "{ kind = [\"return\"] }", n, "match")
        match = TeamMatch()
        for key, given in value.items():
            if key not in MATCH_KEYS:
                raise self.fail(f"unknown match key {key!r} in team {name!r} (expected one "
                                f"of {', '.join(MATCH_KEYS)})", n, "match", key)
            if key == "escalation_risk":
                if not isinstance(given, bool):
                    raise self.fail(f"escalation_risk in team {name!r} must be true or "
                                    f"false, not {given!r}", n, "match", key)
                match.escalation_risk = given
                continue
            values = [given] if isinstance(given, str) else given
            if not isinstance(values, list) or not values or not all(
                    isinstance(v, str) and v for v in values):
                raise self.fail(f"{key} in team {name!r} must be a text or a list of texts, "
                                f"not {given!r}", n, "match", key)
            allowed = _ALLOWED[key]
            for v in values:
                if allowed is not None and v not in allowed:
                    raise self.fail(f"unknown {key} {v!r} in team {name!r} (expected one of "
                                    f"{', '.join(allowed)})", n, "match", key)
            setattr(match, key, list(dict.fromkeys(values)))
        return match
