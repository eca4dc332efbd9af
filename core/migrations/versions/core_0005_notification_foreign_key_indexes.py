"""core: index the notification of inbox items and outbox rows (retention and cascades without scans)

Revision ID: core_0005
Revises: core_0004
Create Date: 2026-12-02 05:10:00
"""
from alembic import op

revision = 'core_0005'
down_revision = 'core_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_item_notification_id'), ['notification_id'], unique=False)
    with op.batch_alter_table('push_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_outbox_notification_id'), ['notification_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('push_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_outbox_notification_id'))
    with op.batch_alter_table('inbox_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_item_notification_id'))
