"""CaseWorkflow: one durable workflow per after-sales case, from intake to closed.

The case is one `CaseState` (contracts.py). Staff actions and customer answers are
updates named in the action table (lifecycle.py); each validator asks the table first
(stage, role, the state's rules), so an action that does not fit is refused before it
enters history. Deadlines are one durable timer for the next mark (deadlines.py).
Every change is written to the read model by a local projection activity before the
update returns, so what the API answers and what a page shows agree.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

# Our modules are pure and keep no state of their own: passed through, they are
# imported once per worker, and only this module is imported afresh per case.
with workflow.unsafe.imports_passed_through():
    # `import a.b as x`, not `from a import b`: only the former goes through the
    # sandbox's import hook, so these are passed through and not run again per case.
    import workflows.case.clocks as clocks
    import workflows.case.deadlines as deadlines
    from workflows.case import remedies
    from workflows.case.contracts import (
        DELIVER_NOTIFICATIONS,
        LOOKUP_ORDER,
        MAX_MESSAGE_LENGTH,
        MAX_TAG_LENGTH,
        MAX_TAGS,
        PROJECT_CASE,
        PROJECTION_REFUSED,
        READ_ROSTERS,
        TRIAGE_CASE,
        Actor,
        AnalyzeInput,
        ApproveInput,
        AssignInput,
        AttachInput,
        CaseInput,
        CaseResult,
        CaseSnapshot,
        CaseState,
        ConfirmInput,
        CourierEvent,
        Customer,
        DeliveryInput,
        FeedbackInput,
        InspectInput,
        LogisticsException,
        MergedIn,
        MergeInput,
        Message,
        NoteInput,
        OrderLookup,
        OrderSnapshot,
        OutboxMessage,
        Projection,
        QuoteAnswerInput,
        ReasonInput,
        ReplyInput,
        RequestInfoInput,
        Resolution,
        ResolveInput,
        RevisitInput,
        RosterRequest,
        StaffReplyInput,
        StageClock,
        TagInput,
        TimelineEvent,
        Triage,
        TriageRequest,
        UnassignInput,
        UpdateResult,
        erase_personal_data,
        tag_problem,
        workflow_id,
    )
    from workflows.case.deadlines import RETARGETED_CLOCKS
    from workflows.case.eligibility import check_eligibility
    from workflows.case.escalation import words_in
    from workflows.case.lifecycle import (
        ASSIGN_OTHERS,
        BY_NAME,
        CUSTOMER,
        RULE_PERMISSIONS,
        awaits_approval,
        refusal,
    )
    from workflows.case.log import SYSTEM, CaseLog
    from workflows.case.priority import score_priority
    from workflows.case.refusals import Refusal, refused
    from workflows.case.saga import error_message, error_type
    from workflows.case.sagas import ResolutionFailed, ResolutionSagas
    from workflows.case.vocabulary import (
        CASE_ID,
        COMBINED,
        DUPLICATE,
        GOODS_RESOLUTIONS,
        GRADES,
        MANAGERS,
        OPEN_STAGES,
        ORDERLESS_RESOLUTIONS,
        PRIORITIES,
        QUOTE_DECISIONS,
        QUOTE_DECLINED,
        REFUND_RESOLUTIONS,
        REFUNDING_GRADES,
        Stage,
        Status,
        raise_priority,
    )
    from workflows.case.warranty import quote_problem
    from workflows.routing import (
        CaseFacts,
        holder_after_move,
        pick_assignee,
        team_for,
        working,
    )
    from workflows.sla import DEFAULT_TARGETS, BusinessCalendar, format_duration

# Search attributes, registered by `aftersales.temporal.ensure_search_attributes`.
# No personal data here: ids, enumerations and times only.
SA_STAGE = SearchAttributeKey.for_keyword("CaseStage")
SA_KIND = SearchAttributeKey.for_keyword("CaseKind")
SA_PRIORITY = SearchAttributeKey.for_keyword("CasePriority")
SA_ASSIGNEE = SearchAttributeKey.for_keyword("CaseAssignee")
SA_DUE_AT = SearchAttributeKey.for_datetime("CaseDueAt")
SA_OVERDUE = SearchAttributeKey.for_bool("CaseOverdue")
SEARCH_ATTRIBUTES = (SA_STAGE, SA_KIND, SA_PRIORITY, SA_ASSIGNEE, SA_DUE_AT, SA_OVERDUE)

# The order system is asked with a short budget first; if it stays down the case is
# written to the read model as waiting on it, and asked again until it answers.
ORDER_LOOKUP_FIRST_BUDGET = timedelta(seconds=15)
ORDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["OrderNotFound"],
)
# Triage is advice: a few quick tries, then the case goes on without suggestions.
TRIAGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
PROJECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)
# Notifications are sent by an activity started after the flush that wrote them, never
# awaited by an update: a slow mail server does not hold up the case. Cases that began
# before delivery existed take the old path on replay.
NOTIFY_PATCH = "notify-delivery"
# One durable timer for the next deadline mark, kept while the next mark does not come
# earlier; cases that began before it started a timer per wait and take that path.
DEADLINE_TIMER_PATCH = "deadline-timer"
# Escalation words in a clause that denies them ("no need for a lawyer") no longer
# raise the priority; cases scored before keep their score on replay.
ESCALATION_PATCH = "escalation-clauses"
# A customer's message starts a reply clock (a new deadline, so a new timer); cases
# that began before take the old path on replay.
CONVERSATION_PATCH = "conversation-reply-clock"
# A new case goes to a team's queue and, by the team's rule, to one of its handlers
# (docs/teams.md); cases that began before take no team on replay.
ROUTING_PATCH = "team-routing"
# A routed case whose kind changes, or whose priority rises, is routed again by the same
# rules and moves if another team now takes it (docs/teams.md); cases from before keep
# their team on replay.
REROUTE_PATCH = "reroute-on-change"
# The read model's rosters for a case routed again: a quick read, like the projection.
ROSTER_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                           maximum_interval=timedelta(seconds=5))
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10), maximum_attempts=12,
)
# Shorter than the outbox claim lease (db/outbox.py), so a timed-out attempt's claim
# is still held while Temporal starts the next one.
DELIVERY_TIMEOUT = timedelta(minutes=2)
# How long a `resolve` update waits for a quick resolution to finish (or to start
# waiting on a parcel, an inspection or an approval) before answering.
RESOLVE_ANSWER_WAIT = timedelta(seconds=20)
# A timer fires this much after its mark, so the mark is due when the case looks.
TIMER_SLACK = timedelta(milliseconds=1)
CUSTOMER_ACTOR = Actor(CUSTOMER, CUSTOMER)


def refuse(code: str, field: str | None = None, **params: Any) -> ApplicationError:
    """An action refused by a validator: the refusal `code` of refusals.py."""
    return refusal_error(refused(code, field, **params))


def refusal_error(why: Refusal) -> ApplicationError:
    """The error a refusal travels in: its English sentence as the message (the API's
    `detail`), its code, params and field as the details, its kind as the type (the
    HTTP status)."""
    return ApplicationError(why.message, why.details(), type=why.kind, non_retryable=True)


@workflow.defn
class CaseWorkflow:
    @workflow.init
    def __init__(self, inp: CaseInput) -> None:
        self._inp = inp
        self._calendar = BusinessCalendar.from_spec(inp.policy.calendar)
        self._calendar_for = deadlines.calendar_for(self._calendar)
        self.state = CaseState(
            case_id=inp.case_id, kind=inp.kind, channel=inp.channel, order_id=inp.order_id,
            customer=inp.customer, items=inp.items, description=inp.description,
            status_token=inp.status_token, customer_url=inp.customer_url,
            priority=inp.priority or inp.policy.priority.default, repeat_of=inp.repeat_of)
        self.log = CaseLog(self.state)
        self.sagas = ResolutionSagas(inp, self.state, self.log, self._calendar, self._flush,
                                     self._wake_up)
        # Runtime only: what the workflow is waiting for and has under way.
        self._recorded = False
        self._projected = False
        self._intake_error: str | None = None
        # What a write the read model refused for good did not write, and why; carried
        # by every later write until one succeeds (`aftersales cases reproject`).
        self._unwritten_events: list[TimelineEvent] = []
        self._unwritten_outbox: list[OutboxMessage] = []
        self._projection_error: str | None = None
        self._version = 0
        self._wake = False
        self._published_sa: dict[str, object] = {}
        self._saga_task: asyncio.Task | None = None
        self._deliveries: list[asyncio.Task] = []
        self._timer: asyncio.Task | None = None
        self._timer_at: datetime | None = None
        # Why the case should be routed again at the next turn of the main loop (an
        # overdue escalation raised its priority), and whether its assignee stays.
        self._reroute_for: dict | None = None
        self._reroute_keeps_assignee = False

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: CaseInput) -> CaseResult:
        state = self.state
        state.created_at = workflow.now()
        self.log.event(inp.opened_by, "created", detail={"channel": inp.channel})
        if not await self._record():
            await self._deliveries_done()
            return CaseResult(inp.case_id, Stage.RECORD, recorded=False,
                              error=self._intake_error)
        await self._flush()
        one_timer = workflow.patched(DEADLINE_TIMER_PATCH)

        while True:
            if state.stage == Stage.CANCELLED:
                break
            if state.stage == Stage.CLOSED and (self._reopen_expired()
                                                or state.anonymised_at is not None
                                                or state.merged_into is not None):
                break
            if (state.resolution is not None and state.resolution.state == "planned"
                    and (self._saga_task is None or self._saga_task.done())):
                state.resolution.state = "running"
                self._saga_task = asyncio.create_task(self._run_resolution(state.resolution))
            if one_timer:
                self._arm_timer()
                await workflow.wait_condition(
                    lambda: self._wake or (self._timer is not None and self._timer.done()))
            else:
                try:
                    await workflow.wait_condition(lambda: self._wake,
                                                  timeout=self._time_to_next_deadline())
                except TimeoutError:
                    pass
            self._wake = False
            self._fire_deadlines()
            if self._reroute_for is not None:
                why, self._reroute_for = self._reroute_for, None
                await self._reroute(why, keep_assignee=self._reroute_keeps_assignee)
            if self.log.dirty:
                await self._flush()

        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        if self._saga_task is not None:
            await self._saga_task
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.log.dirty:
            await self._flush()
        await self._deliveries_done()
        if self.log.dirty:  # a notification refused for good, noted as it ended
            await self._flush()
        return CaseResult(inp.case_id, state.stage, recorded=True)

    async def _record(self) -> bool:
        """Enrich from the order system, score priority, start the clocks."""
        inp, state = self._inp, self.state
        order: OrderSnapshot | None = None
        if inp.order_id:
            try:
                order = await self._order_at_intake()
            except _IntakeRefused:
                return False
        state.order = order
        # A field of the state only (no command): cases replayed from before it was
        # kept fill it in the same way.
        state.store = order.store_id if order else ""
        state.waiting_on = None
        state.customer = _enrich_customer(inp.customer, order.customer if order else None)
        recent = list(inp.recent_cases)
        if inp.repeat_of and inp.repeat_of not in recent:
            recent.insert(0, inp.repeat_of)
        if workflow.patched("triage-at-record"):
            state.triage = await self._run_triage()
        risk = state.triage.escalation_risk if state.triage else None
        words = inp.policy.priority.escalation_words
        # Cases opened before escalation words were read clause by clause scored them
        # anywhere in the text; the patch is asked only where the two readings differ.
        negation = (words_in(inp.description, words) == words_in(
            inp.description, words, negation=False)) or workflow.patched(ESCALATION_PATCH)
        state.priority, state.priority_reasons = score_priority(
            inp.policy.priority, inp.priority, state.customer.tier, inp.description, recent,
            order.total if order else "0", negation=negation,
            escalation_risk=risk.reasons if risk and risk.value else None,
        )
        if not state.clocks:
            self._start_clocks()
        else:
            for clock in state.clocks:
                clocks.retarget_clock(clock, self._target(clock.name), workflow.now(),
                                      self._calendar)
        if order is not None:
            state.eligibility = check_eligibility(inp.kind, inp.items, order, workflow.now(),
                                                  inp.policy, inp.returned)
        state.status = Status.OPEN
        self._recorded = True
        recorded: dict = {
            "priority": state.priority,
            "priority_reasons": state.priority_reasons,
            "order_status": order.status if order else None,
            "eligibility": state.eligibility,
        }
        if inp.routing is not None and workflow.patched(ROUTING_PATCH):
            recorded.update(self._route())
        if state.triage:
            recorded["triage"] = _triage_summary(state.triage)
        self.log.move(Stage.CONFIRM, SYSTEM, "recorded", recorded)
        self.log.notify_customer("case_opened", {"customer_url": inp.customer_url})
        if risk and risk.value:
            # The customer threatens to take it further: a supervisor should know now,
            # not when a clock breaches.
            self.log.event(SYSTEM, "escalation_risk", detail={
                "reasons": risk.reasons, "confidence": risk.confidence,
                "priority": state.priority})
            self.log.notify_staff("role:supervisor", "escalation_risk", {
                "reasons": risk.reasons, "priority": state.priority,
                "kind": state.kind, "order_id": inp.order_id})
        return True

    def _facts(self) -> CaseFacts:
        """What routing reads of the case as it stands."""
        state = self.state
        risk = state.triage.escalation_risk if state.triage else None
        return CaseFacts(kind=state.kind, channel=state.channel, store=state.store,
                         priority=state.priority, tier=state.customer.tier,
                         locale=state.customer.locale,
                         escalation_risk=bool(risk and risk.value))

    def _route(self) -> dict:
        """Put the recorded case in the first matching team's queue and give it to the
        handler the team's rule picks from the rosters intake passed in (nobody free,
        or the team outside its working hours: it stays in the queue). Returns what the
        `recorded` event tells of it."""
        inp, state = self._inp, self.state
        assert inp.routing is not None
        rule = team_for(inp.routing, self._facts())
        if rule is None:
            return {}
        state.team = rule.name
        roster = next((r for r in inp.rosters if r.team == rule.name), None)
        # Teams without a calendar (every case before calendars existed) always work.
        if not working(rule, inp.policy.calendars, workflow.now()):
            roster = None
        assignee = pick_assignee(rule, roster)
        if assignee is not None and state.assignee is None:
            state.assignee = assignee
            self.log.notify_staff(assignee, "case_assigned", {"by": SYSTEM,
                                                              "team": rule.name})
        return {"team": rule.name, "assignee": state.assignee, "assign": rule.assign}

    async def _reroute(self, why: dict, keep_assignee: bool = False) -> None:
        """Route the case again by the same rules after its kind changed or its priority
        rose (`why` says which). Another team now: the case moves to it, keeps its
        assignee if they are on duty there too, else goes to whom the team's rule picks
        from the rosters read now, or to its queue. The same team: nothing changes, so a
        case a handler took stays theirs (docs/teams.md)."""
        inp, state = self._inp, self.state
        if inp.routing is None or state.team is None or state.stage not in OPEN_STAGES:
            return
        rule = team_for(inp.routing, self._facts())
        if rule is None or rule.name == state.team or not workflow.patched(REROUTE_PATCH):
            return
        before, now = state.assignee, workflow.now()
        on_duty = working(rule, inp.policy.calendars, now)
        roster = None
        if on_duty and (rule.assign != "none" or before is not None):
            answer = await workflow.execute_local_activity(
                READ_ROSTERS.name, RosterRequest([rule.name]), result_type=READ_ROSTERS.result,
                start_to_close_timeout=timedelta(seconds=10), retry_policy=ROSTER_RETRY)
            roster = next((r for r in answer.rosters if r.team == rule.name), None)
        after = before if keep_assignee else holder_after_move(rule, roster, before)
        moved_from, state.team, state.assignee = state.team, rule.name, after
        detail: dict = {"from": moved_from, "to": rule.name, **why, "assign": rule.assign,
                        "assignee": {"from": before, "to": after}}
        if not on_duty:
            detail["outside_working_hours"] = rule.calendar
        self.log.event(SYSTEM, "rerouted", detail=detail)
        if after is not None and after != before:
            self.log.notify_staff(after, "case_assigned", {"by": SYSTEM, "team": rule.name})

    async def _order_at_intake(self) -> OrderSnapshot:
        """The order from the order system; while it does not answer, the case exists and
        waits on it. Raises _IntakeRefused when the order is unknown or refused."""
        inp, state = self._inp, self.state
        try:
            return await self._lookup_order(ORDER_LOOKUP_FIRST_BUDGET)
        except ActivityError as err:
            if error_type(err) == "OrderNotFound":
                self._intake_error = f"order {inp.order_id} not found in the order system"
                raise _IntakeRefused from err
            # The order system is down: the case exists and waits on it.
            state.status = Status.WAITING_ON_SYSTEM
            state.waiting_on = "order system"
            self._start_clocks()
            self._recorded = True
            self.log.event(SYSTEM, "waiting", detail={"on": "order system"})
            await self._flush()
            try:
                return await self._lookup_order(None)
            except ActivityError as err2:
                self._intake_error = (
                    f"order {inp.order_id} not found in the order system"
                    if error_type(err2) == "OrderNotFound"
                    else f"the order system refused order {inp.order_id}: {error_message(err2)}")
                self.log.move(Stage.CANCELLED, SYSTEM, "cancelled",
                              {"reason": self._intake_error, "error": error_type(err2)})
                state.status = Status.CANCELLED
                await self._flush()
                raise _IntakeRefused from err2

    async def _run_triage(self) -> Triage | None:
        """The model's suggestions for the description (a local activity: quick, and
        the model is loaded once per worker process). None if it cannot run."""
        inp = self._inp
        try:
            return await workflow.execute_local_activity(
                TRIAGE_CASE.name, TriageRequest(inp.description, inp.channel, inp.order_id),
                result_type=TRIAGE_CASE.result,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=TRIAGE_RETRY,
            )
        except ActivityError as err:
            self.log.event(SYSTEM, "triage_failed", detail={"error": error_message(err)})
            return None

    async def _lookup_order(self, budget: timedelta | None) -> OrderSnapshot:
        return await workflow.execute_activity(
            LOOKUP_ORDER.name, OrderLookup(self._inp.order_id),
            result_type=LOOKUP_ORDER.result,
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=budget,
            retry_policy=ORDER_RETRY,
        )

    def _start_clocks(self) -> None:
        self._start_clock("confirm")
        self._start_clock("resolution")

    # ------------------------------------------------------------ queries

    @workflow.query
    def snapshot(self) -> CaseSnapshot:
        """The case as it stands, as the read model would store it."""
        return self._snapshot()

    @workflow.query
    def projection(self) -> Projection:
        """The write that brings the read model up to the case, with what writes the
        read model refused did not write (`aftersales cases reproject`)."""
        return Projection(snapshot=self._snapshot(), events=list(self._unwritten_events),
                          outbox=list(self._unwritten_outbox), after_failure=True)

    # ------------------------------------------------------------ intake

    @workflow.update
    async def intake(self) -> UpdateResult:
        """Answers once the record stage is done: the case, or why it was refused."""
        await workflow.wait_condition(
            lambda: (self._recorded and self._projected) or self._intake_error is not None
            or self._projection_error is not None)
        if self._intake_error is not None and not self._recorded:
            raise ApplicationError(self._intake_error, type="OrderNotFound", non_retryable=True)
        if not self._projected:
            raise self._unwritten()
        return self._result()

    # ------------------------------------------------------------ staff actions
    # One update per row of the action table; each validator asks the table first.

    def _check(self, action: str, actor: Actor) -> None:
        why = refusal(BY_NAME[action], self.state, actor, workflow.now())
        if why is not None:
            raise refusal_error(why)

    @workflow.update
    async def assign(self, inp: AssignInput) -> UpdateResult:
        state = self.state
        before = state.assignee
        state.assignee = inp.assignee
        self.log.event(inp.actor.name, "assigned", detail={"from": before, "to": inp.assignee})
        if inp.assignee != inp.actor.name:
            self.log.notify_staff(inp.assignee, "case_assigned", {"by": inp.actor.name})
        return await self._commit()

    @assign.validator
    def _validate_assign(self, inp: AssignInput) -> None:
        others = RULE_PERMISSIONS[ASSIGN_OTHERS]
        if inp.assignee != inp.actor.name and inp.actor.role not in others:
            raise refuse("wrong_role", "assignee", permission=ASSIGN_OTHERS,
                         roles=list(others), role=inp.actor.role)
        self._check("assign", inp.actor)

    @workflow.update
    async def unassign(self, inp: UnassignInput) -> UpdateResult:
        """Back to the unassigned queue: the assignee's account was deactivated. Not an
        action of the table (nobody chooses it on a case); the access lifecycle sends it
        (aftersales/access.py). A new update, so recorded histories replay unchanged."""
        self.state.assignee = None
        self.log.event(inp.actor.name, "unassigned",
                       detail={"from": inp.assignee, "reason": inp.reason})
        return await self._commit()

    @unassign.validator
    def _validate_unassign(self, inp: UnassignInput) -> None:
        if inp.actor.role != "admin":
            raise refuse("unassign_admin_only")
        if self.state.stage not in OPEN_STAGES:
            raise refuse("not_open", stage=str(self.state.stage))
        if self.state.assignee != inp.assignee:
            raise refuse("no_longer_assigned", "assignee", assignee=inp.assignee)

    @workflow.update
    async def confirm(self, inp: ConfirmInput) -> UpdateResult:
        state, now = self.state, workflow.now()
        was = state.priority
        state.confirmed_at = state.confirmed_at or now
        changes: dict[str, object] = {}
        if inp.kind and inp.kind != state.kind:
            changes["kind"] = {"from": state.kind, "to": inp.kind}
            state.kind = inp.kind
        if inp.priority and inp.priority != state.priority:
            changes["priority"] = {"from": state.priority, "to": inp.priority}
            state.priority = inp.priority
        if changes:
            self._retarget_all(now)
        self._stop("confirm", now)
        self._start_clock("analyze")
        if state.assignee is None:
            state.assignee = inp.actor.name
            changes["assignee"] = inp.actor.name
        if state.triage:
            changes["suggested_kind"] = state.triage.kind.value
        self.log.move(Stage.ANALYZE, inp.actor.name, "confirmed", {"note": inp.note, **changes})
        self.log.notify_customer("case_confirmed", {})
        if "kind" in changes or PRIORITIES.index(state.priority) < PRIORITIES.index(was):
            await self._reroute({key: changes[key] for key in ("kind", "priority")
                                 if key in changes})
        return await self._commit()

    @confirm.validator
    def _validate_confirm(self, inp: ConfirmInput) -> None:
        self._check("confirm", inp.actor)

    @workflow.update
    async def reject(self, inp: ReasonInput) -> UpdateResult:
        self._end_cancelled(inp.actor.name, "rejected", inp.reason)
        self.log.notify_customer("case_rejected", {"reason": inp.reason})
        return await self._commit()

    @reject.validator
    def _validate_reject(self, inp: ReasonInput) -> None:
        self._check("reject", inp.actor)

    @workflow.update
    async def analyze(self, inp: AnalyzeInput) -> UpdateResult:
        state, now = self.state, workflow.now()
        state.analysis = {
            "root_cause": inp.root_cause,
            "responsible_party": inp.responsible_party,
            "note": inp.note,
            "by": inp.actor.name,
            "at": now.isoformat(),
        }
        self._stop("analyze", now)
        detail: dict = {
            "root_cause": inp.root_cause,
            "responsible_party": inp.responsible_party,
            "note": inp.note,
        }
        if state.triage:
            detail["suggested_root_cause"] = state.triage.root_cause.value
        self.log.move(Stage.RESOLVE, inp.actor.name, "analyzed", detail)
        return await self._commit()

    @analyze.validator
    def _validate_analyze(self, inp: AnalyzeInput) -> None:
        self._check("analyze", inp.actor)

    @workflow.update
    async def resolve(self, inp: ResolveInput) -> UpdateResult:
        state = self.state
        plan = self._plan(inp)
        state.resolution = plan
        state.resolution_attempt += 1
        state.proposal = None  # the handler has chosen
        state.status = Status.RESOLVING
        detail = _resolution_detail(plan)
        if any(r.type in GOODS_RESOLUTIONS for r in plan.remedies or [plan]) \
                and not state.eligibility["eligible"]:
            detail["eligibility_overridden_by"] = inp.actor.name
        self.log.event(inp.actor.name, "resolution_planned", detail=detail)
        self._wake = True
        await self._flush()
        try:
            await workflow.wait_condition(
                lambda: plan.state in ("done", "failed") or plan.awaiting is not None,
                timeout=RESOLVE_ANSWER_WAIT,
            )
        except TimeoutError:
            pass
        return self._result()

    def _plan(self, inp: ResolveInput) -> Resolution:
        """The plan a `resolve` asks for: its one resolution (a list of one is the same),
        or a combined plan whose remedies run in order as one saga."""
        def fresh() -> dict[str, Any]:  # new lists and dicts for each remedy
            return {"state": "planned", "steps": [], "done_at": None, "awaiting": None,
                    "refs": {}, "approved_by": None, "planned_by": inp.actor.name,
                    "four_eyes": self._inp.policy.four_eyes, "remedies": [], "quote": None}

        one = inp.resolution or (inp.resolutions[0] if len(inp.resolutions) == 1 else None)
        if one is not None:
            return replace(one, note=inp.note or one.note, **fresh())
        # A combined plan's amount is what its remedies refund together: the sum the
        # approval limit weighs and the supervisor approves.
        prices = self.sagas.prices()
        money = sum((remedies.money_back(r, prices) for r in inp.resolutions), Decimal(0))
        return Resolution(type=COMBINED, note=inp.note,
                          amount=f"{money:.2f}" if money else None, **{
                              **fresh(), "remedies": [
                                  replace(r, note=r.note or inp.note, **fresh())
                                  for r in inp.resolutions]})

    @resolve.validator
    def _validate_resolve(self, inp: ResolveInput) -> None:
        self._check("resolve", inp.actor)
        if (inp.resolution is None) == (not inp.resolutions):
            raise refuse("resolution_or_resolutions", "resolution")
        if inp.resolution is not None:
            self._check_remedy(inp.resolution, inp.actor)
            return
        problem = remedies.list_problem(inp.resolutions)
        if problem:
            raise refusal_error(problem)
        for res in inp.resolutions:
            self._check_remedy(res, inp.actor, money_checked=True)
            if remedies.is_swap(res) and res.replacement_price is None:
                # The combined plan's approval weighs the difference up front.
                raise refuse("price_the_swap", "replacement_price")
            if remedies.is_swap(res) and remedies.swap_difference(
                    res, self.sagas.prices(), Decimal(res.replacement_price or 0)) < 0:
                # Its fallback refund could not be weighed by the plan's one approval.
                raise refuse("swap_costs_more", "replacement_sku", sku=res.replacement_sku)
        prices = self.sagas.prices()
        money = sum((remedies.money_back(r, prices) for r in inp.resolutions), Decimal(0))
        refundable = self.sagas.refundable()
        if money > refundable:
            raise refuse("remedies_over_refundable", "amount", money=f"{money:.2f}",
                         left=f"{refundable:.2f}")

    def _check_remedy(self, res: Resolution, actor: Actor, money_checked: bool = False
                      ) -> None:
        """What one resolution needs: an order for money and goods, its fields, eligible
        items that are on the order, and (alone) an amount still left to refund."""
        state = self.state
        if not state.order_id and (res.type not in ORDERLESS_RESOLUTIONS or (
                res.type == "compensation" and not (res.coupon_code or res.points))):
            raise refuse("orderless_remedy", "type")
        if res.type == "compensation" and not (res.coupon_code or res.points or res.amount):
            raise refuse("compensation_needs_value", "coupon_code")
        if res.type == "refund" and not res.amount:
            raise refuse("refund_needs_amount", "amount")
        problem = remedies.replacement_problem(res)
        if problem:
            raise refusal_error(problem)
        if res.type in GOODS_RESOLUTIONS:
            if not res.items:
                raise refuse("needs_items", "items", type=res.type)
            if not state.eligibility["eligible"] and actor.role not in MANAGERS:
                raise refuse("not_eligible", "items",
                             reasons=list(state.eligibility["reasons"]))
            bought: dict[str, int] = {}
            for line in (state.order.lines if state.order else []):
                bought[line.sku] = bought.get(line.sku, 0) + line.quantity
            for item in res.items:
                if item.quantity > bought.get(item.sku, 0):
                    raise refuse("more_than_bought", "items", sku=item.sku,
                                 quantity=item.quantity, bought=bought.get(item.sku, 0))
        # Inside the warranty or outside it, decided at the workflow's own time.
        problem = quote_problem(res, state.order, workflow.now(), self.sagas.prices())
        if problem:
            raise refusal_error(problem)
        money = res.amount if res.type in REFUND_RESOLUTIONS or (
            res.type == "compensation" and not (res.coupon_code or res.points)) else None
        if remedies.is_swap(res) and res.replacement_price is not None:
            # A cheaper replacement's difference is refunded: it must still be left.
            back = remedies.money_back(res, self.sagas.prices())
            money = f"{back:.2f}" if back else None
        if money is not None and not money_checked:
            refundable = self.sagas.refundable()
            if Decimal(money) > refundable:
                raise refuse("over_refundable", "amount", money=money,
                             left=f"{refundable:.2f}")

    @workflow.update
    async def inspect(self, inp: InspectInput) -> UpdateResult:
        if inp.grade is None:
            passed = bool(inp.passed)
            self.state.inspection = {"passed": passed, "note": inp.note,
                                     "by": inp.actor.name}
            detail: dict = {"passed": passed, "note": inp.note}
        else:
            # A grade answers pass/fail too, for what reads only that (a repair, old pages).
            passed = inp.grade in REFUNDING_GRADES
            self.state.inspection = {"passed": passed, "grade": inp.grade,
                                     "note": inp.note, "by": inp.actor.name}
            detail = {"passed": passed, "grade": inp.grade, "note": inp.note}
        self.log.event(inp.actor.name, "inspected", detail=detail)
        return await self._commit()

    @inspect.validator
    def _validate_inspect(self, inp: InspectInput) -> None:
        self._check("inspect", inp.actor)
        if inp.grade is None:
            if inp.passed is None:
                raise refuse("inspection_needs_grade", "grade")
            return
        if inp.grade not in GRADES:
            raise refuse("grade_unknown", "grade", grades=list(GRADES), grade=inp.grade)
        if inp.passed is not None and inp.passed != (inp.grade in REFUNDING_GRADES):
            raise refuse("grade_disagrees", "grade", grade=inp.grade,
                         passed=str(inp.passed).lower())
        if self.sagas.inspecting() != "return_refund":
            raise refuse("grade_not_for_repair", "grade")

    @workflow.update
    async def request_info(self, inp: RequestInfoInput) -> UpdateResult:
        state, now = self.state, workflow.now()
        state.pending_question = inp.question
        state.status = Status.WAITING_ON_CUSTOMER
        # A question answers the customer too: their wait for a reply ends here.
        self._add_message("staff", inp.question, "desk", by=inp.actor.name)
        self._answered(now)
        for clock in self._open_clocks():
            if clock.name != "legal_refund":  # the law does not wait for the customer
                clocks.pause_clock(clock, now, "waiting_on_customer", self._calendar)
        self.log.event(inp.actor.name, "info_requested", detail={"question": inp.question})
        self.log.notify_customer("info_requested", {"question": inp.question,
                                                    "customer_url": state.customer_url})
        return await self._commit()

    @request_info.validator
    def _validate_request_info(self, inp: RequestInfoInput) -> None:
        self._check("request-info", inp.actor)

    @workflow.update
    async def note(self, inp: NoteInput) -> UpdateResult:
        if self._known_ref(inp.ref):
            return self._result()
        self._add_message("staff", inp.text, inp.channel, by=inp.actor.name, internal=True,
                          ref=inp.ref)
        self.log.event(inp.actor.name, "note", detail={"text": inp.text})
        return await self._commit()

    @note.validator
    def _validate_note(self, inp: NoteInput) -> None:
        self._check("note", inp.actor)

    @workflow.update
    async def tag(self, inp: TagInput) -> UpdateResult:
        state = self.state
        added = [t for t in dict.fromkeys(inp.add) if t not in state.tags]
        removed = [t for t in dict.fromkeys(inp.remove) if t in state.tags]
        if not added and not removed:
            return self._result()  # the tags are already so: nothing to record
        state.tags = [t for t in state.tags if t not in removed] + added
        self.log.event(inp.actor.name, "tagged", detail={"added": added, "removed": removed})
        return await self._commit()

    @tag.validator
    def _validate_tag(self, inp: TagInput) -> None:
        self._check("tag", inp.actor)
        for tags, field_name in ((inp.add, "add"), (inp.remove, "remove")):
            for tag in tags:
                problem = tag_problem(tag)
                if problem:
                    shown = tag[:MAX_TAG_LENGTH]
                    raise refusal_error(problem.prefixed(f"tag {shown!r}: ", field_name,
                                                         tag=shown))
        kept = [t for t in self.state.tags if t not in inp.remove]
        if len(set(kept) | set(inp.add)) > MAX_TAGS:
            raise refuse("too_many_tags", "add", max=MAX_TAGS)

    @workflow.update
    async def attach(self, inp: AttachInput) -> UpdateResult:
        state = self.state
        if any(a.id == inp.attachment.id for a in state.attachments):
            return self._result()  # a retried upload: recorded once
        by = inp.actor.name if inp.actor else CUSTOMER
        added = replace(inp.attachment, by=by, at=workflow.now(),
                        shared=inp.attachment.shared or inp.actor is None)
        state.attachments.append(added)
        self.log.event(by, "attachment_added", detail={
            "id": added.id, "filename": added.filename, "content_type": added.content_type,
            "size": added.size, "shared": added.shared})
        return await self._commit()

    @attach.validator
    def _validate_attach(self, inp: AttachInput) -> None:
        self._check("attach", inp.actor or CUSTOMER_ACTOR)
        if len(self.state.attachments) >= inp.max_files and not any(
                a.id == inp.attachment.id for a in self.state.attachments):
            raise refuse("too_many_files", "file", max=inp.max_files)

    @workflow.update
    async def escalate(self, inp: ReasonInput) -> UpdateResult:
        self.log.event(inp.actor.name, "escalated", detail={"reason": inp.reason,
                                                            "rule": "manual"})
        self.log.notify_staff("role:supervisor", "case_escalated", {"reason": inp.reason,
                                                                   "by": inp.actor.name})
        return await self._commit()

    @escalate.validator
    def _validate_escalate(self, inp: ReasonInput) -> None:
        self._check("escalate", inp.actor)

    @workflow.update
    async def approve(self, inp: ApproveInput) -> UpdateResult:
        assert self.state.resolution is not None
        self.state.resolution.approved_by = inp.actor.name
        self.log.event(inp.actor.name, "approved", detail={"note": inp.note})
        return await self._commit()

    @approve.validator
    def _validate_approve(self, inp: ApproveInput) -> None:
        self._check("approve", inp.actor)

    @workflow.update
    async def deny(self, inp: ReasonInput) -> UpdateResult:
        """A manager says no to the refund awaiting approval: the saga releases what it
        holds, newest first, and fails back to analyze with the reason (the assignee is
        told). Answers once that is done, or after the resolve's wait."""
        plan = self.state.resolution
        assert plan is not None
        plan.denied_by = inp.actor.name
        plan.denial_reason = inp.reason
        self.log.event(inp.actor.name, "denied", detail={"reason": inp.reason,
                                                         "amount": plan.amount})
        await self._saga_settled(plan)
        return await self._commit()

    @deny.validator
    def _validate_deny(self, inp: ReasonInput) -> None:
        self._check("deny", inp.actor)

    @workflow.signal
    def logistics_exception(self, event: LogisticsException) -> None:
        """The courier reports the order's own delivery delayed, lost or damaged: tell
        the customer and propose the policy's resolution to the handler."""
        state = self.state
        if event.event_id in state.logistics_events_seen or state.stage not in OPEN_STAGES:
            return
        state.logistics_events_seen.append(event.event_id)
        proposal = self._inp.policy.logistics_proposals.get(event.status)
        self.log.event("courier", "logistics_exception", detail={
            "waybill": event.waybill_no, "status": event.status, "detail": event.detail,
            "proposal": proposal})
        self.log.notify_customer("parcel_" + event.status, {"waybill": event.waybill_no})
        if proposal:
            state.proposal = {"type": proposal, "reason": f"parcel {event.waybill_no} "
                              f"{event.status}", "at": workflow.now().isoformat()}
            self.log.notify_staff(state.assignee or "role:handler", "resolution_proposed",
                                  dict(state.proposal))
        self._wake = True

    @workflow.signal
    def courier_event(self, event: CourierEvent) -> None:
        """A tracking event from the courier's webhook (deduplicated, ordered)."""
        self.sagas.apply_courier_event(event)

    @workflow.update
    async def revisit(self, inp: RevisitInput) -> UpdateResult:
        now = workflow.now()
        self._stop("revisit", now)
        detail = {"outcome": inp.outcome, "note": inp.note}
        if inp.outcome == "unsatisfied":
            self.log.event(inp.actor.name, "revisited", detail=detail)
            self._reopen(inp.actor.name, f"revisit: customer unsatisfied. {inp.note}".strip())
        else:
            self.log.move(Stage.CLOSED, inp.actor.name, "revisited", detail)
            self._close(now)
        return await self._commit()

    @revisit.validator
    def _validate_revisit(self, inp: RevisitInput) -> None:
        self._check("revisit", inp.actor)

    @workflow.update
    async def reopen(self, inp: ReasonInput) -> UpdateResult:
        self._reopen(inp.actor.name, inp.reason)
        return await self._commit()

    @reopen.validator
    def _validate_reopen(self, inp: ReasonInput) -> None:
        self._check("reopen", inp.actor)

    @workflow.update
    async def cancel(self, inp: ReasonInput) -> UpdateResult:
        # A refund awaiting approval is withdrawn: the saga sees the case cancelled and
        # releases what it holds (until then `cancel` was refused while a saga ran).
        held = self.state.resolution if awaits_approval(self.state) else None
        self._end_cancelled(inp.actor.name, "cancelled", inp.reason)
        self.log.notify_customer("case_cancelled", {"reason": inp.reason})
        if held is not None:
            await self._saga_settled(held)
        return await self._commit()

    @cancel.validator
    def _validate_cancel(self, inp: ReasonInput) -> None:
        self._check("cancel", inp.actor)

    @workflow.update
    async def merge(self, inp: MergeInput) -> UpdateResult:
        """This case duplicates `inp.into`: the survivor is told first (a signal in both
        histories), then this case closes as a duplicate and its workflow ends."""
        state, now = self.state, workflow.now()
        survivor = workflow.get_external_workflow_handle(workflow_id(inp.into))
        try:
            await survivor.signal("merged_in", MergedIn(case_id=state.case_id,
                                                        by=inp.actor.name))
        except FailureError as err:
            # Its workflow has ended (closed beyond its reopen window, or cancelled)
            # since the web looked: nothing changes here.
            raise refuse("merge_target_ended", "into", into=inp.into,
                         error=err.message) from err
        for clock in self._open_clocks():
            clocks.stop_clock(clock, now, self._calendar_for(clock))
        state.merged_into = inp.into
        state.close_reason = DUPLICATE
        state.status = Status.CLOSED
        state.closed_at = now
        state.pending_question = None
        state.awaiting_reply_since = None  # the customer's conversation goes on there
        state.feedback_due_at = state.revisit_due_at = None
        self.log.move(Stage.CLOSED, inp.actor.name, "merged",
                      {"into": inp.into, "reason": DUPLICATE})
        return await self._commit()

    @merge.validator
    def _validate_merge(self, inp: MergeInput) -> None:
        self._check("merge", inp.actor)
        if not re.fullmatch(CASE_ID, inp.into):
            raise refuse("not_a_case_id", "into", into=inp.into[:40])
        if inp.into == self.state.case_id:
            raise refuse("merge_into_itself", "into")

    @workflow.signal
    def merged_in(self, inp: MergedIn) -> None:
        """A duplicate of this case was merged into it: its timeline says so and the
        case lists it (its files and timeline stay on the duplicate)."""
        state = self.state
        if inp.case_id in state.merged_from:
            return
        state.merged_from.append(inp.case_id)
        self.log.event(inp.by, "merged_in", detail={"case_id": inp.case_id})
        if state.assignee and state.assignee != inp.by:
            self.log.notify_staff(state.assignee, "case_merged_in",
                                  {"duplicate": inp.case_id, "by": inp.by})
        self._wake = True

    # ------------------------------------------------------------ erasure

    @workflow.update
    async def erase(self, inp: ReasonInput) -> UpdateResult:
        """The customer's personal data out of the case itself (not only the read
        model's copy), and the case ended: nothing the workflow writes later, a reopen
        or a courier scan, can bring the data back (docs/security.md)."""
        state = self.state
        erase_personal_data(state, workflow.now())
        # A fresh token nobody holds: the customer's link stops working.
        state.status_token = str(workflow.uuid4())
        self.log.event(inp.actor.name, "erased", detail={})
        return await self._commit()

    @erase.validator
    def _validate_erase(self, inp: ReasonInput) -> None:
        if self.state.stage in OPEN_STAGES:
            raise refuse("erase_open_case")
        if self.state.anonymised_at is not None:
            raise refuse("already_erased")

    # ------------------------------------------------------------ customer

    @workflow.update
    async def feedback(self, inp: FeedbackInput) -> UpdateResult:
        state, now = self.state, workflow.now()
        state.rating = inp.rating
        state.rating_comment = inp.comment
        if inp.rating <= 2:
            # An unhappy customer is called back at once, not days later.
            state.revisit_due_at = now
        self.log.move(Stage.REVISIT, CUSTOMER, "feedback",
                      {"rating": inp.rating, "comment": inp.comment})
        self._start_revisit(now)
        return await self._commit()

    @feedback.validator
    def _validate_feedback(self, inp: FeedbackInput) -> None:
        if self.state.stage != Stage.FEEDBACK:
            raise refuse("not_awaiting_rating")
        self._check("feedback", CUSTOMER_ACTOR)
        if not 1 <= inp.rating <= 5:
            raise refuse("rating_range", "rating")

    @workflow.update
    async def answer_quote(self, inp: QuoteAnswerInput) -> UpdateResult:
        """The customer accepts or declines the repair quote; the saga waiting at the
        repair centre takes the answer up (docs/resolutions.md, "Warranty")."""
        plan = self.state.resolution
        assert plan is not None and plan.quote is not None
        plan.quote["answer"] = "accepted" if inp.decision == "accept" else "declined"
        plan.quote["answered_at"] = workflow.now().isoformat()
        self.log.event(CUSTOMER, "quote_answered", detail={
            "decision": inp.decision, "amount": plan.quote["amount"]})
        if self.state.assignee:
            self.log.notify_staff(self.state.assignee, "quote_answered", {
                "decision": inp.decision, "amount": plan.quote["amount"]})
        return await self._commit()

    @answer_quote.validator
    def _validate_answer_quote(self, inp: QuoteAnswerInput) -> None:
        self._check("quote", CUSTOMER_ACTOR)
        if inp.decision not in QUOTE_DECISIONS:
            raise refuse("quote_decision", "decision", decisions=list(QUOTE_DECISIONS))

    @workflow.update
    async def reply(self, inp: ReplyInput) -> UpdateResult:
        """The customer writes: an answer to the pending question when there is one (its
        clocks resume), and a message that waits for a handler's reply either way."""
        state, now = self.state, workflow.now()
        if self._known_ref(inp.ref):
            return self._result()  # the same mail, read again
        question = state.pending_question
        if question is not None:
            state.pending_question = None
            # A refund still waiting for a supervisor keeps the resolution clock paused:
            # the customer's pause becomes the supervisor's.
            approval = self.sagas.hand_customer_pause_to_approval()
            state.status = (Status.WAITING_ON_APPROVAL if approval else Status.RESOLVING
                            if self._resolution_running() else Status.OPEN)
            for clock in state.clocks:
                # Only what waited on the customer; a parcel in transit keeps its pause.
                if clock.paused_reason == "waiting_on_customer":
                    clocks.resume_clock(clock, now, self._calendar_for(clock))
        message = self._add_message("customer", inp.message, inp.channel,
                                    attachments=inp.attachments, answers=question,
                                    ref=inp.ref)
        if workflow.patched(CONVERSATION_PATCH):
            if state.awaiting_reply_since is None:
                state.awaiting_reply_since = now
            if not any(c.name == "reply" and clocks.is_open(c) for c in state.clocks):
                self._start_clock("reply")
        self.log.event(CUSTOMER, "customer_replied", detail={
            "question": question, "message": inp.message, "id": message.id,
            "channel": inp.channel})
        if state.assignee:
            self.log.notify_staff(state.assignee, "customer_replied",
                                  {"message": inp.message})
        return await self._commit()

    @reply.validator
    def _validate_reply(self, inp: ReplyInput) -> None:
        self._check("message", CUSTOMER_ACTOR)
        _check_message(inp.message)
        if len(self.state.messages) >= MAX_MESSAGES:
            raise refuse("too_many_messages", "message", max=MAX_MESSAGES)

    @workflow.update
    async def staff_reply(self, inp: StaffReplyInput) -> UpdateResult:
        """A handler writes to the customer: shown on the status page, sent on the
        customer's channel, and the customer's wait for a reply ends."""
        message = self._add_message("staff", inp.message, inp.channel, by=inp.actor.name,
                                    display_name=inp.display_name)
        self._answered(workflow.now())
        self.log.event(inp.actor.name, "staff_replied", detail={"message": inp.message,
                                                                "id": message.id})
        self.log.notify_customer("staff_reply", {"message": inp.message,
                                                 "display_name": inp.display_name,
                                                 "customer_url": self.state.customer_url})
        return await self._commit()

    @staff_reply.validator
    def _validate_staff_reply(self, inp: StaffReplyInput) -> None:
        self._check("reply", inp.actor)
        _check_message(inp.message)

    def _add_message(self, author: str, text: str, channel: str, *, by: str = "",
                     display_name: str = "", internal: bool = False,
                     attachments: list[str] | None = None,
                     answers: str | None = None, ref: str = "") -> Message:
        message = Message(id=f"m{len(self.state.messages) + 1}", author=author, text=text,
                          at=workflow.now(), channel=channel, display_name=display_name,
                          by=by, internal=internal, attachments=list(attachments or ()),
                          answers=answers, ref=ref)
        self.state.messages.append(message)
        return message

    def _known_ref(self, ref: str) -> bool:
        return bool(ref) and any(m.ref == ref for m in self.state.messages)

    def _answered(self, now: datetime) -> None:
        """Staff wrote to the customer: nobody waits for a reply any more."""
        self.state.awaiting_reply_since = None
        self._stop("reply", now)

    # ------------------------------------------------------------ resolution

    async def _run_resolution(self, plan: Resolution) -> None:
        try:
            await self.sagas.run(plan)
        except ResolutionFailed as err:
            self._resolution_failed(plan, str(err))
        else:
            self._resolution_done(plan)
        finally:
            self._wake = True
        await self._flush()

    def _resolution_done(self, plan: Resolution) -> None:
        state, now = self.state, workflow.now()
        plan.state = "done"
        plan.done_at = now
        state.resolved_at = now
        self._stop("resolution", now)
        if _quote_declined(plan):
            self._close_unrepaired(plan, now)
            return
        state.status = Status.WAITING_ON_CUSTOMER if state.pending_question else Status.OPEN
        state.feedback_due_at = now + timedelta(seconds=self._inp.policy.feedback_window)
        state.revisit_due_at = self._calendar.add(now, self._target("revisit_after"))
        self.log.move(Stage.FEEDBACK, SYSTEM, "resolved", _resolution_detail(plan))
        # One message tells the customer the resolution is done and asks for the rating.
        self.log.notify_customer("rating_request", {"customer_url": state.customer_url})

    def _close_unrepaired(self, plan: Resolution, now: datetime) -> None:
        """The customer declined the repair quote (or let it lapse) and has the item back
        unrepaired: the case closes with that outcome, nothing to rate."""
        state = self.state
        for clock in self._open_clocks():
            clocks.stop_clock(clock, now, self._calendar_for(clock))
        state.close_reason = QUOTE_DECLINED
        state.status = Status.CLOSED
        state.closed_at = now
        self.log.move(Stage.CLOSED, SYSTEM, "closed_unrepaired",
                      {**_resolution_detail(plan), "reason": QUOTE_DECLINED})
        self.log.notify_customer("repair_declined", {"customer_url": state.customer_url})

    def _resolution_failed(self, plan: Resolution, reason: str) -> None:
        state = self.state
        plan.state = "failed"
        if state.stage == Stage.CANCELLED:
            # Cancelled while its refund awaited approval: released, and it stays ended.
            self.log.event(SYSTEM, "resolution_withdrawn",
                           detail={"type": plan.type, "reason": reason})
            return
        state.status = Status.WAITING_ON_CUSTOMER if state.pending_question else Status.OPEN
        failed: dict = {"type": plan.type, "reason": reason}
        if plan.remedies:
            failed["remedies"] = [{"type": r.type, "state": r.state} for r in plan.remedies]
        self.log.move(Stage.ANALYZE, SYSTEM, "resolution_failed", failed)
        self._start_clock("analyze")
        if state.assignee:
            self.log.notify_staff(state.assignee, "resolution_failed", {"reason": reason})

    async def _saga_settled(self, plan: Resolution) -> None:
        """Wait (as `resolve` does, at most RESOLVE_ANSWER_WAIT) for a saga that was told
        to stop to finish releasing what it held."""
        self._wake = True
        try:
            await workflow.wait_condition(lambda: plan.state in ("done", "failed"),
                                          timeout=RESOLVE_ANSWER_WAIT)
        except TimeoutError:
            pass

    def _resolution_running(self) -> bool:
        res = self.state.resolution
        return res is not None and res.state in ("planned", "running")

    # ------------------------------------------------------------ deadlines

    def _arm_timer(self) -> None:
        """Keep one durable timer for the next mark. A mark that moved later leaves the
        timer as it is (it fires early, finds nothing due and is set again); only a mark
        that moved earlier replaces it, so a lifecycle starts few timers and cancels
        fewer."""
        if self._timer is not None and self._timer.done():
            self._timer = self._timer_at = None
        at = deadlines.next_instant(self.state, self._inp.policy, self._calendar_for)
        running = self._timer is not None
        if at is None or (running and self._timer_at is not None and self._timer_at <= at):
            return
        if running:
            assert self._timer is not None
            self._timer.cancel()
        self._timer_at = at
        delay = max(at - workflow.now(), timedelta(0)) + TIMER_SLACK
        self._timer = asyncio.create_task(workflow.sleep(delay))

    def _time_to_next_deadline(self) -> timedelta | None:
        """The wait of cases that began before the one timer: a timer per wait."""
        at = deadlines.next_instant(self.state, self._inp.policy, self._calendar_for)
        if at is None:
            return None
        return max(at - workflow.now(), timedelta(0)) + TIMER_SLACK

    def _fire_deadlines(self) -> None:
        state, now = self.state, workflow.now()
        for clock in list(state.clocks):
            marks = deadlines.pending_marks(clock, self._inp.policy, self._calendar_for(clock))
            for at, share in sorted(marks, key=lambda m: m[1]):
                if at > now:
                    break
                if share < 1.0:
                    self._warn(clock, share)
                elif clock.breached_at is None:
                    self._breach(clock, now)
                else:
                    self._escalate_again(clock)
        if deadlines.feedback_timed_out(state, now):
            self.log.move(Stage.REVISIT, SYSTEM, "feedback_timeout", {"outcome": "no response"})
            self._start_revisit(now)
        if deadlines.revisit_came_due(state, now):
            state.revisit_notified = True
            self.log.event(SYSTEM, "revisit_due")
            self.log.notify_staff(state.assignee or "role:handler", "revisit_due", {})
            if workflow.patched(NOTIFY_PATCH):
                self.log.notify_customer("revisit", {"customer_url": state.customer_url})

    def _warn(self, clock: StageClock, share: float) -> None:
        """A share of a target is used: tell the assignee before it is too late."""
        clock.warned.append(share)
        due = clocks.instant_at_share(clock, 1.0, self._calendar_for(clock))
        rule = (f"{share:.0%} of the {clock.name} target ({format_duration(clock.target)}) "
                f"for {self.state.priority}")
        self.log.event(SYSTEM, "sla_warning", detail={
            "clock": clock.name, "share": share, "rule": rule,
            "due_at": due.isoformat() if due else None})
        self.log.notify_staff(self.state.assignee or "role:handler", "sla_warning",
                              {"clock": clock.name, "share": share, "rule": rule})

    def _breach(self, clock: StageClock, now: datetime) -> None:
        """100 % of a target: overdue for good, escalated to the supervisors, priority one
        level up and, if the policy says so, reassigned."""
        state = self.state
        clock.breached_at = now
        clock.escalations = 1
        state.breaches.append({"clock": clock.name, "at": now.isoformat(),
                               "target_s": clock.target, "priority": state.priority})
        rule = (f"100% of the {clock.name} target ({format_duration(clock.target)}) "
                f"for {state.priority}")
        self.log.event(SYSTEM, "overdue", detail={"clock": clock.name, "rule": rule})
        detail: dict = {"level": 1, "to": "supervisor", "rule": rule, "clock": clock.name}
        raised = raise_priority(state.priority)
        if raised != state.priority:
            detail["priority"] = {"from": state.priority, "to": raised}
            state.priority = raised
            self._retarget_all(now)
        reassign = self._inp.policy.reassign_on_overdue
        if reassign and reassign != state.assignee:
            detail["assignee"] = {"from": state.assignee, "to": reassign}
            state.assignee = reassign
            self.log.notify_staff(reassign, "case_assigned", {"by": SYSTEM, "rule": rule})
        if "priority" in detail:
            # Routed again at the loop's next turn (it reads the rosters); the policy's
            # overdue assignee stays with the case wherever it goes.
            self._reroute_for = {"priority": detail["priority"]}
            self._reroute_keeps_assignee = bool(reassign)
        self.log.event(SYSTEM, "escalated", detail=detail)
        self.log.notify_staff("role:supervisor", "case_overdue",
                              {"clock": clock.name, "rule": rule, "assignee": state.assignee})

    def _escalate_again(self, clock: StageClock) -> None:
        """Still open at the policy's second share (150 %): the admins are told."""
        clock.escalations = 2
        share = self._inp.policy.escalate_again_at
        rule = f"{share:.0%} of the {clock.name} target ({format_duration(clock.target)})"
        self.log.event(SYSTEM, "escalated", detail={"level": 2, "to": "admin", "rule": rule,
                                                    "clock": clock.name})
        self.log.notify_staff("role:admin", "case_overdue_again",
                              {"clock": clock.name, "rule": rule,
                               "assignee": self.state.assignee})

    def _start_revisit(self, now: datetime) -> None:
        state = self.state
        due = max(state.revisit_due_at or now, now)
        state.revisit_due_at = due
        state.revisit_notified = False
        # The call is expected at `due`; the handler has a working day to make it.
        clock = StageClock(name="revisit", target=self._inp.policy.revisit_grace + int(
            self._calendar.working_seconds(now, due)), running_since=now)
        clock.due_at = self._calendar.add(now, clock.target)
        state.clocks.append(clock)

    # ------------------------------------------------------------ transitions

    def _start_clock(self, name: str) -> None:
        self.state.clocks.append(clocks.start_clock(name, self._target(name), workflow.now(),
                                                    self._calendar))

    def _stop(self, name: str, now: datetime) -> None:
        state = self.state
        for clock in state.clocks:
            if clock.name == name and clocks.is_open(clock):
                was_breached = clock.breached_at is not None
                clocks.stop_clock(clock, now, self._calendar_for(clock))
                if clock.breached_at is not None and not was_breached:
                    # Over its target at the moment it stopped (e.g. a new, shorter
                    # target): the breach is recorded like any other.
                    state.breaches.append({"clock": clock.name, "at": now.isoformat(),
                                           "target_s": clock.target,
                                           "priority": state.priority})
                    self.log.event(SYSTEM, "overdue", detail={
                        "clock": clock.name,
                        "rule": f"100% of the {clock.name} target "
                                f"({format_duration(clock.target)}) for {state.priority}, "
                                "reached when the clock stopped"})

    def _open_clocks(self) -> list[StageClock]:
        return [c for c in self.state.clocks if clocks.is_open(c)]

    def _retarget_all(self, now: datetime) -> None:
        for clock in self._open_clocks():
            # A breached clock keeps the target it breached against, so its second
            # escalation is measured against the same yardstick.
            if clock.name in RETARGETED_CLOCKS and clock.breached_at is None:
                clocks.retarget_clock(clock, self._target(clock.name), now, self._calendar)

    def _reopen(self, actor: str, reason: str) -> None:
        state, now = self.state, workflow.now()
        for clock in self._open_clocks():
            if clock.name != "reply":  # the customer still waits for an answer
                clocks.stop_clock(clock, now, self._calendar_for(clock))
        state.reopen_count += 1
        state.closed_at = None
        state.resolution = None
        state.pending_question = None
        state.status = Status.OPEN
        state.feedback_due_at = None
        state.revisit_due_at = None
        # A reopened case starts fresh analyze and resolution clocks (docs/sla.md).
        self._start_clock("analyze")
        self._start_clock("resolution")
        self.log.move(Stage.ANALYZE, actor, "reopened", {"reason": reason,
                                                         "reopen_count": state.reopen_count})
        if state.assignee:
            self.log.notify_staff(state.assignee, "case_reopened", {"reason": reason})

    def _end_cancelled(self, actor: str, kind: str, reason: str) -> None:
        state, now = self.state, workflow.now()
        for clock in self._open_clocks():
            clocks.stop_clock(clock, now, self._calendar_for(clock))
        state.status = Status.CANCELLED
        state.closed_at = now
        state.awaiting_reply_since = None  # a cancelled case takes no more messages
        self.log.move(Stage.CANCELLED, actor, kind, {"reason": reason})
        self._wake = True

    def _close(self, now: datetime) -> None:
        self.state.status = Status.CLOSED
        self.state.closed_at = now
        self.log.event(SYSTEM, "closed", Stage.CLOSED, Stage.CLOSED)
        self._wake = True

    def _reopen_expired(self) -> bool:
        end = deadlines.reopen_window_end(self.state)
        return end is not None and workflow.now() >= end

    def _target(self, name: str) -> int:
        targets = self._inp.policy.targets_for(self.state.kind, self.state.priority)
        if name == "reply" and not targets.reply:  # a policy from before conversations
            return DEFAULT_TARGETS[self.state.priority].reply
        return int(getattr(targets, name))

    # ------------------------------------------------------------ recording

    def _wake_up(self) -> None:
        self._wake = True

    async def _commit(self) -> UpdateResult:
        self._wake = True
        await self._flush()
        if self._projection_error is not None:
            raise self._unwritten()
        return self._result()

    def _unwritten(self) -> ApplicationError:
        # The database's own words stay in the log and the operators' listing.
        return refuse("not_written", case_id=self.state.case_id)

    def _result(self) -> UpdateResult:
        return UpdateResult(self.state.case_id, self._version, self.state.stage,
                            self.state.status)

    async def _flush(self) -> None:
        """Write the current state, new timeline events and outbox rows in one step."""
        self._version += 1
        events, outbox = self.log.take()
        projection = Projection(
            snapshot=self._snapshot(), events=[*self._unwritten_events, *events],
            outbox=[*self._unwritten_outbox, *outbox],
            after_failure=self._projection_error is not None)
        self._publish_search_attributes(projection.snapshot)
        try:
            await workflow.execute_local_activity(
                PROJECT_CASE.name, projection,
                start_to_close_timeout=timedelta(seconds=10), retry_policy=PROJECTION_RETRY,
            )
        except ApplicationError as err:
            # A local activity's failure arrives as its own error, not as an
            # ActivityError.
            if err.type != PROJECTION_REFUSED:
                raise
            # Refused for good (the activity listed the case for operators): the case
            # goes on, and the next write carries what this one did not write.
            self._unwritten_events, self._unwritten_outbox = projection.events, projection.outbox
            self._projection_error = err.message
            workflow.logger.error("case %s version %d not written to the read model: %s",
                                  self.state.case_id, self._version, self._projection_error)
            return
        self._unwritten_events, self._unwritten_outbox = [], []
        self._projection_error = None
        self._projected = True
        if projection.outbox and workflow.patched(NOTIFY_PATCH):
            keys = [m.key for m in projection.outbox]
            self._deliveries = [t for t in self._deliveries if not t.done()]
            self._deliveries.append(asyncio.create_task(self._deliver(keys)))

    async def _deliver(self, keys: list[str]) -> None:
        """Send the rows this flush wrote; if it gives up, the scheduler's outbox sweep
        sends them later through the same claim."""
        try:
            result = await workflow.execute_activity(
                DELIVER_NOTIFICATIONS.name, DeliveryInput(keys),
                result_type=DELIVER_NOTIFICATIONS.result,
                start_to_close_timeout=DELIVERY_TIMEOUT, retry_policy=DELIVERY_RETRY)
        except ActivityError as err:
            workflow.logger.warning("notifications %s left to the outbox sweep: %s",
                                    ",".join(keys), error_message(err))
            return
        for refused in result.undeliverable:
            # The provider refused it for good: on the timeline (and the desk), once.
            self.log.event(SYSTEM, "notification_failed", detail=dict(refused))
            self._wake = True

    async def _deliveries_done(self) -> None:
        pending = [t for t in self._deliveries if not t.done()]
        if pending:
            await asyncio.gather(*pending)

    def _publish_search_attributes(self, snap: CaseSnapshot) -> None:
        """Upsert only the search attributes that changed since the last upsert."""
        if not self._inp.publish_search_attributes:
            return
        values: dict[str, object] = {
            SA_STAGE.name: snap.stage, SA_KIND.name: snap.kind,
            SA_PRIORITY.name: snap.priority, SA_ASSIGNEE.name: snap.assignee or "",
            SA_DUE_AT.name: snap.stage_due_at, SA_OVERDUE.name: snap.overdue,
        }
        changed = {k: v for k, v in values.items() if self._published_sa.get(k, ...) != v}
        if not changed:
            return
        keys = {k.name: k for k in SEARCH_ATTRIBUTES}
        updates = []
        for name, value in changed.items():
            key: Any = keys[name]
            updates.append(key.value_unset() if value is None else key.value_set(value))
        workflow.upsert_search_attributes(updates)
        self._published_sa.update(changed)

    def _snapshot(self) -> CaseSnapshot:
        """The state as it is, plus what follows from it now (the read model's row)."""
        state, now = self.state, workflow.now()
        values = {f.name: getattr(state, f.name) for f in _STATE_FIELDS}
        if state.order is not None:
            # The order as it stands: refunded at intake plus this case's refunds since.
            refunded = Decimal(state.order.refunded) + Decimal(state.refunded)
            values["order"] = replace(state.order, refunded=f"{refunded:.2f}")
        return CaseSnapshot(
            **values,
            version=self._version, updated_at=now,
            sla_policy={"source": self._inp.policy.source,
                        "version": self._inp.policy.version},
            refundable=f"{self.sagas.refundable():.2f}" if state.order else None,
            approval_limit=self._inp.policy.approval_limit,
            **deadlines.due_times(state, self._calendar_for),
        )


_STATE_FIELDS = fields(CaseState)


# Messages a case holds (the state travels with every write and lives in the history).
MAX_MESSAGES = 300


def _check_message(text: str) -> None:
    if not text.strip() or len(text) > MAX_MESSAGE_LENGTH:
        raise refuse("message_length", "message", max=MAX_MESSAGE_LENGTH)


class _IntakeRefused(Exception):
    """The order system refused the case's order at intake (the reason is kept)."""


def _enrich_customer(given: Customer, known: Customer | None) -> Customer:
    """The customer as given at intake, completed from the order system: what the caller
    left empty, and the tier the retailer keeps (a caller's "regular" is the default)."""
    if known is None:
        return given
    return Customer(
        id=given.id or known.id,
        name=given.name or known.name,
        email=given.email or known.email,
        phone=given.phone or known.phone,
        tier=known.tier if given.tier == "regular" else given.tier,
        locale=given.locale or known.locale,
    )


def _triage_summary(triage: Triage) -> dict:
    """The suggestions in one line of the timeline; the case carries the full answer."""
    return {
        "kind": triage.kind.value, "root_cause": triage.root_cause.value,
        "priority": triage.priority.value, "sentiment": triage.sentiment.value,
        "escalation_risk": triage.escalation_risk.value,
        "low_confidence": triage.low_confidence, "model_version": triage.model_version,
    }


def _resolution_detail(plan: Resolution) -> dict:
    detail: dict = {"type": plan.type}
    for name in ("amount", "coupon_code", "points", "quote_amount", "note"):
        value = getattr(plan, name)
        if value:
            detail[name] = value
    if plan.items:
        detail["items"] = [{"sku": i.sku, "quantity": i.quantity} for i in plan.items]
    if plan.remedies:
        detail["remedies"] = [  # the plan's note is said once, above
            {**{k: v for k, v in _resolution_detail(r).items() if k != "note"},
             "state": r.state} for r in plan.remedies]
    return detail


def _quote_declined(plan: Resolution) -> bool:
    """A repair of the plan went back unrepaired: its quote declined or unanswered."""
    return any((r.refs.get("quote") or {}).get("answer") in ("declined", "expired")
               for r in plan.remedies or [plan])


__all__ = ["SEARCH_ATTRIBUTES", "CaseWorkflow"]
