"""One language per page: every staff and customer page rendered in zh-CN over a seeded
read model (a case in every stage, a timeline holding every kind of event the workflow
writes, an approval waiting, a breach, an escalation risk) shows no English sentence and
no raw key in its visible text. Ids, codes, SKUs, names, numbers and URLs may stay as
they are; a run of English words or a snake_case key fails (docs/pages.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from db import cases as case_store
from tests.test_pages import NOW, put, signed_in
from tests.test_pages import app as app
from tests.test_read_model import snapshot
from web.caseview import EVENT_NAMES
from workflows.case.contracts import (
    CaseItem,
    Customer,
    EscalationRisk,
    Message,
    OrderLine,
    OrderSnapshot,
    Projection,
    Resolution,
    StageClock,
    Suggestion,
    TimelineEvent,
    Triage,
)

ROOT = Path(__file__).resolve().parent.parent
# Words that are names, not sentences: the product's own name, formats, the payment
# networks' brands. Anything else English on a zh page is a missing translation.
ALLOWED = {"Aftersales", "CSV", "PDF", "JPEG", "PNG", "WebP", "HEIC", "MP4", "SLA", "API",
           "VIP", "English", "UTC", "SKU", "P1", "P2", "P3", "P4"}
ENGLISH_RUN = re.compile(r"[A-Za-z][a-z]+(?:[ ,;:'’-]+[A-Za-z][a-z]+)+")
SNAKE_KEY = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
# Codes, ids, SKUs, e-mail addresses and URLs: taken out before looking for words.
CODES = re.compile(r"https?://\S+|\S+@\S+|\b[A-Z]{2,}-[\w-]+\b|\b[\w.-]*\d[\w.-]*\b")


class Visible(HTMLParser):
    """The text a reader sees: text nodes and placeholders, not scripts or styles, nor
    what the page marks as code (`<code>`: an audit action, a filter as typed)."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template", "code"):
            self.skip += 1
        for name, value in attrs:
            if name in ("placeholder", "title", "aria-label") and value:
                self.texts.append(value)
            if name == "value" and tag == "input" and ("type", "submit") in attrs and value:
                self.texts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template", "code") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.texts.append(data.strip())


def foreign(html: str, names: tuple[str, ...] = ()) -> list[str]:
    """The English runs and raw keys in a page's visible text."""
    parser = Visible()
    parser.feed(html)
    return foreign_in(parser.texts, names)


def foreign_in(texts: list[str], names: tuple[str, ...] = ()) -> list[str]:
    """The English runs and raw keys in some visible text."""
    found = []
    for shown in texts:
        text = shown
        for name in names:
            text = text.replace(name, " ")
        text = CODES.sub(" ", text)
        for word in ALLOWED:
            text = re.sub(rf"\b{re.escape(word)}\b", " ", text)
        found += SNAKE_KEY.findall(text)
        found += [m for m in ENGLISH_RUN.findall(text) if m.strip(" ,;:'’-")]
    return found


def event(seq: int, kind: str, actor: str = "system", **detail) -> TimelineEvent:
    return TimelineEvent(seq=seq, at=NOW - timedelta(minutes=60 - seq), actor=actor,
                         type=kind, stage_before="analyze", stage_after="analyze",
                         detail=detail)


def workflow_event_types() -> set[str]:
    """Every kind of timeline event the workflow writes, read from its source."""
    source = "\n".join(p.read_text(encoding="utf-8")
                       for p in (ROOT / "workflows").rglob("*.py"))
    kinds = set(re.findall(r"\.event\(\s*[\w.]+,\s*\"([a-z_]+)\"", source))
    kinds |= set(re.findall(r"\.move\(\s*[\w.]+,\s*[\w.]+,\s*\"([a-z_]+)\"", source))
    return kinds


def test_every_event_the_workflow_writes_has_a_name_on_the_pages():
    kinds = workflow_event_types()
    assert {"escalation_risk", "sla_warning", "assigned"} <= kinds  # the scan works
    assert not kinds - set(EVENT_NAMES), sorted(kinds - set(EVENT_NAMES))


ORDER = OrderSnapshot(id="SO-20001", customer_id="C-7", status="delivered", currency="CNY",
                      total="10157.00", placed_at=NOW - timedelta(days=9),
                      delivered_at=NOW - timedelta(days=5), refunded="120.00",
                      lines=[OrderLine("SKU-TV55", "电视机", 1, "10157.00", "standard")],
                      waybill_no="SF1234567890")
TRIAGE = Triage(kind=Suggestion("refund", 0.8, ["“退款”"]),
                root_cause=Suggestion("product_quality", 0.7, ["“坏了”"]),
                priority=Suggestion("P1", 0.9, ["rule: 12315"]),
                sentiment=Suggestion("angry", 0.9, ["“太过分”"]),
                escalation_risk=EscalationRisk(True, 0.95, ["rule: 12315", "“投诉”"]),
                reasons=["rule: 12315"])
STAGES = ("record", "confirm", "analyze", "resolve", "revisit", "feedback", "closed")


def seed(app) -> list[str]:
    """A case in every stage, and one with a full day's timeline."""
    ids = []
    for n, stage in enumerate(STAGES):
        case_id = f"AS-ZH{n}"
        closed = stage == "closed"
        put(app, case_id, stage=stage, status="closed" if closed else "open",
            assignee="hank" if n % 2 else None, order=ORDER, order_id=ORDER.id,
            customer=Customer(id="C-7", name="王芳", phone="13800000007"),
            items=[CaseItem("SKU-TV55", 1)], description="电视机屏幕坏了，再不处理就投诉到12315",
            priority="P1", priority_reasons=["policy default P3", "rule: 12315",
                                             "triage: escalation risk (rule: 12315): +1"],
            triage=TRIAGE, tags=["破损"], stage_due_at=None if closed else NOW - timedelta(
                minutes=5), overdue=not closed, closed_at=NOW if closed else None,
            at_risk_at=NOW - timedelta(hours=1),
            clocks=[StageClock(name="confirm", target=8 * 3600, used=9 * 3600,
                               state="breached", breached_at=NOW - timedelta(hours=1),
                               due_at=NOW - timedelta(hours=1))],
            breaches=[{"clock": "confirm", "at": (NOW - timedelta(hours=1)).isoformat(),
                       "target_s": 8 * 3600, "priority": "P1"}],
            resolution=Resolution(type="refund", amount="899.00", state="running",
                                  awaiting="approval") if stage == "resolve" else None,
            status_token=f"tok-{case_id}")
        ids.append(case_id)
    events = [
        event(1, "created", "hank", channel="phone"),
        event(2, "escalation_risk", reasons=["rule: 12315", "“投诉”"], confidence=0.95,
              priority="P1"),
        event(3, "assigned", "sam", to="hank"),
        event(4, "sla_warning", clock="confirm", share=0.75,
              rule="75% of the confirm target (8h) for P1"),
        event(5, "overdue", clock="confirm", rule="100% of the confirm target (8h) for P1"),
        event(6, "escalated", level=1, to="supervisor", clock="confirm",
              rule="100% of the confirm target (8h) for P1"),
        event(7, "escalated", level=2, to="admin", clock="confirm",
              rule="150% of the confirm target (8h)"),
        event(8, "approval_requested", amount="899.00"),
        event(9, "unassigned", "admin", **{"from": "hank"}),
        event(10, "triage_failed", error="model not loaded"),
        event(11, "waiting", system="order"),
        event(12, "system_answered", system="order"),
    ]
    case_store.write_projection(app.extensions["aftersales"].sessions, Projection(snapshot(
        "AS-ZH2", 50, stage="analyze", order=ORDER, order_id=ORDER.id, assignee="hank",
        customer=Customer(id="C-7", name="王芳", phone="13800000007"), triage=TRIAGE,
        status_token="tok-AS-ZH2", customer_url="http://testserver/s/tok-AS-ZH2",
        messages=[Message(id="M-1", author="customer", text="快点处理", at=NOW,
                          channel="web")],
        created_at=NOW - timedelta(hours=9), updated_at=NOW), events=events))
    return ids


@pytest.mark.parametrize("who", ["hank", "sam", "admin"])
def test_every_staff_page_in_chinese_has_no_english_sentence_or_raw_key(app, who):
    from db.accounts import create_user

    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "admin", "admin", "admin-password")
    ids = seed(app)
    client = signed_in(app, who, "zh_CN")
    pages = ["/desk", "/desk/new", "/desk?q=AS-ZH2", "/desk?q=王芳", "/desk/customers/C-7",
             "/account/password"] + [f"/desk/cases/{i}" for i in ids]
    if who != "hank":
        pages += ["/supervisor", "/supervisor/reports"]
    if who == "admin":
        pages += ["/admin"]
    found = {}
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert 'lang="zh-CN"' in html, path
        bad = foreign(html, names=("hank", "sam", "admin", "bob"))
        if bad:
            found[path] = bad
    assert not found, found


def test_every_customer_page_in_chinese_has_no_english_sentence_or_raw_key(app):
    ids = seed(app)
    client = app.test_client()
    zh = {"Accept-Language": "zh-CN"}
    found = {}
    for path in ["/login", "/request", "/s/no-such-link"] + [f"/s/tok-{i}" for i in ids]:
        response = client.get(path, headers=zh)
        assert response.status_code in (200, 404), path
        bad = foreign(response.get_data(as_text=True))
        if bad:
            found[path] = bad
    assert not found, found


def test_the_checker_finds_english_and_keys():
    """The check itself fails on what it is for, and passes ids, codes and numbers."""
    assert foreign("<p>150% of the confirm target</p>") == ["of the confirm target"]
    assert foreign("<li>sam 分派 escalation_risk</li>") == ["escalation_risk"]
    assert foreign("<p>29990 is more than the 10157.00 left</p>") == [
        "is more than the   left"]
    assert foreign('<p title="Assign to">工单 AS-ZH1 · SO-20001 · SKU-TV55 · '
                   'https://x.example/s/t ¥1,234.50</p>') == ["Assign to"]
    assert foreign("<script>var some_key = 'English words here'</script><p>工单</p>") == []


# The workflow's refusals in Chinese, by their codes: tests/test_refusals.py.


def test_one_word_for_a_case_in_chinese_everywhere():
    """Pages, e-mails, SMS and WeChat texts and reply templates call a case 工单; no other
    word for it (服务单, 售后单) is left anywhere a customer or handler reads."""
    places = [*(ROOT / "activities" / "templates").rglob("*.*"),
              *(ROOT / "web" / "content").rglob("*.toml"),
              *(ROOT / "web" / "templates").rglob("*.html"),
              ROOT / "web" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po",
              *(ROOT / "docs").rglob("*.*")]
    other = {str(p.relative_to(ROOT)): w for p in places if p.is_file()
             for w in ("服务单", "售后单") if w in p.read_text(encoding="utf-8")}
    assert not other, other
    zh = (ROOT / "activities" / "templates" / "notifications" / "zh-CN")
    assert all("工单" in p.read_text(encoding="utf-8") for p in zh.glob("case_*.txt"))
