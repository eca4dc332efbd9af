"""core: feed items by author unit in id order (an official's "published by us" page)

Revision ID: core_0006
Revises: core_0005
Create Date: 2026-12-02 06:10:00
"""
from alembic import op

revision = 'core_0006'
down_revision = 'core_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feed_item', schema=None) as batch_op:
        batch_op.create_index('ix_feed_item_author_unit_id_id', ['author_unit_id', 'id'], unique=False)
        # The single-column index is a prefix of the new one.
        batch_op.drop_index('ix_feed_item_author_unit_id')


def downgrade() -> None:
    with op.batch_alter_table('feed_item', schema=None) as batch_op:
        batch_op.create_index('ix_feed_item_author_unit_id', ['author_unit_id'], unique=False)
        batch_op.drop_index('ix_feed_item_author_unit_id_id')
