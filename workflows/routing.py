"""Routing: which team's queue a new case goes to, and which of its handlers gets it.

The rules come from the routing file (aftersales/routing.py parses it); who is on duty
and how many open cases each has come from the read model, at intake (web/intake.py)
and, when a case is routed again, from the `read_rosters` activity. Both are recorded
data, so the workflow decides with nothing else and a replay decides the same
(docs/teams.md). A team's working hours are a calendar of the SLA policy, asked at the
workflow's time. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.sla import BusinessCalendar, CalendarSpec

# What a rule may match on, in the order docs/teams.md lists them.
MATCH_KEYS = ("kind", "channel", "store", "priority", "tier", "locale", "escalation_risk")


@dataclass
class TeamMatch:
    """What a case must be for a rule to take it: each list allows any of its values,
    an empty list (or None for escalation risk) anything."""

    kind: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    store: list[str] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)
    locale: list[str] = field(default_factory=list)
    escalation_risk: bool | None = None

    def is_catch_all(self) -> bool:
        return not (self.kind or self.channel or self.store or self.priority or self.tier
                    or self.locale) and self.escalation_risk is None


@dataclass
class TeamRule:
    """One `[[teams]]` entry of the routing file."""

    name: str
    match: TeamMatch = field(default_factory=TeamMatch)
    assign: str = "none"  # round_robin | least_loaded | none
    # Open cases a handler may hold before routing passes them over (None: no limit).
    max_open: int | None = None
    # The SLA policy's named calendar of the team's working hours (None: always).
    calendar: str | None = None


@dataclass
class RoutingPolicy:
    """The routing file: rules tried in order, the first that matches wins."""

    teams: list[TeamRule] = field(default_factory=list)
    source: str = ""


@dataclass
class CaseFacts:
    """What routing reads of a case, once it is recorded (priority after scoring)."""

    kind: str
    channel: str
    store: str
    priority: str
    tier: str
    locale: str
    escalation_risk: bool


@dataclass
class TeamMember:
    """An on-duty member of a team and the open cases assigned to them at intake."""

    name: str
    open_cases: int = 0


@dataclass
class TeamRoster:
    """A team as intake saw it: its on-duty members, and who got its last routed case
    (round robin goes on from there)."""

    team: str
    on_duty: list[TeamMember] = field(default_factory=list)
    last_assignee: str | None = None


def matches(match: TeamMatch, facts: CaseFacts) -> bool:
    for key in MATCH_KEYS[:-1]:
        allowed = getattr(match, key)
        if allowed and getattr(facts, key) not in allowed:
            return False
    return match.escalation_risk is None or match.escalation_risk == facts.escalation_risk


def team_for(policy: RoutingPolicy, facts: CaseFacts) -> TeamRule | None:
    """The first rule the case matches (a valid file always has one)."""
    return next((rule for rule in policy.teams if matches(rule.match, facts)), None)


def working(rule: TeamRule, calendars: dict[str, CalendarSpec], at: datetime) -> bool:
    """Whether the team is at work at `at` (the workflow's time): always without a
    calendar; outside its hours nobody in it counts as on duty."""
    spec = calendars.get(rule.calendar) if rule.calendar else None
    return spec is None or BusinessCalendar.from_spec(spec).is_working(at)


def holder_after_move(rule: TeamRule, roster: TeamRoster | None,
                      current: str | None) -> str | None:
    """Who holds a case that has just moved into the rule's team: its assignee if they
    are on duty in the new team too, else whom the rule picks (None: the team's queue)."""
    if current is not None and roster is not None and any(
            m.name == current for m in roster.on_duty):
        return current
    return pick_assignee(rule, roster)


def pick_assignee(rule: TeamRule, roster: TeamRoster | None) -> str | None:
    """The handler the rule gives the case to, or None: it waits in the team's queue
    (assignment is `none`, nobody is on duty, or everyone has `max_open` cases)."""
    if rule.assign == "none" or roster is None:
        return None
    free = sorted((m for m in roster.on_duty
                   if rule.max_open is None or m.open_cases < rule.max_open),
                  key=lambda m: m.name)
    if not free:
        return None
    if rule.assign == "least_loaded":
        return min(free, key=lambda m: (m.open_cases, m.name)).name
    # Round robin: the next name after the last one routed to, wrapping around.
    last = roster.last_assignee
    after = [m for m in free if last is not None and m.name > last]
    return (after or free)[0].name
