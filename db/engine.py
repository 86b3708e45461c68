"""Engines and sessions for the read model, and migrations at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"
# Seconds libpq may take to connect. A database host that is gone drops the attempt
# rather than refusing it; without a limit libpq waits until the kernel gives up
# (minutes), and every web request and projection write waits with it instead of
# answering 503 and retrying. A `connect_timeout` in the URL wins.
PG_CONNECT_TIMEOUT_S = 5


def make_engine(url: str, pooled: bool = True) -> Engine:
    """An engine for `url`; SQLite files are set up for a worker and a web process."""
    if url.startswith("sqlite"):
        _ensure_parent(url)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            hide_parameters=True,  # errors never carry a phone number or a name
            **({} if pooled else {"poolclass": NullPool}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = ({} if "connect_timeout" in make_url(url).query
                    else {"connect_timeout": PG_CONNECT_TIMEOUT_S})
    if not pooled:
        return create_engine(url, poolclass=NullPool, hide_parameters=True,
                             connect_args=connect_args)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         hide_parameters=True, connect_args=connect_args)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (idempotent)."""
    _ensure_parent(url)
    command.upgrade(alembic_config(url), "head")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _ensure_parent(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        Path(url[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the web process read while the worker writes; busy_timeout makes a
    # writer wait for the other instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The reports bucket durations with this on SQLite; PostgreSQL has `width_bucket`
    # (db/reports.py `histogram_bucket`).
    from db.reports import histogram_bucket

    dbapi_connection.create_function("report_bucket", 1, histogram_bucket,
                                     deterministic=True)
