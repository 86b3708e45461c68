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
            # Only after a migration ran (the check reads every table that has a
            # foreign key). The migrations are committed by now: a row pointing nowhere
            # is reported, not undone, and does not stop the next start.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            connection.commit()
            if broken:
                log.warning("%d rows with broken foreign keys after the migration "
                            "(table, rowid, parent, key): %s", len(broken),
                            [tuple(row) for row in broken[:10]])
    engine.dispose()


run()
