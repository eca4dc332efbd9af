"""The knowledge base's full-text index and its search, on SQLite (FTS5) and PostgreSQL (tsvector + GIN).

Text is folded in Python with ``core.text.fold`` (no diacritics, đ -> d, lower case) before it is
indexed and before it is queried, so "dang ky ho tich" finds "Đăng ký hộ tịch" on both databases
without ``unaccent``. The index lives in tables of its own, ``interaction_fts`` (title and text) and,
on SQLite, ``interaction_fts_title`` (titles alone; PostgreSQL keeps a title tsvector beside the
other), keyed by the id of the ``interaction_search_entry`` row they belong to. The migration creates
them (they are not SQLModel models, so the drift check leaves them alone); ``index_question`` and
``index_article`` keep them in step inside the caller's transaction.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy import Connection, bindparam, text
from sqlmodel import Session, select

from core.text import fold
from miniapps.interaction.models import (
    Article,
    Question,
    QuestionStatus,
    Reply,
    ReplyKind,
    SearchEntry,
    SearchKind,
    SearchVersion,
    utcnow,
)

FTS_TABLE = "interaction_fts"
TITLE_FTS_TABLE = "interaction_fts_title"  # SQLite only; PostgreSQL keeps a second tsvector in FTS_TABLE
TITLE_WEIGHT = 4.0  # a word in the title counts four times one in the body (SQLite bm25 column weights)
MAX_TOKENS = 12
SNIPPET = 300
_TOKEN = re.compile(r"[a-z0-9]+")
# Very common Vietnamese syllables (folded): left out of the last fallback ("any word"), so it ranks
# by the words that carry meaning.
STOPWORDS = frozenset(
    ["va", "cua", "cho", "co", "khong", "la", "duoc", "trong", "nhu", "the", "nao", "thi", "de", "voi", "cac", "nhung", "mot", "ve", "khi", "da", "tai", "hay", "xin", "hoi", "gi", "bao", "nhieu", "can", "phai", "den", "tu", "neu", "ma", "vay", "o", "nay", "do", "ra", "vao", "lam", "sao", "hoac", "theo", "tren", "duoi", "sau", "truoc"]
)


def tokens(raw: str) -> list[str]:
    """The folded words of ``raw``, at most MAX_TOKENS of them."""
    return _TOKEN.findall(fold(raw))[:MAX_TOKENS]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# --- Schema (called from the migration) ------------------------------------------------------------------


def create_index_sql(dialect: str) -> list[str]:
    """The statements that create the full-text index on ``dialect``."""
    if dialect == "sqlite":
        # The text is folded before it arrives; unicode61 then only splits words and lowers case. Prefix
        # indexes of 2 and 3 letters: the last word of a title being typed is matched as a prefix.
        # Titles get an index of their own: a syllable common in answers ("cho", "thu") would otherwise
        # make every title-only lookup (suggestions, fallbacks) read the whole base's postings.
        return [f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, body, tokenize = 'unicode61', prefix = '2 3')",
                f"CREATE VIRTUAL TABLE {TITLE_FTS_TABLE} USING fts5(title, tokenize = 'unicode61', prefix = '2 3')"]
    return [
        (f"CREATE TABLE {FTS_TABLE} (entry_id INTEGER PRIMARY KEY REFERENCES interaction_search_entry(id) "
         "ON DELETE CASCADE, doc TSVECTOR NOT NULL, title_doc TSVECTOR NOT NULL)"),
        f"CREATE INDEX ix_{FTS_TABLE}_doc ON {FTS_TABLE} USING GIN (doc)",
        f"CREATE INDEX ix_{FTS_TABLE}_title_doc ON {FTS_TABLE} USING GIN (title_doc)",
    ]


def drop_index_sql(dialect: str) -> list[str]:
    """The statements that drop the full-text index."""
    tables = (FTS_TABLE, TITLE_FTS_TABLE) if dialect == "sqlite" else (FTS_TABLE,)
    return [f"DROP TABLE IF EXISTS {table}" for table in tables]


# --- Keeping the index in step --------------------------------------------------------------------------


def bump_version(session: Session | Connection) -> None:
    """Give the knowledge base a new version token in the caller's transaction (kept searches expire)."""
    table = SearchVersion.__tablename__
    session.execute(text(f"INSERT INTO {table} (id, version) VALUES (1, :token) "
                         "ON CONFLICT (id) DO UPDATE SET version = excluded.version"),
                    {"token": secrets.randbits(62)})


def _write_index(session: Session, entry_id: int, title: str, body: str) -> None:
    bump_version(session)
    folded_title, folded_body = fold(title), fold(body)
    if _dialect(session) == "sqlite":
        for table in (FTS_TABLE, TITLE_FTS_TABLE):
            session.execute(text(f"DELETE FROM {table} WHERE rowid = :id"), {"id": entry_id})
        session.execute(text(f"INSERT INTO {FTS_TABLE} (rowid, title, body) VALUES (:id, :title, :body)"),
                        {"id": entry_id, "title": folded_title, "body": folded_body})
        session.execute(text(f"INSERT INTO {TITLE_FTS_TABLE} (rowid, title) VALUES (:id, :title)"),
                        {"id": entry_id, "title": folded_title})
    else:
        session.execute(text(
            f"INSERT INTO {FTS_TABLE} (entry_id, doc, title_doc) VALUES (:id, "
            "setweight(to_tsvector('simple', :title), 'A') || setweight(to_tsvector('simple', :body), 'B'), "
            "to_tsvector('simple', :title)) "
            "ON CONFLICT (entry_id) DO UPDATE SET doc = EXCLUDED.doc, title_doc = EXCLUDED.title_doc"
        ), {"id": entry_id, "title": folded_title, "body": folded_body})


def _entry(session: Session, kind: SearchKind, ref_id: int) -> SearchEntry:
    found = session.exec(select(SearchEntry).where(SearchEntry.kind == kind, SearchEntry.ref_id == ref_id)).first()
    return found or SearchEntry(kind=kind, ref_id=ref_id, title="", field_key="", department_id="")


def excerpt(body: str) -> str:
    """The first SNIPPET characters of ``body`` on one line, cut at a word."""
    flat = " ".join(body.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1].rsplit(" ", 1)[0] + "…"


def index_question(session: Session, question: Question, replies: Iterable[Reply] | None = None) -> SearchEntry:
    """Write (or rewrite) the question's search entry and its full text: title, body and every answer."""
    if replies is None:
        replies = session.exec(select(Reply).where(Reply.question_id == question.id).order_by(Reply.id)).all()
    replies = list(replies)
    answers = [r for r in replies if r.kind is ReplyKind.answer]
    accepted = next((r for r in answers if r.id == question.accepted_reply_id), None)
    shown = accepted or (answers[0] if answers else None)
    entry = _entry(session, SearchKind.question, question.id)  # type: ignore[arg-type]
    answered = question.status in (QuestionStatus.answered, QuestionStatus.settled) and bool(answers)
    entry.title = question.title
    entry.snippet = excerpt(shown.body if shown else question.body)
    entry.field_key = question.field_key
    entry.department_id = question.department_id
    entry.asker_unit_id = question.asker_unit_id
    entry.answered = answered
    entry.public = answered and not question.internal
    entry.updated_at = utcnow()
    session.add(entry)
    session.flush()
    body = "\n".join([question.body, *(r.body for r in replies)])
    _write_index(session, entry.id, question.title, body)  # type: ignore[arg-type]
    return entry


def index_article(session: Session, article: Article) -> SearchEntry:
    """Write (or rewrite) a handbook article's search entry and full text."""
    entry = _entry(session, SearchKind.article, article.id)  # type: ignore[arg-type]
    entry.title = article.title
    entry.snippet = excerpt(article.body)
    entry.field_key = article.field_key
    entry.department_id = article.department_id
    entry.asker_unit_id = None
    entry.answered = True
    entry.public = True
    entry.updated_at = utcnow()
    session.add(entry)
    session.flush()
    _write_index(session, entry.id, article.title, article.body)  # type: ignore[arg-type]
    return entry


# --- Searching -------------------------------------------------------------------------------------------


# Ranking reads the text of every candidate, so it is given a bounded set: the newest POOL entries that
# match, in id order, which both databases walk without sorting (FTS5 rowid order; PostgreSQL's primary
# key or a bitmap of the GIN index). Common words match a large part of a million-entry base: ranking all
# of them cost 600-740 ms at 100,000 entries and grew with the base, while the best of the newest POOL
# stays a few milliseconds whatever its size. Newer answers are also the ones that reflect current rules.
POOL = 200
# Repeated searches (the same words, filters and reader scope) are answered from memory while the base
# is unchanged: every index write sets a new random token (``SearchVersion``) in its transaction, so one
# primary-key read per request tells whether a kept result is still right, on every worker.
CACHE_SIZE = 4096
CACHE_SECONDS = 600  # only bounds memory held by queries nobody repeats; correctness comes from the token
_results: TTLCache = TTLCache(maxsize=CACHE_SIZE, ttl=CACHE_SECONDS)
_results_lock = threading.Lock()  # cachetools caches are not thread-safe; requests run in a thread pool


@dataclass(frozen=True)
class Scope:
    """Which entries a reader may see: every entry (``units`` None), or the public ones plus those of ``units``."""

    units: frozenset[str] | None


@dataclass(frozen=True)
class Found:
    """What a hit shows of its search entry: a plain copy, since hits are kept and shared between requests."""

    id: int
    kind: SearchKind
    ref_id: int
    title: str
    snippet: str
    field_key: str
    department_id: str
    answered: bool

    @classmethod
    def of(cls, entry: SearchEntry) -> Found:
        """The copy of a loaded search entry."""
        return cls(entry.id, entry.kind, entry.ref_id, entry.title, entry.snippet, entry.field_key,  # type: ignore[arg-type]
                   entry.department_id, entry.answered)


@dataclass(frozen=True)
class Hit:
    """A search entry and its relevance, 0 to 1."""

    entry: Found
    score: float


def knowledge_version(session: Session) -> int | None:
    """The token of the knowledge base's current content (None when the row is missing: nothing is kept)."""
    return session.execute(text(f"SELECT version FROM {SearchVersion.__tablename__} WHERE id = 1")).scalar()


def _cached(session: Session, key: tuple, compute: Callable[[], list[Hit]]) -> list[Hit]:
    """``compute()``, or what it returned for ``key`` while the knowledge base was as it is now."""
    version = knowledge_version(session)  # read before computing: a result is never older than its token
    if version is None:
        return compute()
    full_key = (str(session.get_bind().url), version, *key)
    with _results_lock:
        kept = _results.get(full_key)
    if kept is not None:
        return kept
    found = compute()
    with _results_lock:
        _results[full_key] = found
    return found


def _match_expression(words: list[str], dialect: str, *, mode: str, prefix_last: bool) -> str:
    """The full-text query for the folded ``words``.

    ``mode`` is ``all`` (every word), ``pairs`` (any two adjacent words as a phrase: most Vietnamese
    words are two syllables, so a pair is far more telling than a syllable) or ``any`` (any word).
    The last word may be a prefix (the reader is typing).
    """
    last = len(words) - 1
    if dialect == "sqlite":
        def term(index: int) -> str:
            return f'"{words[index]}"' + ("*" if prefix_last and index == last else "")

        if mode == "pairs":
            parts = [f'"{words[i]} {words[i + 1]}"' + ("*" if prefix_last and i + 1 == last else "")
                     for i in range(last)]
            return " OR ".join(parts)
        return (" OR " if mode == "any" else " ").join(term(i) for i in range(len(words)))

    def lexeme(index: int) -> str:
        return words[index] + (":*" if prefix_last and index == last else "")

    if mode == "pairs":
        return " | ".join(f"({lexeme(i)} <-> {lexeme(i + 1)})" for i in range(last))
    return (" | " if mode == "any" else " & ").join(lexeme(i) for i in range(len(words)))


def search(session: Session, raw: str, *, scope: Scope, field_key: str | None = None,
           department_id: str | None = None, kind: SearchKind | None = None, answered_only: bool = False,
           limit: int = 20, offset: int = 0, prefix_last: bool = True, title_only: bool = False) -> list[Hit]:
    """Entries matching ``raw`` best first.

    Every word first (in title or text, or titles only); when nothing has them all, titles with two of
    the words side by side; then titles with any meaningful word. The fallbacks stay on titles: a
    syllable such as "thu" is in most texts, and ranking most of the base would answer slowly and badly.
    Each attempt ranks the newest POOL entries that match it and the reader may see.
    """
    words = tokens(raw)
    if prefix_last and len(words) > 1 and len(words[-1]) < 2:
        words = words[:-1]  # a lone letter being typed would expand to a large part of the vocabulary
    if not words:
        return []
    filters = {"scope": scope, "field_key": field_key, "department_id": department_id, "kind": kind,
               "answered_only": answered_only, "limit": limit, "offset": offset}
    key = ("search", tuple(words), prefix_last, title_only, *filters.values())
    return _cached(session, key, lambda: _search(session, words, prefix_last=prefix_last, title_only=title_only,
                                                 filters=filters))


def _search(session: Session, words: list[str], *, prefix_last: bool, title_only: bool, filters: dict) -> list[Hit]:
    attempts = [("all", words, title_only)]
    if len(words) > 1 and not filters["offset"]:
        attempts.append(("pairs", words, True))
        meaningful = [w for w in words[:-1] if w not in STOPWORDS] + words[-1:]
        attempts.append(("any", meaningful, True))
    for mode, chosen, titles in attempts:
        # One word typed into a title matches a large part of the base; ranking it would tell little,
        # so those suggestions come newest first.
        newest_first = titles and len(chosen) == 1
        hits = _run(session, _match_expression(chosen, _dialect(session), mode=mode, prefix_last=prefix_last),
                    title_only=titles, newest_first=newest_first, **filters)
        if hits:
            return hits
    return []


ENTRY_COLUMNS = "e.id, e.kind, e.ref_id, e.title, e.snippet, e.field_key, e.department_id, e.answered"


def _run(session: Session, match: str, *, title_only: bool, newest_first: bool, scope: Scope, field_key: str | None,
         department_id: str | None, kind: SearchKind | None, answered_only: bool, limit: int, offset: int) -> list[Hit]:
    dialect = _dialect(session)
    params: dict[str, object] = {"q": match, "limit": limit, "offset": offset, "pool": max(POOL, limit + offset)}
    filters = []
    if scope.units is not None:
        filters.append("(e.public OR e.asker_unit_id IN :units OR e.department_id IN :units)")
        params["units"] = sorted(scope.units) or [""]
    if field_key:
        filters.append("e.field_key = :field_key")
        params["field_key"] = field_key
    if department_id:
        filters.append("e.department_id = :department_id")
        params["department_id"] = department_id
    if kind is not None:
        filters.append("e.kind = :kind")
        params["kind"] = kind.value
    if answered_only:
        filters.append("e.answered")
    where = "".join(f" AND {f}" for f in filters)
    if dialect == "sqlite":
        # The pool: FTS5 walks the matches newest first (rowid DESC) and stops at POOL; CROSS JOIN keeps it
        # the outer loop (the planner could otherwise start from a filter's index and probe the index per
        # row). bm25 (the column weights favour titles) is computed for the pool only.
        table, weights = (TITLE_FTS_TABLE, "") if title_only else (FTS_TABLE, f", {TITLE_WEIGHT}, 1.0")
        rank = "0.5" if newest_first else f"-bm25({table}{weights})"
        pool = (f"SELECT {ENTRY_COLUMNS}, {rank} AS rank FROM {table} CROSS JOIN interaction_search_entry e "
                f"ON e.id = {table}.rowid WHERE {table} MATCH :q{where} ORDER BY {table}.rowid DESC LIMIT :pool")
    else:
        # ts_rank's normalisation 32 maps the rank into [0, 1); weights A (title) and B (body) as indexed.
        column = "title_doc" if title_only else "doc"
        rank = "0.5" if newest_first else f"ts_rank(f.{column}, to_tsquery('simple', :q), 32)"
        params["ids"] = _newest_matches(session, column, where, params)
        pool = (f"SELECT {ENTRY_COLUMNS}, {rank} AS rank FROM {FTS_TABLE} f JOIN interaction_search_entry e "
                "ON e.id = f.entry_id WHERE f.entry_id = ANY(:ids)")
    statement = text(f"SELECT * FROM ({pool}) AS pool ORDER BY rank DESC, id DESC LIMIT :limit OFFSET :offset")
    if "units" in params and dialect == "sqlite":  # PostgreSQL applied the filters when it chose the ids
        statement = statement.bindparams(bindparam("units", expanding=True))
    return [Hit(Found(row.id, SearchKind(row.kind), row.ref_id, row.title, row.snippet, row.field_key,
                      row.department_id, bool(row.answered)), _unit_score(float(row.rank), dialect))
            for row in session.execute(statement, params)]


# PostgreSQL finds the pool in two steps. The newest NEWEST_RANGE entries are read in id order through the
# primary key (20-60 ms at a million entries), which holds the whole pool whenever the words are common.
# Only when it does not (rarer words) is the GIN index asked for the older matches: its bitmap of a common
# word names a large part of the table, and fetching every row of it took 0.4-2 s at a million entries;
# the planner, which multiplies the words' frequencies as if they were independent, expects a few rows and
# picks the bitmap anyway, hence ``IS TRUE`` (not an indexable form) in the first step.
NEWEST_RANGE = 50_000


def _newest_matches(session: Session, column: str, where: str, params: dict[str, object]) -> list[int]:
    """PostgreSQL: the ids of the newest ``params['pool']`` entries matching ``:q`` and the filters."""
    newest = session.execute(text(f"SELECT MAX(entry_id) FROM {FTS_TABLE}")).scalar() or 0
    floor = max(0, newest - NEWEST_RANGE)
    found: list[int] = []
    for match, bounds in ((f"(f.{column} @@ to_tsquery('simple', :q)) IS TRUE", "f.entry_id > :floor"),
                          (f"f.{column} @@ to_tsquery('simple', :q)", "f.entry_id <= :floor")):
        statement = text(f"SELECT f.entry_id FROM {FTS_TABLE} f JOIN interaction_search_entry e ON e.id = f.entry_id "
                         f"WHERE {bounds} AND {match}{where} ORDER BY f.entry_id DESC LIMIT :need")
        if "units" in params:
            statement = statement.bindparams(bindparam("units", expanding=True))
        need = int(params["pool"]) - len(found)  # type: ignore[call-overload]
        found += session.execute(statement, {**params, "floor": floor, "need": need}).scalars()
        if len(found) >= int(params["pool"]) or not floor:  # type: ignore[call-overload]
            break
    return found


def _unit_score(rank: float, dialect: str) -> float:
    """Map the database's rank into [0, 1): bm25 is unbounded, ts_rank with normalisation 32 is already there."""
    if dialect == "sqlite":
        return rank / (1.0 + rank) if rank > 0 else 0.0
    return max(0.0, min(rank, 0.999))


def newest(session: Session, *, scope: Scope, field_key: str | None = None, department_id: str | None = None,
           kind: SearchKind | None = None, limit: int = 20, offset: int = 0) -> list[Found]:
    """Browsing without words: the most recently updated entries the reader may see."""
    key = ("newest", scope, field_key, department_id, kind, limit, offset)

    def compute() -> list[Hit]:
        query = select(SearchEntry)
        if scope.units is not None:
            units = sorted(scope.units)
            query = query.where(SearchEntry.public | SearchEntry.asker_unit_id.in_(units)  # type: ignore[union-attr]
                                | SearchEntry.department_id.in_(units))  # type: ignore[attr-defined]
        if field_key:
            query = query.where(SearchEntry.field_key == field_key)
        if department_id:
            query = query.where(SearchEntry.department_id == department_id)
        if kind is not None:
            query = query.where(SearchEntry.kind == kind)
        query = query.order_by(SearchEntry.updated_at.desc(), SearchEntry.id.desc()).offset(offset).limit(limit)  # type: ignore[attr-defined]
        return [Hit(Found.of(entry), 0.0) for entry in session.exec(query)]

    return [hit.entry for hit in _cached(session, key, compute)]


def rebuild(session: Session) -> int:
    """Re-index every question and article (after a bulk import); returns how many entries were written."""
    count = 0
    for question in session.exec(select(Question)):
        index_question(session, question)
        count += 1
    for article in session.exec(select(Article)):
        index_article(session, article)
        count += 1
    return count
