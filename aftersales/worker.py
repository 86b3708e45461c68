"""The worker process: runs case workflows and their activities on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.courier_system import CourierActivities, CourierClient
from activities.http import DEFAULT_TIMEOUT
from activities.inventory_system import InventoryActivities, InventoryClient
from activities.notifications import NotificationActivities, OutboxDelivery
from activities.order_system import OrderActivities, OrderSystemClient
from activities.projection import CaseProjector
from activities.standing import StandingReader
from activities.teams import RosterReader
from activities.triage import TriageActivities, model_path
from aftersales.settings import Settings
from aftersales.temporal import connect, ensure_search_attributes, warn_without_payload_keys
from db.engine import make_engine, make_sessionmaker, migrate
from db.links import LinkSeal, seal_stored_links
from workflows.case.workflow import CaseWorkflow

log = logging.getLogger("aftersales.worker")


@dataclass
class SystemClients:
    """One pooled client per retailer system, shared by the worker's activities."""

    orders: OrderSystemClient
    inventory: InventoryClient
    courier: CourierClient

    @classmethod
    def from_settings(cls, settings: Settings,
                      timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> SystemClients:
        return cls(OrderSystemClient(settings.order_system_url, timeout),
                   InventoryClient(settings.inventory_system_url, timeout),
                   CourierClient(settings.courier_system_url, timeout))

    async def aclose(self) -> None:
        for client in (self.orders, self.inventory, self.courier):
            await client.aclose()


def build_worker(client: Client, settings: Settings, systems: SystemClients,
                 projector: CaseProjector, task_queue: str | None = None,
                 notifications: NotificationActivities | None = None) -> Worker:
    """A worker for the case workflow with every activity it calls; notifications go
    out by the senders the settings name unless `notifications` is given."""
    notifications = notifications or NotificationActivities(
        OutboxDelivery(projector.sessions, settings))
    orders = OrderActivities(systems.orders)
    inventory = InventoryActivities(systems.inventory)
    courier = CourierActivities(systems.courier)
    triage = TriageActivities(model_path(settings.triage_model))
    roster_reader = RosterReader(projector.sessions)
    standing = StandingReader(projector.sessions)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[CaseWorkflow],
        activities=[
            orders.lookup_order, orders.lookup_product, orders.grant_compensation,
            orders.refund_payment, orders.create_payment_link, orders.check_payment_link,
            orders.cancel_payment_link,
            inventory.reserve, inventory.release, inventory.ship, inventory.restock,
            inventory.write_off, courier.create_waybill, courier.cancel_waybill,
            projector.project, notifications.deliver, triage.suggest, roster_reader.read,
            standing.read,
        ],
        max_cached_workflows=settings.worker_cache,
    )


def compile_workflows() -> None:
    """Write the bytecode of the workflow modules if it is missing or stale.

    Temporal's sandbox imports the workflow's module afresh for every case it puts in
    the worker's cache; without bytecode on disk (PYTHONDONTWRITEBYTECODE, a source
    checkout) each of those imports compiles workflows/case/workflow.py again, about 14 ms of
    CPU per case (docs/benchmarks.md). A read-only install is left as it is."""
    import compileall

    import workflows

    for folder in workflows.__path__:
        if not compileall.compile_dir(folder, quiet=2):
            log.info("could not write bytecode in %s; cases will compile the workflow "
                     "module as they are loaded", folder)


async def run_worker(settings: Settings) -> None:
    warn_without_payload_keys(settings)
    # The worker seals customers' status links into the read model with a key derived
    # from the secret key (db/links.py): it needs the web app's key.
    settings.check_secret_key()
    compile_workflows()
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    systems = SystemClients.from_settings(settings)
    sessions = make_sessionmaker(engine)
    links = LinkSeal(settings.secret_key)
    with sessions.begin() as session:  # links an older version left in the clear
        sealed = seal_stored_links(session, links)
    if sealed:
        log.info("sealed the status links of %d stored rows", sealed)
    worker = build_worker(client, settings, systems, CaseProjector(sessions, links))
    # Read the triage model while the worker starts polling, not at the first new case.
    warm_up = asyncio.create_task(asyncio.to_thread(_load_triage_model, settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker polling task queue %s at %s", settings.task_queue,
             settings.temporal_address)
    async with worker:
        await stop.wait()
    await warm_up
    await systems.aclose()
    engine.dispose()


def _load_triage_model(settings: Settings) -> None:
    from activities.triage.model import shared_model

    try:
        shared_model(model_path(settings.triage_model))
    except Exception:
        # The activity reports it on the cases, which go on without suggestions.
        log.exception("could not load the triage model")
