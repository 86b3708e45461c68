"""The resolve's early coupon check (web/catalogue.check_coupons) against an order
system that hangs: one short budget for the whole body, then the resolve goes on (the
grant checks the codes durably)."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest
from flask import Flask

from web.catalogue import COUPON_BUDGET, Catalogue, check_coupons


@pytest.fixture
def hanging_url():
    """An order system that takes the connection and never answers (nothing accepts
    it: the kernel's backlog completes the handshake, then silence)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_three_coupons_on_a_hanging_order_system_take_one_short_budget(hanging_url):
    app = Flask(__name__)
    catalogue = Catalogue(hanging_url, hanging_url)  # the app's 5 s timeout per read
    app.extensions["aftersales"] = SimpleNamespace(catalogue=catalogue)
    body = {"resolutions": [{"type": "compensation", "coupon_code": f"SORRY-{n}"}
                            for n in range(3)], "note": ""}
    try:
        with app.app_context():
            started = time.monotonic()
            assert check_coupons(body) == body  # unchanged: the grant decides
            took = time.monotonic() - started
    finally:
        catalogue.close()
    assert COUPON_BUDGET <= 3.0
    assert took < COUPON_BUDGET + 1.0, f"{took:.1f} s"
