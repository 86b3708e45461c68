"""The read model: a projection of the case workflows, plus users, tokens and outbox.

The workflow is the source of truth. `cases.version` only ever grows, so a replayed
or retried projection write never moves a case backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# One naming convention so constraint names match on SQLite and PostgreSQL and
# Alembic batch migrations can find them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


UtcDateTime = DateTime(timezone=True)
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    priority: Mapped[str] = mapped_column(String(2), nullable=False)
    assignee: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    customer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    customer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The name as the search box compares it (db/search.normalise: case-folded in
    # Python, so "ÉMILE" finds Émile and "strasse" Straße on SQLite and PostgreSQL
    # alike, whatever the database's locale). Null once the name is erased.
    customer_name_folded: Mapped[str | None] = mapped_column(Text)
    customer_phone: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    # The phone as the search box compares it (db/search.phone_digits); null once erased.
    customer_phone_digits: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    stage_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # stage_due_at, or FAR_FUTURE when nothing is due: a non-null sort key, so lists
    # sorted by due time can page by keyset on one index on SQLite and PostgreSQL.
    due_key: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    overdue: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    repeat_of: Mapped[str | None] = mapped_column(String(32))
    rating: Mapped[int | None] = mapped_column(Integer)
    # When the first running SLA target reaches 75 % (the supervisor's at-risk list).
    at_risk_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Facts for the reports, kept as columns so they aggregate in SQL.
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A repeat case on the same order before this is no longer a first-contact resolution.
    fcr_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_s: Mapped[float | None] = mapped_column(Float)
    first_response_work_s: Mapped[float | None] = mapped_column(Float)
    resolution_s: Mapped[float | None] = mapped_column(Float)
    resolution_work_s: Mapped[float | None] = mapped_column(Float)
    root_cause: Mapped[str | None] = mapped_column(String(32))
    responsible_party: Mapped[str | None] = mapped_column(String(16))
    resolution_type: Mapped[str | None] = mapped_column(String(16))
    # The types of the completed resolution's remedies, each between spaces
    # (" apology compensation refund "; one for a single resolution): the reports count a
    # case once under each type it was settled with.
    remedy_types: Mapped[str | None] = mapped_column(String(120))
    refunded: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False, default=0)
    compensation_points: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The money value of a coupon granted as compensation (its resolution's amount).
    coupon_value: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False, default=0,
                                                  server_default="0")
    reopen_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The triage model's suggestions at intake (docs/triage.md); escalation risk is a
    # column of its own so the supervisor's queue can filter on it.
    triage: Mapped[dict | None] = mapped_column(JSON)
    escalation_risk: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # An inspection graded the returned goods D (not the item sent): the desk's badge, the
    # reports' count and the list filter `fraud_review` read it.
    fraud_review: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # A return refunded at the courier's pickup (instant refund): when, for the customer's
    # 90-day count; and the recovery tasks its failed goods left for the merchant.
    instant_refund_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recovery_tasks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    recovery_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False,
                                                     default=0)
    # Where the case came from (the order's store) and which team's queue it is in
    # (docs/teams.md): columns so the lists filter on them and ownership reads them.
    store: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(40))
    # sha256 of the customer's status token: the link works, a database leak does not.
    status_token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The full snapshot as the workflow wrote it (customer, items, order, clocks, ...).
    data: Mapped[dict] = mapped_column(JSON, nullable=False)

    __table_args__ = (
        Index("ix_cases_due_key", "due_key", "id"),
        Index("ix_cases_stage_due", "stage", "due_key", "id"),
        Index("ix_cases_assignee_due", "assignee", "due_key", "id"),
        Index("ix_cases_overdue", "overdue"),
        Index("ix_cases_at_risk", "at_risk_at"),
        Index("ix_cases_order", "order_id", "kind"),
        Index("ix_cases_customer", "customer_id"),
        Index("ix_cases_created", "created_at"),
        Index("ix_cases_updated", "updated_at"),
        Index("ix_cases_closed", "closed_at"),
        Index("ix_cases_phone", "customer_phone"),
        Index("ix_cases_phone_digits", "customer_phone_digits"),
        Index("ix_cases_team_due", "team", "due_key", "id"),
        Index("ix_cases_store", "store"),
        # The reports: each duration in order with the day its case opened (the p90
        # read from its histogram bucket, db/reports.py `histogram_p90s`), the cases
        # of an order by opening (a first contact's repeat case, read from the index),
        # and the overdue cases by stage, team and store (the report's overdue now).
        Index("ix_cases_order_created", "order_id", "created_at", "id"),
        Index("ix_cases_first_response", "first_response_s", "created_at"),
        Index("ix_cases_first_response_work", "first_response_work_s", "created_at"),
        Index("ix_cases_resolution", "resolution_s", "created_at"),
        Index("ix_cases_resolution_work", "resolution_work_s", "created_at"),
        Index("ix_cases_overdue_now", "stage", "team", "store",
              postgresql_where=text("overdue IS true"), sqlite_where=text("overdue IS 1")),
    )


class CaseNameGram(Base):
    """The search box's index of customer names: each character and each pair of
    neighbouring characters of a case's customer name (db/search.py)."""

    __tablename__ = "case_name_grams"

    gram: Mapped[str] = mapped_column(String(8), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)

    __table_args__ = (Index("ix_case_name_grams_case", "case_id"),)


class CaseWaybill(Base):
    """The search box's index of waybill numbers: each courier parcel of a case (and the
    order's own delivery), spaces removed and in upper case (db/search.py)."""

    __tablename__ = "case_waybills"

    waybill: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)

    __table_args__ = (Index("ix_case_waybills_case", "case_id"),)


class CaseTag(Base):
    """A free-text tag staff put on a case (the `tag` action), for the `tag=` filter."""

    __tablename__ = "case_tags"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_case_tags_tag", "tag"),)


class CaseAttachment(Base):
    """A file on a case as the read model knows it (the bytes are in the blob store):
    the downloads look it up, the blob sweep keeps what any case references."""

    __tablename__ = "case_attachments"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_case_attachments_sha256", "sha256"),)


class RequestCode(Base):
    """A one-time code sent to the phone or email on an order before the public request
    page shows it (AFTERSALES_REQUEST_CODES=1). Only hashes are kept."""

    __tablename__ = "request_codes"

    # sha256 of the order id and the contact, as the customer typed them (normalised).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    tries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class CaseClock(Base):
    """One SLA clock of a case as it stands: the reports' attainment per stage."""

    __tablename__ = "case_clocks"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    target_s: Mapped[int] = mapped_column(Integer, nullable=False)
    used_s: Mapped[float] = mapped_column(Float, nullable=False)

    # A report over a few days joins its cases' clocks through the second index,
    # reading the index alone, instead of scanning every clock.
    __table_args__ = (Index("ix_case_clocks_name_state", "name", "state"),
                      Index("ix_case_clocks_case_state", "case_id", "state", "name"))


class TimelineEvent(Base):
    __tablename__ = "timeline_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    stage_before: Mapped[str] = mapped_column(String(16), nullable=False)
    stage_after: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[dict] = mapped_column(JSON, nullable=False)

    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_timeline_events_case_seq"),)


class TriageFeedback(Base):
    """What a handler decided about a case's kind and root cause, beside what triage
    suggested: the training pairs of `aftersales triage train --include-feedback`.

    One row per case, written by the projection when the case is confirmed (kind) and
    analysed (root cause); a later analysis after a reopen replaces the root cause.
    """

    __tablename__ = "triage_feedback"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str | None] = mapped_column(String(16))
    root_cause: Mapped[str | None] = mapped_column(String(32))
    suggested_kind: Mapped[str | None] = mapped_column(String(16))
    suggested_root_cause: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(40))
    decided_by: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (Index("ix_triage_feedback_updated", "updated_at"),)


class User(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Where staff notifications go, and in which language ("" = the default locale).
    email: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    locale: Mapped[str] = mapped_column(String(8), nullable=False, default="")
    # How customers see this user on their replies ("" : "Customer service"); never the
    # user name or a full name unless the user chose so.
    display_name: Mapped[str] = mapped_column(String(40), nullable=False, default="",
                                              server_default="")
    # Every sign-in session carries the version it was made under; moving it on (sign-
    # out) ends all of the user's sessions at their next request, copied cookies too.
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                 server_default="0")
    # Away users get no new cases from routing (docs/teams.md); on duty when created.
    on_duty: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True,
                                          server_default="1")
    # How often the user gets the digest of SLA warnings, in seconds (one of
    # db/digests.CHOICES); None: AFTERSALES_DIGEST_INTERVAL.
    digest_interval: Mapped[int | None] = mapped_column(Integer)


class UserTeam(Base):
    """A user's membership of a team (a user may be in several)."""

    __tablename__ = "user_teams"

    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), primary_key=True)
    team: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_user_teams_team", "team"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    # sha256 of the token; the token itself is shown once, at creation.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The token's public name (`tk_` and 8 hex digits): listed, and revoked by, without
    # ever showing the token.
    id: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # None: the token does not expire.
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Moved on at most once a minute (db/accounts.py), not at every request.
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxMessage(Base):
    """A notification decided by a workflow (or a scheduler digest), sent once.

    A delivery attempt claims the row (`claimed_until` in the future) with a conditional
    UPDATE, so two attempts never send it at the same time; `delivered` lists the
    addresses already served, so a retry after a partial failure skips them.
    """

    __tablename__ = "outbox"

    # case id + sequence, decided in the workflow: a retried write adds no second row.
    # Digests have keys of their own (`digest:overdue:<hour>`) and no case.
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(ForeignKey("cases.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    recipient: Mapped[str] = mapped_column(String(120), nullable=False)
    template: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered: Mapped[list] = mapped_column(JSON, nullable=False, default=list)

    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "created_at"),)


class IdempotencyKey(Base):
    """A client's Idempotency-Key with the hash of its request and the stored answer."""

    __tablename__ = "idempotency_keys"

    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # sha256 of method, path and the canonical JSON body.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Null while the first request is still being answered.
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict | None] = mapped_column(JSON)
    headers: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)


class AuditEntry(Base):
    """One staff request that asked for a change: who, what, when, and the answer.

    Append-only: nothing in the app updates or deletes it, and database triggers refuse
    UPDATE and DELETE (migration 0002).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    method: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(String(300), nullable=False)
    case_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    # What the request did beyond its path, e.g. an export's filters and row count.
    detail: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_log_case", "case_id", "at"),
                      Index("ix_audit_log_actor", "actor", "at"))


class KpiSnapshot(Base):
    """One day's figures, written nightly by the scheduler for the trend charts.

    Counts, not percentages, so weeks and months are sums of days. The day's cases are
    those opened that day (UTC); `closed` counts cases closed that day.
    """

    __tablename__ = "kpi_snapshots"

    day: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    opened: Mapped[int] = mapped_column(Integer, nullable=False)
    closed: Mapped[int] = mapped_column(Integer, nullable=False)
    clocks_met: Mapped[int] = mapped_column(Integer, nullable=False)
    clocks_breached: Mapped[int] = mapped_column(Integer, nullable=False)
    ratings: Mapped[int] = mapped_column(Integer, nullable=False)
    satisfied: Mapped[int] = mapped_column(Integer, nullable=False)
    rating_sum: Mapped[int] = mapped_column(Integer, nullable=False)
    overdue_open: Mapped[int] = mapped_column(Integer, nullable=False)
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # The day's additive report figures (db/reports.py `Tally`), so a report over closed
    # days sums rows instead of scanning cases; null on rows written before 0025.
    figures: Mapped[dict | None] = mapped_column(JSON)


class SchedulerLease(Base):
    """Who runs a housekeeping job now, and which run of it is done.

    Claimed with one conditional UPDATE (atomic on SQLite and PostgreSQL), so two
    schedulers started by mistake never run the same job run twice.
    """

    __tablename__ = "scheduler_leases"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    run_key: Mapped[str | None] = mapped_column(String(64))
    done_key: Mapped[str | None] = mapped_column(String(64))
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EventSubscription(Base):
    """An endpoint of AFTERSALES_EVENT_WEBHOOK_URL as events-out knows it: from which
    timeline event on it is owed events, and whether it said it is gone (410)."""

    __tablename__ = "event_subscriptions"

    url: Mapped[str] = mapped_column(String(500), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Every timeline event with an id above this is owed to the endpoint (or delivered,
    # per its case's cursor); raised as the oldest owed event moves on.
    low_water: Mapped[int] = mapped_column(Integer, nullable=False)
    # The newest timeline id when it subscribed: a case's events up to it are not owed.
    start_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The newest id seen a while ago: low water never passes it, so an event whose
    # write was still under way then (a lower id, committed later) is not skipped.
    horizon_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    horizon_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(8), nullable=False)  # active | gone
    # The endpoint as a whole failing (down, 5xx, 429): failures in a row, next try.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class EventCursor(Base):
    """How far one endpoint has received one case's timeline (in order, per case), and
    when to try again after a failure."""

    __tablename__ = "event_cursors"

    url: Mapped[str] = mapped_column(ForeignKey("event_subscriptions.url"),
                                     primary_key=True)
    case_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
class MailCursor(Base):
    """How far the IMAP poller has read a mailbox (aftersales/mailin.py): the mailbox's
    UIDVALIDITY and the last UID handed over. Only advanced after the handler returned,
    so a crash reads a message again instead of losing it."""

    __tablename__ = "mail_cursors"

    # user@host:port/mailbox, never the password.
    mailbox: Mapped[str] = mapped_column(String(300), primary_key=True)
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit numbers: too big for INTEGER on
    # PostgreSQL.
    uidvalidity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The message after last_uid whose handler raised, and how many times in a row:
    # after a few it is skipped, so one bad message cannot stop the mailbox for good.
    failed_uid: Mapped[int | None] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class InboundMailRecord(Base):
    """A mail the router has dealt with, by Message-ID (aftersales.mailin.dedupe_key):
    the IMAP cursor re-reads after a crash and senders resend, so the router looks here
    before acting and writes here once it acted (what it did carries the same id, so a
    mail read again between the two is still one message or one case)."""

    __tablename__ = "inbound_mail"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # What the router made of it: message, note, opened, ignored, unreadable, empty.
    outcome: Mapped[str] = mapped_column(String(200), nullable=False)
    case_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_inbound_mail_received", "received_at"),
                      Index("ix_inbound_mail_case", "case_id"))


class RateCounter(Base):
    """One rate limit's count for one key (web/ratelimit.py): misses or requests of a
    client address, an account at an address, an order or a status link, in the window
    that began with the first of them. In the read model, so every web process and
    every instance counts together; rows whose window has ended are purged hourly."""

    __tablename__ = "rate_counters"

    limiter: Mapped[str] = mapped_column(String(32), primary_key=True)
    # sha256 of the key: one length for every kind, and no address or name in clear.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)
    window_ends_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (Index("ix_rate_counters_window_ends", "window_ends_at"),)


class ProjectionFailure(Base):
    """A case whose projection write failed for good (bad data, not a lost connection):
    the alert operators see (`aftersales cases failed`, the reconciliation report) until
    the case is written again (`aftersales cases reproject`, or the workflow's next
    write that succeeds). One row per case: the latest failure and how many."""

    __tablename__ = "projection_failures"

    case_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # The error's type and message, control characters escaped.
    error: Mapped[str] = mapped_column(String(500), nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    first_failed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
