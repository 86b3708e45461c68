"""cases.at_risk_at: when a running SLA target reaches 75 %

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-24 21:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('at_risk_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_cases_at_risk', ['at_risk_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_at_risk')
        batch_op.drop_column('at_risk_at')
