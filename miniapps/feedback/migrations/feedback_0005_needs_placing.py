"""feedback: an Open311 request whose address matches no unit is kept, marked for an operator to place

Revision ID: feedback_0005
Revises: feedback_0004
Create Date: 2026-12-02 12:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'feedback_0005'
down_revision = 'feedback_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('feedback_report', sa.Column('needs_placing', sa.Boolean(), nullable=False,
                                               server_default=sa.false()))
    op.create_index('ix_feedback_report_needs_placing', 'feedback_report', ['needs_placing'])


def downgrade() -> None:
    op.drop_index('ix_feedback_report_needs_placing', table_name='feedback_report')
    with op.batch_alter_table('feedback_report', schema=None) as batch_op:
        batch_op.drop_column('needs_placing')
