"""cases.remedy_types: the completed resolution's remedy types, for the reports to count
a case settled with several remedies once under each

Revision ID: 0023
Revises: 0019
Create Date: 2026-12-06 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('remedy_types', sa.String(length=120), nullable=True))
    # Cases resolved before had one resolution: that is their one remedy.
    op.execute("UPDATE cases SET remedy_types = ' ' || resolution_type || ' ' "
               "WHERE resolution_type IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('remedy_types')
