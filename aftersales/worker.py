"""The worker process: runs case workflows and their activities on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from activities.order_system import OrderActivities, OrderSystemClient
from activities.projection import CaseProjector
from aftersales.settings import Settings
from aftersales.temporal import connect, ensure_search_attributes
from db.engine import make_engine, make_sessionmaker, migrate
from workflows.case import CaseWorkflow

log = logging.getLogger("aftersales.worker")


def build_worker(client: Client, settings: Settings, order_client: OrderSystemClient,
                 projector: CaseProjector, task_queue: str | None = None) -> Worker:
    """A worker for the case workflow with every activity it calls."""
    orders = OrderActivities(order_client)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[CaseWorkflow],
        activities=[orders.lookup_order, orders.grant_compensation, projector.project],
    )


async def run_worker(settings: Settings) -> None:
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    order_client = OrderSystemClient(settings.order_system_url)
    worker = build_worker(client, settings, order_client,
                          CaseProjector(make_sessionmaker(engine)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker polling task queue %s at %s", settings.task_queue,
             settings.temporal_address)
    async with worker:
        await stop.wait()
    await order_client.aclose()
    engine.dispose()
