"""tasks: daily per-unit procedure figures, so statistics over a range add days instead of reading records

Revision ID: tasks_0002
Revises: tasks_0001
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'tasks_0002'
down_revision = 'tasks_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tasks_procedure_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('received', sa.Integer(), nullable=False),
    sa.Column('online', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('ahead', sa.Integer(), nullable=False),
    sa.Column('on_time', sa.Integer(), nullable=False),
    sa.Column('late', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['org_unit.id'], ),
    sa.PrimaryKeyConstraint('day', 'unit_id')
    )
    # The records already imported, added up once (the same figures procedures.add_to_days keeps up to date).
    op.execute(
        "INSERT INTO tasks_procedure_day (day, unit_id, received, online, resolved, ahead, on_time, late) "
        "SELECT received_on, unit_id, COUNT(*), "
        "SUM(CASE WHEN online THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN resolved_on IS NOT NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN resolved_on < due_on THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN resolved_on = due_on THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN resolved_on > due_on THEN 1 ELSE 0 END) "
        "FROM tasks_procedure_record GROUP BY received_on, unit_id"
    )


def downgrade() -> None:
    op.drop_table('tasks_procedure_day')
