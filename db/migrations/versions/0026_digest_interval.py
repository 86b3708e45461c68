"""users.digest_interval: how often the user gets the digest of SLA warnings, in
seconds (NULL: AFTERSALES_DIGEST_INTERVAL; docs/notifications.md, "Quiet warnings")

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('digest_interval', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('users', 'digest_interval')
