"""cases.fraud_review (a return graded D, not the item sent), cases.instant_refund_at (a
return refunded at pickup) and cases.recovery_tasks / recovery_amount (what the merchant
has to recover after an instant refund whose goods failed): the desk's badges, the list
filters, the customer's 90-day instant refund count and the reports' figures

Revision ID: 0029
Revises: 0024
Create Date: 2026-12-07 00:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cases before grading and instant refunds had none of these: false, null, zero.
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('fraud_review', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('instant_refund_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('recovery_tasks', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('recovery_amount', sa.Numeric(12, 2), nullable=False,
                                   server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('recovery_amount')
        batch.drop_column('recovery_tasks')
        batch.drop_column('instant_refund_at')
        batch.drop_column('fraud_review')
