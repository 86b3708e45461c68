"""The desk's "Export CSV" link in a real browser (headless Chromium through Playwright):
filter the desk, click the link, and the download is the filtered list as CSV."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from werkzeug.serving import make_server

from db.accounts import create_user
from tests.conftest import make_settings
from tests.test_case_export import NOW, put
from tests.test_pages_browser import browser, sign_in  # noqa: F401 - the fixture
from web import create_app
from web.export import HEADER

pytestmark = pytest.mark.slow


class Served:
    def __init__(self, base: str) -> None:
        self.base = base


@pytest.fixture
def served(database_url) -> Iterator[tuple[Served, object]]:
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{server.server_port}"
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                                   public_url=base))
    app.config["EXPORT_BATCH"] = 3
    server.app = app  # type: ignore[attr-defined]
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "hank", "handler", "hank-password")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(base), app
    server.shutdown()
    thread.join(timeout=10)
    app.extensions["aftersales"].engine.dispose()


def test_the_desk_s_export_link_downloads_the_filtered_list(served, browser, tmp_path):  # noqa: F811
    live, app = served
    for n in range(8):
        put(app, f"AS-B{n}", kind=("return", "complaint")[n % 2],
            store=("online", "hz-westlake")[n // 4], stage_due_at=NOW + timedelta(hours=n))
    page = browser.new_page(accept_downloads=True)
    try:
        sign_in(page, live, "hank")  # type: ignore[arg-type]
        page.goto(f"{live.base}/desk?kind=return&store=online")
        unassigned = page.locator("section", has=page.locator("#team-h"))
        assert unassigned.locator("table.cases tbody tr").count() == 2
        with page.expect_download() as info:
            unassigned.get_by_role("link", name="Export CSV").click()
        download = info.value
        assert download.suggested_filename.startswith("aftersales-desk-unassigned-")
        assert download.suggested_filename.endswith(".csv")
        target = tmp_path / download.suggested_filename
        download.save_as(target)
    finally:
        page.close()
    with target.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER
    assert [(r[0], r[2], r[9]) for r in rows[1:]] == [("AS-B0", "return", "online"),
                                                      ("AS-B2", "return", "online")]
