"""Teams as the read model knows them: who is in which team, who is on duty, and how
many open cases each holds (docs/teams.md). Intake reads these into the case's input;
the workflow decides from them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.models import Case, User, UserTeam
from workflows.case.contracts import TeamMember, TeamRoster
from workflows.case.vocabulary import OPEN_STAGES

# Routing gives cases to handlers; supervisors and admins in a team oversee it.
ROUTED_ROLE = "handler"


def rosters(session: Session, teams: list[str]) -> list[TeamRoster]:
    """Each team's on-duty, active handlers (by name) with their open cases, and who
    got the team's newest assigned case (round robin goes on after them)."""
    if not teams:
        return []
    members: dict[str, list[str]] = {team: [] for team in teams}
    for name, team in session.execute(
            select(UserTeam.user_name, UserTeam.team).join(User, User.name == UserTeam.user_name)
            .where(UserTeam.team.in_(teams), User.active.is_(True), User.on_duty.is_(True),
                   User.role == ROUTED_ROLE)
            .order_by(UserTeam.user_name)):
        members[team].append(name)
    everyone = sorted({name for names in members.values() for name in names})
    load = {name: counts[0] for name, counts in open_cases(session, everyone).items()}
    return [TeamRoster(
        team=team,
        on_duty=[TeamMember(name, load.get(name, 0)) for name in members[team]],
        last_assignee=session.scalar(
            select(Case.assignee).where(Case.team == team, Case.assignee.is_not(None))
            .order_by(Case.created_at.desc(), Case.id.desc()).limit(1)))
        for team in teams]


def open_cases(session: Session, names: list[str]) -> dict[str, tuple[int, int]]:
    """Each of these users' open cases: (how many, how many of them overdue); users
    holding none are left out."""
    if not names:
        return {}
    overdue = func.sum(case((Case.overdue.is_(True), 1), else_=0))
    return {str(assignee): (int(count), int(late or 0)) for assignee, count, late in
            session.execute(select(Case.assignee, func.count(), overdue)
                            .where(Case.assignee.in_(names), Case.stage.in_(OPEN_STAGES))
                            .group_by(Case.assignee))}


@dataclass(frozen=True)
class Workload:
    """A handler's (or supervisor's) load as the console shows it."""

    name: str
    role: str
    teams: tuple[str, ...]
    on_duty: bool
    open: int
    overdue: int


def workloads(session: Session, teams: list[str]) -> list[Workload]:
    """The active handlers and supervisors of these teams, and those in no team (who
    work across all teams); every one of them for no teams (an admin, or a supervisor
    in no team). By name, with their open and overdue cases."""
    memberships: dict[str, list[str]] = {}
    for name, team in session.execute(select(UserTeam.user_name, UserTeam.team)
                                      .order_by(UserTeam.team)):
        memberships.setdefault(name, []).append(team)
    people = [u for u in session.scalars(
        select(User).where(User.active.is_(True), User.role.in_(("handler", "supervisor")))
        .order_by(User.name))
        if not teams or not memberships.get(u.name)
        or set(memberships[u.name]) & set(teams)]
    counts = open_cases(session, [u.name for u in people])
    return [Workload(u.name, u.role, tuple(memberships.get(u.name, ())), u.on_duty,
                     *counts.get(u.name, (0, 0))) for u in people]


def teams_of(session: Session, name: str) -> list[str]:
    """The teams the user is in, by name."""
    return list(session.scalars(select(UserTeam.team).where(UserTeam.user_name == name)
                                .order_by(UserTeam.team)))


def case_owner(session: Session, case_id: str) -> tuple[str | None, str | None] | None:
    """The case's assignee and team as the read model has them; None for no such case."""
    row = session.execute(select(Case.assignee, Case.team).where(Case.id == case_id)).first()
    return None if row is None else (row[0], row[1])
