"""CaseWorkflow: one durable workflow per after-sales case, from intake to closed.

Staff actions and customer answers are updates with validators, so an action that
does not fit the case's stage is refused before it enters history. Deadlines are
durable timers computed from the SLA clocks. Every change is written to the read
model by a local projection activity before the update returns, so what the API
answers and what a page shows agree.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from activities.order_system import OrderActivities
    from activities.projection import CaseProjector
    from activities.triage import TriageActivities
    from workflows.case import clocks
    from workflows.case.contracts import (
        ACTION_STAGES,
        AT_RISK_SHARE,
        GOODS_RESOLUTIONS,
        OPEN_STAGES,
        REOPEN_WINDOW_DAYS,
        AnalyzeInput,
        ApproveInput,
        AssignInput,
        CaseInput,
        CaseResult,
        CaseSnapshot,
        ConfirmInput,
        CourierEvent,
        Customer,
        DeliveryInput,
        FeedbackInput,
        InspectInput,
        LogisticsException,
        NoteInput,
        OrderLookup,
        OrderSnapshot,
        OutboxMessage,
        Projection,
        ReasonInput,
        ReplyInput,
        RequestInfoInput,
        Resolution,
        ResolveInput,
        RevisitInput,
        StageClock,
        TimelineEvent,
        Triage,
        TriageRequest,
        UpdateResult,
        raise_priority,
    )
    from workflows.case.eligibility import check_eligibility
    from workflows.case.priority import score_priority
    from workflows.case.sagas import LEGAL_CALENDAR, ResolutionSagas
    from workflows.case.saga import error_message, error_type
    from workflows.sla import BusinessCalendar, format_duration

# Search attributes, registered by `aftersales.temporal.ensure_search_attributes`.
# No personal data here: ids, enumerations and times only.
SA_STAGE = SearchAttributeKey.for_keyword("CaseStage")
SA_KIND = SearchAttributeKey.for_keyword("CaseKind")
SA_PRIORITY = SearchAttributeKey.for_keyword("CasePriority")
SA_ASSIGNEE = SearchAttributeKey.for_keyword("CaseAssignee")
SA_DUE_AT = SearchAttributeKey.for_datetime("CaseDueAt")
SA_OVERDUE = SearchAttributeKey.for_bool("CaseOverdue")
SEARCH_ATTRIBUTES = (SA_STAGE, SA_KIND, SA_PRIORITY, SA_ASSIGNEE, SA_DUE_AT, SA_OVERDUE)

SYSTEM = "system"
# Clocks that warn before they breach and escalate a second time; the revisit clock
# only turns overdue.
WARNED_CLOCKS = ("confirm", "analyze", "resolution", "legal_refund")
# Clocks whose target follows kind and priority; the legal clock's is the law's.
RETARGETED_CLOCKS = ("confirm", "analyze", "resolution")
CUSTOMER = "customer"

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


def refuse(message: str, kind: str = "WrongStage") -> ApplicationError:
    """An action refused by a validator; `kind` maps to the HTTP status."""
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn
class CaseWorkflow(ResolutionSagas):
    @workflow.init
    def __init__(self, inp: CaseInput) -> None:
        self._inp = inp
        self._calendar = BusinessCalendar.from_spec(inp.policy.calendar)
        self._stage = "record"
        self._status = "open"
        self._kind = inp.kind
        self._priority = inp.priority or inp.policy.priority.default
        self._priority_reasons: list[str] = []
        self._assignee: str | None = None
        self._order: OrderSnapshot | None = None
        self._created_at: datetime | None = None
        self._clocks: list[StageClock] = []
        self._breaches: list[dict] = []
        self._analysis: dict | None = None
        self._resolution: Resolution | None = None
        self._rating: int | None = None
        self._rating_comment: str | None = None
        self._question: str | None = None
        self._feedback_due_at: datetime | None = None
        self._revisit_due_at: datetime | None = None
        self._revisit_notified = False
        self._resolved_at: datetime | None = None
        self._closed_at: datetime | None = None
        self._reopen_count = 0
        self._recorded = False
        self._projected = False
        self._intake_error: str | None = None
        self._version = 0
        self._seq = 0
        self._outbox_seq = 0
        self._events: list[TimelineEvent] = []
        self._outbox: list[OutboxMessage] = []
        self._wake = False
        self._published_sa: dict[str, object] = {}
        self._eligibility: dict = {"eligible": True, "reasons": []}
        self._customer = inp.customer
        self._proposal: dict | None = None
        self._confirmed_at: datetime | None = None
        self._points_given = 0
        self._waiting_on: str | None = None
        self._logistics_seen: set[str] = set()
        self._parcels: dict[str, dict] = {}
        self._seen_courier_events: set[str] = set()
        self._inspection: dict | None = None
        self._refunded = Decimal(0)
        self._resolution_attempt = 0
        self._saga_task: asyncio.Task | None = None
        self._deliveries: list[asyncio.Task] = []
        self._triage: Triage | None = None

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: CaseInput) -> CaseResult:
        self._created_at = workflow.now()
        self._event(inp.opened_by, "created", detail={"channel": inp.channel})
        if not await self._record():
            await self._deliveries_done()
            return CaseResult(inp.case_id, "record", recorded=False, error=self._intake_error)
        await self._flush()

        while True:
            if self._stage == "cancelled":
                break
            if self._stage == "closed" and self._reopen_expired():
                break
            if (self._resolution is not None and self._resolution.state == "planned"
                    and (self._saga_task is None or self._saga_task.done())):
                self._resolution.state = "running"
                self._saga_task = asyncio.create_task(self._run_resolution())
            timeout = self._time_to_next_deadline()
            try:
                await workflow.wait_condition(lambda: self._wake, timeout=timeout)
            except TimeoutError:
                pass
            self._wake = False
            self._fire_deadlines()
            if self._dirty():
                await self._flush()

        if self._saga_task is not None:
            await self._saga_task
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._dirty():
            await self._flush()
        await self._deliveries_done()
        return CaseResult(inp.case_id, self._stage, recorded=True)

    async def _record(self) -> bool:
        """Enrich from the order system, score priority, start the clocks."""
        inp = self._inp
        try:
            order = await self._lookup_order(ORDER_LOOKUP_FIRST_BUDGET)
        except ActivityError as err:
            if error_type(err) == "OrderNotFound":
                self._intake_error = f"order {inp.order_id} not found in the order system"
                return False
            # The order system is down: the case exists and waits on it.
            self._status = "waiting_on_system"
            self._waiting_on = "order system"
            self._start_clocks()
            self._recorded = True
            self._event(SYSTEM, "waiting", detail={"on": "order system"})
            await self._flush()
            try:
                order = await self._lookup_order(None)
            except ActivityError as err2:
                self._intake_error = (
                    f"order {inp.order_id} not found in the order system"
                    if error_type(err2) == "OrderNotFound"
                    else f"the order system refused order {inp.order_id}: {error_message(err2)}")
                self._event(SYSTEM, "cancelled", "record", "cancelled",
                            {"reason": self._intake_error, "error": error_type(err2)})
                self._stage = "cancelled"
                self._status = "cancelled"
                await self._flush()
                return False
        self._order = order
        self._waiting_on = None
        self._customer = _enrich_customer(inp.customer, order.customer)
        recent = list(inp.recent_cases)
        if inp.repeat_of and inp.repeat_of not in recent:
            recent.insert(0, inp.repeat_of)
        if workflow.patched("triage-at-record"):
            self._triage = await self._run_triage()
        risk = self._triage.escalation_risk if self._triage else None
        self._priority, self._priority_reasons = score_priority(
            inp.policy.priority, inp.priority, self._customer.tier, inp.description, recent,
            order.total, escalation_risk=risk.reasons if risk and risk.value else None,
        )
        if not self._clocks:
            self._start_clocks()
        else:
            for clock in self._clocks:
                clocks.retarget_clock(clock, self._target(clock.name), workflow.now(),
                                      self._calendar)
        self._eligibility = check_eligibility(inp.kind, inp.items, order, workflow.now(),
                                              inp.policy, inp.returned)
        self._status = "open"
        self._recorded = True
        recorded: dict = {
            "priority": self._priority,
            "priority_reasons": self._priority_reasons,
            "order_status": order.status,
            "eligibility": self._eligibility,
        }
        if self._triage:
            recorded["triage"] = _triage_summary(self._triage)
        self._event(SYSTEM, "recorded", "record", "confirm", recorded)
        self._stage = "confirm"
        self._notify_customer("case_opened", {"customer_url": inp.customer_url})
        if risk and risk.value:
            # The customer threatens to take it further: a supervisor should know now,
            # not when a clock breaches.
            self._event(SYSTEM, "escalation_risk", detail={
                "reasons": risk.reasons, "confidence": risk.confidence,
                "priority": self._priority})
            self._notify_staff("role:supervisor", "escalation_risk", {
                "reasons": risk.reasons, "priority": self._priority,
                "kind": self._kind, "order_id": inp.order_id})
        return True

    async def _run_triage(self) -> Triage | None:
        """The model's suggestions for the description (a local activity: quick, and
        the model is loaded once per worker process). None if it cannot run."""
        inp = self._inp
        try:
            return await workflow.execute_local_activity_method(
                TriageActivities.suggest,
                TriageRequest(inp.description, inp.channel, inp.order_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TRIAGE_RETRY,
            )
        except ActivityError as err:
            self._event(SYSTEM, "triage_failed", detail={"error": error_message(err)})
            return None

    async def _lookup_order(self, budget: timedelta | None) -> OrderSnapshot:
        return await workflow.execute_activity_method(
            OrderActivities.lookup_order,
            OrderLookup(self._inp.order_id),
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=budget,
            retry_policy=ORDER_RETRY,
        )

    def _start_clocks(self) -> None:
        now = workflow.now()
        self._clocks.append(clocks.start_clock("confirm", self._target("confirm"), now,
                                               self._calendar))
        self._clocks.append(clocks.start_clock("resolution", self._target("resolution"), now,
                                               self._calendar))

    # ------------------------------------------------------------ queries

    @workflow.query
    def snapshot(self) -> CaseSnapshot:
        """The case as it stands, as the read model would store it."""
        return self._snapshot()

    # ------------------------------------------------------------ intake

    @workflow.update
    async def intake(self) -> UpdateResult:
        """Answers once the record stage is done: the case, or why it was refused."""
        await workflow.wait_condition(
            lambda: (self._recorded and self._projected) or self._intake_error is not None)
        if self._intake_error is not None and not self._recorded:
            raise ApplicationError(self._intake_error, type="OrderNotFound", non_retryable=True)
        return self._result()

    # ------------------------------------------------------------ staff actions

    @workflow.update
    async def assign(self, inp: AssignInput) -> UpdateResult:
        before = self._assignee
        self._assignee = inp.assignee
        self._event(inp.actor.name, "assigned", detail={"from": before, "to": inp.assignee})
        if inp.assignee != inp.actor.name:
            self._notify_staff(inp.assignee, "case_assigned", {"by": inp.actor.name})
        return await self._commit()

    @assign.validator
    def _validate_assign(self, inp: AssignInput) -> None:
        self._require_stage("assign")

    @workflow.update
    async def confirm(self, inp: ConfirmInput) -> UpdateResult:
        now = workflow.now()
        self._confirmed_at = self._confirmed_at or now
        changes: dict[str, object] = {}
        if inp.kind and inp.kind != self._kind:
            changes["kind"] = {"from": self._kind, "to": inp.kind}
            self._kind = inp.kind
        if inp.priority and inp.priority != self._priority:
            changes["priority"] = {"from": self._priority, "to": inp.priority}
            self._priority = inp.priority
        if changes:
            self._retarget_all(now)
        self._stop("confirm", now)
        self._clocks.append(clocks.start_clock("analyze", self._target("analyze"), now,
                                               self._calendar))
        if self._assignee is None:
            self._assignee = inp.actor.name
            changes["assignee"] = inp.actor.name
        if self._triage:
            changes["suggested_kind"] = self._triage.kind.value
        self._move("confirm", "analyze", inp.actor.name, "confirmed",
                   {"note": inp.note, **changes})
        self._notify_customer("case_confirmed", {})
        return await self._commit()

    @confirm.validator
    def _validate_confirm(self, inp: ConfirmInput) -> None:
        self._require_stage("confirm")

    @workflow.update
    async def reject(self, inp: ReasonInput) -> UpdateResult:
        self._end_cancelled(inp.actor.name, "rejected", inp.reason)
        self._notify_customer("case_rejected", {"reason": inp.reason})
        return await self._commit()

    @reject.validator
    def _validate_reject(self, inp: ReasonInput) -> None:
        self._require_stage("reject")

    @workflow.update
    async def analyze(self, inp: AnalyzeInput) -> UpdateResult:
        now = workflow.now()
        self._analysis = {
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
        if self._triage:
            detail["suggested_root_cause"] = self._triage.root_cause.value
        self._move("analyze", "resolve", inp.actor.name, "analyzed", detail)
        return await self._commit()

    @analyze.validator
    def _validate_analyze(self, inp: AnalyzeInput) -> None:
        self._require_stage("analyze")

    @workflow.update
    async def resolve(self, inp: ResolveInput) -> UpdateResult:
        plan = replace(inp.resolution, state="planned", steps=[], done_at=None,
                       note=inp.note or inp.resolution.note, awaiting=None, refs={},
                       approved_by=None)
        self._resolution = plan
        self._resolution_attempt += 1
        self._proposal = None  # the handler has chosen
        self._status = "resolving"
        detail = _resolution_detail(plan)
        if plan.type in GOODS_RESOLUTIONS and not self._eligibility["eligible"]:
            detail["eligibility_overridden_by"] = inp.actor.name
        self._event(inp.actor.name, "resolution_planned", detail=detail)
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

    @resolve.validator
    def _validate_resolve(self, inp: ResolveInput) -> None:
        self._require_stage("resolve")
        if self._resolution is not None and self._resolution.state in ("planned", "running"):
            raise refuse("a resolution is already running for this case")
        res = inp.resolution
        if res.type == "compensation" and not (res.coupon_code or res.points or res.amount):
            raise refuse("a compensation needs a coupon_code, points or an amount",
                         "InvalidAction")
        if res.type == "refund" and not res.amount:
            raise refuse("a refund needs an amount", "InvalidAction")
        if res.type in GOODS_RESOLUTIONS:
            if not res.items:
                raise refuse(f"a {res.type} needs the items that move", "InvalidAction")
            if not self._eligibility["eligible"] and inp.actor.role not in ("supervisor",
                                                                            "admin"):
                raise refuse("not eligible: " + "; ".join(self._eligibility["reasons"])
                             + " (a supervisor can override)", "InvalidAction")
            bought: dict[str, int] = {}
            for line in (self._order.lines if self._order else []):
                bought[line.sku] = bought.get(line.sku, 0) + line.quantity
            for item in res.items:
                if item.quantity > bought.get(item.sku, 0):
                    raise refuse(f"{item.sku} x{item.quantity} is more than the order has "
                                 f"({bought.get(item.sku, 0)})", "InvalidAction")
        money = res.amount if res.type in ("refund", "return_refund") or (
            res.type == "compensation" and not (res.coupon_code or res.points)) else None
        if money is not None:
            refundable = self._refundable()
            if Decimal(money) > refundable:
                raise refuse(f"{money} is more than the {refundable:.2f} left to refund on "
                             f"this order", "InvalidAction")

    @workflow.update
    async def inspect(self, inp: InspectInput) -> UpdateResult:
        self._inspection = {"passed": inp.passed, "note": inp.note, "by": inp.actor.name}
        self._event(inp.actor.name, "inspected", detail={"passed": inp.passed,
                                                         "note": inp.note})
        return await self._commit()

    @inspect.validator
    def _validate_inspect(self, inp: InspectInput) -> None:
        self._require_stage("inspect")
        if self._resolution is None or self._resolution.awaiting != "inspection":
            raise refuse("no returned goods are awaiting inspection on this case")

    @workflow.update
    async def request_info(self, inp: RequestInfoInput) -> UpdateResult:
        now = workflow.now()
        self._question = inp.question
        self._status = "waiting_on_customer"
        for clock in self._open_clocks():
            if clock.name != "legal_refund":  # the law does not wait for the customer
                clocks.pause_clock(clock, now, "waiting_on_customer", self._calendar)
        self._event(inp.actor.name, "info_requested", detail={"question": inp.question})
        self._notify_customer("info_requested", {"question": inp.question,
                                                 "customer_url": self._inp.customer_url})
        return await self._commit()

    @request_info.validator
    def _validate_request_info(self, inp: RequestInfoInput) -> None:
        self._require_stage("request-info")
        if self._question is not None:
            raise refuse("the customer has not answered the previous question yet")

    @workflow.update
    async def note(self, inp: NoteInput) -> UpdateResult:
        self._event(inp.actor.name, "note", detail={"text": inp.text})
        return await self._commit()

    @note.validator
    def _validate_note(self, inp: NoteInput) -> None:
        self._require_stage("note")

    @workflow.update
    async def escalate(self, inp: ReasonInput) -> UpdateResult:
        self._event(inp.actor.name, "escalated", detail={"reason": inp.reason,
                                                         "rule": "manual"})
        self._notify_staff("role:supervisor", "case_escalated", {"reason": inp.reason,
                                                                "by": inp.actor.name})
        return await self._commit()

    @escalate.validator
    def _validate_escalate(self, inp: ReasonInput) -> None:
        self._require_stage("escalate")

    @workflow.update
    async def approve(self, inp: ApproveInput) -> UpdateResult:
        assert self._resolution is not None
        self._resolution.approved_by = inp.actor.name
        self._event(inp.actor.name, "approved", detail={"note": inp.note})
        return await self._commit()

    @approve.validator
    def _validate_approve(self, inp: ApproveInput) -> None:
        self._require_stage("approve")
        if inp.actor.role not in ("supervisor", "admin"):
            raise refuse("only a supervisor may approve", "Forbidden")
        if self._resolution is None or self._resolution.awaiting != "approval":
            raise refuse("nothing on this case awaits a supervisor's approval")

    @workflow.signal
    def logistics_exception(self, event: LogisticsException) -> None:
        """The courier reports the order's own delivery delayed, lost or damaged: tell
        the customer and propose the policy's resolution to the handler."""
        if event.event_id in self._logistics_seen or self._stage not in OPEN_STAGES:
            return
        self._logistics_seen.add(event.event_id)
        proposal = self._inp.policy.logistics_proposals.get(event.status)
        self._event("courier", "logistics_exception", detail={
            "waybill": event.waybill_no, "status": event.status, "detail": event.detail,
            "proposal": proposal})
        self._notify_customer("parcel_" + event.status, {"waybill": event.waybill_no})
        if proposal:
            self._proposal = {"type": proposal, "reason": f"parcel {event.waybill_no} "
                              f"{event.status}", "at": workflow.now().isoformat()}
            self._notify_staff(self._assignee or "role:handler", "resolution_proposed",
                               dict(self._proposal))
        self._wake = True

    @workflow.signal
    def courier_event(self, event: CourierEvent) -> None:
        """A tracking event from the courier's webhook (deduplicated, ordered)."""
        self._apply_courier_event(event)

    @workflow.update
    async def revisit(self, inp: RevisitInput) -> UpdateResult:
        now = workflow.now()
        self._stop("revisit", now)
        detail = {"outcome": inp.outcome, "note": inp.note}
        if inp.outcome == "unsatisfied":
            self._event(inp.actor.name, "revisited", detail=detail)
            self._reopen(inp.actor.name, f"revisit: customer unsatisfied. {inp.note}".strip())
        else:
            self._move("revisit", "closed", inp.actor.name, "revisited", detail)
            self._close(now)
        return await self._commit()

    @revisit.validator
    def _validate_revisit(self, inp: RevisitInput) -> None:
        self._require_stage("revisit")

    @workflow.update
    async def reopen(self, inp: ReasonInput) -> UpdateResult:
        self._reopen(inp.actor.name, inp.reason)
        return await self._commit()

    @reopen.validator
    def _validate_reopen(self, inp: ReasonInput) -> None:
        self._require_stage("reopen")
        if self._stage == "closed" and self._reopen_expired():
            raise refuse(f"a case can be reopened within {REOPEN_WINDOW_DAYS} days of closing")

    @workflow.update
    async def cancel(self, inp: ReasonInput) -> UpdateResult:
        self._end_cancelled(inp.actor.name, "cancelled", inp.reason)
        self._notify_customer("case_cancelled", {"reason": inp.reason})
        return await self._commit()

    @cancel.validator
    def _validate_cancel(self, inp: ReasonInput) -> None:
        self._require_stage("cancel")
        if self._resolution is not None and self._resolution.state == "running":
            raise refuse("the resolution is running; cancel once it has finished or failed")

    # ------------------------------------------------------------ customer

    @workflow.update
    async def feedback(self, inp: FeedbackInput) -> UpdateResult:
        now = workflow.now()
        self._rating = inp.rating
        self._rating_comment = inp.comment
        if inp.rating <= 2:
            # An unhappy customer is called back at once, not days later.
            self._revisit_due_at = now
        self._move("feedback", "revisit", CUSTOMER, "feedback",
                   {"rating": inp.rating, "comment": inp.comment})
        self._start_revisit(now)
        return await self._commit()

    @feedback.validator
    def _validate_feedback(self, inp: FeedbackInput) -> None:
        if self._stage != "feedback":
            raise refuse("the case is not waiting for your rating")
        if not 1 <= inp.rating <= 5:
            raise refuse("rating must be 1 to 5", "InvalidAction")

    @workflow.update
    async def reply(self, inp: ReplyInput) -> UpdateResult:
        now = workflow.now()
        question = self._question
        self._question = None
        self._status = "resolving" if self._resolution_running() else "open"
        for clock in self._clocks:
            # Only what waited on the customer; a parcel in transit keeps its own pause.
            if clock.paused_reason == "waiting_on_customer":
                clocks.resume_clock(clock, now, self._calendar_for(clock))
        self._event(CUSTOMER, "customer_replied", detail={"question": question,
                                                          "message": inp.message})
        if self._assignee:
            self._notify_staff(self._assignee, "customer_replied", {})
        return await self._commit()

    @reply.validator
    def _validate_reply(self, inp: ReplyInput) -> None:
        if self._question is None or self._stage not in OPEN_STAGES:
            raise refuse("the case is not waiting for an answer from you")

    # ------------------------------------------------------------ resolution

    def _resolution_done(self, plan: Resolution) -> None:
        now = workflow.now()
        plan.state = "done"
        plan.done_at = now
        self._resolved_at = now
        self._stop("resolution", now)
        self._status = "waiting_on_customer" if self._question else "open"
        self._feedback_due_at = now + timedelta(seconds=self._inp.policy.feedback_window)
        self._revisit_due_at = self._calendar.add(now, self._target("revisit_after"))
        self._move("resolve", "feedback", SYSTEM, "resolved", _resolution_detail(plan))
        # One message tells the customer the resolution is done and asks for the rating.
        self._notify_customer("rating_request", {"customer_url": self._inp.customer_url})

    def _resolution_failed(self, plan: Resolution, reason: str) -> None:
        plan.state = "failed"
        self._status = "open"
        self._event(SYSTEM, "resolution_failed", "resolve", "analyze",
                    {"type": plan.type, "reason": reason})
        self._stage = "analyze"
        self._clocks.append(clocks.start_clock("analyze", self._target("analyze"),
                                               workflow.now(), self._calendar))
        if self._assignee:
            self._notify_staff(self._assignee, "resolution_failed", {"reason": reason})

    def _resolution_running(self) -> bool:
        return self._resolution is not None and self._resolution.state in ("planned", "running")

    # ------------------------------------------------------------ deadlines

    def _time_to_next_deadline(self) -> timedelta | None:
        now = workflow.now()
        instants = [at for clock in self._clocks for at, _ in self._pending_marks(clock)]
        if self._stage == "feedback" and self._feedback_due_at:
            instants.append(self._feedback_due_at)
        if self._stage == "revisit" and self._revisit_due_at and not self._revisit_notified:
            instants.append(self._revisit_due_at)
        if self._stage == "closed" and self._closed_at:
            instants.append(self._closed_at + timedelta(days=REOPEN_WINDOW_DAYS))
        if not instants:
            return None
        return max(min(instants) - now, timedelta(0)) + timedelta(milliseconds=1)

    def _pending_marks(self, clock: StageClock) -> list[tuple[datetime, float]]:
        """The shares of this clock's target still to be announced, with when they fall:
        warnings (policy's warn_at), the breach (1.0) and the second escalation."""
        if clock.state != "running":
            return []
        shares: list[float] = []
        if clock.name in WARNED_CLOCKS:
            shares += [w for w in self._inp.policy.warn_at if w not in clock.warned]
        if clock.breached_at is None:
            shares.append(1.0)
        elif clock.name in WARNED_CLOCKS and clock.escalations < 2:
            shares.append(self._inp.policy.escalate_again_at)
        marks = []
        for share in shares:
            at = clocks.instant_at_share(clock, share, self._calendar_for(clock))
            if at is not None:
                marks.append((at, share))
        return marks

    def _fire_deadlines(self) -> None:
        now = workflow.now()
        for clock in list(self._clocks):
            for at, share in sorted(self._pending_marks(clock), key=lambda m: m[1]):
                if at > now:
                    break
                if share < 1.0:
                    self._warn(clock, share)
                elif clock.breached_at is None:
                    self._breach(clock, now)
                else:
                    self._escalate_again(clock)
        if self._stage == "feedback" and self._feedback_due_at and self._feedback_due_at <= now:
            self._move("feedback", "revisit", SYSTEM, "feedback_timeout",
                       {"outcome": "no response"})
            self._start_revisit(now)
        if (self._stage == "revisit" and not self._revisit_notified and self._revisit_due_at
                and self._revisit_due_at <= now):
            self._revisit_notified = True
            self._event(SYSTEM, "revisit_due")
            self._notify_staff(self._assignee or "role:handler", "revisit_due", {})
            if workflow.patched(NOTIFY_PATCH):
                self._notify_customer("revisit", {"customer_url": self._inp.customer_url})

    def _warn(self, clock: StageClock, share: float) -> None:
        """A share of a target is used: tell the assignee before it is too late."""
        clock.warned.append(share)
        due = clocks.instant_at_share(clock, 1.0, self._calendar_for(clock))
        rule = (f"{share:.0%} of the {clock.name} target ({format_duration(clock.target)}) "
                f"for {self._priority}")
        self._event(SYSTEM, "sla_warning", detail={
            "clock": clock.name, "share": share, "rule": rule,
            "due_at": due.isoformat() if due else None})
        self._notify_staff(self._assignee or "role:handler", "sla_warning",
                           {"clock": clock.name, "share": share, "rule": rule})

    def _breach(self, clock: StageClock, now: datetime) -> None:
        """100 % of a target: overdue for good, escalated to the supervisors, priority one
        level up and, if the policy says so, reassigned."""
        clock.breached_at = now
        clock.escalations = 1
        self._breaches.append({"clock": clock.name, "at": now.isoformat(),
                               "target_s": clock.target, "priority": self._priority})
        rule = (f"100% of the {clock.name} target ({format_duration(clock.target)}) "
                f"for {self._priority}")
        self._event(SYSTEM, "overdue", detail={"clock": clock.name, "rule": rule})
        detail: dict = {"level": 1, "to": "supervisor", "rule": rule, "clock": clock.name}
        raised = raise_priority(self._priority)
        if raised != self._priority:
            detail["priority"] = {"from": self._priority, "to": raised}
            self._priority = raised
            self._retarget_all(now)
        reassign = self._inp.policy.reassign_on_overdue
        if reassign and reassign != self._assignee:
            detail["assignee"] = {"from": self._assignee, "to": reassign}
            self._assignee = reassign
            self._notify_staff(reassign, "case_assigned", {"by": SYSTEM, "rule": rule})
        self._event(SYSTEM, "escalated", detail=detail)
        self._notify_staff("role:supervisor", "case_overdue",
                           {"clock": clock.name, "rule": rule, "assignee": self._assignee})

    def _escalate_again(self, clock: StageClock) -> None:
        """Still open at the policy's second share (150 %): the admins are told."""
        clock.escalations = 2
        share = self._inp.policy.escalate_again_at
        rule = f"{share:.0%} of the {clock.name} target ({format_duration(clock.target)})"
        self._event(SYSTEM, "escalated", detail={"level": 2, "to": "admin", "rule": rule,
                                                 "clock": clock.name})
        self._notify_staff("role:admin", "case_overdue_again",
                           {"clock": clock.name, "rule": rule, "assignee": self._assignee})

    def _start_revisit(self, now: datetime) -> None:
        due = self._revisit_due_at or now
        due = max(due, now)
        self._revisit_due_at = due
        self._revisit_notified = False
        # The call is expected at `due`; the handler has a working day to make it.
        clock = StageClock(name="revisit", target=self._inp.policy.revisit_grace + int(
            self._calendar.working_seconds(now, due)), running_since=now)
        clock.due_at = self._calendar.add(now, clock.target)
        self._clocks.append(clock)

    # ------------------------------------------------------------ transitions

    def _require_stage(self, action: str) -> None:
        allowed = ACTION_STAGES[action]
        if self._stage not in allowed:
            raise refuse(
                f"'{action}' is not allowed while the case is in stage '{self._stage}'"
                f" (allowed in: {', '.join(allowed)})"
            )

    def _move(self, before: str, after: str, actor: str, kind: str, detail: dict) -> None:
        self._stage = after
        self._event(actor, kind, before, after, detail)

    def _stop(self, name: str, now: datetime) -> None:
        for clock in self._clocks:
            if clock.name == name and clocks.is_open(clock):
                was_breached = clock.breached_at is not None
                clocks.stop_clock(clock, now, self._calendar_for(clock))
                if clock.breached_at is not None and not was_breached:
                    # Over its target at the moment it stopped (e.g. a new, shorter
                    # target): the breach is recorded like any other.
                    self._breaches.append({"clock": clock.name, "at": now.isoformat(),
                                           "target_s": clock.target,
                                           "priority": self._priority})
                    self._event(SYSTEM, "overdue", detail={
                        "clock": clock.name,
                        "rule": f"100% of the {clock.name} target "
                                f"({format_duration(clock.target)}) for {self._priority}, "
                                "reached when the clock stopped"})

    def _open_clocks(self) -> list[StageClock]:
        return [c for c in self._clocks if clocks.is_open(c)]

    def _retarget_all(self, now: datetime) -> None:
        for clock in self._open_clocks():
            # A breached clock keeps the target it breached against, so its second
            # escalation is measured against the same yardstick.
            if clock.name in RETARGETED_CLOCKS and clock.breached_at is None:
                clocks.retarget_clock(clock, self._target(clock.name), now, self._calendar)

    def _reopen(self, actor: str, reason: str) -> None:
        now = workflow.now()
        before = self._stage
        for clock in self._open_clocks():
            clocks.stop_clock(clock, now, self._calendar_for(clock))
        self._reopen_count += 1
        self._closed_at = None
        self._resolution = None
        self._question = None
        self._status = "open"
        self._feedback_due_at = None
        self._revisit_due_at = None
        # A reopened case starts fresh analyze and resolution clocks (docs/sla.md).
        self._clocks.append(clocks.start_clock("analyze", self._target("analyze"), now,
                                               self._calendar))
        self._clocks.append(clocks.start_clock("resolution", self._target("resolution"), now,
                                               self._calendar))
        self._move(before, "analyze", actor, "reopened", {"reason": reason,
                                                          "reopen_count": self._reopen_count})
        if self._assignee:
            self._notify_staff(self._assignee, "case_reopened", {"reason": reason})

    def _end_cancelled(self, actor: str, kind: str, reason: str) -> None:
        now = workflow.now()
        for clock in self._open_clocks():
            clocks.stop_clock(clock, now, self._calendar_for(clock))
        self._status = "cancelled"
        self._closed_at = now
        self._move(self._stage, "cancelled", actor, kind, {"reason": reason})
        self._wake = True

    def _close(self, now: datetime) -> None:
        self._status = "closed"
        self._closed_at = now
        self._event(SYSTEM, "closed", "closed", "closed")
        self._wake = True

    def _reopen_expired(self) -> bool:
        return (self._closed_at is not None
                and workflow.now() >= self._closed_at + timedelta(days=REOPEN_WINDOW_DAYS))

    def _calendar_for(self, clock: StageClock) -> BusinessCalendar:
        # Legal deadlines count calendar days, not the retailer's working hours.
        return LEGAL_CALENDAR if clock.name == "legal_refund" else self._calendar

    def _target(self, name: str) -> int:
        targets = self._inp.policy.targets_for(self._kind, self._priority)
        return int(getattr(targets, name))

    # ------------------------------------------------------------ recording

    def _event(self, actor: str, kind: str, before: str | None = None,
               after: str | None = None, detail: dict | None = None) -> None:
        self._seq += 1
        self._events.append(TimelineEvent(
            seq=self._seq, at=workflow.now(), actor=actor, type=kind,
            stage_before=before or self._stage, stage_after=after or self._stage,
            detail=detail or {},
        ))

    def _notify(self, channel: str, recipient: str, template: str, payload: dict) -> None:
        self._outbox_seq += 1
        self._outbox.append(OutboxMessage(
            key=f"{self._inp.case_id}:{self._outbox_seq}", at=workflow.now(),
            channel=channel, recipient=recipient, template=template,
            payload={"case_id": self._inp.case_id, **payload},
        ))

    def _notify_customer(self, template: str, payload: dict) -> None:
        self._notify("customer", self._customer.id, template, payload)

    def _notify_staff(self, recipient: str, template: str, payload: dict) -> None:
        self._notify("staff", recipient, template, payload)

    def _dirty(self) -> bool:
        return bool(self._events or self._outbox)

    async def _commit(self) -> UpdateResult:
        self._wake = True
        await self._flush()
        return self._result()

    def _result(self) -> UpdateResult:
        return UpdateResult(self._inp.case_id, self._version, self._stage, self._status)

    async def _flush(self) -> None:
        """Write the current state, new timeline events and outbox rows in one step."""
        self._version += 1
        projection = Projection(snapshot=self._snapshot(), events=self._events,
                                outbox=self._outbox)
        self._events, self._outbox = [], []
        self._publish_search_attributes(projection.snapshot)
        await workflow.execute_local_activity_method(
            CaseProjector.project,
            projection,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=PROJECTION_RETRY,
        )
        self._projected = True
        if projection.outbox and workflow.patched(NOTIFY_PATCH):
            keys = [m.key for m in projection.outbox]
            self._deliveries = [t for t in self._deliveries if not t.done()]
            self._deliveries.append(asyncio.create_task(self._deliver(keys)))

    async def _deliver(self, keys: list[str]) -> None:
        """Send the rows this flush wrote; if it gives up, the scheduler's outbox sweep
        sends them later through the same claim."""
        try:
            await workflow.execute_activity_method(
                NotificationActivities.deliver, DeliveryInput(keys),
                start_to_close_timeout=DELIVERY_TIMEOUT, retry_policy=DELIVERY_RETRY)
        except ActivityError as err:
            workflow.logger.warning("notifications %s left to the outbox sweep: %s",
                                    ",".join(keys), error_message(err))

    async def _deliveries_done(self) -> None:
        pending = [t for t in self._deliveries if not t.done()]
        if pending:
            await asyncio.gather(*pending)

    def _publish_search_attributes(self, snap: CaseSnapshot) -> None:
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
        now = workflow.now()
        stage_clock = self._stage_clock()
        resolution_clock = next((c for c in reversed(self._clocks)
                                 if c.name == "resolution"), None)
        overdue = self._stage in OPEN_STAGES and any(
            c.breached_at is not None and clocks.is_open(c) for c in self._clocks
        )
        stage_due = stage_clock.due_at if stage_clock else None
        risks = [at for c in self._clocks if c.breached_at is None and self._stage in OPEN_STAGES
                 and (at := clocks.instant_at_share(c, AT_RISK_SHARE,
                                                    self._calendar_for(c))) is not None]
        if self._stage == "feedback":
            stage_due = self._feedback_due_at
        return CaseSnapshot(
            case_id=self._inp.case_id,
            version=self._version,
            kind=self._kind,
            channel=self._inp.channel,
            stage=self._stage,
            status=self._status,
            priority=self._priority,
            priority_reasons=list(self._priority_reasons),
            assignee=self._assignee,
            order_id=self._inp.order_id,
            customer=self._customer,
            items=self._inp.items,
            description=self._inp.description,
            created_at=self._created_at or now,
            updated_at=now,
            stage_due_at=stage_due,
            resolution_due_at=(resolution_clock.due_at if resolution_clock
                               and clocks.is_open(resolution_clock) else None),
            overdue=overdue,
            status_token=self._inp.status_token,
            customer_url=self._inp.customer_url,
            repeat_of=self._inp.repeat_of,
            order=self._order,
            clocks=[replace(c) for c in self._clocks],
            breaches=list(self._breaches),
            analysis=self._analysis,
            resolution=replace(self._resolution, steps=list(self._resolution.steps),
                               refs=dict(self._resolution.refs))
            if self._resolution else None,
            rating=self._rating,
            rating_comment=self._rating_comment,
            pending_question=self._question,
            revisit_due_at=self._revisit_due_at,
            feedback_due_at=self._feedback_due_at,
            closed_at=self._closed_at,
            reopen_count=self._reopen_count,
            sla_policy={"source": self._inp.policy.source,
                        "version": self._inp.policy.version},
            eligibility=dict(self._eligibility),
            proposal=dict(self._proposal) if self._proposal else None,
            confirmed_at=self._confirmed_at,
            resolved_at=self._resolved_at,
            refunded=f"{self._refunded:.2f}",
            compensation_points=self._points_given,
            waiting_on=self._waiting_on,
            at_risk_at=min(risks) if risks else None,
            triage=self._triage,
            parcels={number: {**p, "events": list(p["events"])}
                     for number, p in self._parcels.items()},
        )

    def _stage_clock(self) -> StageClock | None:
        name = {"confirm": "confirm", "analyze": "analyze", "resolve": "resolution",
                "revisit": "revisit", "record": "confirm"}.get(self._stage)
        if name is None:
            return None
        return next((c for c in reversed(self._clocks)
                     if c.name == name and clocks.is_open(c)), None)


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
    for name in ("amount", "coupon_code", "points", "note"):
        value = getattr(plan, name)
        if value:
            detail[name] = value
    if plan.items:
        detail["items"] = [{"sku": i.sku, "quantity": i.quantity} for i in plan.items]
    return detail


__all__ = ["SEARCH_ATTRIBUTES", "CaseWorkflow", "raise_priority"]
