"""tasks: tasks, assignments, reports, notices, snapshots, procedure records

Revision ID: tasks_0001
Revises:
Create Date: 2026-11-25 20:23:36.410681
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'tasks_0001'
down_revision = None
branch_labels = ('tasks',)
depends_on = 'core_0001'


def upgrade() -> None:
    op.create_table('tasks_period_snapshot',
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['closed_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('period')
    )
    op.create_table('tasks_procedure_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_good', sa.Integer(), nullable=False),
    sa.Column('rows_bad', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('tasks_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=False),
    sa.Column('search_text', sqlmodel.sql.sqltypes.AutoString(length=5400), nullable=False),
    sa.Column('assigner_unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('starts_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('deadline', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('recurrence', sa.Enum('once', 'monthly', 'quarterly', name='recurrence'), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assigner_unit_id'], ['org_unit.id'], ),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tasks_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_task_assigner_unit_id'), ['assigner_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_task_deadline'), ['deadline'], unique=False)

    op.create_table('tasks_assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('completed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks_task.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['org_unit.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'unit_id')
    )
    with op.batch_alter_table('tasks_assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_assignment_task_id'), ['task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_assignment_unit_id'), ['unit_id'], unique=False)

    op.create_table('tasks_indicator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('unit_of_measure', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('baseline', sa.Float(), nullable=False),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('direction', sa.Enum('at_least', 'at_most', name='direction'), nullable=False),
    sa.Column('source', sa.Enum('report', 'online_rate', 'on_time_rate', name='indicatorsource'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks_task.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tasks_indicator', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_indicator_task_id'), ['task_id'], unique=False)

    op.create_table('tasks_procedure_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('procedure', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('resolved_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['tasks_procedure_import.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['org_unit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tasks_procedure_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_procedure_record_import_id'), ['import_id'], unique=False)
        batch_op.create_index('ix_tasks_procedure_record_received_unit', ['received_on', 'unit_id'], unique=False)

    op.create_table('tasks_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('due_key', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['tasks_assignment.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('assignment_id', 'kind', 'due_key')
    )
    op.create_table('tasks_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('percent', sa.Integer(), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('submitted_by', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'accepted', 'returned', name='reviewstate'), nullable=False),
    sa.Column('reviewed_by', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['tasks_assignment.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reviewed_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['submitted_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tasks_report', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_report_assignment_period', ['assignment_id', 'period'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tasks_report', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_report_assignment_period')

    op.drop_table('tasks_report')
    op.drop_table('tasks_notice')
    with op.batch_alter_table('tasks_procedure_record', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_procedure_record_received_unit')
        batch_op.drop_index(batch_op.f('ix_tasks_procedure_record_import_id'))

    op.drop_table('tasks_procedure_record')
    with op.batch_alter_table('tasks_indicator', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_indicator_task_id'))

    op.drop_table('tasks_indicator')
    with op.batch_alter_table('tasks_assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_assignment_unit_id'))
        batch_op.drop_index(batch_op.f('ix_tasks_assignment_task_id'))

    op.drop_table('tasks_assignment')
    with op.batch_alter_table('tasks_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_task_deadline'))
        batch_op.drop_index(batch_op.f('ix_tasks_task_assigner_unit_id'))

    op.drop_table('tasks_task')
    op.drop_table('tasks_procedure_import')
    op.drop_table('tasks_period_snapshot')
