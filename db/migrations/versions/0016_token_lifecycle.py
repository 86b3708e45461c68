"""api_tokens: a short public id (listed and revoked by, never the token), an optional
expiry, and when the token was last used

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:30:00
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('id', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True),
                                   nullable=True))
    # Tokens made before get an id of their own, as new ones do (db/accounts.py).
    tokens = sa.table('api_tokens', sa.column('token_hash', sa.String),
                      sa.column('id', sa.String))
    connection = op.get_bind()
    for (token_hash,) in connection.execute(sa.select(tokens.c.token_hash)).all():
        connection.execute(tokens.update().where(tokens.c.token_hash == token_hash)
                           .values(id=f"tk_{secrets.token_hex(4)}"))
    with op.batch_alter_table('api_tokens') as batch:
        batch.alter_column('id', existing_type=sa.String(length=16), nullable=False)
        batch.create_unique_constraint(op.f('uq_api_tokens_id'), ['id'])


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_constraint(op.f('uq_api_tokens_id'), type_='unique')
        batch.drop_column('last_used_at')
        batch.drop_column('expires_at')
        batch.drop_column('id')
