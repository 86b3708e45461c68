"""audit_log.detail: what an entry's request did beyond its path, e.g. a case-list
export's filters and how many rows it held

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-06 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column is added in place (ALTER TABLE ADD COLUMN on SQLite too), so
    # the append-only triggers of 0002 stay as they are.
    op.add_column('audit_log', sa.Column('detail', sa.JSON(), nullable=True))


def downgrade() -> None:
    # In place as well (SQLite 3.35+): a rebuilt table would lose the triggers.
    op.drop_column('audit_log', 'detail')
