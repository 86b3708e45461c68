"""Reports that agree with themselves: kpi_snapshots.figures (a day's additive
report figures), cases.coupon_value (the money value of a coupon granted as
compensation), an index on cases.updated_at (which snapshot days changed since) and
one on cases.closed_at (the cases closed in a period), and case_clocks by case and
state (a few days' clocks read from the index)

Revision ID: 0025
Revises: 0023
Create Date: 2026-12-07 00:00:00
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('kpi_snapshots', sa.Column('figures', sa.JSON(), nullable=True))
    op.add_column('cases', sa.Column('coupon_value', sa.Numeric(12, 2), nullable=False,
                                     server_default='0'))
    op.create_index('ix_cases_updated', 'cases', ['updated_at'])
    op.create_index('ix_cases_closed', 'cases', ['closed_at'])
    op.create_index('ix_case_clocks_case_state', 'case_clocks', ['case_id', 'state', 'name'])
    # Cases compensated with a coupon before this revision: the value is in the
    # snapshot the workflow wrote (its resolution's amount).
    bind = op.get_bind()
    cases = sa.table('cases', sa.column('id', sa.String), sa.column('data', sa.JSON),
                     sa.column('resolution_type', sa.String),
                     sa.column('coupon_value', sa.Numeric(12, 2)))
    rows = bind.execute(sa.select(cases.c.id, cases.c.data)
                        .where(cases.c.resolution_type == 'compensation')).all()
    for case_id, data in rows:
        resolution = (data or {}).get('resolution') or {}
        if resolution.get('coupon_code') and resolution.get('amount'):
            bind.execute(sa.update(cases).where(cases.c.id == case_id).values(
                coupon_value=Decimal(str(resolution['amount']))))


def downgrade() -> None:
    op.drop_index('ix_case_clocks_case_state', table_name='case_clocks')
    op.drop_index('ix_cases_closed', table_name='cases')
    op.drop_index('ix_cases_updated', table_name='cases')
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('coupon_value')
    op.drop_column('kpi_snapshots', 'figures')
