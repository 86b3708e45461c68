"""The reports page in a real headless Chromium, in Chinese, on the first day of use:
the charts show today's cases, follow the period chosen, each figure appears once
and the money given to customers is summed and labelled. The read model is seeded
through the projection (the reports read nothing else); the app is served over HTTP.

Screenshots land in test-artifacts/pages/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.serving import make_server

from db import cases as case_store
from db import kpi
from db.accounts import create_user
from db.reports import day_start
from tests.conftest import make_settings
from tests.test_pages_browser import browser, english_phrases, shot
from tests.test_read_model import snapshot
from tests.test_reports import clock
from web import create_app
from workflows.case.contracts import Projection, Resolution

__all__ = ["browser"]  # a fixture, used by name

# A real browser (a chromium subprocess per module): not for `make test-fast`.
pytestmark = pytest.mark.slow


def seed_day_one(sessions, now: datetime) -> None:
    """Twenty cases opened today, the first day the system is used: two refunded
    (50.00 and 12.50), one compensated with a 20.00 coupon, one with 300 points."""
    today = day_start(now)
    for n in range(20):
        opened = today + (now - today) * n / 40
        values: dict = dict(case_id=f"AS-DAY1{n:02d}", version=1, created_at=opened,
                            updated_at=opened, order_id=f"SO-{n}", assignee="hank",
                            clocks=[clock("confirm", "met", 600)])
        resolved = dict(stage="feedback", confirmed_at=opened, resolved_at=opened,
                        analysis={"root_cause": "product_quality",
                                  "responsible_party": "supplier"})
        if n == 0:
            values.update(resolved, refunded="50.00", rating=5,
                          resolution=Resolution(type="refund", amount="50.00", state="done"))
        elif n == 1:
            values.update(resolved, refunded="12.50", rating=2,
                          resolution=Resolution(type="refund", amount="12.50", state="done"))
        elif n == 2:
            values.update(resolved, resolution=Resolution(
                type="compensation", coupon_code="CPN-20", amount="20.00", state="done"))
        elif n == 3:
            values.update(resolved, compensation_points=300, resolution=Resolution(
                type="compensation", points=300, state="done"))
        case_store.write_projection(sessions, Projection(snapshot(**values)))
    # The scheduler ran last night, when there was nothing to count yet.
    with sessions.begin() as session:
        kpi.take_snapshots(session, now, days=7)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[str]:
    from db.engine import migrate

    database_url = f"sqlite:///{tmp_path_factory.mktemp('reports') / 'aftersales.db'}"
    migrate(database_url)
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{server.server_port}"
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                                   public_url=base))
    server.app = app  # type: ignore[attr-defined]
    sessions = app.extensions["aftersales"].sessions
    with sessions.begin() as session:
        create_user(session, "sam", "supervisor", "sam-password")
        create_user(session, "hank", "handler", "hank-password")
    seed_day_one(sessions, datetime.now(UTC))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["aftersales"].engine.dispose()


def test_day_one_reports_in_chinese(site, browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{site}/login")
    page.locator("#username").fill("sam")
    page.locator("#password").fill("sam-password")
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"{site}/supervisor")
    page.goto(f"{site}/supervisor/reports?period=7")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    today = f"{datetime.now(UTC):%m-%d}"

    # The card and the chart say the same: twenty opened today.
    cards = page.locator("section.kpis .kpi")
    assert cards.nth(0).locator(".kpi-value").inner_text() == "20"
    trend = page.locator("svg.chart").nth(0)
    assert trend.locator("title").first.text_content() == "每日新建与结案工单"
    bars = [t.strip() for t in trend.locator("rect > title").all_text_contents()]
    assert f"新建 {today}: 20" in bars, bars
    # ... and the figure is not repeated in a sentence above the charts.
    assert "新建 20 个" not in page.locator("body").inner_text()

    # The root-cause Pareto appears once, as a chart.
    assert page.locator("svg.chart").count() == 4
    assert page.locator("table.pareto").count() == 0
    pareto = page.locator("svg.chart").nth(3)
    assert "商品质量" in pareto.locator("desc").text_content()

    # Money is summed and labelled: refunds and coupons as money, points as points.
    assert page.locator("dd.money-refunded").inner_text() == "¥62.50（2 个工单）"
    assert page.locator("dd.money-coupons").inner_text() == "¥20.00"
    assert page.locator("dd.money-total").inner_text() == "¥82.50"
    assert page.locator("dd.points").inner_text() == "300 积分"
    text = page.locator("body").inner_text()
    assert not sorted(p for p in english_phrases() if p in text)
    shot(page, "reports-day-one-zh")

    # The charts follow the period chosen: ninety days go week by week.
    page.locator("#r-period").select_option("90")
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url(lambda url: "period=90" in url)
    trend = page.locator("svg.chart").nth(0)
    assert trend.locator("title").first.text_content() == "每周新建与结案工单"
    monday = datetime.now(UTC) - timedelta(days=datetime.now(UTC).weekday())
    bars = [t.strip() for t in trend.locator("rect > title").all_text_contents()]
    assert f"新建 {monday:%m-%d}: 20" in bars, bars
    assert "按周统计" in page.locator("section.reports p.hint").inner_text()
    shot(page, "reports-90-days-zh")
    context.close()
