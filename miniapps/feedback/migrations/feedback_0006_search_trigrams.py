"""feedback: a trigram index on the reports' search text (PostgreSQL), so the search box's text match
does not read every report when no report has the words

Revision ID: feedback_0006
Revises: feedback_0005
Create Date: 2026-12-03 14:00:00
"""
from alembic import op

revision = 'feedback_0006'
down_revision = 'feedback_0005'
branch_labels = None
depends_on = None

INDEX = "ix_feedback_report_search_trgm"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no trigram index: it keeps scanning, as before
    # pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(INDEX, "feedback_report", ["search_text"], postgresql_using="gin",
                    postgresql_ops={"search_text": "gin_trgm_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="feedback_report")  # the extension stays: others may use it
