"""Alembic environment: runs migrations on the URL set by `db.engine.alembic_config`."""

import logging

from alembic import context

from db.engine import make_engine
from db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""
log = logging.getLogger("alembic.runtime.migration")


def run() -> None:
    engine = make_engine(url, pooled=False)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # On SQLite a batch migration that drops a column copies the table, drops it
            # and renames the copy; with foreign keys enforced, dropping `cases` fails
            # while other tables point at it. The pragma only takes effect outside a
            # transaction, so it is set first.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            broken_before = _broken_keys(connection)
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            compare_type=True,
        )
        migration = context.get_context()
        before = migration.get_current_revision()
        with context.begin_transaction():
            context.run_migrations()
        if sqlite and migration.get_current_revision() != before:
            # The migrations are committed by now; a row they left pointing nowhere is
            # reported, not undone (and does not stop the next start).
            broken = _broken_keys(connection) - broken_before
            if broken:
                log.warning("the migration left %d rows with broken foreign keys "
                            "(table, rowid, parent): %s", len(broken), sorted(broken)[:10])
    engine.dispose()


def _broken_keys(connection) -> set[tuple]:
    rows = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    connection.commit()
    return {(table, rowid, parent) for table, rowid, parent, _ in rows}


run()
