"""The resolutions a case runs across the retailer's systems, each as a saga.

A mixin of `CaseWorkflow`: the steps call the order, inventory and courier activities
with idempotency keys derived from case id, attempt and step, so a retry or a replay
never refunds, reserves or ships twice. When a step fails for good, the finished
steps are compensated newest first and the case goes back to analyze with the reason.
Waiting for parcels, inspections and approvals happens here, in a task of its own, so
the case's deadline timers keep firing meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.case import clocks, remedies
from workflows.case.contracts import (
    CANCEL_PAYMENT_LINK,
    CANCEL_WAYBILL,
    CHECK_PAYMENT_LINK,
    CREATE_PAYMENT_LINK,
    CREATE_WAYBILL,
    GRANT_COMPENSATION,
    LOOKUP_ORDER,
    LOOKUP_PRODUCT,
    READ_STANDING,
    REFUND_PAYMENT,
    RELEASE_RESERVATION,
    RESERVE_STOCK,
    RESTOCK,
    SHIP_RESERVATION,
    ActivityRef,
    Address,
    CaseInput,
    CaseItem,
    CaseState,
    CompensationRequest,
    CourierEvent,
    OrderLookup,
    PaymentLink,
    PaymentLinkRequest,
    ProductLookup,
    RefundRequest,
    Reservation,
    ReservationRequest,
    Resolution,
    StandingRequest,
    StockMovement,
    Waybill,
    WaybillRequest,
)
from workflows.case.deadlines import LEGAL_CALENDAR
from workflows.case.log import SYSTEM, CaseLog
from workflows.case.saga import Saga, error_message, error_type
from workflows.case.vocabulary import (
    PARCEL_EXCEPTIONS,
    PARCEL_FAILED,
    PARCEL_RANK,
    REFUNDING_GRADES,
    RESTOCK_TO,
    Stage,
    Status,
)
from workflows.sla import BusinessCalendar, format_duration

# Business refusals end a step at once; everything else is retried with backoff.
SYSTEM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=30,
    non_retryable_error_types=[
        "OrderNotFound", "CompensationRefused", "RefundRefused", "InsufficientStock",
        "UnknownSku", "AlreadyPickedUp", "OrderSystemRefused", "InventorySystemRefused",
        "CourierSystemRefused", "AlreadyPaid",
    ],
)
# Undoing must not give up: a compensation is retried until the system answers.
COMPENSATION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1),
                                 maximum_interval=timedelta(minutes=5),
                                 non_retryable_error_types=["AlreadyPickedUp"])
CALL_TIMEOUT = timedelta(seconds=15)
# The approval limit counts the order's refunds so far (asked of the order system at the
# refund step), not each refund alone; cases that began before take the old path on replay.
APPROVAL_COUNTS_PATCH = "approval-counts-order-refunds"
# A refund waiting for approval longer than the policy's `approval_timeout` escalates, one
# level per timeout (a timer in the history); waits that began before keep the old wait.
APPROVAL_TIMEOUT_PATCH = "deny-approval-timeout"
# A repair outside the warranty waits at the repair centre for the customer's answer to
# its quote (docs/resolutions.md, "Warranty"); plans made before carry no quote.
WARRANTY_PATCH = "warranty-quote"
# The customer's page tells when a refund arrives and until when a coupon lasts: the
# receipts' details are kept in the plan's refs; resolutions that began before keep none.
RECEIPT_DETAILS_PATCH = "customer-receipt-details"
# An exchange for another SKU (`replacement_sku`): the replacement is priced, reserved and
# shipped, and the price difference refunded or paid by the customer through a payment
# link. Only plans with a replacement_sku take it, so earlier cases replay unchanged.
SWAP_PATCH = "swap-replacement-sku"
# How often a waiting exchange asks the order system whether the customer paid: soon at
# first, then less often (so a 48 h window stays a short history).
PAYMENT_POLL_FIRST = timedelta(seconds=5)
PAYMENT_POLL_MAX = timedelta(minutes=30)
# Inspections graded A-D (B pays the policy's share, restocked as open box; D flags the
# case for fraud review); returns inspected before the grades keep pass/fail on replay.
GRADES_PATCH = "grading-inspection-grades"
CENT = Decimal("0.01")
# A return_refund the policy's `instant_refund` allows pays at the pickup scan; a failed
# inspection then records a recovery task. Only cases under a policy with the rule reach
# it, and they mark the history.
INSTANT_PATCH = "grading-instant-refund"
# Time waiting for a supervisor's approval is not the handler's: the resolution clock
# pauses ("waiting_on_approval") until the decision; waits that began before count on.
APPROVAL_PAUSE_PATCH = "approval-pauses-resolution-clock"
# Who is told at each level of a waiting approval (docs/resolutions.md).
APPROVAL_LEVELS = ("supervisor", "admin")
# After this long without an answer the case shows that it waits on that system and
# retries on.
WAIT_VISIBLY_AFTER = timedelta(seconds=20)
WAREHOUSE = Address("Aftersales returns warehouse", "warehouse")
REPAIR_CENTRE = Address("Aftersales repair centre", "repair centre")


class ResolutionFailed(Exception):
    """A resolution cannot be completed; carries the reason for the handler."""


class ResolutionSagas:
    """The resolve stage's sagas, a collaborator of `CaseWorkflow`: it changes the case
    state it is given, records through the case's log, and asks the workflow to write
    (`flush`) whenever a step should be visible before the next one."""

    def __init__(self, inp: CaseInput, state: CaseState, log: CaseLog,
                 calendar: BusinessCalendar, flush: Callable[[], Awaitable[None]],
                 wake: Callable[[], None]) -> None:
        self._inp = inp
        self._state = state
        self._log = log
        self._calendar = calendar
        self._flush = flush
        self._wake = wake
        # The plan that runs (what it awaits and its approval are the plan's), the remedy
        # of it that runs now (its steps and refs), and that remedy's number in a
        # combined plan (0 for a single resolution: its keys carry no number).
        self._plan = Resolution(type="")
        self._current = self._plan
        self._remedy = 0
        # A refund waits for a supervisor with the resolution clock paused for it (see
        # APPROVAL_PAUSE_PATCH): the customer's answer hands their pause over to it.
        self.approval_pause = False

    async def run(self, plan: Resolution) -> None:
        """Run the plan's saga to its end. On a failure for good the finished steps, of
        every remedy of a combined plan, are compensated newest first, and
        ResolutionFailed carries the reason."""
        saga = Saga(plan)
        self._plan = self._current = plan
        self._remedy = 0
        try:
            if plan.remedies:
                await self._resolve_remedies(plan, saga)
            else:
                await self._runner(plan.type)(plan, saga)
        except (ActivityError, ResolutionFailed) as err:
            reason = error_message(err)
            plan.awaiting = None
            left = await saga.compensate()
            if left:
                reason += f"; could not undo {', '.join(left)}: settle them by hand"
            for remedy in plan.remedies:
                remedy.state = _outcome_after_failure(remedy)
            raise ResolutionFailed(reason) from err

    def _runner(self, kind: str) -> Callable[[Resolution, Saga], Awaitable[None]]:
        return {
            "apology": self._resolve_apology,
            "compensation": self._resolve_compensation,
            "refund": self._resolve_refund,
            "return_refund": self._resolve_return,
            "exchange": self._resolve_exchange,
            "repair": self._resolve_repair,
        }[kind]

    async def _resolve_remedies(self, plan: Resolution, saga: Saga) -> None:
        """A combined plan: one approval for the sum of its refunds (the whole list waits
        for it), then each remedy in order, as steps of the one saga."""
        if plan.amount:
            await self._await_approval(plan, plan.amount)
        for number, remedy in enumerate(plan.remedies, 1):
            self._current = saga.resolution = remedy
            self._remedy = number
            remedy.state = "running"
            await self._runner(remedy.type)(remedy, saga)
            remedy.state = "done"
            remedy.done_at = workflow.now()
        self._current = saga.resolution = plan
        self._remedy = 0

    # ----------------------------------------------------------------- the sagas

    async def _resolve_apology(self, plan: Resolution, saga: Saga) -> None:
        self._log.notify_customer("apology", {"note": plan.note})

    async def _resolve_compensation(self, plan: Resolution, saga: Saga) -> None:
        if plan.coupon_code or plan.points:
            receipt = await saga.step("grant_compensation", lambda: self._call(
                GRANT_COMPENSATION, CompensationRequest(
                    order_id=self._state.order_id, case_id=self._state.case_id,
                    idempotency_key=self._key("compensation"), coupon_code=plan.coupon_code,
                    points=plan.points, amount=plan.amount,
                    customer_id=self._state.customer.id)))
            plan.refs["compensation_id"] = receipt.id
            if receipt.expires_at is not None and workflow.patched(RECEIPT_DETAILS_PATCH):
                plan.refs["coupon_expires_at"] = receipt.expires_at.isoformat()
            self._state.compensation_points += receipt.points or 0
            self._step_event("grant_compensation", receipt=receipt.id,
                             coupon_code=receipt.coupon_code, points=receipt.points)
        else:
            await self._pay_refund(plan, saga, "partial_refund")

    async def _resolve_refund(self, plan: Resolution, saga: Saga) -> None:
        await self._pay_refund(plan, saga, "refund")

    async def _resolve_return(self, plan: Resolution, saga: Saga) -> None:
        pickup = await self._waybill(saga, "return_pickup", self._customer_address(),
                                     WAREHOUSE, plan.items)
        instant = False
        if self._instant_possible(plan) and workflow.patched(INSTANT_PATCH):
            instant = await self._instant_refund(plan, saga, pickup)
        try:
            await self._inspect_return(plan, saga, pickup, instant)
        except ResolutionFailed as err:
            if instant:
                # Paid at pickup, and the goods did not come back fit (lost on the way,
                # graded C or D): the merchant recovers the money by hand (no automatic
                # charge-back).
                self._record_recovery(plan, str(err))
            raise

    async def _inspect_return(self, plan: Resolution, saga: Saga, pickup: Waybill,
                              instant: bool) -> None:
        """The return's goods arrive, are inspected and restocked by grade, and refunded
        (unless the instant refund paid at pickup already)."""
        await self._await_parcel(plan, pickup)
        # Goods received: the legal refund clock starts now (e.g. 7 days in China); a
        # refund paid at pickup has nothing left for it to time.
        legal = None
        if not instant:
            legal = clocks.start_clock("legal_refund",
                                       self._inp.policy.refund_after_goods_received,
                                       workflow.now(), LEGAL_CALENDAR)
            self._state.clocks.append(legal)
            self._wake()
        passed, note = await self._await_inspection(plan)
        # Graded inspections (A-D) restock, refund and flag by grade; returns inspected
        # before keep pass/fail on replay.
        grade = (self._state.inspection or {}).get("grade") or ("A" if passed else "C")
        if not workflow.patched(GRADES_PATCH):
            grade = "A" if passed else "C"
        if grade not in REFUNDING_GRADES and legal is not None:
            clocks.stop_clock(legal, workflow.now(), LEGAL_CALENDAR)
        if grade == "D":
            # Not the item sent: it stays in the warehouse as evidence, nothing is paid.
            self._state.fraud_review = True
            self._log.event(SYSTEM, "fraud_review", detail={"grade": grade, "note": note})
            self._log.notify_staff("role:supervisor", "fraud_review", {"note": note})
            raise ResolutionFailed(f"inspection graded D, not the item sent: {note}; the "
                                   "goods are kept and the case is flagged for fraud review")
        if grade not in REFUNDING_GRADES:
            # Sending the goods back is what the failure means, not a step to undo.
            back = await self._waybill(None, "outbound", WAREHOUSE, self._customer_address(),
                                       plan.items, step="return_to_customer")
            raise ResolutionFailed(f"inspection failed: {note}; the goods go back to the "
                                   f"customer on waybill {back.waybill_no}")
        location = RESTOCK_TO[grade]
        for item in plan.items:
            movement = await self._call(RESTOCK, StockMovement(
                sku=item.sku, quantity=item.quantity, reference=self._state.case_id,
                idempotency_key=self._key(f"restock:{item.sku}"), location=location))
            plan.refs.setdefault("restocks", []).append(movement)
            self._step_event("restock", sku=item.sku, quantity=item.quantity, id=movement,
                             location=location if location != "stock" else None)
        if not instant:
            await self._pay_refund(plan, saga, "refund", share=self._share(grade))
        if legal is not None:
            clocks.stop_clock(legal, workflow.now(), LEGAL_CALENDAR)

    def _instant_possible(self, plan: Resolution) -> bool:
        """What the plan alone decides: the policy's rule is on, the customer's tier is in
        it and the refund is within its amount. A return outside it is simply not
        instant: it waits for the inspection."""
        rule = self._inp.policy.instant_refund
        return (self._state.customer.tier in rule.tiers and rule.per_customer_90d > 0
                and Decimal(self._refund_amount(plan)) <= Decimal(rule.max_amount))

    async def _instant_refund(self, plan: Resolution, saga: Saga, pickup: Waybill) -> bool:
        """Wait for the courier's pickup scan, ask the read model for the customer's
        standing (recorded in the history) and pay the refund now if it allows. Returns
        whether it paid."""
        parcel = self._state.parcels[pickup.waybill_no]
        self._plan.awaiting = "parcel"
        await self._flush()
        await workflow.wait_condition(lambda: PARCEL_RANK.get(parcel["status"], 0) >= 1)
        self._plan.awaiting = None
        if parcel["status"] in PARCEL_FAILED:
            return False  # cancelled before pickup: the parcel wait below fails it
        rule = self._inp.policy.instant_refund
        standing = await workflow.execute_activity(
            READ_STANDING.name, StandingRequest(self._state.customer.id, self._state.case_id,
                                                workflow.now()),
            result_type=READ_STANDING.result, start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=SYSTEM_RETRY)
        refused = None
        if standing.disputes:
            refused = f"open dispute on {', '.join(standing.disputes)}"
        elif standing.instant_refunds_90d >= rule.per_customer_90d:
            refused = (f"{standing.instant_refunds_90d} instant refunds in 90 days "
                       f"(at most {rule.per_customer_90d})")
        if refused:
            self._log.event(SYSTEM, "instant_refund_refused", detail={"reason": refused})
            return False
        await self._pay_refund(plan, saga, "instant_refund")
        self._state.instant_refund_at = workflow.now()
        plan.refs["instant_refund"] = True
        await self._flush()
        return True

    def _record_recovery(self, plan: Resolution, reason: str) -> None:
        """One recovery task for the merchant: the instant refund paid and why the goods
        failed. Recorded in the workflow's state, so once, whatever is retried."""
        task = {"id": f"{self._state.case_id}:{self._state.resolution_attempt}:"
                      f"{self._remedy or 0}:recovery",
                "amount": plan.refs.get("refunded"), "refund_id": plan.refs.get("refund_id"),
                "reason": reason, "at": workflow.now().isoformat(), "state": "open"}
        self._state.recovery_tasks.append(task)
        self._log.event(SYSTEM, "recovery_task", detail={
            k: task[k] for k in ("id", "amount", "refund_id", "reason")})
        self._log.notify_staff("role:supervisor", "recovery_task",
                               {"amount": task["amount"], "reason": reason})

    def _share(self, grade: str) -> Decimal:
        """The share of the refund the policy pays for goods of this grade."""
        return Decimal(self._inp.policy.grades.get(grade, "1"))

    async def _resolve_exchange(self, plan: Resolution, saga: Saga) -> None:
        if remedies.is_swap(plan) and workflow.patched(SWAP_PATCH):
            await self._resolve_swap(plan, saga)
            return
        reservations: list[Reservation] = []
        for item in plan.items:
            request = ReservationRequest(
                sku=item.sku, quantity=item.quantity, reference=self._state.case_id,
                idempotency_key=self._key(f"reserve:{item.sku}"))
            try:
                reservation = await saga.step(
                    f"reserve:{item.sku}",
                    partial(self._call, RESERVE_STOCK, request),
                    partial(self._release, plan, item.sku),
                )
            except ActivityError as err:
                if error_type(err) == "InsufficientStock":
                    raise ResolutionFailed(f"{item.sku} is out of stock: offer a refund "
                                           "instead") from err
                raise
            reservations.append(reservation)
            plan.refs.setdefault("reservations", {})[item.sku] = reservation.id
            self._step_event("reserve", sku=item.sku, reservation=reservation.id)
        outbound = await self._waybill(saga, "outbound", WAREHOUSE, self._customer_address(),
                                       plan.items, step="ship_replacement")
        for reservation in reservations:
            await self._call(SHIP_RESERVATION, reservation)
            # Shipped stock cannot be released: from here on the replacement is the
            # customer's, and a later failure is settled by the handler.
            plan.refs.setdefault("shipped", []).append(reservation.id)
        pickup = await self._waybill(saga, "return_pickup", self._customer_address(),
                                     WAREHOUSE, plan.items, step="collect_old")
        await self._await_parcel(plan, outbound, pause_clock=False)
        await self._await_parcel(plan, pickup)
        for item in plan.items:
            movement = await self._call(RESTOCK, StockMovement(
                sku=item.sku, quantity=item.quantity, reference=self._state.case_id,
                idempotency_key=self._key(f"restock:{item.sku}")))
            self._step_event("restock", sku=item.sku, quantity=item.quantity, id=movement)
        # Same SKU for the same SKU: there is no price difference to settle.
        plan.refs["price_difference"] = "0.00"

    async def _resolve_swap(self, plan: Resolution, saga: Saga) -> None:
        """An exchange for another SKU. The replacement is priced (the price the resolve
        fixed, or the catalogue's now) and reserved; a dearer one waits for the customer
        to pay the difference, or falls back to a refund when the window closes; then the
        replacement goes out, the old item comes back and is restocked, and a cheaper
        replacement's difference is refunded."""
        item, sku = plan.items[0], plan.replacement_sku or ""
        price = plan.replacement_price
        if price is None:
            try:
                product = await self._call(LOOKUP_PRODUCT, ProductLookup(sku))
            except ActivityError as err:
                if error_type(err) == "UnknownSku":
                    raise ResolutionFailed(f"the replacement {sku} is not in the catalogue"
                                           ) from err
                raise
            price = product.unit_price
        difference = remedies.swap_difference(plan, self.prices(), Decimal(price))
        plan.refs["replacement"] = {"sku": sku, "quantity": item.quantity,
                                    "unit_price": f"{Decimal(price):.2f}"}
        plan.refs["price_difference"] = f"{difference:.2f}"
        request = ReservationRequest(sku=sku, quantity=item.quantity,
                                     reference=self._state.case_id,
                                     idempotency_key=self._key(f"reserve:{sku}"))
        try:
            reservation = await saga.step(f"reserve:{sku}",
                                          partial(self._call, RESERVE_STOCK, request),
                                          partial(self._release, plan, sku))
        except ActivityError as err:
            if error_type(err) in ("InsufficientStock", "UnknownSku"):
                raise ResolutionFailed(f"the replacement {sku} is out of stock: offer a "
                                       "refund instead") from err
            raise
        plan.refs.setdefault("reservations", {})[sku] = reservation.id
        self._step_event("reserve", sku=sku, reservation=reservation.id)
        if difference < 0 and not await self._await_payment(plan, saga, -difference):
            # Not paid in time: the replacement goes back to stock and the customer's
            # item is returned and refunded instead.
            await self._release(plan, sku)
            plan.refs.setdefault("released", []).append(reservation.id)
            self._step_event("release", sku=sku, reservation=reservation.id)
            plan.refs["fallback"] = "return_refund"
            await self._resolve_return(plan, saga)
            return
        replacement = [CaseItem(sku=sku, quantity=item.quantity)]
        outbound = await self._waybill(saga, "outbound", WAREHOUSE, self._customer_address(),
                                       replacement, step="ship_replacement")
        await self._call(SHIP_RESERVATION, reservation)
        plan.refs.setdefault("shipped", []).append(reservation.id)
        pickup = await self._waybill(saga, "return_pickup", self._customer_address(),
                                     WAREHOUSE, plan.items, step="collect_old")
        await self._await_parcel(plan, outbound, pause_clock=False)
        await self._await_parcel(plan, pickup)
        movement = await self._call(RESTOCK, StockMovement(
            sku=item.sku, quantity=item.quantity, reference=self._state.case_id,
            idempotency_key=self._key(f"restock:{item.sku}")))
        self._step_event("restock", sku=item.sku, quantity=item.quantity, id=movement)
        if difference > 0:
            await self._pay_refund(plan, saga, "refund_difference",
                                   amount=f"{difference:.2f}", key="refund_difference")

    async def _await_payment(self, plan: Resolution, saga: Saga, amount: Decimal) -> bool:
        """Open a payment link for what the customer owes and wait, until the policy's
        `exchange_payment_window` closes, for the order system to report it paid. True
        when paid; False when the window closed (the link is cancelled, and a payment
        that arrives as it closes counts as paid)."""
        window = timedelta(seconds=self._inp.policy.exchange_payment_window)
        due = workflow.now() + window
        request = PaymentLinkRequest(order_id=self._state.order_id,
                                     case_id=self._state.case_id, amount=f"{amount:.2f}",
                                     expires_at=due, idempotency_key=self._key("payment_link"))
        link = await saga.step("payment_link", partial(self._call, CREATE_PAYMENT_LINK,
                                                       request),
                               partial(self._close_link, plan))
        plan.refs["payment"] = {"id": link.id, "url": link.url, "amount": link.amount,
                                "due": due.isoformat(), "status": link.status}
        self._step_event("payment_link", link=link.id, amount=link.amount)
        self._log.notify_customer("payment_due", {"amount": link.amount, "url": link.url,
                                                  "due": due.isoformat()})
        self._plan.awaiting = "payment"
        await self._flush()
        poll = PAYMENT_POLL_FIRST
        while link.status == "open" and workflow.now() < due:
            try:
                await workflow.wait_condition(lambda: False,
                                              timeout=min(poll, due - workflow.now()))
            except TimeoutError:
                pass
            poll = min(poll * 2, PAYMENT_POLL_MAX)
            link = await self._call(CHECK_PAYMENT_LINK, link)
        if link.status == "open":
            try:
                link = await self._call(CANCEL_PAYMENT_LINK, link, retry=COMPENSATION_RETRY)
            except ActivityError as err:
                if error_type(err) != "AlreadyPaid":
                    raise
                link = await self._call(CHECK_PAYMENT_LINK, link)
        self._plan.awaiting = None
        plan.refs["payment"]["status"] = link.status
        if link.status == "paid":
            plan.refs["payment"]["paid_at"] = link.paid_at.isoformat() if link.paid_at else ""
            self._log.event(SYSTEM, "payment_received", detail={
                "link": link.id, "amount": link.amount})
        else:
            self._log.event(SYSTEM, "payment_window_closed", detail={
                "link": link.id, "amount": link.amount, "status": link.status})
        await self._flush()
        return link.status == "paid"

    async def _close_link(self, remedy: Resolution) -> None:
        """Undo an unpaid payment link; one the customer paid is refunded, once."""
        payment = remedy.refs.get("payment") or {}
        if not payment or remedy.refs.get("shipped"):
            return  # the replacement the customer paid for is on its way: a person settles
        link = PaymentLink(payment["id"], payment["url"], payment["amount"], "open")
        try:
            await self._call(CANCEL_PAYMENT_LINK, link, retry=COMPENSATION_RETRY)
            return
        except ActivityError as err:
            if error_type(err) != "AlreadyPaid":
                raise
        receipt = await self._call(REFUND_PAYMENT, RefundRequest(
            order_id=self._state.order_id, case_id=self._state.case_id,
            amount=payment["amount"], idempotency_key=self._key("refund_payment_link")),
            retry=COMPENSATION_RETRY)
        remedy.refs["payment"]["refund_id"] = receipt.id

    async def _resolve_repair(self, plan: Resolution, saga: Saga) -> None:
        pickup = await self._waybill(saga, "repair_pickup", self._customer_address(),
                                     REPAIR_CENTRE, plan.items)
        await self._await_parcel(plan, pickup)
        if plan.quote_amount is not None and workflow.patched(WARRANTY_PATCH):
            if not await self._await_quote(plan):
                # Declined or unanswered: the item goes back unrepaired. That return is
                # what the answer means, not a step to undo.
                back = await self._waybill(None, "repair_return", REPAIR_CENTRE,
                                           self._customer_address(), plan.items,
                                           step="return_unrepaired")
                await self._await_parcel(plan, back, pause_clock=False)
                return
        # The repair centre (the supplier) has the goods now: its time is not ours.
        self._pause_resolution_clock("waiting_on_supplier")
        repaired, note = await self._await_inspection(plan)
        self._resume_resolution_clock("waiting_on_supplier")
        if not repaired:
            raise ResolutionFailed(f"not repairable: {note}; choose a refund or an exchange")
        back = await self._waybill(saga, "repair_return", REPAIR_CENTRE,
                                   self._customer_address(), plan.items)
        await self._await_parcel(plan, back, pause_clock=False)

    async def _await_quote(self, plan: Resolution) -> bool:
        """Offer the customer the quote for a repair outside the warranty (the item is at
        the repair centre now) and wait for the answer, at most the policy's
        `quote_window`; no answer counts as declined. True when accepted.

        The order system's contract has no payment link: an accepted quote is recorded
        as owed (`refs.owed`), for the shop to collect with the repaired item."""
        window = timedelta(seconds=self._inp.policy.quote_window)
        now = workflow.now()
        quote: dict[str, Any] = {"amount": plan.quote_amount, "offered_at": now.isoformat(),
                                 "due_at": (now + window).isoformat(), "answer": None}
        if self._remedy:
            quote["remedy"] = self._remedy
        self._plan.quote = quote
        self._plan.awaiting = "quote"
        self._state.status = Status.WAITING_ON_CUSTOMER
        self._pause_resolution_clock("waiting_on_customer")
        self._log.event(SYSTEM, "quote_offered", detail={
            "amount": plan.quote_amount, "due_at": quote["due_at"]})
        self._log.notify_customer("repair_quote", {
            "amount": plan.quote_amount, "due_at": quote["due_at"],
            "customer_url": self._state.customer_url})
        await self._flush()
        try:
            await workflow.wait_condition(lambda: quote["answer"] is not None,
                                          timeout=window)
        except TimeoutError:
            quote["answer"] = "expired"
            self._log.event(SYSTEM, "quote_expired", detail={"amount": plan.quote_amount})
        self._plan.awaiting = None
        self._state.status = Status.RESOLVING
        self._resume_resolution_clock("waiting_on_customer")
        plan.refs["quote"] = dict(quote)
        if quote["answer"] != "accepted":
            return False
        plan.refs["owed"] = plan.quote_amount
        self._step_event("quote_accepted", amount=plan.quote_amount,
                         owed=plan.quote_amount)
        await self._flush()
        return True

    # ----------------------------------------------------------------- steps

    def _refund_amount(self, plan: Resolution) -> str:
        return plan.amount or self._value_of(plan.items)

    async def _pay_refund(self, plan: Resolution, saga: Saga, step: str,
                          amount: str | None = None, key: str = "refund",
                          share: Decimal = Decimal(1)) -> None:
        """Refund `amount` (the plan's, or its items' value) under the key `key`, times
        `share` rounded half up to the cent: the rest stays with the retailer (graded
        goods, docs/resolutions.md)."""
        amount = amount or self._refund_amount(plan)
        if share != 1:
            full = amount
            amount = f"{(Decimal(amount) * share).quantize(CENT, ROUND_HALF_UP):.2f}"
            plan.refs["graded_refund"] = {"full": full, "share": str(share), "paid": amount}
        if not self._plan.remedies:  # a combined plan was approved as a whole, up front
            await self._await_approval(plan, amount)
        receipt = await saga.step(step, lambda: self._call(
            REFUND_PAYMENT, RefundRequest(
                order_id=self._state.order_id, case_id=self._state.case_id, amount=amount,
                idempotency_key=self._key(key))))
        plan.refs["refund_id"] = receipt.id
        plan.refs["refunded"] = receipt.amount
        if workflow.patched(RECEIPT_DETAILS_PATCH):
            plan.refs["refund_method"] = receipt.method
            plan.refs["refund_arrives_in_working_days"] = list(receipt.arrives_in_working_days)
            plan.refs["refunded_at"] = (receipt.refunded_at.isoformat()
                                        if receipt.refunded_at else None)
        self._state.refunded = f"{Decimal(self._state.refunded) + Decimal(receipt.amount):.2f}"
        self._step_event(step, refund=receipt.id, amount=receipt.amount)

    async def _await_approval(self, plan: Resolution, amount: str) -> None:
        """Wait for a supervisor's approve when this refund takes the order's refunds above
        the policy's limit. Cases that began before refunds were counted together ask the
        order system nothing and weigh each refund on its own (on replay too)."""
        limit = Decimal(self._inp.policy.approval_limit)
        counted: dict = {}
        if workflow.patched(APPROVAL_COUNTS_PATCH):
            before = await self._refunded_before()
            counted = {"refunded_before": f"{before:.2f}",
                       "total": f"{before + Decimal(amount):.2f}"}
        if Decimal(counted.get("total", amount)) <= limit:
            return
        plan.awaiting = "approval"
        self._state.status = Status.WAITING_ON_APPROVAL
        self._log.event(SYSTEM, "approval_requested",
                        detail={"amount": amount, "limit": str(limit), **counted})
        told = {"amount": amount, **({"total": counted["total"]} if counted else {})}
        if counted and plan.four_eyes:
            told["planned_by"] = plan.planned_by  # the one supervisor who may not approve
        self._log.notify_staff("role:supervisor", "approval_waiting", told)
        paused = workflow.patched(APPROVAL_PAUSE_PATCH)
        if paused:
            self.approval_pause = True
            self._pause_resolution_clock("waiting_on_approval")
            # Already paused for the customer's answer: that pause stays, and becomes the
            # supervisor's when the customer answers first (workflow.py `reply`).
        await self._flush()
        try:
            await self._await_decision(plan, amount)
        finally:
            self.approval_pause = False
        plan.awaiting = None
        if paused:
            if self._state.pending_question is not None:
                # Asked the customer meanwhile: the clock waits on them now, and their
                # answer resumes it.
                self._hand_pause_over("waiting_on_approval", "waiting_on_customer")
            else:
                self._resume_resolution_clock("waiting_on_approval")
            self._wake()  # the next deadline mark may come earlier now
        if plan.denied_by is not None:
            raise ResolutionFailed(f"the refund of {amount} was denied by {plan.denied_by}: "
                                   f"{plan.denial_reason}")
        if self._state.stage == Stage.CANCELLED:
            raise ResolutionFailed("the case was cancelled while the refund awaited "
                                   "approval; nothing was paid")
        self._state.status = (Status.WAITING_ON_CUSTOMER if paused and
                              self._state.pending_question is not None else Status.RESOLVING)

    async def _await_decision(self, plan: Resolution, amount: str) -> None:
        """Wait until a manager approves or denies the refund, or the case is cancelled.
        Each `approval_timeout` of working time without a decision escalates one level:
        the supervisors, then the admins; after that it waits on."""

        def decided() -> bool:
            return (plan.approved_by is not None or plan.denied_by is not None
                    or self._state.stage == Stage.CANCELLED)

        timeout = self._inp.policy.approval_timeout
        if timeout and workflow.patched(APPROVAL_TIMEOUT_PATCH):
            for level, to in enumerate(APPROVAL_LEVELS, start=1):
                now = workflow.now()
                due = self._calendar.add(now, timeout)
                try:
                    await workflow.wait_condition(decided, timeout=due - now)
                    return
                except TimeoutError:
                    pass
                rule = (f"a refund of {amount} waited {format_duration(timeout * level)} "
                        "of working time for approval")
                self._log.event(SYSTEM, "escalated", detail={
                    "level": level, "to": to, "rule": rule, "clock": "approval"})
                self._log.notify_staff(f"role:{to}", "case_escalated",
                                       {"reason": rule, "by": SYSTEM})
                await self._flush()
        await workflow.wait_condition(decided)

    async def _refunded_before(self) -> Decimal:
        """What the order has had back before this refund. The order system is asked now
        (an activity, so the answer is in the history): its `refunded` counts every refund
        on the order, this case's earlier attempts and other cases' alike. It is never
        taken as less than what this case knows: refunded at intake plus its own refunds."""
        order = await self._call(LOOKUP_ORDER, OrderLookup(self._state.order_id))
        known = Decimal(self._state.order.refunded if self._state.order else "0")
        return max(Decimal(order.refunded), known + Decimal(self._state.refunded))

    async def _waybill(self, saga: Saga | None, kind: str, sender: Address,
                       recipient: Address, items: list[CaseItem],
                       step: str | None = None) -> Waybill:
        """A waybill as a saga step (cancelled if a later step fails), or, without a saga,
        one that stands whatever happens next."""
        step = step or kind
        request = WaybillRequest(type=kind, reference=self._state.case_id,
                                 idempotency_key=self._key(step), sender=sender,
                                 recipient=recipient, items=items)
        if saga is None:
            waybill = await self._call(CREATE_WAYBILL, request)
        else:
            waybill = await saga.step(
                step, partial(self._call, CREATE_WAYBILL, request),
                partial(self._cancel_waybill, self._current, step))
        self._state.parcels[waybill.waybill_no] = {"type": kind, "step": step, "status": "created",
                                             "events": []}
        self._current.refs.setdefault("waybills", {})[step] = waybill.waybill_no
        self._step_event(step, waybill=waybill.waybill_no)
        await self._flush()
        return waybill

    async def _cancel_waybill(self, remedy: Resolution, step: str) -> None:
        number = remedy.refs.get("waybills", {}).get(step)
        if number is None or self._state.parcels.get(number, {}).get("status") != "created":
            return  # already moving: nothing to cancel, the parcel arrives or comes back
        try:
            await self._call(CANCEL_WAYBILL,
                             Waybill(number, self._state.parcels[number]["type"], "created"),
                             retry=COMPENSATION_RETRY)
        except ActivityError as err:
            if error_type(err) != "AlreadyPickedUp":
                raise

    async def _release(self, remedy: Resolution, sku: str) -> None:
        reservation_id = remedy.refs.get("reservations", {}).get(sku)
        if reservation_id is None or reservation_id in (remedy.refs.get("shipped", [])
                                                        + remedy.refs.get("released", [])):
            return
        await self._call(RELEASE_RESERVATION,
                         Reservation(reservation_id, sku, 0, "reserved"),
                         retry=COMPENSATION_RETRY)

    async def _await_parcel(self, plan: Resolution, waybill: Waybill,
                            pause_clock: bool = True) -> None:
        """Wait until the parcel is delivered; the resolution clock pauses while the
        customer's goods are in transit."""
        parcel = self._state.parcels[waybill.waybill_no]
        parcel["pauses_clock"] = pause_clock
        self._plan.awaiting = "parcel"
        await self._flush()
        await workflow.wait_condition(
            lambda: parcel["status"] == "delivered" or parcel["status"] in PARCEL_FAILED)
        self._plan.awaiting = None
        if parcel["status"] in PARCEL_FAILED:
            raise ResolutionFailed(f"parcel {waybill.waybill_no} {parcel['status']}")

    def inspecting(self) -> str | None:
        """The type of the remedy whose goods await inspection, or None."""
        return self._current.type if self._plan.awaiting == "inspection" else None

    async def _await_inspection(self, plan: Resolution) -> tuple[bool, str]:
        self._plan.awaiting = "inspection"
        self._state.inspection = None
        if self._state.assignee:
            self._log.notify_staff(self._state.assignee, "inspection_due", {})
        await self._flush()
        await workflow.wait_condition(lambda: self._state.inspection is not None)
        self._plan.awaiting = None
        inspection = self._state.inspection
        assert inspection is not None
        return bool(inspection["passed"]), str(inspection.get("note") or "")

    async def _call(self, activity: ActivityRef, arg: Any,
                    retry: RetryPolicy = SYSTEM_RETRY) -> Any:
        """Call a retailer system. If it does not answer within a short budget the case
        shows that it waits on that system, and keeps retrying with backoff."""
        try:
            return await workflow.execute_activity(
                activity.name, arg, result_type=activity.result,
                start_to_close_timeout=CALL_TIMEOUT,
                schedule_to_close_timeout=WAIT_VISIBLY_AFTER, retry_policy=retry)
        except ActivityError as err:
            if error_type(err) in (retry.non_retryable_error_types or []):
                raise  # a business refusal: the saga handles it
        system = activity.system or "a retailer system"
        status_before = self._state.status
        self._state.status = Status.WAITING_ON_SYSTEM
        self._state.waiting_on = system
        self._log.event(SYSTEM, "waiting", detail={"on": system})
        await self._flush()
        try:
            return await workflow.execute_activity(
                activity.name, arg, result_type=activity.result,
                start_to_close_timeout=CALL_TIMEOUT, retry_policy=retry)
        finally:
            self._state.waiting_on = None
            if self._state.status == Status.WAITING_ON_SYSTEM:
                self._state.status = status_before
            self._log.event(SYSTEM, "system_answered", detail={"system": system})
            await self._flush()

    # ----------------------------------------------------------------- courier events

    def apply_courier_event(self, event: CourierEvent) -> None:
        """Record a tracking event once, in order; a late or repeated one is ignored."""
        if event.event_id in self._state.courier_events_seen:
            return
        self._state.courier_events_seen.append(event.event_id)
        parcel = self._state.parcels.get(event.waybill_no)
        if parcel is None:
            return
        rank = PARCEL_RANK.get(event.status, -1)
        current = PARCEL_RANK.get(parcel["status"], 0)
        if rank < current or (rank == current and event.status == parcel["status"]):
            return
        parcel["status"] = event.status
        parcel["events"].append({"status": event.status, "at": event.at.isoformat(),
                                 "detail": event.detail})
        self._log.event("courier", "parcel", detail={
            "waybill": event.waybill_no, "status": event.status, "detail": event.detail})
        if parcel.get("pauses_clock", True) and parcel["type"] in ("return_pickup",
                                                                    "repair_pickup"):
            if event.status == "picked_up":
                self._pause_resolution_clock("parcel_in_transit")
            elif event.status == "delivered" or event.status in PARCEL_FAILED:
                self._resume_resolution_clock("parcel_in_transit")
        if event.status in PARCEL_EXCEPTIONS:
            self._log.notify_customer("parcel_" + event.status, {"waybill": event.waybill_no})
        self._wake()

    # ----------------------------------------------------------------- helpers

    def _pause_resolution_clock(self, reason: str) -> None:
        for clock in self._state.clocks:
            if clock.name == "resolution":
                clocks.pause_clock(clock, workflow.now(), reason, self._calendar)

    def _hand_pause_over(self, reason: str, to: str) -> None:
        """The resolution clock, paused for `reason`, stays paused for `to` instead."""
        for clock in self._state.clocks:
            if clock.name == "resolution" and clock.paused_reason == reason:
                clock.paused_reason = to

    def hand_customer_pause_to_approval(self) -> bool:
        """The customer answered while a refund waits for a supervisor (approval pausing
        the clock): the resolution clock's pause is the supervisor's from now on, not
        resumed. True when it was handed over."""
        if not self.approval_pause:
            return False
        self._hand_pause_over("waiting_on_customer", "waiting_on_approval")
        return True

    def _resume_resolution_clock(self, reason: str) -> None:
        """Resume what was paused for `reason`; another pause (the customer's) stays."""
        for clock in self._state.clocks:
            if clock.name == "resolution" and clock.paused_reason == reason:
                clocks.resume_clock(clock, workflow.now(), self._calendar)

    def _key(self, step: str) -> str:
        """`<case id>:<attempt>:<step>`; a remedy of a combined plan puts its number
        before the step (`…:r2:refund`), so each remedy's steps have keys of their own."""
        remedy = f"r{self._remedy}:" if self._remedy else ""
        return f"{self._state.case_id}:{self._state.resolution_attempt}:{remedy}{step}"

    def _step_event(self, step: str, **detail: Any) -> None:
        numbered = {"remedy": self._remedy} if self._remedy else {}
        self._log.event(SYSTEM, "resolution_step", detail={
            "step": step, **numbered, **{k: v for k, v in detail.items() if v}})

    def _customer_address(self) -> Address:
        return Address(self._state.customer.name, f"customer {self._state.customer.id}")

    def _value_of(self, items: list[CaseItem]) -> str:
        return f"{remedies.value_of(items, self.prices()):.2f}"

    def prices(self) -> dict[str, Decimal]:
        """SKU -> the unit price the order paid."""
        return {line.sku: Decimal(line.unit_price)
                for line in (self._state.order.lines if self._state.order else [])}

    def refundable(self) -> Decimal:
        """What may still be refunded: paid, minus refunds before and during this case."""
        if self._state.order is None:
            return Decimal(0)
        paid = sum((Decimal(p.amount) for p in self._state.order.payments), Decimal(0))
        return paid - Decimal(self._state.order.refunded) - Decimal(self._state.refunded)


def _outcome_after_failure(remedy: Resolution) -> str:
    """A combined plan's remedy once the saga failed: the one that failed, those never
    reached (`skipped`), those finished and undone (`compensated`), or those finished
    with nothing to undo (`done`: an apology said, a coupon granted)."""
    if remedy.state == "running":
        return "failed"
    if remedy.state == "planned":
        return "skipped"
    if any(step["state"] == "compensated" for step in remedy.steps):
        return "compensated"
    return remedy.state
