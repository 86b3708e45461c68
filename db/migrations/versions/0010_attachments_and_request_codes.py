"""case_attachments (the files on a case, for downloads and the blob sweep) and
request_codes (one-time codes of the public request page)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_attachments',
        sa.Column('case_id', sa.String(length=32), nullable=False),
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('thumbnail_sha256', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'],
                                name=op.f('fk_case_attachments_case_id_cases')),
        sa.PrimaryKeyConstraint('case_id', 'id', name=op.f('pk_case_attachments')),
    )
    op.create_index('ix_case_attachments_sha256', 'case_attachments', ['sha256'],
                    unique=False)
    op.create_table(
        'request_codes',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_request_codes')),
    )


def downgrade() -> None:
    op.drop_table('request_codes')
    op.drop_index('ix_case_attachments_sha256', table_name='case_attachments')
    op.drop_table('case_attachments')
