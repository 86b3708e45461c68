"""the search box's index: customer-name grams, and an index on the phone

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-24 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    op.create_table('case_name_grams',
    sa.Column('gram', sa.String(length=8), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_name_grams_case_id_cases')),
    sa.PrimaryKeyConstraint('gram', 'case_id', name=op.f('pk_case_name_grams'))
    )
    with op.batch_alter_table('case_name_grams', schema=None) as batch_op:
        batch_op.create_index('ix_case_name_grams_case', ['case_id'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_phone', ['customer_phone'], unique=False)

    # Index the names of the cases already there.
    from db.search import name_grams

    bind = op.get_bind()
    cases = sa.table('cases', sa.column('id'), sa.column('customer_name'))
    grams = sa.table('case_name_grams', sa.column('gram'), sa.column('case_id'))
    last = ''
    while True:
        rows = bind.execute(sa.select(cases.c.id, cases.c.customer_name)
                            .where(cases.c.id > last).order_by(cases.c.id)
                            .limit(BATCH)).all()
        if not rows:
            break
        values = [{'gram': gram, 'case_id': case_id}
                  for case_id, name in rows for gram in sorted(name_grams(name or ''))]
        if values:
            bind.execute(grams.insert(), values)
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_phone')
    with op.batch_alter_table('case_name_grams', schema=None) as batch_op:
        batch_op.drop_index('ix_case_name_grams_case')
    op.drop_table('case_name_grams')
