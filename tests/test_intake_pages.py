"""The desk's new-case form and the customer's request page through Flask's test
client, against the real stack (Temporal dev server, worker, order simulator over HTTP,
read model): every step, the refusals and what stays typed. The browser journeys are in
tests/test_intake_browser.py."""

from __future__ import annotations

import io
import re

from PIL import Image

from tests import test_intake
from tests.test_intake import jpeg_with_gps, pick_line
from tests.test_pages import signed_in

stack = test_intake.stack  # the same stack fixture

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def test_a_handler_records_a_phone_complaint_from_the_desk(stack, order_system_url):
    app, _client, tokens, _ = stack
    client = signed_in(app, "alice")
    order, line = pick_line(order_system_url, "return")
    by_phone = client.get(f"/desk/new?phone={order['customer']['phone']}")
    assert by_phone.status_code == 200
    assert f'href="/desk/new?order_id={order["id"]}"' in by_phone.get_data(as_text=True)
    page = client.get(f"/desk/new?order_id={order['id']}").get_data(as_text=True)
    assert f'name="qty_{line.sku}"' in page
    form = {"csrf_token": csrf(page), "order_id": order["id"], "kind": "return",
            "channel": "phone", "description": "我要投诉，茶叶盒子压坏了，再不处理就去12315",
            f"qty_{line.sku}": "1", f"reason_{line.sku}": "压坏"}
    preview = client.post("/desk/new", data={**form, "intent": "preview"})
    assert preview.status_code == 200
    text = preview.get_data(as_text=True)
    assert 'id="triage"' in text and "12315" in text  # the suggestion, and the text kept
    too_many = client.post("/desk/new", data={**form, f"qty_{line.sku}": "99",
                                              "intent": "open"})
    assert too_many.status_code == 422
    assert "99 asked" in too_many.get_data(as_text=True)
    opened = client.post("/desk/new", data={**form, "intent": "open"})
    assert opened.status_code == 302
    case_id = opened.headers["Location"].rsplit("/", 1)[1]
    case = client.get(f"/api/v1/cases/{case_id}", headers={
        "Authorization": f"Bearer {tokens['alice']}"}).get_json()
    assert case["kind"] == "return" and case["channel"] == "phone"
    assert case["timeline"][0]["actor"] == "alice"
    # The order now has an open case: the form says so, with a link.
    again = client.get(f"/desk/new?order_id={order['id']}").get_data(as_text=True)
    assert 'id="open-cases"' in again and f"/desk/cases/{case_id}" in again
    # A photo from the case page shows as a thumbnail there.
    page = client.get(f"/desk/cases/{case_id}").get_data(as_text=True)
    sent = client.post(f"/desk/cases/{case_id}/files", data={
        "csrf_token": csrf(page), "file": (io.BytesIO(jpeg_with_gps()), "box.jpg")},
        content_type="multipart/form-data")
    assert sent.status_code == 302
    page = client.get(f"/desk/cases/{case_id}").get_data(as_text=True)
    thumb = re.search(rf'src="(/desk/cases/{case_id}/files/F-\w+\?size=thumb)"', page)
    assert thumb, page[page.find('id="files"'):][:800]
    image = client.get(thumb.group(1))
    assert image.status_code == 200 and image.content_type == "image/jpeg"


def test_an_orderless_complaint_needs_a_contact(stack):
    app, _client, _tokens, _ = stack
    client = signed_in(app, "alice")
    page = client.get("/desk/new?orderless=1").get_data(as_text=True)
    form = {"csrf_token": csrf(page), "order_id": "", "kind": "complaint",
            "channel": "store", "customer_name": "周先生", "customer_phone": "",
            "customer_email": "", "description": "店员态度差", "intent": "open"}
    refused = client.post("/desk/new", data=form)
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "店员态度差" in body and "周先生" in body  # nothing typed is lost
    opened = client.post("/desk/new", data={**form, "customer_phone": "13700000007"})
    assert opened.status_code == 302


def test_the_customer_asks_for_a_return_with_a_photo(stack, order_system_url):
    _app, client, tokens, _ = stack
    order, line = pick_line(order_system_url, "return")
    client.set_cookie("lang", "zh_CN")
    page = client.get("/request").get_data(as_text=True)
    assert "订单号" in page
    wrong = client.post("/request", data={"csrf_token": csrf(page), "order_id": order["id"],
                                          "contact": "13999999999"})
    assert wrong.status_code == 404
    proved = client.post("/request", data={"csrf_token": csrf(page),
                                           "order_id": order["id"],
                                           "contact": order["customer"]["phone"]})
    assert proved.status_code == 302 and proved.headers["Location"] == "/request/lines"
    step_two = client.get("/request/lines").get_data(as_text=True)
    assert f'name="qty_{line.sku}"' in step_two
    form = {"csrf_token": csrf(step_two), "kind": "return", f"qty_{line.sku}": "1",
            "reason": "damaged", "description": "盒子压坏了"}
    exe = client.post("/request/lines", data={
        **form, "photos": (io.BytesIO(b"MZ" + b"\0" * 100), "photo.jpg")},
        content_type="multipart/form-data")
    assert exe.status_code == 415
    assert "盒子压坏了" in exe.get_data(as_text=True)
    sent = client.post("/request/lines", data={
        **form, "photos": [(io.BytesIO(jpeg_with_gps()), "箱子.jpg"),
                           (io.BytesIO(_png()), "label.png")]},
        content_type="multipart/form-data")
    assert sent.status_code == 302, sent.get_data(as_text=True)[:2000]
    status_page = sent.headers["Location"]
    assert status_page.startswith("/s/")
    token = status_page.rsplit("/", 1)[1]
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert [a["filename"] for a in view["attachments"]] == ["箱子.jpg", "label.png"]
    html = client.get(status_page).get_data(as_text=True)
    assert view["attachments"][0]["thumbnail_url"].replace("&", "&amp;") in html
    case = client.get(f"/api/v1/cases/{view['case_id']}", headers={
        "Authorization": f"Bearer {tokens['alice']}"}).get_json()
    assert case["channel"] == "web" and len(case["attachments"]) == 2
    # The proof is used up: step two again starts over.
    assert client.get("/request/lines").headers["Location"] == "/request"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 90, 200)).save(out, "PNG")
    return out.getvalue()
