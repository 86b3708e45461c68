"""fill the search box's index for the cases already there

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 02:50:00

Its own revision, in batches that commit one by one: on PostgreSQL every revision of an
upgrade runs in one transaction, and 0007's new column holds a lock on `cases` until
that transaction ends, which would stop every read and write for the whole fill. If the
fill is cut off it starts again where it stopped (cases without a folded name). A case a
new worker wrote meanwhile already has its folded name and grams and is skipped; one
whose name changed under the fill keeps what the worker wrote. Erased names are not
indexed.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 2000  # cases per transaction
ADD_GRAMS = sa.text(
    "INSERT INTO case_name_grams (gram, case_id) "
    "SELECT * FROM unnest(CAST(:grams AS text[]), CAST(:ids AS text[])) "
    "ON CONFLICT DO NOTHING")
FOLD = sa.text(
    "UPDATE cases SET customer_name_folded = given.folded "
    "FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:folded AS text[])) "
    "AS given (id, name, folded) "
    "WHERE cases.id = given.id AND cases.customer_name = given.name "
    "AND cases.customer_name_folded IS NULL")


def upgrade() -> None:
    from db.privacy import ERASED
    from db.search import name_grams, normalise

    cases = sa.table('cases', sa.column('id', sa.String), sa.column('customer_name', sa.String),
                     sa.column('customer_name_folded', sa.Text))
    grams = sa.table('case_name_grams', sa.column('gram'), sa.column('case_id'))
    # autocommit_block commits what came before (0007's new column and its lock);
    # each batch is then a transaction of its own, on a connection of its own.
    with op.get_context().autocommit_block():
        engine = op.get_bind().engine
        postgres = engine.dialect.name == 'postgresql'
        last = ''
        while True:
            with engine.begin() as connection:
                rows = connection.execute(
                    sa.select(cases.c.id, cases.c.customer_name)
                    .where(cases.c.id > last, cases.c.customer_name_folded.is_(None),
                           cases.c.customer_name != ERASED)
                    .order_by(cases.c.id).limit(BATCH)).all()
                if not rows:
                    break
                found = [(gram, case_id) for case_id, name in rows
                         for gram in sorted(name_grams(name))]
                folded = [(case_id, name, normalise(name)) for case_id, name in rows]
                if postgres:
                    # Arrays through unnest(): psycopg2 sends an executemany row by row
                    # (the fill took 29 s for 100,000 cases that way), and a multi-row
                    # VALUES costs SQLAlchemy more to compile than the database to run.
                    connection.execute(ADD_GRAMS, {'grams': [g for g, _ in found],
                                                   'ids': [c for _, c in found]})
                    connection.execute(FOLD, {'ids': [c for c, _, _ in folded],
                                              'names': [n for _, n, _ in folded],
                                              'folded': [f for _, _, f in folded]})
                else:
                    connection.execute(
                        sqlite.insert(grams).on_conflict_do_nothing(),
                        [{'gram': g, 'case_id': c} for g, c in found])
                    connection.execute(
                        cases.update()
                        .where(cases.c.id == sa.bindparam('p_id'),
                               cases.c.customer_name == sa.bindparam('p_name'),
                               cases.c.customer_name_folded.is_(None))
                        .values(customer_name_folded=sa.bindparam('p_folded')),
                        [{'p_id': i, 'p_name': n, 'p_folded': f} for i, n, f in folded])
            last = rows[-1][0]


def downgrade() -> None:
    pass  # 0007's downgrade drops what this filled
