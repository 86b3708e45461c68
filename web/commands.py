"""Commands to a case: the one way the API, the desk, the console and the customer's
page send an action, read from the action table (workflows/case/lifecycle.py).

A body that passed its action's schema becomes that action's input dataclass here,
generically; the workflow's validator has the last word on whether it may happen.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from aftersales.converter import decode
from db import accounts, teams
from db import cases as case_store
from web.auth import check, check_ownership, current_user
from web.catalogue import check_coupons, price_replacements
from web.idempotency import update_id
from web.problems import Problem
from workflows.case.contracts import Actor, UpdateResult
from workflows.case.lifecycle import BY_NAME, Action
from workflows.case.refusals import Refusal, refused
from workflows.case.vocabulary import ENDED_STAGES


def action_input(action: Action, actor: Actor | None, data: dict) -> Any:
    """The action's input dataclass from a body its schema loaded (staff actions carry
    the acting user)."""
    value = dict(data)
    if actor is not None:
        value["actor"] = {"name": actor.name, "role": actor.role}
    return decode(action.input, value)


def check_access(case_id: str, action: Action) -> None:
    """403 unless the caller's role may take `action` (web/auth.PERMISSIONS) and the case
    is theirs to act on (web/auth.OWNERSHIP). Every staff write to a case asks this
    first, before anything is stored (an upload's bytes too)."""
    check(action.permission)
    user = current_user()
    with current_app.extensions["aftersales"].sessions() as session:
        owner = teams.case_owner(session, case_id)
        if owner is not None:  # an unknown case is the workflow's to refuse (404)
            check_ownership(case_id, *owner, teams.teams_of(session, user.name))


def perform_action(case_id: str, name: str, data: dict, channel: str = "api"
                   ) -> UpdateResult:
    """Check the caller's right to the action (its body already loaded by its schema)
    and to the case (whose it is, web/auth.OWNERSHIP), and send it to the case
    (`channel`: `desk` or `api`, where it was written). Raises Problem, ActionRefused,
    CaseNotRunning or TemporalUnavailable; the workflow refuses what does not fit the
    case."""
    action = BY_NAME[name]
    check_access(case_id, action)
    st = current_app.extensions["aftersales"]
    user = current_user()
    with st.sessions() as session:
        if name == "assign":
            assignee = accounts.get_user(session, data["assignee"])
            if assignee is None or not assignee.active:
                raise Problem.refused(
                    422, "Invalid request",
                    refused("no_active_user", "assignee", assignee=data["assignee"]),
                    errors={"assignee": [f"no active user '{data['assignee']}'"]})
        if name == "merge":
            check_merge(session, case_id, data["into"])
    if name == "resolve":  # an exchange's replacement: known, in stock, priced here;
        data = check_coupons(price_replacements(data))  # coupons known, valid, unused
    if name == "reply":  # signed as the customer will see it; where it was written
        data = {**data, "display_name": user.display_name, "channel": channel}
    elif name == "note":
        data = {**data, "channel": channel}
    return st.gateway.act(case_id, action.update,
                          action_input(action, Actor(user.name, user.role), data),
                          update_id=update_id())


def check_merge(session: Session, case_id: str, into: str) -> None:
    """What the duplicate's workflow cannot see of the case it is merged into, from the
    read model: that it exists, is open and is the same customer's (the customer id, as
    their other cases are found). Raises Problem; the workflow checks the duplicate."""
    def invalid(why: Refusal) -> Problem:
        return Problem.refused(422, "Invalid request", why, errors={"into": [why.message]})

    if into == case_id:
        raise invalid(refused("merge_into_itself", "into"))
    duplicate = case_store.get_case(session, case_id)
    if duplicate is None:
        return  # no such case: the workflow's 404
    if duplicate.data.get("merged_into"):
        raise Problem.refused(409, "Action not allowed", refused(
            "already_merged", case_id=case_id, into=duplicate.data["merged_into"]))
    survivor = case_store.get_case(session, into)
    if survivor is None:
        raise invalid(refused("merge_target_missing", "into", into=into))
    if survivor.stage in ENDED_STAGES:
        raise Problem.refused(409, "Action not allowed", refused(
            "merge_target_closed", "into", into=into, stage=survivor.stage))
    if not duplicate.customer_id or duplicate.customer_id != survivor.customer_id:
        raise invalid(refused("merge_other_customer", "into", into=into))


def customer_action(case_id: str, name: str, data: dict) -> UpdateResult:
    """An action the customer takes through the status link (no staff user)."""
    action = BY_NAME[name]
    return current_app.extensions["aftersales"].gateway.act(
        case_id, action.update, action_input(action, None, data))
