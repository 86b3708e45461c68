"""Demo data for `aftersales dev --demo`: staff accounts in teams and a few cases in
flight, routed by the demo's routing file (`demo_routing.toml`) so they arrive assigned.

Cases go through the real REST API, so the demo exercises the same path as users.
Seeding happens once per data dir; a restart keeps what is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import httpx

from aftersales.settings import Settings
from db.accounts import create_token, create_user, get_user
from db.engine import make_engine, make_sessionmaker

DEMO_USERS = (
    ("alice", "handler", "alice-demo"),
    ("bob", "handler", "bob-demo"),
    ("carol", "handler", "carol-demo"),
    ("sam", "supervisor", "sam-demo"),
    ("admin", "admin", "admin-demo"),
)
# The teams of demo_routing.toml and who is in each; sam and admin, in no team, oversee
# them all (docs/teams.md).
DEMO_TEAMS = {"alice": ["complaints"], "bob": ["returns"], "carol": ["vip"]}
DEMO_ROUTING = "demo_routing.toml"
# Where their notifications go (the dev stack's SMTP sink shows them at /dev/mail).
# Address, language and the name customers see on replies.
DEMO_ADDRESSES = {"alice": ("alice@example.com", "zh-CN", "客服小艾"),
                  "bob": ("bob@example.com", "en", "Bob (service)"),
                  "carol": ("carol@example.com", "en", "Carol (VIP service)"),
                  "sam": ("sam@example.com", "en", ""),
                  "admin": ("admin@example.com", "en", "")}

DEMO_CASES = (
    {"kind": "complaint", "channel": "phone", "order_id": "SO-10001",
     "customer": {"id": "C-1001", "name": "王芳", "phone": "13800000001", "tier": "vip"},
     "items": [], "description": "快递员态度很差，包裹被扔在门口，茶叶盒子压坏了。",
     "advance": []},
    {"kind": "complaint", "channel": "web", "order_id": "SO-10004",
     "customer": {"id": "C-1004", "name": "Emma Clarke", "email": "emma@example.com",
                  "locale": "en"},
     "items": [], "description": "The parcel arrived two days late and the milk had gone off.",
     "advance": ["confirm"]},
    {"kind": "complaint", "channel": "wechat", "order_id": "SO-10006",
     "customer": {"id": "C-1006", "name": "陈静", "phone": "13800000006"},
     "items": [], "description": "月饼礼盒里少了两个，再不处理我就投诉到12315。",
     "advance": ["confirm", "analyze"]},
    {"kind": "refund", "channel": "app", "order_id": "SO-10003",
     "customer": {"id": "C-1003", "name": "张伟", "phone": "13800000003"},
     "items": [], "description": "我申请的退款三天了还没到账。", "advance": []},
)


def demo_routing_file() -> str:
    """The path of the demo's routing file, shipped inside the package."""
    return str(resources.files("aftersales").joinpath(DEMO_ROUTING))


def seed_demo(settings: Settings, web_url: str) -> Iterator[str]:
    """Create the demo accounts (once) and cases; yields lines to print."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        fresh = get_user(session, "alice") is None
        if fresh:
            for name, role, password in DEMO_USERS:
                email, locale, shown = DEMO_ADDRESSES[name]
                create_user(session, name, role, password, email=email, locale=locale,
                            display_name=shown, teams=DEMO_TEAMS.get(name, []))
        token = create_token(session, "alice")
        # The cases are opened and moved on by the admin: routing gives them to
        # handlers, and only the assignee or a manager acts on a case.
        seeding = create_token(session, "admin")
    engine.dispose()
    for name, role, password in DEMO_USERS:
        yield f"demo {role}: {name} / {password}"
    yield f"demo API token for alice: {token}"
    if not fresh:
        return
    headers = {"Authorization": f"Bearer {seeding}"}
    with httpx.Client(base_url=web_url, headers=headers, timeout=60) as http:
        for spec in DEMO_CASES:
            body = {k: v for k, v in spec.items() if k != "advance"}
            response = http.post("/api/v1/cases", json=body)
            if response.status_code != 201:
                yield f"demo case on {body['order_id']} not opened: {response.text[:200]}"
                continue
            case = response.json()
            if case["stage"] != "confirm":
                # Still waiting on the order system: leave it where it is.
                yield f"demo case {case['id']} ({body['kind']}) waits on the order system"
                continue
            for step in spec["advance"]:
                if step == "confirm":
                    http.post(f"/api/v1/cases/{case['id']}/confirm",
                              json={"note": "已与客户电话确认 / confirmed with the customer"})
                elif step == "analyze":
                    http.post(f"/api/v1/cases/{case['id']}/analyze",
                              json={"root_cause": "missing_item",
                                    "responsible_party": "merchant",
                                    "note": "仓库漏装 / packing error at the warehouse"})
            yield (f"demo case {case['id']} ({body['kind']}, {body['channel']}, team "
                   f"{case['team']}, assigned to {case['assignee'] or 'nobody'}): customer's "
                   f"page {case['customer_url']}")
