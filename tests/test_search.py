"""The desk's search box over every case, on SQLite and PostgreSQL: what a query
matches (case ids however typed, phones however formatted, waybill numbers, names with
wildcard characters), the results page and its bad input, and the customer page.

The browser journeys in Chinese are in tests/test_search_browser.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db import cases as case_store
from db.models import Case, CaseWaybill
from db.privacy import ERASED, anonymise_closed
from db.search import case_id_of, phone_digits
from tests.test_pages import NOW, app, put, section, signed_in  # noqa: F401 - fixture
from tests.test_read_model import T0, sessions, snapshot  # noqa: F401 - fixture
from workflows.case.contracts import Customer, OrderSnapshot, Projection

F = case_store.CaseFilter


def write(sessions, case_id: str, version: int = 1, **changes) -> None:  # noqa: F811
    case_store.write_projection(sessions, Projection(snapshot(case_id, version, **changes)))


def found(sessions, query: str) -> list[str]:  # noqa: F811
    with sessions() as session:
        rows, total, _ = case_store.list_cases(session, F(q=query), per_page=50)
        assert total == len(rows)
        return sorted(r.id for r in rows)


def test_phone_digits_and_case_ids_however_typed():
    assert phone_digits("+86 138-0013-8000") == "13800138000"
    assert phone_digits("0086 (138) 0013 8000") == "13800138000"
    assert phone_digits("１３８００１３８０００") == "13800138000"  # full-width digits
    assert phone_digits("+86 10 6552 9988") == "861065529988"  # a landline keeps its 86
    assert phone_digits("") == ""
    assert case_id_of("as-23456789ab") == "AS-23456789AB"
    assert case_id_of(" AS 2345 6789 AB ") == "AS-23456789AB"
    assert case_id_of("as23456789ab") == "AS-23456789AB"
    assert case_id_of("AS-23456789A") is None  # one short
    assert case_id_of("AS-0OIL56789AB") is None  # letters no case id has


def test_a_case_id_is_found_in_any_letter_case_and_with_spaces(sessions):  # noqa: F811
    write(sessions, "AS-23456789AB")
    write(sessions, "AS-23456789AC")
    for query in ("AS-23456789AB", "as-23456789ab", "as 2345 6789 ab", "AS23456789AB",
                  "  as-23456789Ab  "):
        assert found(sessions, query) == ["AS-23456789AB"], query
    assert found(sessions, "AS-23456789A") == []  # an id matches whole, not in part


def test_a_phone_is_found_however_it_is_formatted(sessions):  # noqa: F811
    write(sessions, "AS-P1", customer=Customer(id="C-1", name="王芳", phone="13800138000"))
    write(sessions, "AS-P2", customer=Customer(id="C-2", name="李雷",
                                               phone="+86 139-0000-1111"))
    write(sessions, "AS-P3", customer=Customer(id="C-3", name="韩梅梅", phone=""))
    for query in ("13800138000", "+86 138-0013-8000", "138 0013 8000", "(+86)13800138000",
                  "0086 138 0013 8000", "１３８００１３８０００"):
        assert found(sessions, query) == ["AS-P1"], query
    for query in ("13900001111", "+86 139-0000-1111", "139-0000-1111"):
        assert found(sessions, query) == ["AS-P2"], query
    assert found(sessions, "138-0013-800") == []  # a phone matches whole
    assert found(sessions, "+86") == [] and found(sessions, "-") == []


def test_a_waybill_of_the_cases_parcels_or_its_order_finds_it(sessions):  # noqa: F811
    order = OrderSnapshot(id="SO-7", customer_id="C-1", status="delivered", currency="CNY",
                          total="99.00", placed_at=T0, waybill_no="YT 7788 9900")
    write(sessions, "AS-W1", order=order, order_id="SO-7")
    write(sessions, "AS-W1", 2, order=order, order_id="SO-7",
          parcels={"SF1234567890": {"type": "return", "step": "pickup",
                                    "status": "created"}})
    write(sessions, "AS-W2", order_id="SO-8")
    for query in ("SF1234567890", "sf1234567890", "SF 1234 5678 90", "YT77889900",
                  "yt 7788 9900"):
        assert found(sessions, query) == ["AS-W1"], query
    assert found(sessions, "SF12345678") == []  # whole numbers only
    # A parcel added later is indexed once; the earlier ones stay.
    write(sessions, "AS-W1", 3, order=order, order_id="SO-7",
          parcels={"SF1234567890": {"type": "return", "step": "pickup", "status": "done"},
                   "SF5550001111": {"type": "exchange", "step": "ship", "status": "created"}})
    assert found(sessions, "SF5550001111") == ["AS-W1"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CaseWaybill).where(
            CaseWaybill.case_id == "AS-W1")) == 3


def test_wildcards_in_a_query_match_themselves(sessions):  # noqa: F811
    write(sessions, "AS-L1", customer=Customer(id="C-1", name="Ann_Lee", phone="1"))
    write(sessions, "AS-L2", customer=Customer(id="C-2", name="AnnXLee", phone="2"))
    write(sessions, "AS-L3", customer=Customer(id="C-3", name="百分百%满意", phone="3"))
    write(sessions, "AS-L4", customer=Customer(id="C-4", name="百分百满意", phone="4"))
    assert found(sessions, "n_L") == ["AS-L1"]
    assert found(sessions, "_") == ["AS-L1"]
    assert found(sessions, "%") == ["AS-L3"]
    assert found(sessions, "百%满") == ["AS-L3"]
    assert found(sessions, "%%") == [] and found(sessions, "\\") == []
    assert found(sessions, "ann") == ["AS-L1", "AS-L2"]


def test_an_erased_customer_is_not_found_by_name_or_phone(sessions):  # noqa: F811
    old = NOW - timedelta(days=800)
    write(sessions, "AS-E1", stage="closed", status="closed", closed_at=old,
          order_id="SO-E1",
          customer=Customer(id="C-E", name="赵敏", phone="+86 136-0000-0077"))
    write(sessions, "AS-E2", order_id="SO-E2",
          customer=Customer(id="C-E", name="赵敏", phone="13600000077"))
    assert found(sessions, "136 0000 0077") == ["AS-E1", "AS-E2"]
    with sessions.begin() as session:
        assert anonymise_closed(session, timedelta(days=365), NOW) == 1
    assert found(sessions, "136 0000 0077") == ["AS-E2"]
    assert found(sessions, "13600000077") == ["AS-E2"]
    assert found(sessions, "赵敏") == ["AS-E2"]
    assert found(sessions, ERASED) == []
    assert found(sessions, "SO-E1") == ["AS-E1"]  # the case itself is still there


def test_the_migration_fills_phones_and_waybills_of_cases_already_there(
        database_url, sessions):  # noqa: F811
    from alembic import command

    from db.engine import alembic_config

    order = OrderSnapshot(id="SO-M", customer_id="C-M", status="delivered", currency="CNY",
                          total="9.00", placed_at=T0, waybill_no="YT0001")
    write(sessions, "AS-M1", order=order, parcels={"SF0001": {"type": "return"}},
          customer=Customer(id="C-M", name="欧阳娜娜", phone="+86 139-0000-0001"))
    write(sessions, "AS-M2", customer=Customer(id="C-E", name=ERASED, phone=""))
    config = alembic_config(database_url)
    command.downgrade(config, "0024-1")  # as before the phone digits and waybills
    command.upgrade(config, "head")
    assert found(sessions, "13900000001") == ["AS-M1"]
    assert found(sessions, "sf0001") == ["AS-M1"] and found(sessions, "yt0001") == ["AS-M1"]
    with sessions() as session:
        assert session.get(Case, "AS-M2").customer_phone_digits is None
    command.upgrade(config, "head")  # again: nothing to do, nothing doubled


# ---------------------------------------------------------------- the pages


def test_the_search_finds_every_case_whoever_holds_it_and_in_any_state(app):  # noqa: F811
    put(app, "AS-23456789AB", assignee="bob", team="returns", stage="closed",
        status="closed", stage_due_at=None, order_id="SO-90001",
        description="屏幕碎了，要求换货，快递单号见附件",
        customer=Customer(id="C-W", name="王芳", phone="+86 138-0013-8000"))
    put(app, "AS-CANCELLED", assignee="sam", stage="cancelled", status="cancelled",
        stage_due_at=None, customer=Customer(id="C-W", name="王芳", phone="13800138000"))
    put(app, "AS-OTHER", assignee="hank",
        customer=Customer(id="C-O", name="李雷", phone="13900000000"))
    client = signed_in(app, "hank")
    # Before: the desk's own lists hold neither (bob's, closed).
    desk = client.get("/desk").get_data(as_text=True)
    assert "AS-23456789AB" not in desk
    for query in ("as 2345 6789 ab", "SO-90001", "+86 138-0013-8000", "王"):
        response = client.get("/desk", query_string={"q": query})
        assert response.status_code == 200
        html = section(response.get_data(as_text=True), "found-h")
        assert "AS-23456789AB" in html, query
        assert "AS-OTHER" not in html
    html = section(client.get("/desk?q=13800138000").get_data(as_text=True), "found-h")
    assert "AS-CANCELLED" in html and ">2<" in html  # the count
    row = html[html.index('href="/desk/cases/AS-23456789AB"'):]
    row = row[:row.index("</tr>")]
    for shown in ("Closed", "bob", "returns", "SO-90001", "屏幕碎了，要求换货", "王芳",
                  'href="/desk/customers/C-W"'):
        assert shown in row, shown
    nothing = client.get("/desk?q=nobody-at-all").get_data(as_text=True)
    assert "No case matches “nobody-at-all”" in nothing


def test_the_results_come_a_page_at_a_time(app):  # noqa: F811
    for n in range(53):
        put(app, f"AS-PG{n:03d}", created_at=NOW - timedelta(minutes=n),
            customer=Customer(id="C-PG", name="周杰", phone="13700000000"))
    client = signed_in(app, "hank")
    first = client.get("/desk?q=周杰").get_data(as_text=True)
    assert "AS-PG000" in first and "AS-PG049" in first and "AS-PG050" not in first
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = client.get("/desk?q=周杰&page=2").get_data(as_text=True)
    assert "AS-PG050" in second and "AS-PG052" in second and "AS-PG049" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    # A page number that is not one is the first page, never an error.
    for page in ("0", "-1", "x", "99999999999999999999", "1e3", "²"):
        response = client.get("/desk", query_string={"q": "周杰", "page": page})
        assert response.status_code == 200 and "AS-PG000" in response.get_data(as_text=True)


@pytest.mark.parametrize(("query", "words"), [
    ("", "Type what to look for"),
    ("   ", "Type what to look for"),
    ("王" * 10_000, "The search is too long: at most 100 characters"),
    ("a" * 101, "The search is too long: at most 100 characters"),
    ("王芳\t", "The search holds a control character"),
    ("AS-1\nAS-2", "The search holds a control character"),
    ("王\x7f芳", "The search holds a control character"),
    ("王\x85芳", "The search holds a control character"),
])
def test_bad_searches_are_answered_with_a_message(app, query, words):  # noqa: F811
    put(app, "AS-BAD", customer=Customer(id="C-B", name="王芳", phone="13800138000"))
    client = signed_in(app, "hank")
    response = client.get("/desk", query_string={"q": query})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert words in html and 'aria-invalid="true"' in html
    assert "AS-BAD" not in html and 'id="found-h"' not in html


def test_control_characters_the_door_refuses_get_a_page_too(app):  # noqa: F811
    response = signed_in(app, "hank").get("/desk?q=%00abc")
    assert response.status_code == 422 and "<html" in response.get_data(as_text=True)


def test_the_search_speaks_chinese(app):  # noqa: F811
    put(app, "AS-ZH", assignee="bob", stage="closed", status="closed", stage_due_at=None)
    client = signed_in(app, "hank", lang="zh_CN")
    html = client.get("/desk?q=as-zh").get_data(as_text=True)  # not an id: no match
    assert "搜索全部工单" in html and "没有与“as-zh”相符的工单" in html
    html = client.get("/desk?q=AS-ZH").get_data(as_text=True)
    assert "AS-ZH" in section(html, "found-h") and "已结案" in html
    too_long = client.get("/desk", query_string={"q": "x" * 101}).get_data(as_text=True)
    assert "搜索内容太长" in too_long


def test_the_customer_page_lists_all_their_cases_orders_and_ratings(app):  # noqa: F811
    wang = Customer(id="C-WANG", name="王芳", phone="13800138000")
    put(app, "AS-C1", customer=wang, order_id="SO-1", assignee="bob",
        created_at=NOW - timedelta(days=30), stage="closed", status="closed",
        stage_due_at=None, rating=2, rating_comment="太慢了")
    put(app, "AS-C2", customer=wang, order_id="SO-1", created_at=NOW - timedelta(days=3),
        stage="cancelled", status="cancelled", stage_due_at=None)
    put(app, "AS-C3", customer=wang, order_id="SO-2", assignee="hank",
        created_at=NOW - timedelta(hours=1))
    put(app, "AS-C4", customer=Customer(id="C-LI", name="李雷", phone="13900000000"))
    client = signed_in(app, "hank")
    case_page = client.get("/desk/cases/AS-C3").get_data(as_text=True)
    assert 'href="/desk/customers/C-WANG"' in case_page
    response = client.get("/desk/customers/C-WANG")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Customer 王芳" in html and "2 open" not in html and "1 open, 2 closed" in html
    assert "AS-C3" in section(html, "open-h")
    ended = section(html, "closed-h")
    assert "AS-C1" in ended and "AS-C2" in ended and "AS-C3" not in ended
    orders = section(html, "orders-h")
    assert "SO-1 · 2 cases" in orders and "SO-2 · 1 case" in orders
    ratings = section(html, "ratings-h")
    assert "AS-C1</a> · 2/5 · 太慢了" in ratings
    assert "1 rated, 2.0/5 on average" in html
    assert "AS-C4" not in html
    missing = client.get("/desk/customers/C-NOBODY")
    assert missing.status_code == 404 and "No case is of customer C-NOBODY" in \
        missing.get_data(as_text=True)
    zh = signed_in(app, "hank", lang="zh_CN").get("/desk/customers/C-WANG")
    assert "客户 王芳" in zh.get_data(as_text=True)


def test_the_search_and_customer_page_are_for_staff_only(app):  # noqa: F811
    anonymous = app.test_client()
    assert anonymous.get("/desk?q=王芳").status_code in (302, 401)
    assert anonymous.get("/desk/customers/C-1").status_code in (302, 401)
