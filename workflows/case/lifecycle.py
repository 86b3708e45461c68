"""The case's lifecycle as data: which actions exist, in which stages, for whom, with
what input, and where each one moves the case.

Every layer reads this table instead of spelling an action again: the workflow's
validators (`refusal`), the REST dispatch and the permission check (web/api.py,
web/auth.py), the OpenAPI document, the desk's "what you can do now" and its forms,
and the fuzz test's edges. Adding an action is one row here, one update handler in
workflow.py and one input schema in web/schemas.py (docs/architecture.md, "How to add
an action").

Pure: no Temporal, no I/O. `refusal` reads only the case state, so the web can ask it
about a state read back from the read model and offer only what can succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows.case.contracts import (
    Actor,
    AnalyzeInput,
    ApproveInput,
    AssignInput,
    AttachInput,
    CaseState,
    ConfirmInput,
    FeedbackInput,
    InspectInput,
    MergeInput,
    NoteInput,
    QuoteAnswerInput,
    ReasonInput,
    ReplyInput,
    RequestInfoInput,
    Resolution,
    ResolveInput,
    RevisitInput,
    StaffReplyInput,
    TagInput,
)
from workflows.case.refusals import Refusal, refused
from workflows.case.vocabulary import (
    MANAGERS,
    OPEN_STAGES,
    REOPEN_WINDOW_DAYS,
    ROLES,
    STAGES,
    Stage,
)

STAFF = ROLES
CUSTOMER = "customer"
# Rules inside an action that need a role of their own; the validator and the web's
# permission table both read them. Handlers take cases for themselves; giving a case
# to someone else is a supervisor's.
ASSIGN_OTHERS = "cases.assign.others"
RULE_PERMISSIONS: dict[str, tuple[str, ...]] = {ASSIGN_OTHERS: MANAGERS}

# Stage moves the system makes by itself (intake, the saga, a timer), not an action.
SYSTEM_MOVES = (
    (Stage.RECORD, Stage.CONFIRM),      # recorded
    (Stage.RECORD, Stage.CANCELLED),    # the order system refused the order
    (Stage.RESOLVE, Stage.FEEDBACK),    # the resolution is done
    (Stage.RESOLVE, Stage.ANALYZE),     # the resolution failed and was compensated
    (Stage.FEEDBACK, Stage.REVISIT),    # no rating within the feedback window
    (Stage.RESOLVE, Stage.CLOSED),      # a repair quote declined: the item went back
)


def N_(text: str) -> str:
    """Marks a label for translation (babel.cfg extracts it); the pages translate it."""
    return text


# ---------------------------------------------------------------- preconditions
# Each returns why the action cannot be taken on this state now (a Refusal of
# refusals.py: its kind maps to the HTTP status, its code to the pages' words), or
# None. They see the state only (never the action's input), so the pages can ask them
# too.


def _resolution_running(state: CaseState) -> bool:
    return state.resolution is not None and state.resolution.state in ("planned", "running")


def _workflow_ended(state: CaseState, now: datetime) -> bool:
    """A closed case's workflow ends when its reopen window has passed, or at once when
    the customer's data is erased or the case was merged into another."""
    if (state.stage == Stage.CANCELLED or state.anonymised_at is not None
            or state.merged_into is not None):
        return True
    return (state.stage == Stage.CLOSED and state.closed_at is not None
            and now >= state.closed_at + timedelta(days=REOPEN_WINDOW_DAYS))


def _can_assign(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    if actor.role not in MANAGERS and state.assignee == actor.name:
        return refused("already_yours", "assignee")
    return None


def _can_resolve(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    if _resolution_running(state):
        return refused("resolution_running")
    return None


def _awaits(what: str, code: str) -> Callable[[CaseState, Actor, datetime],
                                              Refusal | None]:
    def check(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
        if state.resolution is None or state.resolution.awaiting != what:
            return refused(code)
        return None
    return check


def awaits_approval(state: CaseState) -> bool:
    """A refund of this case waits for a manager's approve or deny, and nobody has
    decided yet (a decision the saga has not taken up yet counts as made)."""
    plan = state.resolution
    return (plan is not None and plan.awaiting == "approval" and plan.approved_by is None
            and plan.denied_by is None)


def _awaits_approval(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    if not awaits_approval(state):
        return refused("nothing_to_approve")
    return None


def _can_approve(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    """Four eyes: whoever planned the refund cannot approve it (unless the policy's
    `four_eyes` is off, which the plan carries)."""
    waiting = _awaits_approval(state, actor, now)
    if waiting is not None:
        return waiting
    plan = state.resolution
    assert plan is not None
    if plan.four_eyes and plan.planned_by == actor.name:
        return refused("four_eyes", planner=actor.name)
    return None


def awaits_quote(plan: Resolution | None) -> bool:
    """The resolution's repair quote waits for the customer's accept or decline, and
    none has come yet (an answer the saga has not taken up yet counts as given)."""
    return (plan is not None and plan.awaiting == "quote" and plan.quote is not None
            and plan.quote.get("answer") is None)


def _awaits_quote(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    if awaits_quote(state.resolution):
        return None
    plan = state.resolution
    if plan is not None and plan.quote is not None and plan.quote.get("answer"):
        return refused("quote_answered", answer=plan.quote["answer"])
    return refused("no_quote")


def _can_request_info(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    if state.pending_question is not None:
        return refused("question_pending")
    return None


def _still_running(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    if state.merged_into is not None:
        return refused("merged_away", into=state.merged_into)
    if _workflow_ended(state, now):
        return refused("reopen_window_over", days=REOPEN_WINDOW_DAYS)
    return None


def _can_cancel(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    """A running saga is not interrupted mid-step; one that only waits for a manager's
    decision on a refund is, and releases what it holds (nothing is paid)."""
    if (state.resolution is not None and state.resolution.state == "running"
            and not awaits_approval(state)):
        return refused("cancel_while_running")
    return None


def _can_merge(state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    # What the resolution has done (a refund paid, goods on the way) is this case's:
    # it cannot be handed to another mid-way.
    if _resolution_running(state):
        return refused("merge_while_running")
    return None


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Action:
    """One thing a person can do to a case."""

    name: str                   # in URLs and the permission name: cases.<name>
    update: str                 # the workflow update that carries it
    input: type                 # its input dataclass (workflows/case/contracts.py)
    stages: tuple[str, ...]     # where it is allowed
    roles: tuple[str, ...]      # who may take it ("customer": through the status link)
    label: str                  # what the pages call it (translated there)
    summary: str                # one line for the OpenAPI document
    # Stage moves it makes, {from: to}; a stage not listed stays where it is.
    moves: dict[str, str]
    when: Callable[[CaseState, Actor, datetime], Refusal | None] | None = None
    # Changes that cannot be undone: the pages ask before sending.
    destructive: bool = False
    # The stage's main step: the case page shows the first one available in its first
    # screen and the other actions behind "more".
    main: bool = False

    @property
    def permission(self) -> str:
        return f"cases.{self.name}"


def _all(to: str, stages: tuple[str, ...] = OPEN_STAGES) -> dict[str, str]:
    return {stage: to for stage in stages}


ACTIONS: tuple[Action, ...] = (
    Action("confirm", "confirm", ConfirmInput, (Stage.CONFIRM,), STAFF, N_("Confirm"),
           "First response: accept, optionally correcting kind and priority",
           moves={Stage.CONFIRM: Stage.ANALYZE}, main=True),
    Action("analyze", "analyze", AnalyzeInput, (Stage.ANALYZE,), STAFF,
           N_("Record the analysis"), "Record root cause and responsible party",
           moves={Stage.ANALYZE: Stage.RESOLVE}, main=True),
    Action("resolve", "resolve", ResolveInput, (Stage.RESOLVE,), STAFF, N_("Resolve"),
           "Choose and run the resolution", moves={}, when=_can_resolve, main=True),
    Action("approve", "approve", ApproveInput, (Stage.RESOLVE,), MANAGERS,
           N_("Approve the refund"), "Supervisor approval of a refund above the limit",
           moves={}, when=_can_approve, main=True),
    # No four eyes here: a deny pays nothing, so the manager who planned the refund may
    # withdraw it too. The saga releases what it holds and fails back to analyze.
    Action("deny", "deny", ReasonInput, (Stage.RESOLVE,), MANAGERS,
           N_("Deny the refund"),
           "Deny a refund awaiting approval: the saga is undone, back to analyze",
           moves={Stage.RESOLVE: Stage.ANALYZE}, when=_awaits_approval),
    Action("inspect", "inspect", InspectInput, (Stage.RESOLVE,), STAFF,
           N_("Inspect returned goods"), "Record the inspection of returned goods",
           moves={}, when=_awaits("inspection", "nothing_to_inspect"), main=True),
    Action("revisit", "revisit", RevisitInput, (Stage.REVISIT,), STAFF,
           N_("Record the follow-up call"),
           "Record the revisit call; unsatisfied reopens the case",
           moves={Stage.REVISIT: Stage.CLOSED}, main=True),
    Action("request-info", "request_info", RequestInfoInput,
           (Stage.CONFIRM, Stage.ANALYZE, Stage.RESOLVE), STAFF, N_("Ask the customer"),
           "Ask the customer; pauses the SLA clocks", moves={}, when=_can_request_info),
    Action("assign", "assign", AssignInput, OPEN_STAGES, STAFF, N_("Assign"),
           "Give the case to a user (handlers: only themselves)", moves={},
           when=_can_assign),
    Action("tag", "tag", TagInput, STAGES, STAFF, N_("Tags"),
           "Add or remove free-text tags", moves={}, when=_still_running),
    # Wherever the customer may write (a closed case within its reopen window too), staff
    # may answer.
    Action("reply", "staff_reply", StaffReplyInput, (*OPEN_STAGES, Stage.CLOSED), STAFF,
           N_("Reply to the customer"),
           "Write to the customer: the status page shows it and they are notified",
           moves={}, when=_still_running),
    Action("note", "note", NoteInput, STAGES, STAFF, N_("Add a note"),
           "Add an internal note to the timeline", moves={}, when=_still_running),
    Action("escalate", "escalate", ReasonInput, OPEN_STAGES, STAFF, N_("Escalate"),
           "Escalate to the supervisors", moves={}),
    Action("reopen", "reopen", ReasonInput, (Stage.FEEDBACK, Stage.REVISIT, Stage.CLOSED),
           STAFF, N_("Reopen"), "Reopen a case back to analyze",
           moves=_all(Stage.ANALYZE, (Stage.FEEDBACK, Stage.REVISIT, Stage.CLOSED)),
           when=_still_running),
    # The same customer wrote twice: this case closes as a duplicate of `into`, which
    # goes on (docs/teams.md, "Merging duplicates").
    Action("merge", "merge", MergeInput, OPEN_STAGES, STAFF, N_("Merge into another case"),
           "Close this case as a duplicate of another open case of the same customer",
           moves=_all(Stage.CLOSED), when=_can_merge, destructive=True),
    Action("reject", "reject", ReasonInput, (Stage.CONFIRM,), STAFF, N_("Reject"),
           "Decline the case at confirm; it ends cancelled",
           moves={Stage.CONFIRM: Stage.CANCELLED}, destructive=True),
    Action("cancel", "cancel", ReasonInput, OPEN_STAGES, STAFF, N_("Cancel the case"),
           "Cancel an open case", moves=_all(Stage.CANCELLED), when=_can_cancel,
           destructive=True),
    # Staff's and the customer's: a file (already in the blob store) on the case, while
    # it is open (a closed case may be erased; nothing may bring files back to it).
    Action("attach", "attach", AttachInput, OPEN_STAGES, (*STAFF, CUSTOMER),
           N_("Attach a file"), "Add a photo, video or PDF as evidence", moves={}),
    # The customer's, through the status link.
    Action("feedback", "feedback", FeedbackInput, (Stage.FEEDBACK,), (CUSTOMER,),
           N_("Rate the outcome"), "Rate the outcome, 1-5",
           moves={Stage.FEEDBACK: Stage.REVISIT}),
    # The customer's answer to a repair quote outside the warranty (docs/resolutions.md,
    # "Warranty"): accept and the repair goes on; decline and the item comes back.
    Action("quote", "answer_quote", QuoteAnswerInput, (Stage.RESOLVE,), (CUSTOMER,),
           N_("Answer the repair quote"),
           "Accept or decline the quote for a repair outside the warranty",
           moves={}, when=_awaits_quote),
    # The customer writes while the case is open and within the reopen window after it
    # closed (as long as its workflow runs); a cancelled case takes no messages. The
    # update keeps its first name: it began as the answer to a question.
    Action("message", "reply", ReplyInput, (*OPEN_STAGES, Stage.CLOSED), (CUSTOMER,),
           N_("Write to us"),
           "Write to the handler; answers the pending question if there is one",
           moves={}, when=_still_running),
)
BY_NAME = {a.name: a for a in ACTIONS}
BY_UPDATE = {a.update: a for a in ACTIONS}
# The actions staff take at /api/v1/cases/<id>/<action>, in the order the case page
# shows them: the stage's main step first, the destructive ones last. (An action the
# customer takes too, like `attach`, has its own endpoints: it carries a file.)
STAFF_ACTIONS = tuple(a for a in ACTIONS if CUSTOMER not in a.roles)
# Who of the staff may take each action, wherever it is sent from (web/auth.py).
STAFF_ROLES = {a.permission: tuple(r for r in a.roles if r != CUSTOMER) for a in ACTIONS
               if set(a.roles) - {CUSTOMER}}
# Moves an action makes beyond its `moves`: revisit "unsatisfied" reopens the case.
OUTCOME_MOVES = ((Stage.REVISIT, Stage.ANALYZE),)
# Every stage move the case can make; the fuzz test holds the workflow to these.
MOVES = frozenset({*SYSTEM_MOVES, *OUTCOME_MOVES,
                   *((before, after) for a in ACTIONS for before, after in a.moves.items())})


def refusal(action: Action, state: CaseState, actor: Actor, now: datetime) -> Refusal | None:
    """Why `actor` cannot take `action` on this case now, or None.

    Stage, role and the state's own rules; what depends on the action's input (an
    amount, a rating) is the update validator's to check on top."""
    if state.stage not in action.stages:
        return refused("wrong_stage", action=action.name, stage=str(state.stage),
                       allowed=[str(stage) for stage in action.stages])
    if actor.role not in action.roles:
        return refused("wrong_role", permission=action.permission, roles=list(action.roles),
                       role=actor.role)
    return action.when(state, actor, now) if action.when else None


def available(state: CaseState, actor: Actor, now: datetime) -> list[Action]:
    """The staff actions `actor` can take on this case now, in page order."""
    return [a for a in STAFF_ACTIONS if refusal(a, state, actor, now) is None]
