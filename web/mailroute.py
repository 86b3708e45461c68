"""Email in: what a mail to the service address does to cases (docs/conversation.md).

- A mail that answers one of a case's notifications (In-Reply-To / References name a
  Message-ID this system gave it) or carries `[<case id>]` in its subject belongs to
  that case. From the case customer's own address it is a customer message (answering
  the pending question, if any); from any other address it is an internal note for
  staff to check, never the customer's word.
- Any other mail opens a case, channel `email`: linked to the order whose number it
  names when the mail comes from that order's own address, else an orderless
  complaint waiting for confirm.
- Auto-replies, bounces, bulk mail and mail that cannot be read do nothing.

Each mail acts once: it is recorded by its Message-ID (db/mail.py) after it acted, and
the case's update carries the same id (a mail read again after a crash is one message).
Runs in its own process, `python -m web.mailroute` (started by `aftersales mail-in` and
`aftersales dev`): the IMAP poll under the scheduler's lease, and in development a local
SMTP receiver.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import re
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy.exc import OperationalError

from activities.senders import case_of_message_id, mask
from aftersales import mailin
from aftersales.mailin import InboundMail
from aftersales.scheduler import Housekeeping
from aftersales.settings import Settings
from db import cases as case_store
from db import mail as mail_store
from db.models import Case
from web import evidence, intake
from web.commands import action_input
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.problems import Problem
from workflows.case.contracts import MAX_MESSAGE_LENGTH, Actor, Customer
from workflows.case.lifecycle import BY_NAME
from workflows.case.vocabulary import ID_ALPHABET

log = logging.getLogger("aftersales.mail")

# Who acts for inbound mail on the timeline (a name no user may take).
MAIL_ACTOR = Actor("email", "handler")
STRANGER = "not the customer's address; check before acting on it"
# What one mail may cost: the case ids and order numbers looked up, the sender's name
# and address kept (the API's limits for a customer).
MAX_REFERENCES = 10
MAX_ORDER_NUMBERS = 3
MAX_NAME = 200
MAX_ADDRESS = 200
DESCRIPTION_LIMIT = MAX_MESSAGE_LENGTH  # a case's description, as the API takes it
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class Outcome:
    """What a mail did, as db/mail.py records it."""

    what: str  # message | note | opened | ignored | unreadable | empty
    case_id: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}" if self.detail else self.what


class MailRouter:
    """Turns each inbound mail into one message, note or new case."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._state = app.extensions["aftersales"]
        self._settings: Settings = self._state.settings
        self._lock = threading.Lock()  # the SMTP receiver may call from several threads

    def handle(self, raw: bytes) -> None:
        """The `handle` of the IMAP poller and the SMTP receiver: acts on the mail once.
        Raises when a system is down (Temporal, the order system), so the mail is read
        again later (IMAP keeps its cursor; SMTP answers 451 and the sender retries)."""
        mail = mailin.parse(raw, max_bytes=self._settings.mail_in_max_part)
        key = mailin.dedupe_key(mail)
        try:
            with self._lock, self._app.app_context():
                with self._state.sessions() as session:
                    if mail_store.seen(session, key):
                        log.info("mail %s: seen before, nothing to do", key[:60])
                        return
                outcome = self.route(mail, key)
                mail_store.record(self._state.sessions, key[:500], str(outcome)[:200],
                                  outcome.case_id, datetime.now(UTC))
        except (TemporalUnavailable, intake.OrderSystemDown, OperationalError) as err:
            raise mailin.RetryLater(f"{type(err).__name__}: {err}"[:300]) from err
        except Problem as err:
            if err.status != 503:
                raise
            raise mailin.RetryLater(err.detail) from err
        log.info("mail %s from %s: %s", key[:60], mask(mail.sender), outcome)

    # ------------------------------------------------------------ deciding

    def route(self, mail: InboundMail, key: str) -> Outcome:
        if mail.problem:
            return Outcome("unreadable", detail=mail.problem)
        if mail.automatic:
            return Outcome("ignored", detail=mail.automatic)  # never a loop
        if not mail.sender:
            return Outcome("ignored", detail="no sender")
        row = self.case_of(mail)
        if row is not None and row.stage in BY_NAME["message"].stages:
            customer = (row.data.get("customer") or {}).get("email", "").strip().lower()
            if customer and customer == mail.sender:
                return self._customer_message(row, mail, key)
            return self._note(row, mail, key)
        return self._open_case(mail, key, row)

    def case_of(self, mail: InboundMail) -> Case | None:
        """The case the mail answers: one of our notifications it replies to, else the
        `[case id]` in its subject (a bounded number of each is looked at); for a case
        merged into another, that one."""
        refs = mailin.referenced_ids(mail)
        candidates = [case_id for ref in refs[:1] + refs[-MAX_REFERENCES:]
                      if (case_id := case_of_message_id(ref, self._settings))]
        candidates += mailin.case_ids_in(mail.subject)[:MAX_REFERENCES]
        with self._state.sessions() as session:
            for case_id in dict.fromkeys(candidates):
                row = case_store.get_case(session, case_id)
                # A duplicate's mail goes to the case it was merged into (docs/teams.md,
                # "Merging duplicates"); a merged case is closed, so the chain is short.
                for _ in range(MAX_REFERENCES):
                    if row is None or not row.data.get("merged_into"):
                        break
                    row = case_store.get_case(session, row.data["merged_into"])
                if row is not None:
                    session.expunge(row)
                    return row
        return None

    # ------------------------------------------------------------ acting

    def _customer_message(self, row: Case, mail: InboundMail, key: str) -> Outcome:
        files, refused = self._attach(row, mail, None)
        text = message_text(mail, files, refused)
        if not text:
            return Outcome("empty", row.id)
        action = BY_NAME["message"]
        try:
            self._state.gateway.act(row.id, action.update, action_input(action, None, {
                "message": text, "channel": "email", "attachments": files, "ref": key}))
        except CaseNotRunning:  # closed beyond its reopen window: a new request
            return self._open_case(mail, key, row)
        except ActionRefused as err:
            return Outcome("ignored", row.id, f"the case takes no message: {err}")
        return Outcome("message", row.id)

    def _note(self, row: Case, mail: InboundMail, key: str,
              why: str = STRANGER) -> Outcome:
        files, refused = self._attach(row, mail, MAIL_ACTOR) if why == STRANGER else ([], [])
        body = message_text(mail, files, refused)
        text = (f"Mail from {clip(mail.sender_name, 80)} <{mail.sender}>, {why}. "
                f"Subject: {clip(mail.subject, 200)}\n\n{body}")
        action = BY_NAME["note"]
        try:
            self._state.gateway.act(row.id, action.update, action_input(action, MAIL_ACTOR, {
                "text": clip(text, MAX_MESSAGE_LENGTH), "channel": "email", "ref": key}))
        except CaseNotRunning:
            return self._open_case(mail, key, row)
        except ActionRefused as err:
            return Outcome("ignored", row.id, f"the case takes no note: {err}")
        return Outcome("note", row.id)

    def _attach(self, row: Case, mail: InboundMail, actor: Actor | None
                ) -> tuple[list[str], list[str]]:
        """The mail's files on the case (checked like any upload): the ids recorded,
        and a line for each file refused."""
        added: list[str] = []
        refused = [f"{big.filename}: {big.reason}" for big in mail.too_large]
        if row.stage not in BY_NAME["attach"].stages:
            return added, refused + [a.filename for a in mail.attachments]
        for attachment in mail.attachments:
            try:
                prepared = evidence.check_file(attachment.data, attachment.filename)
                item = evidence.attach(row.id, prepared, actor, actor is None, row)
            except Problem as err:
                refused.append(f"{attachment.filename}: {err.detail}")
                continue
            except (ActionRefused, CaseNotRunning) as err:
                refused.append(f"{attachment.filename}: {err}")
                continue
            added.append(item["id"])
        return added, refused

    def _open_case(self, mail: InboundMail, key: str, earlier: Case | None) -> Outcome:
        """A new case, channel email: on the order it names when the mail comes from
        that order's address; otherwise an orderless complaint from the sender."""
        text = mail.text.strip()
        description = clip("\n\n".join(p for p in (mail.subject.strip(), text) if p),
                           DESCRIPTION_LIMIT)
        if not description and not mail.attachments:
            return Outcome("empty")
        order = None
        numbers = mailin.order_numbers_in(f"{mail.subject}\n{text}",
                                          self._settings.mail_order_pattern)
        for number in numbers[:MAX_ORDER_NUMBERS]:
            try:
                found = intake.find_order(number)
            except intake.UnknownOrder:
                continue
            if found is not None and intake.contact_matches(found, mail.sender):
                order = found
                break
        locale = "zh-CN" if _CJK.search(description) else "en"
        if len(mail.sender) > MAX_ADDRESS:
            return Outcome("ignored", detail="the sender's address is too long")
        # A name as the case keeps it (the API's limit), never the raw header.
        name = clip(" ".join((mail.sender_name or mail.sender.partition("@")[0]).split()),
                    MAX_NAME) or "?"
        if order is not None and order.customer is not None:
            customer = Customer(id=order.customer.id, name=order.customer.name or name,
                                email=mail.sender, phone=order.customer.phone,
                                tier=order.customer.tier, locale=locale)
            order_id = order.id
        else:
            customer = Customer(id=intake.orderless_customer_id("", mail.sender), name=name,
                                email=mail.sender, locale=locale)
            order_id = ""
        # Named after the mail: read again after a crash, it finds the case it made.
        case_id = case_id_for(key, self._settings.secret_key)
        with self._state.sessions() as session:
            row = case_store.get_case(session, case_id)
            if row is not None:
                session.expunge(row)
        if row is None:
            inp = intake.case_input("complaint", "email", order_id, customer, [],
                                    description or "(attachments only)",
                                    opened_by=MAIL_ACTOR.name)
            inp.case_id = case_id
            row = intake.open_case(inp)
        files, refused = self._attach(row, mail, None)
        if refused:
            self._note(row, mail, key + "#refused", "files not attached: "
                       + "; ".join(clip(r, 120) for r in refused[:10]))
        detail = f"order {order_id}" if order_id else "no order"
        if earlier is not None:
            detail += f"; its case {earlier.id} takes no more messages"
        return Outcome("opened", row.id, f"{detail}, {len(files)} file(s)")


# ---------------------------------------------------------------- small rules


def message_text(mail: InboundMail, files: list[str], refused: list[str]) -> str:
    """What the customer wrote, within the message limit; a mail of photos only says
    so, and refused files are named (so nobody thinks they arrived)."""
    text = mail.text.strip() or mail.subject.strip()
    if refused:
        text += "\n\n" + "\n".join(f"[not attached: {r}]" for r in refused)
    if not text.strip() and files:
        text = f"[{len(files)} file(s)]"
    return clip(text.strip(), MAX_MESSAGE_LENGTH)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def case_id_for(key: str, secret: str) -> str:
    """A case id derived from the mail's key, keyed with the app's secret so a sender
    who chooses the Message-ID cannot aim it at somebody else's case."""
    digest = hmac.new(secret.encode(), key.encode(), hashlib.sha256).digest()
    return "AS-" + "".join(ID_ALPHABET[b % len(ID_ALPHABET)] for b in digest[:10])


# ---------------------------------------------------------------- the process


def main(argv: list[str] | None = None) -> int:
    """`python -m web.mailroute [--smtp]`: poll AFTERSALES_IMAP_URL under the
    scheduler's lease; with --smtp also receive mail locally (development)."""
    from web import create_app

    parser = argparse.ArgumentParser(prog="python -m web.mailroute")
    parser.add_argument("--smtp", action="store_true",
                        help="also run the local SMTP receiver (AFTERSALES_MAIL_IN_PORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    app = create_app(settings)
    router = MailRouter(app)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    receiver = None
    if args.smtp:
        receiver = mailin.start_receiver(settings, router.handle)
        print(f"{receiver.describe()} (mail sent there opens or answers cases)", flush=True)
    if not settings.imap_url and receiver is None:
        print("nothing to do: set AFTERSALES_IMAP_URL (or pass --smtp)", flush=True)
        return 2
    jobs = Housekeeping(settings, mail_handler=router.handle)
    try:
        while not stop.is_set():
            if settings.imap_url:
                try:
                    jobs.run_job("mail_poll")
                except Exception:  # a bad poll is logged; the next one tries again
                    log.exception("mail poll failed")
            stop.wait(settings.imap_interval)
    finally:
        if receiver is not None:
            receiver.stop()
        jobs.close()
        state = app.extensions["aftersales"]
        state.gateway.close()
        state.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

