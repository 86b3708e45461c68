"""mail_cursors (how far the IMAP poller has read each mailbox) and inbound_mail (the
mails the router has dealt with, by Message-ID, so a re-read or a resend acts once)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mail_cursors',
        sa.Column('mailbox', sa.String(length=300), nullable=False),
        sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
        sa.Column('last_uid', sa.BigInteger(), nullable=False),
        sa.Column('failed_uid', sa.BigInteger(), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('mailbox', name=op.f('pk_mail_cursors')),
    )
    op.create_table(
        'inbound_mail',
        sa.Column('message_id', sa.String(length=255), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=200), nullable=False),
        sa.Column('case_id', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('message_id', name=op.f('pk_inbound_mail')),
    )
    op.create_index('ix_inbound_mail_received', 'inbound_mail', ['received_at'], unique=False)
    op.create_index('ix_inbound_mail_case', 'inbound_mail', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_inbound_mail_case', table_name='inbound_mail')
    op.drop_index('ix_inbound_mail_received', table_name='inbound_mail')
    op.drop_table('inbound_mail')
    op.drop_table('mail_cursors')
