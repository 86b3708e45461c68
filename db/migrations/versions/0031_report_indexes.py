"""The report summary's indexes: each duration with the case's opening time (the
90th percentile read from one histogram bucket), the cases of an order by opening time
(whether a repeat case followed a first contact) and the overdue cases by stage, team
and store (the cases overdue now)

Revision ID: 0031
Revises: 0029
Create Date: 2026-12-07 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0029'
branch_labels = None
depends_on = None

DURATIONS = (('ix_cases_first_response', 'first_response_s'),
             ('ix_cases_first_response_work', 'first_response_work_s'),
             ('ix_cases_resolution', 'resolution_s'),
             ('ix_cases_resolution_work', 'resolution_work_s'))


def upgrade() -> None:
    for name, column in DURATIONS:
        op.create_index(name, 'cases', [column, 'created_at'])
    op.create_index('ix_cases_order_created', 'cases', ['order_id', 'created_at', 'id'])
    op.create_index('ix_cases_overdue_now', 'cases', ['stage', 'team', 'store'],
                    postgresql_where=sa.text('overdue IS true'),
                    sqlite_where=sa.text('overdue IS 1'))


def downgrade() -> None:
    op.drop_index('ix_cases_overdue_now', table_name='cases')
    op.drop_index('ix_cases_order_created', table_name='cases')
    for name, _ in reversed(DURATIONS):
        op.drop_index(name, table_name='cases')
