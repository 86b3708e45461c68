"""`aftersales bench --read-model N`: fill the read model with N cases and time the
queries that pages and the API make, on SQLite or PostgreSQL.

The cases are written straight into the tables (the read model is a projection; how
they got there does not matter to a query), spread over stages, priorities, handlers,
90 days of intake and a week either side of their due times. Each query runs many
times; the last line printed is JSON with p50/p95 per query and the database's plan.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, text

from db import cases as case_store
from db import kpi
from db.engine import make_engine, make_sessionmaker, migrate
from db.models import FAR_FUTURE, Case, CaseClock, CaseNameGram, CaseWaybill, TimelineEvent
from db.reports import ReportFilter, live_summary, summary
from db.search import name_grams, normalise, phone_digits
from workflows.case.vocabulary import ID_ALPHABET
from workflows.case.vocabulary import STAGES as VOCABULARY_STAGES

STAGES = VOCABULARY_STAGES[1:]  # every stage a recorded case can be in
STAGE_WEIGHTS = (8, 8, 6, 4, 4, 60, 10)
HANDLERS = [f"handler{n:02d}" for n in range(50)]
ROOT_CAUSES = ("product_quality", "wrong_item", "damaged_in_transit", "late_delivery",
               "other")
BATCH = 2000
RUNS = 60
# Customer names as a Chinese retailer sees them: a common surname and one or two given
# characters, and now and then a name in Latin letters.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩"
    "凯健俊帆帅旭宁龙林欣悦怡佳琪雪梅慧颖婷晶晨阳昊然子轩梓涵一诺"
)
LATIN = ("Anna Schmidt", "John Smith", "Maria Garcia", "Li Wei", "Olga Ivanova",
         "James Brown", "Sara Rossi", "Tom Müller")


def customer_name(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return rng.choice(LATIN)
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN)
                                          for _ in range(rng.choice((1, 2, 2))))


def bench_case_id(n: int) -> str:
    """The n-th case's id, spelt as real ids are (CASE_ID), so typed ids find it."""
    letters = []
    for _ in range(10):
        n, digit = divmod(n, len(ID_ALPHABET))
        letters.append(ID_ALPHABET[digit])
    return "AS-" + "".join(reversed(letters))


def fill(url: str, count: int, seed: int = 42, search: bool = True,
         now: datetime | None = None) -> None:
    """Insert `count` cases (with clocks and timeline events) into an empty read model,
    opened over the 90 days before `now`, and take the KPI snapshots at `now`; without
    `search`, only the cases and their clocks (what the reports read)."""
    migrate(url)
    engine = make_engine(url)
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        if connection.scalar(select(func.count()).select_from(Case)):
            raise SystemExit(f"{url} already holds cases; give an empty database")
    for start in range(0, count, BATCH):
        cases, clocks, events = [], [], []
        grams: list[dict] = []
        waybills: list[dict] = []
        for n in range(start, min(count, start + BATCH)):
            case_id = bench_case_id(n)
            created = now - timedelta(minutes=rng.randint(0, 90 * 24 * 60))
            stage = rng.choices(STAGES, STAGE_WEIGHTS)[0]
            open_ = stage not in ("closed", "cancelled")
            due = now + timedelta(minutes=rng.randint(-7 * 24 * 60, 7 * 24 * 60)) \
                if open_ else None
            overdue = bool(open_ and due and due < now)
            resolved = created + timedelta(hours=rng.randint(2, 96)) \
                if stage in ("feedback", "revisit", "closed") else None
            cases.append({
                "id": case_id, "version": 1, "kind": rng.choice(("complaint", "return",
                                                                 "refund", "exchange")),
                "channel": rng.choice(("web", "app", "phone", "wechat")), "stage": stage,
                "status": stage if not open_ else "open",
                "priority": rng.choice(("P1", "P2", "P3", "P3", "P4")),
                "assignee": rng.choice(HANDLERS) if stage != "confirm" else None,
                "order_id": f"SO-{rng.randint(1, count // 2 + 1)}",
                "customer_id": f"C-{rng.randint(1, count // 3 + 1)}",
                "customer_name": (name := customer_name(rng)),
                "customer_name_folded": normalise(name),
                "customer_phone": f"138{n:08d}",
                "customer_phone_digits": phone_digits(f"138{n:08d}"),
                "created_at": created, "updated_at": created, "stage_due_at": due,
                "due_key": due or FAR_FUTURE, "resolution_due_at": due, "overdue": overdue,
                "closed_at": resolved + timedelta(days=3) if stage == "closed" and resolved
                else None,
                "rating": rng.randint(1, 5) if resolved and rng.random() < 0.6 else None,
                "status_token_hash": f"{n:064d}",
                "confirmed_at": created + timedelta(minutes=rng.randint(5, 600))
                if stage != "confirm" else None,
                "resolved_at": resolved, "fcr_until": resolved + timedelta(days=7)
                if resolved else None,
                "first_response_s": float(rng.randint(300, 36000)),
                "first_response_work_s": float(rng.randint(300, 30000)),
                "resolution_s": float(rng.randint(7200, 345600)) if resolved else None,
                "resolution_work_s": float(rng.randint(7200, 200000)) if resolved else None,
                "root_cause": rng.choice(ROOT_CAUSES) if stage not in ("confirm",) else None,
                "responsible_party": rng.choice(("merchant", "supplier", "courier")),
                "resolution_type": rng.choice(("refund", "compensation", "apology"))
                if resolved else None,
                "refunded": 0, "compensation_points": 0, "reopen_count": 0,
                "data": {"customer": {"id": "", "name": name}, "items": [],
                         "description": "bench", "customer_url": "http://x/s/x"},
            })
            grams.extend({"gram": gram, "case_id": case_id} for gram in name_grams(name))
            # The order's delivery, and a return parcel for one case in three.
            waybills.append({"waybill": f"YT{n:010d}", "case_id": case_id})
            if n % 3 == 0:
                waybills.append({"waybill": f"SF{n:010d}", "case_id": case_id})
            for idx, clock in enumerate(("confirm", "analyze", "resolution")):
                clocks.append({"case_id": case_id, "idx": idx, "name": clock,
                               "state": rng.choice(("met", "met", "met", "breached")),
                               "target_s": 28800, "used_s": float(rng.randint(60, 40000))})
            for seq, kind in enumerate(("created", "recorded", "confirmed"), start=1):
                events.append({"case_id": case_id, "seq": seq, "at": created,
                               "actor": "system", "type": kind, "stage_before": "record",
                               "stage_after": "confirm", "detail": {}})
        with engine.begin() as connection:
            connection.execute(insert(Case), cases)
            connection.execute(insert(CaseClock), clocks)
            if search:
                connection.execute(insert(TimelineEvent), events)
                connection.execute(insert(CaseNameGram), grams)
                connection.execute(insert(CaseWaybill), waybills)
        print(f"  filled {min(count, start + BATCH)}/{count}", file=sys.stderr, flush=True)
    # Fresh statistics for the planner, and (PostgreSQL) the visibility map that
    # index-only scans read, as autovacuum keeps them on a table in use.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql"
                                else "ANALYZE"))
    # Last night's KPI snapshots, as the scheduler writes them (docs/reports.md).
    with make_sessionmaker(engine).begin() as session:
        kpi.take_snapshots(session, now)
    engine.dispose()


def measure(url: str) -> dict:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    rng = random.Random(7)
    F = case_store.CaseFilter
    now = datetime.now(UTC)
    with sessions() as session:
        ids = list(session.scalars(select(Case.id).limit(500)))
        orders = list(session.scalars(select(Case.order_id).limit(500)))
        phones = list(session.scalars(select(Case.customer_phone).limit(500)))
        names = list(session.scalars(select(Case.customer_name).limit(500)))

    queries = {
        "desk_queue": lambda s: case_store.list_cases(
            s, F(assignee=rng.choice(HANDLERS)), sort="due", per_page=50, page=1),
        "overdue_list": lambda s: case_store.list_cases(s, F(overdue=True), sort="due",
                                                        per_page=50, page=1),
        "stage_queue": lambda s: case_store.list_cases(s, F(stage="confirm"), sort="due",
                                                       per_page=50, page=1),
        "search_order": lambda s: case_store.list_cases(s, F(q=rng.choice(orders)),
                                                        per_page=50, page=1),
        "search_phone": lambda s: case_store.list_cases(s, F(q=rng.choice(phones)),
                                                        per_page=50, page=1),
        # A customer's whole name, and the worst case: one common character (a
        # surname), which matches thousands of cases.
        "search_name": lambda s: case_store.list_cases(s, F(q=rng.choice(names)),
                                                       per_page=50, page=1),
        "search_one_character": lambda s: case_store.list_cases(
            s, F(q=rng.choice("王李张刘陈")), per_page=50, page=1),
        # The desk's search box (every case, newest first): a phone as people write
        # it, a waybill number, a case id read over the phone in lower case.
        "desk_search_phone_formatted": lambda s: case_store.list_cases(
            s, F(q=formatted(rng.choice(phones))), sort="created", per_page=50, page=1),
        "desk_search_waybill": lambda s: case_store.list_cases(
            s, F(q=f"SF{rng.randrange(0, len(ids) * 3, 3):010d}"), sort="created",
            per_page=50, page=1),
        "desk_search_case_id_typed": lambda s: case_store.list_cases(
            s, F(q=(lambda i: f"{i[:7]} {i[7:]}".lower())(rng.choice(ids))),
            sort="created", per_page=50, page=1),
        "desk_search_one_character": lambda s: case_store.list_cases(
            s, F(q=rng.choice("王李张刘陈")), sort="created", per_page=50, page=1),
        "case_page": lambda s: (case_store.get_case(s, rng.choice(ids)),
                                case_store.timeline(s, rng.choice(ids))),
        "report_summary": lambda s: summary(s, ReportFilter(start=now - timedelta(days=30),
                                                            end=now)),
        # The same figures counted from the cases alone, without the snapshots.
        "report_summary_live": lambda s: live_summary(
            s, ReportFilter(start=now - timedelta(days=30), end=now)),
    }
    result: dict = {"database": engine.dialect.name, "queries": {}}
    for name, run in queries.items():
        timings = []
        runs = RUNS if not name.startswith("report_summary") else 10
        with sessions() as session:
            run(session)  # warm the cache and the pool
            for _ in range(runs):
                started = time.perf_counter()
                run(session)
                timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        result["queries"][name] = {
            "runs": runs, "p50_ms": round(statistics.median(timings), 2),
            "p95_ms": round(timings[min(len(timings) - 1, int(0.95 * len(timings)))], 2)}
        print(f"  {name}: p50 {result['queries'][name]['p50_ms']} ms, "
              f"p95 {result['queries'][name]['p95_ms']} ms", file=sys.stderr, flush=True)
    result["plans"] = plans(engine)
    engine.dispose()
    return result


def formatted(phone: str) -> str:
    """A mobile number the way a customer reads it out: "+86 138-0000-0001"."""
    return f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}"


def plans(engine) -> dict:
    """The database's plan for the list queries, for docs/benchmarks.md."""
    statements = {
        "desk_queue": case_store.case_query(case_store.CaseFilter(assignee="handler01"))
        .order_by(Case.due_key, Case.id).limit(50),
        "overdue_list": case_store.case_query(case_store.CaseFilter(overdue=True))
        .order_by(Case.due_key, Case.id).limit(50),
        "search_name": case_store.case_query(case_store.CaseFilter(q="王芳"))
        .order_by(Case.due_key, Case.id).limit(50),
        "desk_search_phone_formatted": case_store.case_query(
            case_store.CaseFilter(q="+86 138-0000-0001"))
        .order_by(Case.created_at.desc(), Case.id.desc()).limit(50),
    }
    prefix = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    out = {}
    with engine.connect() as connection:
        for name, statement in statements.items():
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            rows = connection.execute(text(f"{prefix} {compiled}")).all()
            out[name] = [" ".join(str(v) for v in row) for row in rows]
    return out


def main(url: str, count: int) -> dict:
    started = time.perf_counter()
    fill(url, count)
    print(f"  filled in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    result = {"cases": count, **measure(url)}
    print(json.dumps(result, ensure_ascii=False))
    return result
