"""Personal data in the read model: export, erasure on request, retention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from db import cases as case_store
from db.engine import make_engine, make_sessionmaker
from db.models import Case, CaseNameGram, OutboxMessage
from db.privacy import ERASED, ErasureRefused, anonymise_closed, erase_customer
from tests.test_read_model import event, snapshot
from workflows.case.contracts import Customer, Message, Projection
from workflows.case.contracts import OutboxMessage as OutboxDraft

NOW = datetime.now(UTC)


def seed(url: str) -> None:
    sessions = make_sessionmaker(make_engine(url))
    customer = Customer(id="C-77", name="赵敏", phone="13600000077", email="zm@example.com")
    for case_id, stage, closed in (("AS-P1", "closed", NOW - timedelta(days=400)),
                                   ("AS-P2", "closed", NOW - timedelta(days=10)),
                                   ("AS-P3", "analyze", None)):
        ev = event(1, "note")
        ev.detail = {"text": "客户电话 13600000077", "n": 1}
        asked = OutboxDraft(key=f"{case_id}:1", at=NOW, channel="customer", recipient="C-77",
                            template="info_requested",
                            payload={"question": "赵敏，请提供照片", "customer_url": "x"})
        case_store.write_projection(sessions, Projection(snapshot(
            case_id, 1, stage=stage, customer=customer, closed_at=closed,
            description="赵敏的水壶坏了"), events=[ev], outbox=[asked]))
        with sessions.begin() as session:  # as the delivery records it
            session.execute(update(OutboxMessage).where(OutboxMessage.key == asked.key)
                            .values(delivered=["zm@example.com"], sent_at=NOW))


def run(args: list[str], url: str, temporal: str = "127.0.0.1:9") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aftersales.cli", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "AFTERSALES_DATABASE_URL": url,
                               "AFTERSALES_TEMPORAL_ADDRESS": temporal})


def test_export_erase_and_retention(sqlite_url, temporal_address):
    seed(sqlite_url)
    exported = run(["privacy", "export", "C-77"], sqlite_url)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert [c["id"] for c in data["cases"]] == ["AS-P1", "AS-P2", "AS-P3"]
    assert data["cases"][0]["data"]["customer"]["phone"] == "13600000077"
    assert data["cases"][0]["notifications"][0]["sent_to"] == ["zm@example.com"]

    refused = run(["privacy", "erase", "C-77"], sqlite_url)
    assert refused.returncode != 0 and "AS-P3" in refused.stderr

    sessions = make_sessionmaker(make_engine(sqlite_url))
    with sessions.begin() as session:
        assert anonymise_closed(session, timedelta(days=365), NOW) == 1
    with sessions() as session:
        old = case_store.get_case(session, "AS-P1")
        assert old.customer_name == ERASED and old.customer_phone == ""
        assert old.customer_name_folded is None
        assert "13600000077" not in json.dumps(old.data, ensure_ascii=False)
        assert case_store.get_case_by_token(session, "token-AS-P1") is None
        assert case_store.timeline(session, "AS-P1")[0].detail["text"] == ERASED
        sent = session.get(OutboxMessage, "AS-P1:1")
        assert sent.delivered == [ERASED] and sent.payload == {"question": ERASED}
        assert case_store.get_case(session, "AS-P2").customer_name == "赵敏"
        searched = case_store.list_cases(session, case_store.CaseFilter(q="赵敏"))[0]
        assert [c.id for c in searched] == ["AS-P2", "AS-P3"]  # not the anonymised one

    with sessions.begin() as session:
        session.execute(update(Case).where(Case.id == "AS-P3").values(
            stage="cancelled", closed_at=NOW))
    # AS-P2 closed 10 days ago: its workflow (none here) is asked to erase itself first.
    unreachable = run(["privacy", "erase", "C-77"], sqlite_url)
    assert unreachable.returncode != 0 and "nothing was erased" in unreachable.stderr
    assert case_store.get_case(sessions(), "AS-P2").customer_name == "赵敏"
    erased = run(["privacy", "erase", "C-77"], sqlite_url, temporal_address)
    assert erased.returncode == 0, erased.stderr
    again = json.loads(run(["privacy", "export", "C-77"], sqlite_url).stdout)
    assert again["cases"] == []  # nothing is filed under the customer any more
    with sessions() as session:
        for case_id in ("AS-P1", "AS-P2", "AS-P3"):
            text = json.dumps(case_store.get_case(session, case_id).data, ensure_ascii=False)
            assert "赵敏" not in text and "13600000077" not in text
        assert case_store.list_cases(session, case_store.CaseFilter(q="赵"))[0] == []
        assert session.scalar(select(func.count()).select_from(CaseNameGram).where(
            CaseNameGram.case_id.in_(("AS-P1", "AS-P2", "AS-P3")))) == 0


def test_erase_refuses_open_cases_in_process(sqlite_url):
    seed(sqlite_url)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    with sessions.begin() as session, pytest.raises(ErasureRefused, match="AS-P3"):
        erase_customer(session, "C-77", NOW)


def test_housekeeping_jobs(sqlite_url):
    from aftersales.scheduler import Housekeeping
    from tests.conftest import make_settings

    seed(sqlite_url)
    jobs = Housekeeping(make_settings("unused", sqlite_url, "http://unused",
                                      retention=30 * 86400))
    assert jobs.anonymise_closed_cases() == 1  # AS-P1 closed 400 days ago; AS-P2 10 days
    assert jobs.anonymise_closed_cases() == 0  # once is enough
    assert jobs.purge_idempotency_keys() == 0
    jobs.close()


def test_anonymising_drops_the_triage_training_pair_and_the_quoted_words(sqlite_url):
    from db.models import TriageFeedback
    from db.triage import feedback_pairs
    from tests.test_read_model import T0
    from workflows.case.contracts import EscalationRisk, Suggestion, Triage

    def suggestion(value: str) -> Suggestion:
        return Suggestion(value, 0.8, ["“赵敏”", "cue: broken"])

    triage = Triage(kind=suggestion("repair"), root_cause=suggestion("product_quality"),
                    priority=suggestion("P3"), sentiment=suggestion("negative"),
                    escalation_risk=EscalationRisk(False, 0.9, []),
                    reasons=["“赵敏”", "cue: broken"], model_version="m1")
    customer = Customer(id="C-88", name="赵敏", phone="13600000088")
    analyzed = event(2, "analyzed")
    analyzed.detail = {"root_cause": "product_quality", "note": "x"}
    sessions = make_sessionmaker(make_engine(sqlite_url))
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-T1", 1, stage="resolve", customer=customer, description="赵敏的水壶坏了",
        triage=triage), events=[event(1, "confirmed"), analyzed]))
    # A retried write of the same events changes nothing.
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-T1", 1, stage="resolve", customer=customer, description="赵敏的水壶坏了",
        triage=triage), events=[event(1, "confirmed"), analyzed]))
    with sessions() as session:
        pairs = feedback_pairs(session)
        assert [(p.description, p.kind, p.root_cause, p.suggested_root_cause)
                for p in pairs] == [("赵敏的水壶坏了", "complaint", "product_quality",
                                     "product_quality")]
        row = case_store.get_case(session, "AS-T1")
        assert row.escalation_risk is False and row.triage["reasons"] == ["“赵敏”",
                                                                          "cue: broken"]
    with sessions.begin() as session:
        session.execute(update(Case).where(Case.id == "AS-T1").values(
            stage="closed", closed_at=T0))
    with sessions.begin() as session:
        assert erase_customer(session, "C-88", NOW) == 1
    with sessions() as session:
        assert session.get(TriageFeedback, "AS-T1") is None
        row = case_store.get_case(session, "AS-T1")
        assert "赵敏" not in json.dumps(row.data, ensure_ascii=False)
        assert "赵敏" not in json.dumps(row.triage, ensure_ascii=False)
        assert row.triage["root_cause"]["value"] == "product_quality"


def test_erasure_takes_the_inspection_note_and_the_tags(sqlite_url):
    from db.models import CaseTag
    from tests.test_read_model import T0

    customer = Customer(id="C-89", name="周芷若", phone="13600000089")
    tagged = event(2, "tagged")
    tagged.detail = {"added": ["周芷若 VIP"], "removed": []}
    sessions = make_sessionmaker(make_engine(sqlite_url))
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-T2", 1, stage="resolve", customer=customer, tags=["周芷若 VIP"],
        inspection={"passed": False, "note": "周芷若's screen cracked", "by": "alice"},
        messages=[Message(id="m1", author="customer", text="我是周芷若，电话 13600000089",
                          at=T0, channel="email", ref="<a@周芷若.example>")]),
        events=[event(1, "confirmed"), tagged]))
    with sessions.begin() as session:
        session.execute(update(Case).where(Case.id == "AS-T2").values(
            stage="closed", closed_at=T0))
    with sessions.begin() as session:
        assert erase_customer(session, "C-89", NOW) == 1
    with sessions() as session:
        row = case_store.get_case(session, "AS-T2")
        assert "周芷若" not in json.dumps(row.data, ensure_ascii=False)
        assert row.data["tags"] == [] and row.data["inspection"]["passed"] is False
        assert [(m["author"], m["channel"]) for m in row.data["messages"]] == [
            ("customer", "email")]  # who wrote when stays, not the words
        assert session.scalars(select(CaseTag).where(CaseTag.case_id == "AS-T2")).all() == []
        details = [e.detail for e in case_store.timeline(session, "AS-T2")]
        assert "周芷若" not in json.dumps(details, ensure_ascii=False)
