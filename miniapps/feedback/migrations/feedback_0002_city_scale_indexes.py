"""feedback: indexes for the queue's newest-first pages, the map's bounding boxes and the data version

Revision ID: feedback_0002
Revises: feedback_0001
Create Date: 2026-12-02 11:00:00
"""
from alembic import op

revision = 'feedback_0002'
down_revision = 'feedback_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feedback_report', schema=None) as batch_op:
        # A unit's queue without a state filter, newest first: read from the index's end, no sort.
        batch_op.create_index('ix_feedback_report_unit_newest', ['handling_unit_id', 'id'], unique=False)
        # The public map's bounding boxes: a range on latitude, longitude checked in the index.
        batch_op.create_index('ix_feedback_report_place', ['lat', 'lon'], unique=False)
        # The data version (newest change) that keys the cached map layers, listings and dashboard.
        batch_op.create_index(batch_op.f('ix_feedback_report_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('feedback_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_report_updated_at'))
        batch_op.drop_index('ix_feedback_report_place')
        batch_op.drop_index('ix_feedback_report_unit_newest')
