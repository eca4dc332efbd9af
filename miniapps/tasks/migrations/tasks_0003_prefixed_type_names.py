"""tasks: enum types named with the mini-app's prefix (PostgreSQL keeps type names in one namespace)

Revision ID: tasks_0003
Revises: tasks_0002
Create Date: 2026-12-02 09:00:00
"""
from alembic import op

revision = 'tasks_0003'
down_revision = 'tasks_0002'
branch_labels = None
depends_on = None

RENAMED = [("recurrence", "tasks_recurrence"), ("direction", "tasks_direction"),
           ("indicatorsource", "tasks_indicatorsource"), ("reviewstate", "tasks_reviewstate")]


def upgrade() -> None:
    # SQLite stores these enums as VARCHAR without a named type: nothing to rename there.
    if op.get_bind().dialect.name == "postgresql":
        for old, new in RENAMED:
            op.execute(f'ALTER TYPE "{old}" RENAME TO "{new}"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for old, new in RENAMED:
            op.execute(f'ALTER TYPE "{new}" RENAME TO "{old}"')
