"""An exchange for another item (`replacement_sku`): the rules of workflows/case/remedies.py
(fast), then end to end on the stack of tests/test_resolutions.py (the web app over HTTP,
a real Temporal dev server and worker, the order, inventory and courier simulators over
HTTP) under a policy whose `exchange_payment_window` is short enough to run out."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest

from aftersales.policy import PolicyError, load_policy, parse_policy
from db.accounts import create_token, create_user
from simulators import courier_system, inventory_system, order_system
from tests import test_pages_browser as pages
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from tests.test_resolutions import (
    SECRET,
    Served,
    call,
    faulty_stack,
    move,
    movements_of,
    refunds_of,
    to_resolve,
    wait_for,
)
from web import create_app
from workflows.case.contracts import CaseItem, Resolution
from workflows.case.remedies import (
    is_swap,
    money_back,
    replacement_problem,
    swap_difference,
)

SHOE, LITE, SAME_PRICE, PRO = ("SKU-SHOES-41", "SKU-SHOES-42-LITE", "SKU-SHOES-42",
                               "SKU-SHOES-42-PRO")
WINDOW_SECONDS = 20
browser = pages.browser  # a real headless Chromium, for the status page


def test_what_a_swap_refunds_or_asks_for():
    prices = {SHOE: Decimal("599.00")}
    two = Resolution("exchange", items=[CaseItem(SHOE, 2)], replacement_sku=LITE,
                     replacement_price="459.00")
    assert is_swap(two)
    assert swap_difference(two, prices, Decimal("459.00")) == Decimal("280.00")
    assert money_back(two, prices) == Decimal("280.00")
    dearer = Resolution("exchange", items=[CaseItem(SHOE, 1)], replacement_sku=PRO,
                        replacement_price="799.00")
    assert swap_difference(dearer, prices, Decimal("799.00")) == Decimal("-200.00")
    assert money_back(dearer, prices) == 0  # the customer pays; nothing comes back
    # The same SKU, or no replacement, is today's exchange.
    assert not is_swap(Resolution("exchange", items=[CaseItem(SHOE, 1)],
                                  replacement_sku=SHOE))
    assert not is_swap(Resolution("exchange", items=[CaseItem(SHOE, 1)]))


def test_a_replacement_belongs_to_an_exchange_of_one_line():
    one = [CaseItem(SHOE, 1)]
    assert replacement_problem(Resolution("exchange", items=one, replacement_sku=LITE)) is None
    assert replacement_problem(Resolution("exchange", items=one)) is None
    for kind in ("return_refund", "repair", "refund"):
        assert str(replacement_problem(Resolution(kind, items=one, replacement_sku=LITE))) == (
            f"replacement_sku is for an exchange, not a {kind}")
    both = [CaseItem(SHOE, 1), CaseItem("SKU-TEA-001", 1)]
    assert "send one line" in str(replacement_problem(Resolution(
        "exchange", items=both, replacement_sku=LITE)))


def test_the_case_page_form_sends_the_replacement_with_the_exchange():
    from werkzeug.datastructures import MultiDict

    from web.desk import form_body

    form = MultiDict({"type": "exchange", "replacement_sku": " SKU-SHOES-42-LITE ",
                      "qty:SKU-SHOES-41": "1", "type-2": "apology"})
    assert form_body("resolve", form) == {"resolutions": [
        {"type": "exchange", "items": [{"sku": "SKU-SHOES-41", "quantity": 1}],
         "replacement_sku": "SKU-SHOES-42-LITE"},
        {"type": "apology"}]}
    same = MultiDict({"type": "exchange", "replacement_sku": "", "qty:SKU-SHOES-41": "1"})
    assert form_body("resolve", same) == {"resolution": {
        "type": "exchange", "items": [{"sku": "SKU-SHOES-41", "quantity": 1}]}}


def test_the_payment_window_in_the_policy_file(tmp_path):
    assert load_policy().exchange_payment_window == 48 * 3600
    text = Path("aftersales/sla_policy.toml").read_text(encoding="utf-8")
    assert parse_policy(text.replace('exchange_payment_window = "48h"',
                                     'exchange_payment_window = "2d"')
                        ).exchange_payment_window == 2 * 86400
    bad = tmp_path / "sla.toml"
    bad.write_text(text.replace('exchange_payment_window = "48h"',
                                'exchange_payment_window = "soon"'), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(str(bad))
    line = text.splitlines().index('exchange_payment_window = "48h"') + 1
    assert "exchange_payment_window" in str(err.value) and f"line {line}" in str(err.value)


@pytest.fixture(scope="module")
def systems(temporal_address, tmp_path_factory):
    """Fresh simulators, the web app over HTTP and a worker, under a policy whose payment
    window for a dearer replacement is WINDOW_SECONDS."""
    tmp = tmp_path_factory.mktemp("swap")
    policy = tmp / "sla.toml"
    policy.write_text(Path("aftersales/sla_policy.toml").read_text(encoding="utf-8").replace(
        'exchange_payment_window = "48h"', f'exchange_payment_window = "{WINDOW_SECONDS}s"'),
        encoding="utf-8")
    orders_state = order_system.OrderSystem(state_file=None)
    orders = Served(order_system.create_app(orders_state))
    inventory = Served(inventory_system.create_app(inventory_system.InventorySystem(None)))
    courier_state = courier_system.CourierSystem(
        state_file=None, webhook_url=None, webhook_secret=SECRET, step=0, seed_orders=True)
    courier = Served(courier_system.create_app(courier_state))
    settings = make_settings(
        temporal_address, f"sqlite:///{tmp / 'db.sqlite'}", orders.url,
        inventory_system_url=inventory.url, courier_system_url=courier.url,
        courier_webhook_secret=SECRET, sla_file=str(policy))
    app = create_app(settings)
    web = Served(app)
    courier_state.webhook_url = f"{web.url}/webhooks/courier"
    courier_state.start()
    worker = BackgroundWorker(settings)
    worker.start()
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "hank", "handler")
        create_user(session, "sue", "supervisor")
        tokens = {"hank": create_token(session, "hank"), "sue": create_token(session, "sue")}
    http = httpx.Client(base_url=web.url, timeout=60)
    yield {"http": http, "tokens": tokens, "orders": orders.url, "inventory": inventory.url,
           "courier": courier.url, "web": web.url, "temporal": temporal_address,
           "orders_state": orders_state}
    http.close()
    worker.stop()
    courier_state.stop()
    for served in (web, courier, inventory, orders):
        served.stop()
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def shoe_orders(systems) -> list[str]:
    """The demo orders that sold the size-41 shoe, delivered, oldest number first."""
    orders = httpx.get(f"{systems['orders']}/orders", timeout=10).json()
    found = [o["id"] for o in orders if o["status"] == "delivered"
             and any(line["sku"] == SHOE for line in o["lines"])]
    assert len(found) >= 5, found
    return found


def shoe_case(systems, n: int) -> dict:
    """An exchange case for one size-41 shoe of the nth such order, ready to resolve."""
    response = call(systems, "POST", "/api/v1/cases", json={
        "kind": "complaint", "channel": "app", "order_id": shoe_orders(systems)[n],
        "customer": {"id": "C-9", "name": "周敏", "phone": "13700000009"},
        "items": [{"sku": SHOE, "quantity": 1}], "description": "尺码偏小，想换大一码"})
    assert response.status_code == 201, response.text
    case = response.json()
    to_resolve(systems, case)
    return case


def swap(replacement: str, **extra) -> dict:
    return {"type": "exchange", "items": [{"sku": SHOE, "quantity": 1}],
            "replacement_sku": replacement, **extra}


def status_view(systems, case: dict) -> dict:
    token = case["customer_url"].rsplit("/", 1)[1]
    response = systems["http"].get(f"/api/v1/status/{token}")
    assert response.status_code == 200, response.text
    return response.json()


def status_page(systems, case: dict) -> str:
    response = systems["http"].get(case["customer_url"].replace("http://testserver", ""))
    assert response.status_code == 200, response.text
    return response.text


def finish_parcels(systems, case_id: str, remedy: int | None = None) -> dict:
    """Deliver the replacement and collect the old item; the case then ends in feedback.
    `remedy`: the exchange's index in a combined plan."""
    def refs(c: dict) -> dict:
        plan = c["resolution"] or {}
        if remedy is not None:
            plan = (plan.get("remedies") or [{}] * (remedy + 1))[remedy]
        return plan.get("refs", {})

    case = wait_for(systems, case_id, lambda c: "collect_old" in refs(c).get("waybills", {}))
    move(systems, refs(case)["waybills"]["ship_replacement"], 3)
    move(systems, refs(case)["waybills"]["collect_old"], 3)
    return wait_for(systems, case_id, lambda c: c["stage"] == "feedback", timeout=60)


def test_a_cheaper_size_is_shipped_and_the_difference_refunded_once(systems):
    case = shoe_case(systems, 0)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
                    json={"resolution": swap(LITE), "note": "换小一号的轻便款"})
    assert response.status_code == 200, response.text
    case = finish_parcels(systems, case["id"])
    plan = case["resolution"]
    assert plan["replacement_sku"] == LITE and plan["state"] == "done"
    assert plan["refs"]["replacement"] == {"sku": LITE, "quantity": 1, "unit_price": "459.00"}
    assert plan["refs"]["price_difference"] == "140.00"
    refunds = refunds_of(systems, case["id"])
    assert [(r["amount"], r["idempotency_key"]) for r in refunds] == [
        ("140.00", f"{case['id']}:1:refund_difference")]
    assert systems["orders_state"].orders[case["order_id"]]["refunded"] == "140.00"
    # The replacement's stock was reserved and shipped, the old shoe restocked.
    moves = [(m["kind"], m["sku"], m.get("state")) for m in movements_of(systems, case["id"])]
    assert moves == [("reservation", LITE, "shipped"), ("restock", SHOE, None)]
    waybills = httpx.get(f"{systems['courier']}/waybills", timeout=10).json()
    outbound = next(w for w in waybills
                    if w["waybill_no"] == plan["refs"]["waybills"]["ship_replacement"])
    assert [(i["sku"], i["quantity"]) for i in outbound["items"]] == [(LITE, 1)]
    view = status_view(systems, case)["resolution"]["exchange"]
    assert view["replacement_sku"] == LITE and view["price_difference"] == "140.00"
    assert view["payment"] is None
    assert "refund you the difference" in status_page(systems, case)
    record_history_sync(systems["temporal"], case["id"], "swap_cheaper")


def test_a_dearer_replacement_waits_for_the_customers_payment(systems):
    case = shoe_case(systems, 1)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
                    json={"resolution": swap(PRO)})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: (c["resolution"] or {}).get(
        "awaiting") == "payment")
    payment = case["resolution"]["refs"]["payment"]
    assert payment["amount"] == "200.00" and payment["status"] == "open"
    # The customer sees what to pay, where and by when; nothing has shipped yet.
    view = status_view(systems, case)["resolution"]["exchange"]
    assert view["payment"] == {"amount": "200.00", "due": payment["due"], "status": "open",
                               "url": payment["url"]}
    page = status_page(systems, case)
    assert f'href="{payment["url"]}"' in page and "Pay the difference" in page
    assert "ship_replacement" not in case["resolution"]["refs"].get("waybills", {})
    paid = httpx.post(payment["url"], timeout=10)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    case = finish_parcels(systems, case["id"])
    plan = case["resolution"]
    assert plan["refs"]["payment"]["status"] == "paid"
    assert plan["refs"]["price_difference"] == "-200.00"
    assert refunds_of(systems, case["id"]) == []  # the customer paid; nothing comes back
    moves = [(m["kind"], m["sku"], m.get("state")) for m in movements_of(systems, case["id"])]
    assert moves == [("reservation", PRO, "shipped"), ("restock", SHOE, None)]
    order = systems["orders_state"].orders[case["order_id"]]
    assert [p["amount"] for p in order["payments"] if p["method"] == "payment_link"] == [
        "200.00"]
    assert "the difference of" in status_page(systems, case)
    types = [e["type"] for e in case["timeline"]]
    assert types.count("payment_received") == 1
    record_history_sync(systems["temporal"], case["id"], "swap_paid")


def test_an_unpaid_difference_falls_back_to_a_refund_and_releases_the_stock(systems):
    case = shoe_case(systems, 2)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
                    json={"resolution": swap(PRO)})
    assert response.status_code == 200, response.text
    # The window closes: the link is cancelled, the reservation released, and the old
    # shoe is collected, inspected and refunded like a return.
    case = wait_for(systems, case["id"], lambda c: "return_pickup" in (
        (c["resolution"] or {}).get("refs", {}).get("waybills", {})),
        timeout=WINDOW_SECONDS + 60)
    refs = case["resolution"]["refs"]
    # Asked at the deadline, the order system says the link expired (one still open
    # would be cancelled); either way it can no longer be paid.
    assert refs["fallback"] == "return_refund" and refs["payment"]["status"] == "expired"
    link = httpx.get(f"{systems['orders']}/payment-links/{refs['payment']['id']}",
                     timeout=10).json()
    assert link["status"] == "expired"
    late = httpx.post(refs["payment"]["url"], timeout=10)
    assert late.status_code == 409 and late.json()["type"].endswith("link_expired")
    reservations = [(m["sku"], m["state"]) for m in movements_of(systems, case["id"])
                    if m["kind"] == "reservation"]
    assert reservations == [(PRO, "released")]
    assert "not paid in time" in status_page(systems, case)
    move(systems, refs["waybills"]["return_pickup"], 3)
    wait_for(systems, case["id"], lambda c: (c["resolution"] or {}).get(
        "awaiting") == "inspection")
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
                    json={"passed": True, "note": "unworn"})
    assert response.status_code == 200, response.text
    # The shoe's refund is above the approval limit: a supervisor approves it.
    wait_for(systems, case["id"], lambda c: (c["resolution"] or {}).get(
        "awaiting") == "approval")
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
                    json={"note": "no payment, refund the pair"})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    price = next(line["unit_price"] for line in systems["orders_state"].orders[
        case["order_id"]]["lines"] if line["sku"] == SHOE)
    assert [(r["amount"], r["idempotency_key"]) for r in refunds_of(systems, case["id"])] == [
        (price, f"{case['id']}:1:refund")]
    types = [e["type"] for e in case["timeline"]]
    assert types.count("payment_window_closed") == 1
    record_history_sync(systems["temporal"], case["id"], "swap_unpaid")


def test_an_exchange_for_another_size_in_a_combined_resolution(systems):
    case = shoe_case(systems, 3)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "apology"}, swap(LITE),
                        {"type": "compensation", "coupon_code": "SIZE-5"}]})
    assert response.status_code == 200, response.text
    case = finish_parcels(systems, case["id"], remedy=1)
    plan = case["resolution"]
    # The combined plan weighed the difference up front: it is what the plan refunds.
    assert plan["amount"] == "140.00"
    assert [(r["type"], r["state"]) for r in plan["remedies"]] == [
        ("apology", "done"), ("exchange", "done"), ("compensation", "done")]
    assert [(r["amount"], r["idempotency_key"]) for r in refunds_of(systems, case["id"])] == [
        ("140.00", f"{case['id']}:1:r2:refund_difference")]
    assert status_view(systems, case)["resolution"]["exchange"]["price_difference"] == "140.00"


def test_bad_replacements_are_refused_and_change_nothing(systems):
    case = shoe_case(systems, 4)
    url = f"/api/v1/cases/{case['id']}/resolve"
    sold_out = httpx.put(f"{systems['inventory']}/_control/stock/{SAME_PRICE}",
                         json={"on_hand": 0}, timeout=10)
    assert sold_out.status_code == 200, sold_out.text
    bad = [
        # (body, status, what the problem names)
        ({"resolution": swap("SKU-NOPE-1")}, 422, "the catalogue has no product SKU-NOPE-1"),
        ({"resolution": swap(SAME_PRICE)}, 409, f"{SAME_PRICE}: 1 wanted, 0 available"),
        ({"resolution": {"type": "return_refund", "items": [{"sku": SHOE, "quantity": 1}],
                         "replacement_sku": LITE}}, 422,
         "replacement_sku is for an exchange, not a return_refund"),
        ({"resolution": {"type": "refund", "amount": "10.00", "replacement_sku": LITE}}, 422,
         "replacement_sku is for an exchange, not a refund"),
        ({"resolution": {"type": "exchange", "replacement_sku": LITE,
                         "items": [{"sku": SHOE, "quantity": 1},
                                   {"sku": "SKU-TEA-001", "quantity": 1}]}}, 422,
         "send one line"),
        ({"resolution": swap("../orders/SO-10001")}, 422, "a SKU is letters"),
        ({"resolution": swap("")}, 422, "a SKU is letters"),
        # The price is the catalogue's: a caller cannot set it.
        ({"resolution": swap(LITE, replacement_price="1.00")}, 422, "replacement_price"),
        ({"resolutions": [{"type": "apology"}, swap("SKU-NOPE-2")]}, 422,
         "the catalogue has no product SKU-NOPE-2"),
        ({"resolutions": [{"type": "apology"}, swap(PRO)]}, 422,
         f"{PRO} costs more than the item: the customer pays the difference, so settle "
         "that exchange on its own"),
    ]
    for body, status, words in bad:
        response = call(systems, "POST", url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert words in response.text, (words, response.text)
    after = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert after["stage"] == "resolve" and after["resolution"] is None
    assert movements_of(systems, case["id"]) == []
    assert not [e for e in after["timeline"] if e["type"] == "resolution_planned"]


@pytest.mark.slow
def test_the_customer_pays_the_difference_from_the_status_page(systems, browser):
    """In a real Chromium: the status page shows what is owed, by when, and the link; the
    customer follows it, pays on the order system's page, and the exchange goes on."""
    case = shoe_case(systems, 5)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
                    json={"resolution": swap(PRO)})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: (c["resolution"] or {}).get(
        "awaiting") == "payment")
    payment = case["resolution"]["refs"]["payment"]
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(systems["web"] + case["customer_url"].replace("http://testserver", ""))
    due = page.locator("#payment-due")
    assert "200.00" in due.inner_text() and "支付差价" in due.inner_text()
    # The deadline is a machine-readable time the page shows in the reader's zone.
    stamp = due.locator("time").get_attribute("datetime") or ""
    assert stamp[:16] == payment["due"].replace("+00:00", "Z")[:16]
    due.get_by_role("link", name="支付差价").click()
    page.wait_for_url(payment["url"])
    page.get_by_role("button", name="Pay").click()
    page.wait_for_load_state()
    case = wait_for(systems, case["id"], lambda c: c["resolution"]["refs"]["payment"][
        "status"] == "paid", timeout=60)
    page.goto(systems["web"] + case["customer_url"].replace("http://testserver", ""))
    assert "200.00" in page.locator("#payment-paid").inner_text()
    assert page.locator("#payment-due").count() == 0
    context.close()
    finish_parcels(systems, case["id"])


@pytest.mark.slow
@pytest.mark.timeout(420)  # three sagas at a third of calls failing, a window to run out
def test_swaps_pay_once_and_leave_no_reservation_behind_through_faults_and_kills(
        temporal_address, tmp_path):
    """The fault matrix for exchanges for another item: the order, inventory and courier
    systems fail a third of their calls, and the worker (a real process) is SIGKILLed in
    the middle of the sagas. A cheaper size's difference is refunded exactly once, a
    dearer one's payment link is opened once and paid once, an unpaid one falls back to
    one refund; every reservation ends shipped or released."""
    from tests.test_crashes import wait_until

    window = 45
    policy = tmp_path / "sla.toml"
    policy.write_text(Path("aftersales/sla_policy.toml").read_text(encoding="utf-8").replace(
        'exchange_payment_window = "48h"', f'exchange_payment_window = "{window}s"').replace(
        'approval_limit = "500.00"', 'approval_limit = "5000.00"'), encoding="utf-8")
    # (replacement, the customer pays?)
    plans = [(LITE, None), (PRO, True), (PRO, False)]
    with faulty_stack(temporal_address, tmp_path, sla_file=str(policy)) as stack:
        order_state = stack.order_state
        with stack.app.extensions["aftersales"].sessions.begin() as session:
            create_user(session, "hank", "handler")
            http = stack.client(create_token(session, "hank"))
        shoe_orders_ = [o["id"] for o in order_state.orders.values()
                        if o["status"] == "delivered"
                        and any(line["sku"] == SHOE for line in o["lines"])]
        get = partial(stack.fetch, http)

        def send(path: str, body: dict, key: str) -> httpx.Response:
            # The API's own look-ups meet the faults too: a 503 is tried again, same key.
            return wait_until(lambda: http.post(path, json=body,
                                                headers={"Idempotency-Key": key}),
                              lambda r: r.status_code != 503, 120, f"an answer to {path}")

        cases = []
        for n, _plan in enumerate(plans):
            response = send("/api/v1/cases", {
                "kind": "complaint", "channel": "app", "order_id": shoe_orders_[n],
                "customer": {"id": f"C-{n}", "name": "客户"},
                "items": [{"sku": SHOE, "quantity": 1}], "description": "尺码不合适"},
                f"open-{n}")
            assert response.status_code == 201, response.text
            cases.append(response.json())
        stack.to_resolve(http, [case["id"] for case in cases],
                         {"root_cause": "customer_changed_mind",
                          "responsible_party": "customer", "note": "wrong size"}, send)
        for n, (case, (replacement, _)) in enumerate(zip(cases, plans, strict=True)):
            response = send(f"/api/v1/cases/{case['id']}/resolve",
                            {"resolution": swap(replacement)}, f"resolve-{n}")
            assert response.status_code == 200, response.text
        stack.kill_worker()  # while the sagas reserve, open links and book waybills
        paid = wait_until(get(cases[1]["id"]), lambda c: (c["resolution"] or {}).get(
            "refs", {}).get("payment"), 120, "the payment link")["resolution"]["refs"]
        wait_until(lambda: httpx.post(paid["payment"]["url"], timeout=10),
                   lambda r: r.status_code == 200, 30, "the customer's payment")
        for n in (0, 1):
            refs = wait_until(get(cases[n]["id"]), lambda c: "collect_old" in (
                c["resolution"] or {}).get("refs", {}).get("waybills", {}), 180,
                "both parcels")["resolution"]["refs"]
            for step in ("ship_replacement", "collect_old"):
                for _ in range(3):
                    move({"courier": stack.courier.url}, refs["waybills"][step])
            if n == 0:
                stack.kill_worker()  # again, while the parcels move
        unpaid = wait_until(get(cases[2]["id"]), lambda c: "return_pickup" in (
            c["resolution"] or {}).get("refs", {}).get("waybills", {}), window + 180,
            "the fallback pickup")["resolution"]["refs"]
        move({"courier": stack.courier.url}, unpaid["waybills"]["return_pickup"], 3)
        wait_until(get(cases[2]["id"]), lambda c: (c["resolution"] or {}).get(
            "awaiting") == "inspection", 120, "the inspection")
        response = send(f"/api/v1/cases/{cases[2]['id']}/inspect",
                        {"passed": True, "note": "unworn"}, "inspect-2")
        assert response.status_code == 200, response.text
        finals = [wait_until(get(case["id"]), lambda c: c["stage"] == "feedback", 240,
                             f"{case['id']} resolved") for case in cases]

        ids = [c["id"] for c in finals]
        price = {c["id"]: next(line["unit_price"] for line in order_state.orders[
            c["order_id"]]["lines"] if line["sku"] == SHOE) for c in finals}
        refunds = sorted((r["case_id"], r["amount"], r["idempotency_key"])
                         for r in order_state.refunds.values())
        assert refunds == sorted([(ids[0], "140.00", f"{ids[0]}:1:refund_difference"),
                                  (ids[2], price[ids[2]], f"{ids[2]}:1:refund")])
        links = {r["case_id"]: (r["amount"], r["status"], r["idempotency_key"])
                 for r in order_state.payment_links.values()}
        assert len(order_state.payment_links) == 2  # one link per dearer case
        assert links[ids[1]] == ("200.00", "paid", f"{ids[1]}:1:payment_link")
        assert links[ids[2]][0::2] == ("200.00", f"{ids[2]}:1:payment_link")
        assert links[ids[2]][1] in ("open", "cancelled")  # stored open: it expired
        assert finals[2]["resolution"]["refs"]["payment"]["status"] in ("expired",
                                                                        "cancelled")
        movements = stack.movements()
        reservations = sorted((m["reference"], m["sku"], m["state"]) for m in movements
                              if m["kind"] == "reservation")
        assert reservations == sorted([(ids[0], LITE, "shipped"), (ids[1], PRO, "shipped"),
                                       (ids[2], PRO, "released")])
        restocks = sorted((m["reference"], m["sku"]) for m in movements
                          if m["kind"] == "restock")
        assert restocks == sorted([(i, SHOE) for i in ids])
        for final in finals:
            types = [e["type"] for e in final["timeline"]]
            assert types.count("resolution_planned") == 1 and types.count("resolved") == 1
        stack.assert_faults_injected()


def test_the_order_simulator_prices_products_and_keeps_payment_links_once():
    """The contract of docs/integrations.md: products, and payment links opened once per
    key, paid once, never after they expired or were cancelled."""
    from datetime import UTC, datetime, timedelta

    state = order_system.OrderSystem(state_file=None)
    served = Served(order_system.create_app(state))
    try:
        with httpx.Client(base_url=served.url, timeout=10) as http:
            assert http.get(f"/products/{LITE}").json() == {
                "sku": LITE, "name": "Running shoes Lite, size 42", "unit_price": "459.00",
                "category": "apparel"}
            unknown = http.get("/products/SKU-NOPE")
            assert unknown.status_code == 404 and unknown.json()["type"] == "unknown_sku"
            later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            body = {"amount": "200.00", "case_id": "AS-1", "expires_at": later}
            key = {"Idempotency-Key": "AS-1:1:payment_link"}
            first = http.post("/orders/SO-10001/payment-links", json=body, headers=key)
            again = http.post("/orders/SO-10001/payment-links", json=body, headers=key)
            assert (first.status_code, again.status_code) == (201, 200)
            link = first.json()
            assert again.json() == link and link["status"] == "open"
            assert link["url"] == f"{served.url}/pay/{link['id']}"
            clash = http.post("/orders/SO-10001/payment-links",
                              json={**body, "amount": "1.00"}, headers=key)
            assert clash.status_code == 409
            for bad in ({**body, "amount": "-1"}, {**body, "expires_at": "tomorrow"},
                        {**body, "expires_at": "2026-12-01T10:00:00"}, {"amount": "1.00"}):
                response = http.post("/orders/SO-10001/payment-links", json=bad,
                                     headers={"Idempotency-Key": f"k-{bad}"})
                assert response.status_code == 422, bad
            assert http.post("/orders/SO-10001/payment-links", json=body).status_code == 400
            assert http.post("/orders/SO-NOPE/payment-links", json=body,
                             headers={"Idempotency-Key": "x"}).status_code == 404
            payments = len(state.orders["SO-10001"]["payments"])
            assert http.post(f"/pay/{link['id']}").json()["status"] == "paid"
            assert http.post(f"/pay/{link['id']}").json()["status"] == "paid"  # no-op
            assert len(state.orders["SO-10001"]["payments"]) == payments + 1
            paid_cancel = http.post(f"/payment-links/{link['id']}/cancel")
            assert paid_cancel.status_code == 409 and paid_cancel.json()["type"] == (
                "already_paid")
            gone = http.post("/orders/SO-10001/payment-links", json={
                **body, "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()},
                headers={"Idempotency-Key": "AS-2:1:payment_link"}).json()
            assert http.get(f"/payment-links/{gone['id']}").json()["status"] == "expired"
            assert http.post(f"/pay/{gone['id']}").status_code == 409
            open_ = http.post("/orders/SO-10001/payment-links", json=body,
                              headers={"Idempotency-Key": "AS-3:1:payment_link"}).json()
            assert http.post(f"/payment-links/{open_['id']}/cancel").json()["status"] == (
                "cancelled")
            assert http.post(f"/pay/{open_['id']}").status_code == 409
            assert http.get("/payment-links/PL-99999").status_code == 404
            assert len(state.orders["SO-10001"]["payments"]) == payments + 1
    finally:
        served.stop()
