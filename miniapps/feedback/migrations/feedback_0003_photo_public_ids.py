"""feedback: photos get random public ids for their URLs (sequential row ids let anyone count through them)

Existing photos get a fresh random id each, so their old /photos/<number> URLs answer 404 from now on.

Revision ID: feedback_0003
Revises: feedback_0002
Create Date: 2026-12-02 08:00:00
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = 'feedback_0003'
down_revision = 'feedback_0002'
branch_labels = None
depends_on = None
BATCH = 1000


def upgrade() -> None:
    op.add_column('feedback_photo', sa.Column('public_id', sa.String(length=32), nullable=True))
    connection = op.get_bind()
    photo = sa.table('feedback_photo', sa.column('id', sa.Integer), sa.column('public_id', sa.String))
    # In batches of ids, so a city's worth of photos never sits in memory at once.
    while True:
        ids = connection.execute(sa.select(photo.c.id).where(photo.c.public_id.is_(None)).limit(BATCH)).scalars().all()
        if not ids:
            break
        connection.execute(photo.update().where(photo.c.id == sa.bindparam('photo_id')).values(
            public_id=sa.bindparam('new_id')), [{'photo_id': i, 'new_id': secrets.token_urlsafe(16)} for i in ids])
    with op.batch_alter_table('feedback_photo', schema=None) as batch_op:
        batch_op.alter_column('public_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index(batch_op.f('ix_feedback_photo_public_id'), ['public_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('feedback_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_photo_public_id'))
        batch_op.drop_column('public_id')
