"""`aftersales bench`: full case lifecycles through the running system, against the
same number of bare Temporal workflows with the same shape, in one run.

The lifecycle goes through everything a user's case does: HTTP to the web app,
Temporal updates with validators, the worker, the order-system simulator, the read
model, and the customer's status link. Progress goes to stderr; the last line printed
is JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHistory
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from aftersales.settings import Settings
from aftersales.temporal import connect
from bench.bare_workflow import STEPS, BareCaseWorkflow, BareInput, BareStep, bare_io
from workflows.case.contracts import workflow_id

ORDERS = [f"SO-{10001 + n}" for n in range(40)]
WARM_UP = 4  # untimed lifecycles before each timed run


@dataclass
class Timings:
    actions_ms: list[float] = field(default_factory=list)
    cases: int = 0
    failures: int = 0
    workflow_ids: list[str] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        if not self.actions_ms:
            return 0.0
        ordered = sorted(self.actions_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_token(settings: Settings) -> str:
    """A token for a dedicated bench user, created in the read model if needed."""
    from db.accounts import create_token, create_user, get_user
    from db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        if get_user(session, "bench") is None:
            create_user(session, "bench", "supervisor")
        token = create_token(session, "bench")
    engine.dispose()
    return token


async def lifecycle(http: httpx.AsyncClient, n: int, timings: Timings) -> None:
    async def timed(method: str, path: str, body: dict) -> dict:
        started = time.perf_counter()
        response = await http.request(method, path, json=body)
        timings.actions_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response.json()

    case = await timed("POST", "/api/v1/cases", {
        "kind": "complaint", "channel": "app", "order_id": ORDERS[n % len(ORDERS)],
        "customer": {"id": f"C-B{n}", "name": "Bench Customer"},
        "description": "bench: the parcel arrived damaged"})
    path = f"/api/v1/cases/{case['id']}"
    token = case["customer_url"].rsplit("/", 1)[1]
    await timed("POST", f"{path}/confirm", {"note": "bench"})
    await timed("POST", f"{path}/analyze", {"root_cause": "damaged_in_transit",
                                            "responsible_party": "courier", "note": "bench"})
    await timed("POST", f"{path}/resolve", {"resolution": {"type": "compensation",
                                                           "points": 100}})
    await timed("POST", f"/api/v1/status/{token}/feedback", {"rating": 5, "comment": "ok"})
    closed = await timed("POST", f"{path}/revisit", {"outcome": "satisfied", "note": "bench"})
    if closed["stage"] != "closed":
        raise RuntimeError(f"case {case['id']} ended in {closed['stage']}")
    timings.cases += 1
    timings.workflow_ids.append(workflow_id(case["id"]))


async def bare_lifecycle(client: Client, task_queue: str, n: int, timings: Timings) -> None:
    # Opened as a case is: an update-with-start, then one update per action.
    wf_id = f"bench-bare-{uuid.uuid4()}"
    started = time.perf_counter()
    await client.execute_update_with_start_workflow(
        BareCaseWorkflow.step, BareStep("intake"),
        start_workflow_operation=WithStartWorkflowOperation(
            BareCaseWorkflow.run, BareInput(f"bare-{n}"), id=wf_id, task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL))
    timings.actions_ms.append((time.perf_counter() - started) * 1000)
    handle = client.get_workflow_handle(wf_id)
    for step in STEPS:
        started = time.perf_counter()
        await handle.execute_update(BareCaseWorkflow.step, BareStep(step))
        timings.actions_ms.append((time.perf_counter() - started) * 1000)
    await handle.result()
    timings.cases += 1
    timings.workflow_ids.append(wf_id)


# Which process on this machine is which part of the system, by its command line.
COMPONENTS = (("temporal server", "temporal"), ("aftersales.cli worker", "worker"),
              ("gunicorn web.wsgi", "web"), ("aftersales.cli web", "web"),
              ("simulators.order_system", "order-system"),
              ("simulators.inventory_system", "inventory-system"),
              ("simulators.courier_system", "courier-system"),
              ("aftersales.cli scheduler", "scheduler"), ("aftersales.mailsink", "mail-sink"),
              ("postgres: ", "postgresql"))


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the system running on this machine
    (Linux /proc), and by this bench process; empty where /proc is not there."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "bench" if int(entry.name) == os.getpid() else next(
            (label for pattern, label in COMPONENTS if pattern in command), None)
        if name:
            used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def cpu_per_lifecycle(before: dict[str, float], after: dict[str, float],
                      lifecycles: int) -> dict[str, float]:
    """Milliseconds of CPU per lifecycle by part, between two `cpu_seconds` readings."""
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    out = {name: round(seconds / max(1, lifecycles) * 1000, 1)
           for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
           if seconds > 0}
    out["total"] = round(sum(out.values()), 1)
    return out


def history_shape(history: WorkflowHistory) -> dict[str, int]:
    """What one lifecycle asked of Temporal: updates, activities, local activities
    (recorded as markers), timers, workflow tasks and history events."""
    counts = {"updates": 0, "activities": 0, "local_activities": 0, "timers": 0,
              "workflow_tasks": 0, "events": len(history.events)}
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            counts["updates"] += 1
        elif event.HasField("activity_task_scheduled_event_attributes"):
            counts["activities"] += 1
        elif event.HasField("marker_recorded_event_attributes") and \
                event.marker_recorded_event_attributes.marker_name == "core_local_activity":
            counts["local_activities"] += 1
        elif event.HasField("timer_started_event_attributes"):
            counts["timers"] += 1
        elif event.HasField("workflow_task_completed_event_attributes"):
            counts["workflow_tasks"] += 1
    return counts


async def shape_of(client: Client, timings: Timings) -> dict[str, int]:
    if not timings.workflow_ids:
        return {}
    return history_shape(await client.get_workflow_handle(timings.workflow_ids[0])
                         .fetch_history())


async def run_all(count: int, concurrency: int, job, progress: bool = True) -> float:
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one(n: int) -> None:
        nonlocal done
        async with semaphore:
            await job(n)
            done += 1
            if progress and done % max(1, count // 10) == 0:
                print(f"  {done}/{count}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"  {len(errors)} failed, e.g. {errors[0]!r}", file=sys.stderr, flush=True)
    return time.perf_counter() - started


async def bench(settings: Settings, web_url: str, cases: int, concurrency: int) -> dict:
    token = bench_token(settings)
    full = Timings()
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=web_url, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        print(f"bench: {cases} case lifecycles at concurrency {concurrency} via {web_url}",
              file=sys.stderr, flush=True)

        async def full_job(n: int) -> None:
            try:
                await lifecycle(http, n, full)
            except Exception:
                full.failures += 1
                raise

        # A few lifecycles first, not timed: the worker loads its triage model and
        # fills its caches, connections open. The same for the bare run below.
        await run_all(WARM_UP, WARM_UP, lambda n: lifecycle(http, cases + n, Timings()),
                      progress=False)
        cpu_before = cpu_seconds()
        full_seconds = await run_all(cases, concurrency, full_job)
        full_cpu = cpu_per_lifecycle(cpu_before, cpu_seconds(), full.cases)

    client = await connect(settings)
    shape = await shape_of(client, full)
    task_queue = f"aftersales-bench-bare-{uuid.uuid4().hex[:8]}"
    bare = Timings()
    async with Worker(client, task_queue=task_queue, workflows=[BareCaseWorkflow],
                      activities=[bare_io]):
        print(f"bench: {cases} bare Temporal workflows of the same shape", file=sys.stderr,
              flush=True)
        await run_all(WARM_UP, WARM_UP,
                      lambda n: bare_lifecycle(client, task_queue, cases + n, Timings()),
                      progress=False)
        cpu_before = cpu_seconds()
        bare_seconds = await run_all(
            cases, concurrency, lambda n: bare_lifecycle(client, task_queue, n, bare))
        bare_cpu = cpu_per_lifecycle(cpu_before, cpu_seconds(), bare.cases)
    bare_shape = await shape_of(client, bare)
    cases_per_s = full.cases / full_seconds if full_seconds else 0.0
    bare_per_s = bare.cases / bare_seconds if bare_seconds else 0.0
    return {
        "cases": cases,
        "concurrency": concurrency,
        "completed": full.cases,
        "failures": full.failures,
        "seconds": round(full_seconds, 3),
        "cases_per_s": round(cases_per_s, 3),
        "action_p50_ms": round(full.percentile(0.50), 1),
        "action_p95_ms": round(full.percentile(0.95), 1),
        "action_mean_ms": round(statistics.fmean(full.actions_ms), 1) if full.actions_ms
        else 0.0,
        "bare_completed": bare.cases,
        "bare_seconds": round(bare_seconds, 3),
        "bare_cases_per_s": round(bare_per_s, 3),
        "bare_action_p50_ms": round(bare.percentile(0.50), 1),
        "bare_action_p95_ms": round(bare.percentile(0.95), 1),
        "ratio_to_bare_temporal": round(cases_per_s / bare_per_s, 3) if bare_per_s else 0.0,
        # Per lifecycle, from one history of each: the bare workflow is only a fair
        # baseline while these agree on updates, activities and local activities.
        "shape": shape,
        "bare_shape": bare_shape,
        # CPU ms per lifecycle by part of the system (processes on this machine; the
        # bare run's worker is this bench process).
        "cpu_ms_per_lifecycle": full_cpu,
        "bare_cpu_ms_per_lifecycle": bare_cpu,
    }


def main(settings: Settings, web_url: str, cases: int, concurrency: int) -> dict:
    result = asyncio.run(bench(settings, web_url, cases, concurrency))
    print(json.dumps(result))
    return result
