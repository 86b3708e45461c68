"""the search box finds cases by phone in any formatting and by waybill number: the
phone's digits (`cases.customer_phone_digits`) and the waybill index (`case_waybills`),
filled for the cases already there

Revision ID: 0024
Revises: 0026
Create Date: 2026-12-07 00:00:00

The fill runs in batches that commit one by one, as 0008's does, so the new column's
lock on `cases` is not held for the whole fill. A case a worker writes meanwhile gets
both from the worker; the fill only adds (digits where there are none, waybills with
ON CONFLICT DO NOTHING). Erased customers' phones are empty and stay unfound.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = '0024'
down_revision = '0026'
branch_labels = None
depends_on = None

BATCH = 2000  # cases per transaction
# Arrays through unnest() on PostgreSQL: psycopg2 sends an executemany row by row (0008).
DIGITS_PG = sa.text(
    "UPDATE cases SET customer_phone_digits = given.digits "
    "FROM unnest(CAST(:ids AS text[]), CAST(:digits AS text[])) AS given (id, digits) "
    "WHERE cases.id = given.id AND cases.customer_phone_digits IS NULL")
WAYBILLS_PG = sa.text(
    "INSERT INTO case_waybills (waybill, case_id) "
    "SELECT * FROM unnest(CAST(:numbers AS text[]), CAST(:ids AS text[])) "
    "ON CONFLICT DO NOTHING")


def upgrade() -> None:
    op.create_table(
        'case_waybills',
        sa.Column('waybill', sa.String(length=64), nullable=False),
        sa.Column('case_id', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'],
                                name=op.f('fk_case_waybills_case_id_cases')),
        sa.PrimaryKeyConstraint('waybill', 'case_id', name=op.f('pk_case_waybills')))
    op.create_index('ix_case_waybills_case', 'case_waybills', ['case_id'], unique=False)
    # A nullable column is added in place, on SQLite too (no table rebuild).
    op.add_column('cases', sa.Column('customer_phone_digits', sa.String(length=40),
                                     nullable=True))
    op.create_index('ix_cases_phone_digits', 'cases', ['customer_phone_digits'],
                    unique=False)
    _fill()


def _fill() -> None:
    from db.search import compact, phone_digits

    cases = sa.table('cases', sa.column('id', sa.String), sa.column('customer_phone', sa.String),
                     sa.column('customer_phone_digits', sa.String),
                     sa.column('data', sa.JSON))
    waybills = sa.table('case_waybills', sa.column('waybill'), sa.column('case_id'))
    with op.get_context().autocommit_block():
        engine = op.get_bind().engine
        postgres = engine.dialect.name == 'postgresql'
        last = ''
        while True:
            with engine.begin() as connection:
                rows = connection.execute(
                    sa.select(cases.c.id, cases.c.customer_phone, cases.c.data)
                    .where(cases.c.id > last).order_by(cases.c.id).limit(BATCH)).all()
                if not rows:
                    break
                phones = [(case_id, digits) for case_id, phone, _ in rows
                          if (digits := phone_digits(phone or ''))]
                found = sorted({(compact(n), case_id) for case_id, _, data in rows
                                for n in _waybills(data or {})})
                if postgres:
                    connection.execute(DIGITS_PG, {'ids': [i for i, _ in phones],
                                                   'digits': [d for _, d in phones]})
                    connection.execute(WAYBILLS_PG, {'numbers': [n for n, _ in found],
                                                     'ids': [i for _, i in found]})
                else:
                    if phones:
                        connection.execute(
                            cases.update()
                            .where(cases.c.id == sa.bindparam('p_id'),
                                   cases.c.customer_phone_digits.is_(None))
                            .values(customer_phone_digits=sa.bindparam('p_digits')),
                            [{'p_id': i, 'p_digits': d} for i, d in phones])
                    if found:
                        connection.execute(
                            sqlite.insert(waybills).on_conflict_do_nothing(),
                            [{'waybill': n, 'case_id': i} for n, i in found])
            last = rows[-1][0]


def _waybills(data: dict) -> set[str]:
    numbers = set((data.get('parcels') or {}).keys())
    numbers.add(((data.get('order') or {}).get('waybill_no') or '').strip())
    return {n for n in numbers if n.strip()}


def downgrade() -> None:
    op.drop_index('ix_cases_phone_digits', table_name='cases')
    # In place (SQLite 3.35+), as 0019's: no rebuild of the cases table.
    op.drop_column('cases', 'customer_phone_digits')
    op.drop_index('ix_case_waybills_case', table_name='case_waybills')
    op.drop_table('case_waybills')
