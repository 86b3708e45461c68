"""cases.fraud_review: an inspection graded the returned goods D (not the item sent), for
the desk's badge, the list filter and the reports' count

Revision ID: 0029
Revises: 0023
Create Date: 2026-12-07 00:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cases before grading were never graded D: false for all of them.
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('fraud_review', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('fraud_review')
