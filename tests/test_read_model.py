"""The read model on SQLite and on the PostgreSQL server: projection writes that
never go backwards, idempotent timeline and outbox, queries, accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from db import accounts
from db import cases as case_store
from db.engine import make_engine, make_sessionmaker
from db.models import Case, CaseNameGram, OutboxMessage, TimelineEvent
from db.privacy import ERASED
from workflows.case.contracts import (
    CaseSnapshot,
    Customer,
    Projection,
    Resolution,
)
from workflows.case.contracts import (
    OutboxMessage as OutboxDraft,
)
from workflows.case.contracts import (
    TimelineEvent as EventDraft,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def snapshot(case_id: str, version: int, stage: str = "confirm", **changes) -> CaseSnapshot:
    values = dict(
        case_id=case_id, version=version, kind="complaint", channel="web", stage=stage,
        status="open", priority="P3", priority_reasons=["default P3"], assignee=None,
        order_id="SO-10001", customer=Customer(id="C-1", name="王芳", phone="13800000001"),
        items=[], description="坏了", created_at=T0, updated_at=T0 + timedelta(minutes=version),
        stage_due_at=T0 + timedelta(hours=8), resolution_due_at=T0 + timedelta(hours=72),
        overdue=False, status_token=f"token-{case_id}", customer_url="http://x/s/t",
    )
    values.update(changes)
    return CaseSnapshot(**values)


def event(seq: int, kind: str = "note") -> EventDraft:
    return EventDraft(seq=seq, at=T0 + timedelta(minutes=seq), actor="alice", type=kind,
                      stage_before="confirm", stage_after="confirm", detail={"n": seq})


def test_projection_never_moves_backwards(sessions):
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-1", 1), events=[event(1, "created"), event(2, "recorded")]))
    case_store.write_projection(sessions, Projection(snapshot("AS-1", 3, stage="analyze")))
    # A late retry of version 2 arrives after version 3: the row stays at 3.
    moved = case_store.write_projection(sessions, Projection(snapshot("AS-1", 2)))
    assert moved is False
    with sessions() as session:
        row = case_store.get_case(session, "AS-1")
        assert (row.version, row.stage) == (3, "analyze")
        assert row.data["customer"]["name"] == "王芳"
        assert "status_token" not in row.data
        assert case_store.get_case_by_token(session, "token-AS-1").id == "AS-1"
        assert case_store.get_case_by_token(session, "wrong") is None


def test_a_retried_workflow_task_s_write_replaces_the_abandoned_one(sessions):
    """A workflow task wrote version 4 and timed out; its retry, later, handled the
    breach too and flushes again as version 4. The later write must win; a straggler
    of the abandoned attempt must not."""
    first = snapshot("AS-R1", 4, updated_at=T0 + timedelta(minutes=10))
    retried = snapshot("AS-R1", 4, overdue=True, updated_at=T0 + timedelta(minutes=14))
    assert case_store.write_projection(sessions, Projection(first)) is True
    assert case_store.write_projection(sessions, Projection(retried)) is True
    assert case_store.write_projection(sessions, Projection(first)) is False  # straggler
    assert case_store.write_projection(sessions, Projection(retried)) is False  # a retry
    with sessions() as session:
        row = case_store.get_case(session, "AS-R1")
        assert (row.version, row.overdue) == (4, True)


def test_events_and_outbox_are_written_once(sessions):
    message = OutboxDraft(key="AS-2:1", at=T0, channel="staff", recipient="role:supervisor",
                          template="case_overdue", payload={"case_id": "AS-2"})
    projection = Projection(snapshot("AS-2", 1), events=[event(1), event(2)], outbox=[message])
    case_store.write_projection(sessions, projection)
    case_store.write_projection(sessions, projection)  # a retried activity
    case_store.write_projection(sessions, Projection(snapshot("AS-2", 2),
                                                     events=[event(2), event(3)]))
    with sessions() as session:
        seqs = [e.seq for e in case_store.timeline(session, "AS-2")]
        assert seqs == [1, 2, 3]
        count = session.scalar(select(func.count()).select_from(OutboxMessage))
        assert count == 1
        assert [m.key for m in case_store.unsent_outbox(session)] == ["AS-2:1"]
        assert session.scalar(select(func.count()).select_from(TimelineEvent)) == 3


def test_listing_filters_sorts_and_pages(sessions):
    for n, (stage, priority, overdue, due_h) in enumerate([
        ("confirm", "P1", True, 1), ("confirm", "P3", False, 5), ("analyze", "P2", False, 3),
        ("closed", "P4", False, None),
    ]):
        due = T0 + timedelta(hours=due_h) if due_h is not None else None
        case_store.write_projection(sessions, Projection(snapshot(
            f"AS-L{n}", 1, stage=stage, priority=priority, overdue=overdue,
            stage_due_at=due, assignee="alice" if n % 2 else None, order_id=f"SO-{n}")))
    F = case_store.CaseFilter
    with sessions() as session:
        def ids(filters=F(), **kw):
            rows, total, _ = case_store.list_cases(session, filters, per_page=10, **kw)
            return [r.id for r in rows], total

        assert ids() == (["AS-L0", "AS-L2", "AS-L1", "AS-L3"], 4)  # by due, nothing due last
        assert ids(F(stage="confirm")) == (["AS-L0", "AS-L1"], 2)
        assert ids(F(overdue=True))[0] == ["AS-L0"]
        assert ids(F(assignee="alice"))[0] == ["AS-L1", "AS-L3"]
        assert ids(F(q="SO-2"))[0] == ["AS-L2"]
        assert len(ids(F(q="王"))[0]) == 4
        assert ids(F(q="%"))[0] == []  # LIKE wildcards are matched literally
        assert ids(F(created_from=T0 + timedelta(minutes=1)))[0] == []
        rows, _, _ = case_store.list_cases(session, F(), sort="priority")
        assert [r.priority for r in rows] == ["P1", "P2", "P3", "P4"]
        rows, total, _ = case_store.list_cases(session, F(), per_page=3, page=2)
        assert [r.id for r in rows] == ["AS-L3"] and total == 4
        assert case_store.open_case_on_order(session, "SO-1", "complaint").id == "AS-L1"
        assert case_store.open_case_on_order(session, "SO-3", "complaint") is None


def test_search_by_id_order_phone_or_part_of_the_name(sessions):
    people = [("AS-S1", "王芳", "13800000001"), ("AS-S2", "王小芳", "13800000002"),
              ("AS-S3", "李芳芳", "13800000003"), ("AS-S4", "John Smith", "13800000004"),
              ("AS-S5", "张伟", "13800000005"), ("AS-S6", "Émile Straße", "13800000006"),
              ("AS-S7", "Maximilian Alexander Konstantin Friedrich von und zu "
                        "Hohenberg-Wittelsbach", "13800000007")]
    for case_id, name, phone in people:
        case_store.write_projection(sessions, Projection(snapshot(
            case_id, 1, order_id=f"SO-{case_id}",
            customer=Customer(id=f"C-{case_id}", name=name, phone=phone))))
    F = case_store.CaseFilter
    with sessions() as session:
        def found(q: str) -> list[str]:
            rows, total, _ = case_store.list_cases(session, F(q=q), per_page=10)
            assert total == len(rows)
            return sorted(r.id for r in rows)

        assert found("王芳") == ["AS-S1"]  # the pair, not the two characters apart
        assert found("芳") == ["AS-S1", "AS-S2", "AS-S3"]
        assert found("芳芳") == ["AS-S3"]
        assert found("小芳") == ["AS-S2"]
        assert found("john smith") == ["AS-S4"]  # any case
        assert found("SMITH") == ["AS-S4"]
        assert found("n s") == ["AS-S4"]
        assert found("芳王") == []  # every pair present in no name in this order
        assert found("13800000005") == ["AS-S5"]
        assert found("SO-AS-S2") == ["AS-S2"]
        assert found("AS-S3") == ["AS-S3"]
        assert found("1380000000") == []  # a phone matches whole, not in part
        assert found("%") == [] and found("_") == []  # LIKE wildcards match literally
        # Case folding beyond ASCII, the same on SQLite and PostgreSQL: the database's
        # lower() is not used (it folds only ASCII on SQLite).
        assert found("émile") == ["AS-S6"]
        assert found("ÉMILE") == ["AS-S6"]
        assert found("STRASSE") == ["AS-S6"] and found("straße") == ["AS-S6"]
        assert found("wittelsbach") == ["AS-S7"]  # past the 64th character too

    # The name can change (intake fills it from the order): the new one is found, the
    # old one no longer, even though its grams stay in the index.
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-S5", 2, order_id="SO-AS-S5",
        customer=Customer(id="C-AS-S5", name="赵敏", phone="13800000005"))))
    with sessions() as session:
        assert [r.id for r in case_store.list_cases(session, F(q="赵敏"))[0]] == ["AS-S5"]
        assert case_store.list_cases(session, F(q="张伟"))[0] == []

    # A case written by a worker older than the index (no folded name, no grams) is
    # indexed by its next write, though its name did not change.
    with sessions.begin() as session:
        session.execute(update(Case).where(Case.id == "AS-S5")
                        .values(customer_name_folded=None))
        session.execute(delete(CaseNameGram).where(CaseNameGram.case_id == "AS-S5"))
    with sessions() as session:
        assert case_store.list_cases(session, F(q="赵敏"))[0] == []
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-S5", 3, order_id="SO-AS-S5",
        customer=Customer(id="C-AS-S5", name="赵敏", phone="13800000005"))))
    with sessions() as session:
        assert [r.id for r in case_store.list_cases(session, F(q="赵敏"))[0]] == ["AS-S5"]


def test_the_migrations_build_the_schema_the_models_describe(database_url):
    """Alembic's own comparison finds nothing to add, drop or change: a column added
    to db/models.py without its migration (or the other way round) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.engine import migrate
    from db.models import Base

    migrate(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_the_name_index_is_built_for_cases_already_there(database_url, sessions):
    from alembic import command

    from db.engine import alembic_config

    case_store.write_projection(sessions, Projection(snapshot(
        "AS-M1", 1, customer=Customer(id="C-M1", name="欧阳娜娜", phone="139"))))
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-M2", 1, customer=Customer(id="C-M2", name="Ólafur Arnalds", phone="140"))))
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-M3", 1, customer=Customer(id="C-M3", name=ERASED, phone=""))))
    config = alembic_config(database_url)
    command.downgrade(config, "0005")  # as before the index existed
    command.upgrade(config, "head")  # the migration indexes the names it finds
    with sessions() as session:
        rows = case_store.list_cases(session, case_store.CaseFilter(q="阳娜"))[0]
        assert [r.id for r in rows] == ["AS-M1"]
        rows = case_store.list_cases(session, case_store.CaseFilter(q="ólafur"))[0]
        assert [r.id for r in rows] == ["AS-M2"]  # and folds the names it finds
        # An anonymised case's placeholder is not indexed (erasure removes the name
        # from the index, and the fill must not put it back).
        assert case_store.list_cases(session, case_store.CaseFilter(q="erased"))[0] == []
        assert session.get(Case, "AS-M3").customer_name_folded is None


def test_cases_resolved_before_migration_0023_count_their_one_remedy(database_url,
                                                                      sessions):
    from alembic import command

    from db.engine import alembic_config

    case_store.write_projection(sessions, Projection(snapshot(
        "AS-R1", 1, stage="feedback", resolved_at=T0,
        resolution=Resolution(type="compensation", coupon_code="C", state="done"))))
    case_store.write_projection(sessions, Projection(snapshot("AS-R2", 1)))
    config = alembic_config(database_url)
    command.downgrade(config, "0019")  # as before remedy_types existed
    command.upgrade(config, "head")  # the migration fills it from resolution_type
    with sessions() as session:
        assert session.get(Case, "AS-R1").remedy_types == " compensation "
        assert session.get(Case, "AS-R2").remedy_types is None


def test_a_sqlite_migration_reports_rows_left_pointing_nowhere(sqlite_url, caplog):
    """Migrations on SQLite run with foreign keys off (a batch migration replaces whole
    tables); afterwards the keys are checked and what broke is logged."""
    import logging
    import sqlite3

    from alembic import command

    from db.engine import alembic_config, migrate

    migrate(sqlite_url)
    config = alembic_config(sqlite_url)
    command.downgrade(config, "0007")
    raw = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    raw.execute("INSERT INTO case_name_grams (gram, case_id) VALUES ('x', 'AS-GONE')")
    raw.commit()
    raw.close()
    with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
        command.upgrade(config, "head")
    assert any("broken foreign keys" in r.getMessage() and "case_name_grams" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
        command.upgrade(config, "head")  # nothing to migrate: no check, no warning
    assert not caplog.records


@pytest.mark.parametrize("sort", ["due", "created", "priority"])
def test_keyset_pages_are_stable_under_inserts(sessions, sort):
    def add(n: int, due_h: int | None) -> None:
        due = T0 + timedelta(hours=due_h) if due_h is not None else None
        case_store.write_projection(sessions, Projection(snapshot(
            f"AS-K{n:02d}", 1, stage_due_at=due, priority=f"P{n % 4 + 1}",
            created_at=T0 + timedelta(minutes=n))))

    for n in range(10):
        add(n, None if n % 3 == 0 else n)
    F = case_store.CaseFilter
    seen: list[str] = []
    after = None
    with sessions() as session:
        while True:
            rows, _, after = case_store.list_cases(session, F(), sort=sort, per_page=3,
                                                       after=after)
            seen += [r.id for r in rows]
            if len(seen) == 3:
                add(99, 0)  # a new case that sorts first under "due" arrives mid-listing
            if after is None:
                break
    assert len(seen) == len(set(seen))
    assert {f"AS-K{n:02d}" for n in range(10)} <= set(seen)


def test_accounts_store_only_hashes(sessions):
    with sessions.begin() as session:
        accounts.create_user(session, "alice", "handler", "s3cret-pw")
        token = accounts.create_token(session, "alice")
    with sessions() as session:
        user = accounts.user_for_token(session, token)
        assert user is not None and user.role == "handler"
        assert accounts.user_for_token(session, token + "x") is None
        assert accounts.check_password(session, "alice", "s3cret-pw") is not None
        assert accounts.check_password(session, "alice", "wrong") is None
        assert "s3cret-pw" not in (user.password_hash or "")
    with sessions.begin() as session, pytest.raises(accounts.AccountError):
        accounts.create_user(session, "alice", "handler")
    with sessions.begin() as session, pytest.raises(accounts.AccountError):
        accounts.create_user(session, "eve", "overlord")


def test_concurrent_writes_end_at_the_newest_version(sessions):
    import threading

    case_store.write_projection(sessions, Projection(snapshot("AS-C", 1)))
    barrier = threading.Barrier(8)

    def write(version: int) -> None:
        barrier.wait()
        case_store.write_projection(sessions, Projection(snapshot(
            "AS-C", version, stage="analyze" if version == 9 else "confirm")))

    threads = [threading.Thread(target=write, args=(v,)) for v in range(2, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sessions() as session:
        row = case_store.get_case(session, "AS-C")
        assert (row.version, row.stage) == (9, "analyze")


def test_audit_log_refuses_updates_and_deletes(sessions):
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DatabaseError

    from db.models import AuditEntry

    with sessions.begin() as session:
        session.add(AuditEntry(at=T0, actor="hank", role="handler", method="POST",
                               path="/api/v1/cases", status=201))
    for statement in (update(AuditEntry).values(actor="mallory"), delete(AuditEntry)):
        with pytest.raises(DatabaseError, match="append-only"), sessions.begin() as session:
            session.execute(statement)
    with sessions() as session:
        assert [e.actor for e in session.scalars(select(AuditEntry))] == ["hank"]
