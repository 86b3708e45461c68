"""Delivery of the outbox: claim a row, render it in the recipient's language, send it
by the medium's sender, record it sent. Used by the workflow's delivery activity and by
the scheduler's sweep of rows left unsent, through the same claim, so a message is
never sent by both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.messages import render
from activities.senders import (
    MessageSender,
    OutgoingMessage,
    PermanentDeliveryError,
    Settings,
    mask,
    message_id,
    senders_from_settings,
)
from db import outbox
from db.links import LinkSeal, customer_url, without_link
from db.models import Case
from workflows.case.contracts import (
    DELIVER_NOTIFICATIONS,
    DeliveryInput,
    DeliveryResult,
)

log = logging.getLogger("aftersales.notifications")

# An attempt renews its claim before an address only when this much time has passed
# since it took or last renewed it: well inside the 5-minute lease, so an attempt that
# goes on still holds the row, and one that hung past the lease finds out before it
# sends again. Right after the claim there is nothing to renew.
RENEW_AFTER = 30.0  # seconds, by the monotonic clock


@dataclass
class DeliveryReport:
    """The outcome of one pass over some keys."""

    result: DeliveryResult = field(default_factory=DeliveryResult)
    failed: dict[str, str] = field(default_factory=dict)  # key -> error
    busy: list[str] = field(default_factory=list)  # claimed by another attempt now
    digest: list[str] = field(default_factory=list)  # wait for the digest (outbox.DIGESTED)


class OutboxDelivery:
    """Sends outbox rows at most once each, as far as the senders allow (see
    docs/notifications.md for the exact guarantee)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 senders: dict[str, MessageSender] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._settings = settings
        self._senders = senders if senders is not None else senders_from_settings(settings)
        # Status links are stored sealed (db/links.py); a message carries them opened.
        self._links = LinkSeal(settings.secret_key)
        self._now = clock  # what is written: lease ends, sent_at
        self._monotonic = monotonic  # when to renew: a wall clock can step back

    def deliver(self, keys: list[str]) -> DeliveryReport:
        report = DeliveryReport()
        for key in keys:
            self._deliver_one(key, report)
        return report

    def _deliver_one(self, key: str, report: DeliveryReport) -> None:
        leased_at = self._monotonic()  # no later than the lease the claim takes
        item = outbox.claim(self._sessions, key, self._now())
        if item is None:
            state = outbox.state(self._sessions, key)
            if state == "claimed":
                report.busy.append(key)
            elif state == "digest":  # the scheduler's digest carries it (db/digests.py)
                report.digest.append(key)
            elif state == "sent":
                report.result.already_sent.append(key)
                refused = outbox.refusal(self._sessions, key)
                if refused is not None:
                    report.result.undeliverable.append({
                        "key": key, "template": refused[0], "medium": "",
                        "reason": refused[1][:300]})
            else:  # missing: nothing to send, ever
                report.failed[key] = f"no outbox row {key}"
            return
        try:
            with self._sessions() as session:
                people = outbox.recipients(session, item, self._settings.default_locale,
                                           frozenset(self._senders))
                context = self._context(session, item)
            to_serve = [p for p in people if p.address not in item.delivered]
            delivered = list(item.delivered)
            refusals: list[str] = []  # addresses the provider refused for good
            for n, person in enumerate(to_serve):
                now = self._monotonic()
                if now - leased_at >= RENEW_AFTER:
                    # Time has passed since the lease was taken or renewed (a slow send):
                    # renew it, and if a newer attempt took the row meanwhile, stop:
                    # that one sends the rest (it knows who was served).
                    if not outbox.renew(self._sessions, item, self._now()):
                        self._lost(key, report)
                        return
                    leased_at = now
                text = render(item.template, person.locale,
                              {**context, "recipient_name": person.name})
                try:
                    self._senders[person.medium].send(OutgoingMessage(
                        key=item.key, message_id=message_id(item.key, person.address,
                                                            self._settings),
                        medium=person.medium, to=person.address, to_name=person.name,
                        locale=person.locale, subject=text.subject, body=text.body,
                        case_id=item.case_id, template=item.template,
                        params={k: v for k, v in context.items()
                                if isinstance(v, str | int | float)}))
                except PermanentDeliveryError as err:
                    # Retrying cannot help: the address is done with, and said so.
                    reason = str(err)[:300]
                    report.result.undeliverable.append({
                        "key": key, "template": item.template, "medium": person.medium,
                        "reason": reason})
                    refusals.append(f"{outbox.UNDELIVERABLE}{mask(person.address)}: {reason}")
                    log.warning("notification %s (%s) refused for good by the %s "
                                "provider: %s", key, item.template, person.medium, reason)
                # Recorded at once: the window in which a crash would send it again is
                # this one write, which also marks the row sent after the last address.
                delivered.append(person.address)
                last = n == len(to_serve) - 1
                if not outbox.record_delivered(self._sessions, item, delivered,
                                               sent_at=self._now() if last else None,
                                               note="; ".join(refusals) or None):
                    self._lost(key, report)  # the newer attempt did not know of this one
                    return
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            outbox.release(self._sessions, item, message)
            report.failed[key] = message
            log.warning("notification %s (%s) not delivered: %s", key, item.template,
                        type(err).__name__)
            return
        if not to_serve:  # nobody to reach, or every address served by earlier attempts
            note = None if people else f"nobody to reach for {item.recipient}"
            outbox.mark_sent(self._sessions, item, self._now(), note)
        if not people:
            report.result.unreachable.append(key)
        elif not to_serve or len(refusals) < len(to_serve):  # someone got it
            report.result.sent.append(key)

    @staticmethod
    def _lost(key: str, report: DeliveryReport) -> None:
        """A slow attempt outlived its lease and a newer one took the row."""
        report.busy.append(key)
        log.warning("notification %s: claim lost to another attempt", key)

    def _context(self, session: Session, item: outbox.Claim) -> dict:
        public = self._settings.public_url
        # Staff mail links to the case's page on the desk (the desk itself for digests).
        desk = f"{public}/desk/cases/{item.case_id}" if item.case_id else f"{public}/desk"
        context = {"case_id": item.case_id or "", "customer_url": "",
                   "desk_url": desk, "public_url": public}
        case = session.get(Case, item.case_id) if item.case_id else None
        if case is not None:
            context["customer_url"] = customer_url(case.data, case.id, self._links)
        # (Rows written before links were sealed carry one in the payload: the case's
        # own is the same, or none once the customer's data is erased.)
        context.update(without_link(item.payload))
        return context


class NotificationActivities:
    """The workflow's delivery activity."""

    def __init__(self, delivery: OutboxDelivery) -> None:
        self._delivery = delivery

    @activity.defn(name=DELIVER_NOTIFICATIONS.name)
    async def deliver(self, inp: DeliveryInput) -> DeliveryResult:
        report = await asyncio.to_thread(self._delivery.deliver, inp.keys)
        if report.failed or report.busy:
            # Retryable: Temporal tries again with backoff; rows already sent are
            # skipped by their claim, rows still claimed by another attempt wait.
            raise ApplicationError(
                f"{len(report.failed)} notification(s) failed, {len(report.busy)} busy: "
                + "; ".join(f"{k}: {e}" for k, e in report.failed.items()),
                type="DeliveryFailed")
        return report.result
