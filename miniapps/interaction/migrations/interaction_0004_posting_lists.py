"""interaction: PostgreSQL's full-text index becomes posting lists kept newest first

Revision ID: interaction_0004
Revises: interaction_0003
Create Date: 2026-12-03

The tsvector table and its GIN indexes (``interaction_fts``) gave no way to read a word's newest matches
without walking the table (10-25 us a row: p99 1-2.5 s at a million answered questions). They are
replaced by ``interaction_posting`` (per term, chunks of entry ids), ``interaction_term`` (how many
entries each term lists) and ``interaction_entry_terms`` (each entry's words, so an edit knows what to
take out). SQLite keeps FTS5 and is not touched.

The backfill reads the entries in batches of BATCH ids (memory bounded by one batch): titles are folded in
Python as the mini-app folds them (their word order makes the pairs); the words of the text come from
the stored tsvector, already folded, split into [a-z0-9]+ as ``knowledge.tokens`` splits (the same words,
except text PostgreSQL's parser skipped, such as tags, until the next ``knowledge.rebuild``). Each batch's
entries then go through ``postings.PostingBuilder`` in id order: full chunks are written with COPY as
they fill, so nothing is sorted (a single SQL sort of the 115 million (term, entry) pairs of the city ran
over 25 minutes on the shared machine).
"""

import re

import sqlalchemy as sa
from alembic import op

from miniapps.interaction import knowledge, postings
from plugins import fold

revision = "interaction_0004"
down_revision = "interaction_0003"
branch_labels = None
depends_on = None

BATCH = 50_000
_WORD = re.compile(r"[a-z0-9]+")
LEGACY_TABLE = "interaction_fts"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for statement in knowledge.create_index_sql("postgresql"):
        op.execute(statement)
    newest = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM interaction_search_entry")).scalar() or 0
    fill = sa.text(
        f"INSERT INTO {postings.ENTRY_TERMS_TABLE} (entry_id, title, terms) "
        """SELECT u.id, u.title, COALESCE((SELECT string_agg(DISTINCT w COLLATE "C", ' ' ORDER BY w COLLATE "C") FROM ("""
        "  SELECT regexp_split_to_table(lexeme, '[^a-z0-9]+') AS w FROM unnest(tsvector_to_array(f.doc)) lexeme"
        "  UNION ALL SELECT unnest(string_to_array(u.title, ' '))) words WHERE w <> ''), '') "
        "FROM unnest(CAST(:ids AS int[]), CAST(:titles AS text[])) AS u(id, title) "
        f"LEFT JOIN {LEGACY_TABLE} f ON f.entry_id = u.id RETURNING entry_id, title, terms"
    )
    builder = postings.PostingBuilder()
    columns, types = postings.POSTING_COLUMNS
    for low in range(0, newest, BATCH):
        rows = bind.execute(
            sa.text("SELECT id, title FROM interaction_search_entry WHERE id > :low AND id <= :high"),
            {"low": low, "high": low + BATCH},
        ).all()
        if not rows:
            continue
        written = bind.execute(
            fill,
            {"ids": [row.id for row in rows], "titles": [" ".join(_WORD.findall(fold(row.title))) for row in rows]},
        ).all()
        for entry_id, title, terms in sorted(written):
            builder.add(entry_id, title, terms)
        postings.copy_rows(bind, postings.POSTING_TABLE, columns, types, builder.drain())
    chunks, counts = builder.finish()
    postings.copy_rows(bind, postings.POSTING_TABLE, columns, types, chunks)
    postings.copy_rows(bind, postings.TERM_TABLE, *postings.TERM_COLUMNS, counts)
    op.execute(f"DROP TABLE {LEGACY_TABLE}")
    for table in (postings.ENTRY_TERMS_TABLE, postings.TERM_TABLE, postings.POSTING_TABLE):
        op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The tsvector table again, from the stored words (title order kept, so phrases still match; the text's
    # words once each, which is all its `&` queries look at).
    op.execute(
        f"CREATE TABLE {LEGACY_TABLE} (entry_id INTEGER PRIMARY KEY REFERENCES interaction_search_entry(id) "
        "ON DELETE CASCADE, doc TSVECTOR NOT NULL, title_doc TSVECTOR NOT NULL)"
    )
    op.execute(
        f"INSERT INTO {LEGACY_TABLE} (entry_id, doc, title_doc) SELECT entry_id, "
        "setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', terms), 'B'), "
        f"to_tsvector('simple', title) FROM {postings.ENTRY_TERMS_TABLE}"
    )
    op.execute(f"CREATE INDEX ix_{LEGACY_TABLE}_doc ON {LEGACY_TABLE} USING GIN (doc)")
    op.execute(f"CREATE INDEX ix_{LEGACY_TABLE}_title_doc ON {LEGACY_TABLE} USING GIN (title_doc)")
    for statement in knowledge.drop_index_sql("postgresql"):
        op.execute(statement)
