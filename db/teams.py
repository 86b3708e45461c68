"""Teams as the read model knows them: who is in which team, who is on duty, and how
many open cases each holds (docs/teams.md). Intake reads these into the case's input;
the workflow decides from them."""

from __future__ import annotations

from sqlalchemy import func, select
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
    load: dict[str, int] = {}
    if everyone:
        for assignee, count in session.execute(
                select(Case.assignee, func.count()).where(Case.assignee.in_(everyone),
                                                          Case.stage.in_(OPEN_STAGES))
                .group_by(Case.assignee)):
            load[str(assignee)] = int(count)
    return [TeamRoster(
        team=team,
        on_duty=[TeamMember(name, load.get(name, 0)) for name in members[team]],
        last_assignee=session.scalar(
            select(Case.assignee).where(Case.team == team, Case.assignee.is_not(None))
            .order_by(Case.created_at.desc(), Case.id.desc()).limit(1)))
        for team in teams]


def teams_of(session: Session, name: str) -> list[str]:
    """The teams the user is in, by name."""
    return list(session.scalars(select(UserTeam.team).where(UserTeam.user_name == name)
                                .order_by(UserTeam.team)))


def case_owner(session: Session, case_id: str) -> tuple[str | None, str | None] | None:
    """The case's assignee and team as the read model has them; None for no such case."""
    row = session.execute(select(Case.assignee, Case.team).where(Case.id == case_id)).first()
    return None if row is None else (row[0], row[1])
