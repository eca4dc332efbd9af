"""interaction: new questions by deadline, for the escalation job

Revision ID: interaction_0003
Revises: interaction_0002
Create Date: 2026-12-02
"""
from alembic import op

revision = "interaction_0003"
down_revision = "interaction_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_interaction_question_status_due', 'interaction_question', ['status', 'due_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_interaction_question_status_due', table_name='interaction_question')
