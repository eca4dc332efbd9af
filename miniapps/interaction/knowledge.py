"""The knowledge base's full-text index and its search, on SQLite (FTS5) and PostgreSQL (posting lists).

Text is folded in Python with ``core.text.fold`` (no diacritics, đ -> d, lower case) before it is
indexed and before it is queried, so "dang ky ho tich" finds "Đăng ký hộ tịch" on both databases
without ``unaccent``. On SQLite the index is two FTS5 tables, ``interaction_fts`` (title and text) and
``interaction_fts_title`` (titles alone). On PostgreSQL it is posting lists kept newest first
(``interaction_posting``: per term, chunks of entry ids), the terms' document counts
(``interaction_term``) and each entry's terms (``interaction_entry_terms``, so an edit knows what to
take out). Both are keyed by the id of the ``interaction_search_entry`` row they index. The migrations
create them (they are not SQLModel models, so the drift check leaves them alone); ``index_question`` and
``index_article`` keep them in step inside the caller's transaction.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, bindparam, event, text
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from miniapps.interaction import postings
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
from miniapps.interaction.postings import (
    ENTRY_TERMS_TABLE,
    PAIRS,
    POSTING_TABLE,
    TERM_TABLE,
    TEXT,
    TITLE,
    window_matches,
    write_postings,
)
from plugins import Cache, fold

FTS_TABLE = "interaction_fts"
TITLE_FTS_TABLE = "interaction_fts_title"  # SQLite only
MAX_TOKENS = 12
PREFIX_INDEXED = 3  # FTS5 keeps prefix indexes of 2 and 3 letters (create_index_sql)
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


def tokens_of(folded: str) -> list[str]:
    """Every word of already folded text, in order (what the index lists)."""
    return _TOKEN.findall(folded)


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
    # Terms sort byte by byte (COLLATE "C"): a prefix is then one primary-key range. The chunks stay in the
    # row (STORAGE MAIN: compressed if that helps, moved out of line only past a page), so reading one is
    # one index probe and one heap page, never a TOAST look-up.
    return [
        (f"CREATE TABLE {ENTRY_TERMS_TABLE} (entry_id INTEGER PRIMARY KEY REFERENCES interaction_search_entry(id) "
         "ON DELETE CASCADE, title TEXT NOT NULL, terms TEXT NOT NULL)"),
        (f'CREATE TABLE {TERM_TABLE} (field CHAR(1) NOT NULL, term TEXT COLLATE "C" NOT NULL, df INTEGER NOT NULL, '
         "PRIMARY KEY (field, term))"),
        (f'CREATE TABLE {POSTING_TABLE} (field CHAR(1) NOT NULL, term TEXT COLLATE "C" NOT NULL, '
         "low_id INTEGER NOT NULL, ids BYTEA NOT NULL, PRIMARY KEY (field, term, low_id))"),
        f"ALTER TABLE {POSTING_TABLE} ALTER COLUMN ids SET STORAGE MAIN",
    ]


def drop_index_sql(dialect: str) -> list[str]:
    """The statements that drop the full-text index."""
    tables = (FTS_TABLE, TITLE_FTS_TABLE) if dialect == "sqlite" else (POSTING_TABLE, TERM_TABLE, ENTRY_TERMS_TABLE)
    return [f"DROP TABLE IF EXISTS {table}" for table in tables]


# --- Keeping the index in step --------------------------------------------------------------------------


def bump_version(session: Session | Connection) -> None:
    """Give the knowledge base a new version token in the caller's transaction (kept searches expire)."""
    table = SearchVersion.__tablename__
    session.execute(text(f"INSERT INTO {table} (id, version) VALUES (1, :token) "
                         "ON CONFLICT (id) DO UPDATE SET version = excluded.version"),
                    {"token": secrets.randbits(62)})
    # Marked on the database connection, so the engine's commit listener (``_listen_for_commits``) can
    # tell this worker's memory of the token to read it again once the transaction commits.
    connection = session.connection() if isinstance(session, OrmSession) else session
    connection.info[_BUMPED] = True


_BUMPED = "interaction.version_bumped"


def _listen_for_commits(host: Any, slot: Any) -> None:
    """Count, in ``slot``, the commits on the host's engine that gave the knowledge base a new token, so a
    worker's memory of the token (``known_version``) is read again after any of them: what this worker
    wrote is found at once. One listener per host, on its own engine."""

    def committed(connection: Connection) -> None:
        if connection.info.pop(_BUMPED, False):
            slot.version_commits_seen = getattr(slot, "version_commits_seen", 0) + 1

    def rolled_back(connection: Connection) -> None:
        connection.info.pop(_BUMPED, None)

    event.listen(host.engine, "commit", committed)
    event.listen(host.engine, "rollback", rolled_back)


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
        write_postings(session, entry_id, tokens_of(folded_title), tokens_of(folded_body))


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


# Ranking looks at a bounded set: the newest POOL entries that match, in id order, which both databases
# walk without sorting (FTS5 rowid order; PostgreSQL's primary key, or the GIN index for rarer words).
# Common words match a large part of a million-entry base: ranking all of them cost 600-740 ms at 100,000
# entries and grew with the base. Newer answers are also the ones that reflect current rules.
POOL = 200
# Repeated searches (the same words, filters and reader scope) are answered from memory while the base
# is unchanged: every index write sets a new random token (``SearchVersion``) in its transaction, so one
# primary-key read per request tells whether a kept result is still right, on every worker.
CACHE_SIZE = 4096
CACHE_SECONDS = 600  # only bounds memory held by queries nobody repeats; correctness comes from the token
MINIAPP = "interaction"


def results_cache(host: Any) -> Cache[list[Hit]]:
    """The host's kept search results (one cache per host: two apps in one process never share it)."""
    return host.cache(MINIAPP, "search", ttl=CACHE_SECONDS, max_entries=CACHE_SIZE)


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


# How old a worker's memory of the token may be: another worker's new answer is found here within this
# time (this worker's own at once). Reading the token on every request was most of a kept search's cost
# beside the request path: a thread hop and a connection for one primary-key read.
VERSION_RECHECK_SECONDS = 0.5


def knowledge_version(session: Session) -> int | None:
    """The token of the knowledge base's current content (None when the row is missing: nothing is kept)."""
    return session.execute(text(f"SELECT version FROM {SearchVersion.__tablename__} WHERE id = 1")).scalar()


def _cached(session: Session, key: tuple, compute: Callable[[], list[Hit]],
            kept: Cache[list[Hit]] | None) -> list[Hit]:
    """``compute()``, or what it returned for ``key`` (kept in ``kept``) while the knowledge base was as it is now."""
    if kept is None:
        return compute()
    version = knowledge_version(session)  # read before computing: a result is never older than its token
    if version is None:
        return compute()
    return kept.get_or_set((version, *key), compute)


async def known_version(host: Any) -> int | None:
    """The knowledge base's token as this worker knows it: read again after this worker's own writes and at
    least every ``VERSION_RECHECK_SECONDS`` (the database read runs off the event loop)."""
    slot = host.state(MINIAPP)
    if not getattr(slot, "listening", False):
        with vars(slot).setdefault("listen_lock", threading.Lock()):
            if not getattr(slot, "listening", False):
                _listen_for_commits(host, slot)
                slot.listening = True
    commits = getattr(slot, "version_commits_seen", 0)
    now = time.monotonic()
    if getattr(slot, "version_commits", None) == commits and now - slot.version_read_at < VERSION_RECHECK_SECONDS:
        return slot.version  # type: ignore[no-any-return]

    def read() -> int | None:
        with host.session() as db:
            return knowledge_version(db)

    # The time and commit count are taken before the read: a write that lands during it is read next time.
    version = await run_in_threadpool(read)
    slot.version, slot.version_read_at, slot.version_commits = version, now, commits
    return version


@dataclass(frozen=True)
class Asked:
    """A search as asked: the key its hits are kept under, and how to compute them in a session."""

    key: tuple
    compute: Callable[[Session], list[Hit]]


async def answer(host: Any, asked: Asked) -> list[Hit]:
    """The hits of ``asked``: kept ones straight from memory while this worker knows the knowledge base
    unchanged (no thread hop, no connection), else computed off the event loop and kept."""
    kept = results_cache(host)
    version = await known_version(host)
    if version is not None:
        found = kept.get((version, *asked.key))
        if found is not None:
            return found

    def work() -> list[Hit]:
        with host.session() as db:
            return _cached(db, asked.key, lambda: asked.compute(db), kept)

    return await run_in_threadpool(work)


def _match_expression(words: list[str], *, mode: str, prefix_last: bool) -> str:
    """The FTS5 query for the folded ``words`` (SQLite).

    ``mode`` is ``all`` (every word), ``pairs`` (any two adjacent words as a phrase: most Vietnamese
    words are two syllables, so a pair is far more telling than a syllable) or ``any`` (any word).
    The last word may be a prefix (the reader is typing).
    """
    last = len(words) - 1

    def term(index: int) -> str:
        return f'"{words[index]}"' + ("*" if prefix_last and index == last else "")

    if mode == "pairs":
        parts = [f'"{words[i]} {words[i + 1]}"' + ("*" if prefix_last and i + 1 == last else "")
                 for i in range(last)]
        return " OR ".join(parts)
    return (" OR " if mode == "any" else " ").join(term(i) for i in range(len(words)))


@dataclass(frozen=True)
class Group:
    """PostgreSQL: one condition of a query: the entry is listed under any of ``terms`` of ``field``, or
    under a term starting with ``prefix`` (expanded to at most MAX_EXPANSIONS terms)."""

    field: str
    terms: tuple[str, ...]
    prefix: str | None


def query_groups(words: list[str], *, mode: str, title_only: bool, prefix_last: bool) -> list[Group]:
    """The conditions (all must hold) that find what ``_match_expression`` finds with FTS5."""
    last = len(words) - 1
    if mode == "all":
        field = TITLE if title_only else TEXT
        head = [Group(field, (w,), None) for w in words[:-1]]
        return [*head, Group(field, (), words[last]) if prefix_last else Group(field, (words[last],), None)]
    if mode == "pairs":
        pairs = [f"{words[i]} {words[i + 1]}" for i in range(last)]
        return [Group(PAIRS, tuple(pairs[:-1]), pairs[-1]) if prefix_last else Group(PAIRS, tuple(pairs), None)]
    return [Group(TITLE, tuple(words[:-1]), words[last]) if prefix_last else Group(TITLE, tuple(words), None)]


def search(session: Session, raw: str, *, scope: Scope, field_key: str | None = None,
           department_id: str | None = None, kind: SearchKind | None = None, answered_only: bool = False,
           limit: int = 20, offset: int = 0, prefix_last: bool = True, title_only: bool = False,
           kept: Cache[list[Hit]] | None = None) -> list[Hit]:
    """Entries matching ``raw`` best first (answered from ``kept``, the host's ``results_cache``, while the
    knowledge base is unchanged); see ``search_asked``."""
    asked = search_asked(raw, scope=scope, field_key=field_key, department_id=department_id, kind=kind,
                         answered_only=answered_only, limit=limit, offset=offset, prefix_last=prefix_last,
                         title_only=title_only)
    return [] if asked is None else _cached(session, asked.key, lambda: asked.compute(session), kept)


def search_asked(raw: str, *, scope: Scope, field_key: str | None = None, department_id: str | None = None,
                 kind: SearchKind | None = None, answered_only: bool = False, limit: int = 20, offset: int = 0,
                 prefix_last: bool = True, title_only: bool = False) -> Asked | None:
    """The search for ``raw`` (None when it has no words), to run with ``search`` or ``answer``.

    Every word first (in title or text, or titles only); when nothing has them all, titles with two of
    the words side by side; then titles with any meaningful word. The fallbacks stay on titles: a
    syllable such as "thu" is in most texts, and ranking most of the base would answer slowly and badly.
    Each attempt ranks the newest POOL entries that match it and the reader may see.
    """
    words = tokens(raw)
    if prefix_last and len(words) > 1 and len(words[-1]) < 2:
        words = words[:-1]  # a lone letter being typed would expand to a large part of the vocabulary
    if not words:
        return None
    filters = {"scope": scope, "field_key": field_key, "department_id": department_id, "kind": kind,
               "answered_only": answered_only, "limit": limit, "offset": offset}
    key = ("search", tuple(words), prefix_last, title_only, *filters.values())
    return Asked(key, lambda session: _search(session, words, prefix_last=prefix_last, title_only=title_only,
                                             filters=filters))


def _search(session: Session, words: list[str], *, prefix_last: bool, title_only: bool, filters: dict) -> list[Hit]:
    # In the full text a longer last word is matched whole: a prefix beyond FTS5's prefix indexes (2 and 3
    # letters) merges the full posting list of every word it starts (100-130 ms for "truong*" at a million
    # entries, against 0.3 ms for "truong"). Titles are small enough to keep it a prefix at any length, as
    # the reader typing a title needs.
    text_prefix = prefix_last and len(words[-1]) <= PREFIX_INDEXED
    attempts = [("all", words, title_only, prefix_last if title_only else text_prefix)]
    if len(words) > 1 and not filters["offset"]:
        attempts.append(("pairs", words, True, prefix_last))
        meaningful = [w for w in words[:-1] if w not in STOPWORDS] + words[-1:]
        attempts.append(("any", meaningful, True, prefix_last))
    sqlite = _dialect(session) == "sqlite"
    for mode, chosen, titles, prefix in attempts:
        if sqlite:
            pool = _pool(session, _match_expression(chosen, mode=mode, prefix_last=prefix), title_only=titles,
                         **filters)
        else:
            pool = _posting_pool(session, query_groups(chosen, mode=mode, title_only=titles, prefix_last=prefix),
                                 **filters)
        if pool:
            ranked = sorted(((relevance(chosen, entry.title, prefix_last=prefix, recency=1 - n / len(pool)), entry)
                             for n, entry in enumerate(pool)), key=lambda scored: (-scored[0], -scored[1].id))
            return [Hit(entry, score) for score, entry in ranked[filters["offset"]:filters["offset"] + filters["limit"]]]
    return []


# The score of a pooled entry, computed in Python on the pool alone. FTS5's bm25 counts, once per query,
# how many documents of the whole index hold each word (reading every posting list in full: 100-540 ms
# for common words at a million entries, whatever the pool), and ts_rank reads each candidate's whole
# tsvector; neither is bounded by the pool. What tells an official the answer fits is in the title: how
# many of the words it has (syllables in STOPWORDS count little), whether they stand side by side as
# typed (most Vietnamese words are two syllables), and how little else it says. Recency breaks near-ties.
COVERAGE, ADJACENCY, FOCUS, RECENCY = 0.55, 0.25, 0.12, 0.07  # sums to 0.99: scores stay in [0, 1)
STOPWORD_WEIGHT = 0.3


def relevance(words: list[str], title: str, *, prefix_last: bool, recency: float) -> float:
    """How well a title answers the folded query ``words``, in [0, 1); ``recency`` is 1 for the newest of the pool."""
    title_words = _TOKEN.findall(fold(title))
    if not title_words:
        return RECENCY * recency
    present = set(title_words)
    last = len(words) - 1

    def has(index: int, word: str) -> bool:
        if word in present:
            return True
        return prefix_last and index == last and any(t.startswith(word) for t in present)

    weights = [STOPWORD_WEIGHT if w in STOPWORDS else 1.0 for w in words]
    coverage = sum(wt for i, (w, wt) in enumerate(zip(words, weights)) if has(i, w)) / sum(weights)
    if len(words) > 1:
        bigrams = set(pairwise(title_words))
        adjacent = sum(1 for i in range(last) if (words[i], words[i + 1]) in bigrams
                       or (prefix_last and i + 1 == last and any(a == words[i] and b.startswith(words[last])
                                                                 for a, b in bigrams)))
        adjacency = adjacent / last
    else:
        adjacency = coverage
    focus = sum(1 for t in title_words if t in words or (prefix_last and t.startswith(words[last]))) / len(title_words)
    return COVERAGE * coverage + ADJACENCY * adjacency + FOCUS * min(focus, 1.0) + RECENCY * recency


ENTRY_COLUMNS = "e.id, e.kind, e.ref_id, e.title, e.snippet, e.field_key, e.department_id, e.answered"


def _filters(scope: Scope, field_key: str | None, department_id: str | None, kind: SearchKind | None,
             answered_only: bool) -> tuple[str, dict[str, object]]:
    """The reader's filters on ``interaction_search_entry e``, as `` AND ...`` conditions and their parameters."""
    params: dict[str, object] = {}
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
    return "".join(f" AND {f}" for f in filters), params


def _found(rows: Iterable[Any]) -> list[Found]:
    return [Found(row.id, SearchKind(row.kind), row.ref_id, row.title, row.snippet, row.field_key,
                  row.department_id, bool(row.answered)) for row in rows]


def _pool(session: Session, match: str, *, title_only: bool, scope: Scope, field_key: str | None,
          department_id: str | None, kind: SearchKind | None, answered_only: bool, limit: int, offset: int) -> list[Found]:
    """SQLite: the newest entries (at most POOL, or the page's end) matching ``match`` that pass the filters, newest first."""
    where, params = _filters(scope, field_key, department_id, kind, answered_only)
    params.update({"q": match, "pool": max(POOL, limit + offset)})
    # FTS5 walks the matches newest first (rowid DESC) and stops at the pool's size; CROSS JOIN keeps it
    # the outer loop (the planner could otherwise start from a filter's index and probe FTS per row).
    table = TITLE_FTS_TABLE if title_only else FTS_TABLE
    statement = text(f"SELECT {ENTRY_COLUMNS} FROM {table} CROSS JOIN interaction_search_entry e "
                     f"ON e.id = {table}.rowid WHERE {table} MATCH :q{where} ORDER BY {table}.rowid DESC LIMIT :pool")
    if "units" in params:
        statement = statement.bindparams(bindparam("units", expanding=True))
    return _found(session.execute(statement, params))


# PostgreSQL: posting lists kept newest first. Each term's entry ids sit in chunks of up to CHUNK ids keyed
# by (field, term, lowest id), so the chunks of a term covering an id range are one primary-key range.
# A query is a few conditions (``Group``: any of some terms); its newest matches are found by reading the
# conditions' chunks over a window of the newest ids and intersecting them in memory, the window widening
# (from the density seen so far) until the pool is full or the oldest entry is reached, in at most ROUNDS
# reads. Terms are counted (``interaction_term``), which sizes the first window and chooses a prefix's
# expansions. Cost follows the chunks the window covers (tens of rows), not the matches or the base:
# GIN could only answer every match as a bitmap, and walking the table newest first read 10-25 us a row.
ROUNDS = 6
# A word being typed stands for the terms it starts: the MAX_EXPANSIONS most common of the first
# EXPANSION_SCAN in term order (Lucene's max_expansions). A lone letter as the whole query is bounded the
# same way; a lone last letter after other words is dropped before (``search_asked``).
MAX_EXPANSIONS = 50
EXPANSION_SCAN = 1000
# The filters (reader scope, kind, answered) are checked on the newest matches only, in batches of 1.25
# times the missing number: most entries pass, and checking every match would read an entry row per match.
FILTER_ROUNDS = 4


def _vocabulary(session: Session, groups: list[Group]) -> tuple[list[dict[str, int]], int]:
    """PostgreSQL: each group's terms that list something, with their counts, and the newest entry id (one statement)."""
    parts = ["SELECT -1 AS g, NULL AS term, COALESCE(MAX(id), 0) AS df FROM interaction_search_entry"]
    params: dict[str, object] = {"scan": EXPANSION_SCAN, "expansions": MAX_EXPANSIONS}
    for n, group in enumerate(groups):
        params[f"f{n}"] = group.field
        if group.terms:
            params[f"t{n}"] = list(group.terms)
            parts.append(f"SELECT {n}, term, df FROM {TERM_TABLE} WHERE field = :f{n} AND term = ANY(CAST(:t{n} AS text[])) "
                         "AND df > 0")
        if group.prefix is not None:
            # Terms are [a-z0-9 ] only, all below "~" in byte order: the prefix's terms are one key range.
            params[f"p{n}"], params[f"q{n}"] = group.prefix, group.prefix + "~"
            parts.append(f"(SELECT {n}, term, df FROM (SELECT term, df FROM {TERM_TABLE} WHERE field = :f{n} "
                         f"AND term >= :p{n} AND term < :q{n} ORDER BY term LIMIT :scan) s WHERE df > 0 "
                         "ORDER BY df DESC, term LIMIT :expansions)")
    found: list[dict[str, int]] = [{} for _ in groups]
    newest = 0
    for g, term, df in session.execute(text(" UNION ALL ".join(parts)), params):
        if g < 0:
            newest = int(df)
        else:
            found[g][term] = int(df)
    return found, newest


def _posting_matches(session: Session, field: str, groups: list[dict[str, int]], newest: int,
                     wanted: int) -> Iterator[list[int]]:
    """PostgreSQL: batches of the ids listed under some term of every group, newest first, window by window."""
    if not groups or not all(groups) or newest <= 0:
        return
    groups = sorted(groups, key=lambda group: sum(group.values()))  # the rarest condition drives
    # The first window holds 1.5 x ``wanted`` ids of the rarest condition (enough if the others hold for
    # all of them); later ones follow the density of matches seen (8 times wider after a window with none).
    # The last takes all that is left. Windows never start from the product of the words' frequencies: that
    # assumes independence, and for six words it asked for the whole base (0.3-1.2 s of decoding).
    width = max(postings.CHUNK, int(1.5 * wanted * newest / sum(groups[0].values())))
    hi, seen, matched = newest, 0, 0
    for round_ in range(ROUNDS):
        lo = 0 if round_ == ROUNDS - 1 else max(0, hi - width + 1)
        batch = window_matches(session, field, groups, newest, lo, hi)
        seen += hi - lo + 1
        matched += len(batch)
        yield batch
        if lo <= 0:
            return
        hi = lo - 1
        missing = max(wanted - matched, wanted // 4, 1)
        width = int(1.5 * missing * seen / matched) if matched else 8 * seen


def _posting_pool(session: Session, groups: list[Group], *, scope: Scope, field_key: str | None,
                  department_id: str | None, kind: SearchKind | None, answered_only: bool, limit: int,
                  offset: int) -> list[Found]:
    """PostgreSQL: the newest entries (at most POOL, or the page's end) meeting every group that pass the
    filters, newest first."""
    need = max(POOL, limit + offset)
    where, params = _filters(scope, field_key, department_id, kind, answered_only)
    vocabulary, newest = _vocabulary(session, groups)
    stream = _posting_matches(session, groups[0].field, vocabulary, newest, need + need // 4 + 8 if where else need)
    statement = text(f"SELECT {ENTRY_COLUMNS} FROM interaction_search_entry e WHERE e.id = ANY(:ids){where} "
                     "ORDER BY e.id DESC LIMIT :need")
    if "units" in params:
        statement = statement.bindparams(bindparam("units", expanding=True))
    kept: list[Found] = []
    pending: list[int] = []
    exhausted = False
    for _ in range(FILTER_ROUNDS if where else 1):
        missing = need - len(kept)
        take = missing + missing // 4 + 8 if where else missing  # most entries pass a reader's filters
        while len(pending) < take and not exhausted:
            batch = next(stream, None)
            exhausted = batch is None
            pending += batch or []
        if not pending:
            break
        ids, pending = pending[:take], pending[take:]
        kept += _found(session.execute(statement, {**params, "ids": ids, "need": missing}))
        if len(kept) >= need:
            break
    return kept


def newest(session: Session, *, scope: Scope, field_key: str | None = None, department_id: str | None = None,
           kind: SearchKind | None = None, limit: int = 20, offset: int = 0,
           kept: Cache[list[Hit]] | None = None) -> list[Found]:
    """Browsing without words: the most recently updated entries the reader may see (kept as ``search``'s are)."""
    asked = newest_asked(scope=scope, field_key=field_key, department_id=department_id, kind=kind, limit=limit,
                         offset=offset)
    return [hit.entry for hit in _cached(session, asked.key, lambda: asked.compute(session), kept)]


def newest_asked(*, scope: Scope, field_key: str | None = None, department_id: str | None = None,
                 kind: SearchKind | None = None, limit: int = 20, offset: int = 0) -> Asked:
    """Browsing as asked (for ``newest`` or ``answer``); its hits score 0."""

    def compute(session: Session) -> list[Hit]:
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

    return Asked(("newest", scope, field_key, department_id, kind, limit, offset), compute)


def rebuild(session: Session) -> int:
    """Re-index every question and article (after a bulk import); returns how many entries were written."""
    if _dialect(session) != "sqlite":
        # From empty: postings of text that changed behind the index's back cannot be trusted for removals.
        for table in (POSTING_TABLE, TERM_TABLE, ENTRY_TERMS_TABLE):
            session.execute(text(f"DELETE FROM {table}"))
    count = 0
    for question in session.exec(select(Question)):
        index_question(session, question)
        count += 1
    for article in session.exec(select(Article)):
        index_article(session, article)
        count += 1
    return count
