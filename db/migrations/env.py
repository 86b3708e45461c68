"""Alembic environment: runs migrations on the URL set by `db.engine.alembic_config`."""

from alembic import context

from db.engine import make_engine
from db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run() -> None:
    engine = make_engine(url, pooled=False)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # On SQLite a batch migration that drops a column copies the table, drops it
            # and renames the copy; with foreign keys enforced, dropping `cases` fails
            # while other tables point at it. The pragma only takes effect outside a
            # transaction, so it is set first; the keys are checked after.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    engine.dispose()


run()
