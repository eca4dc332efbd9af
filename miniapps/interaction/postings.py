"""PostgreSQL's full-text index of the knowledge base: posting lists kept newest first.

Each term (a word of title and text, a word of the title, or two adjacent title words) lists the ids of the
entries that have it, ascending, in chunks of at most CHUNK ids keyed by their lowest id, so a search reads
the newest chunks of its words by primary key and intersects them in memory (``window_matches``: one
window of ids; ``knowledge`` chooses the windows). ``write_postings`` keeps them in step inside the caller's transaction; ``PostingBuilder`` builds
them in one pass for bulk loads (the migration's backfill, the synthetic city). SQLite keeps FTS5.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from itertools import pairwise

import numpy as np
from sqlalchemy import Connection, text
from sqlmodel import Session

POSTING_TABLE = "interaction_posting"  # PostgreSQL: (field, term, low_id) -> ids, chunks newest first
TERM_TABLE = "interaction_term"  # PostgreSQL: (field, term) -> how many entries have it
ENTRY_TERMS_TABLE = "interaction_entry_terms"  # PostgreSQL: entry_id -> its title's words and all its words
# Fields of a posting list: words of title and text, words of the title, adjacent pairs of title words.
TEXT, TITLE, PAIRS = "b", "t", "p"
# Ids per chunk: 4,000 bytes, so a chunk stays in its row (2 a page, no TOAST look-up), a common word
# advances 1,000 entries per row read, and adding an entry rewrites at most 4 KB per term.
CHUNK = 1000

class PostingBuilder:
    """PostgreSQL bulk loads (migration backfill, city loader): posting lists built in one pass over the
    entries in ascending id order, without sorting. Each term's open chunk is kept in memory and handed out
    (``drain``) once it holds CHUNK ids, so chunks are full from the oldest and only the newest of a term
    has room for new entries. A chunk not added to within the last OPEN_SPAN ids is handed out too, part
    full: memory is then bounded by the vocabulary of the newest OPEN_SPAN entries, not the whole base's
    (a million one-off words, such as file numbers, held 700 MB at city size)."""

    OPEN_SPAN = 100_000

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], array[int]] = {}
        self._full: dict[tuple[str, str], int] = {}  # ids in chunks already handed out
        self._ready: list[tuple[str, str, int, bytes]] = []
        self._last = 0

    def add(self, entry_id: int, title: str, terms: str) -> None:
        """List one entry, given as ``interaction_entry_terms`` stores it (ids must ascend)."""
        if entry_id <= self._last:
            raise ValueError(f"entries must come in ascending id order ({entry_id} after {self._last})")
        self._last = entry_id
        for key in entry_terms(title.split(), terms.split()):
            ids = self._open.get(key)
            if ids is None:
                ids = self._open[key] = array("I")
            ids.append(entry_id)
            if len(ids) >= CHUNK:
                self._ready.append((*key, ids[0], pack_array(ids)))
                self._full[key] = self._full.get(key, 0) + len(ids)
                del self._open[key]

    def drain(self) -> list[tuple[str, str, int, bytes]]:
        """The chunks filled (or left alone for OPEN_SPAN ids) since the last call, as (field, term, low_id, ids) rows."""
        stale = [key for key, ids in self._open.items() if ids[-1] <= self._last - self.OPEN_SPAN]
        for key in stale:
            ids = self._open.pop(key)
            self._ready.append((*key, ids[0], pack_array(ids)))
            self._full[key] = self._full.get(key, 0) + len(ids)
        ready, self._ready = self._ready, []
        return ready

    def finish(self) -> tuple[list[tuple[str, str, int, bytes]], list[tuple[str, str, int]]]:
        """The remaining chunks, and every term's count as (field, term, df) rows."""
        for key, ids in self._open.items():
            self._ready.append((*key, ids[0], pack_array(ids)))
        counts = {key: len(ids) for key, ids in self._open.items()}
        for key, n in self._full.items():
            counts[key] = counts.get(key, 0) + n
        self._open, self._full = {}, {}
        ready, self._ready = self._ready, []
        return ready, [(*key, n) for key, n in counts.items()]


def copy_rows(connection: Connection, table: str, columns: tuple[str, ...], types: tuple[str, ...],
              rows: Iterable[tuple]) -> None:
    """PostgreSQL: COPY ``rows`` into ``table`` on ``connection``, inside its transaction (bulk loads)."""
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[union-attr]
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


POSTING_COLUMNS = (("field", "term", "low_id", "ids"), ("text", "text", "int4", "bytea"))
TERM_COLUMNS = (("field", "term", "df"), ("text", "text", "int4"))


def entry_terms(title_words: list[str], words: Iterable[str]) -> set[tuple[str, str]]:
    """The (field, term) pairs an entry is listed under: its words (``words``: title and text), its title
    words and its title's adjacent pairs (so "two words side by side" is one posting list)."""
    return ({(TEXT, w) for w in words} | {(TITLE, w) for w in title_words}
            | {(PAIRS, f"{a} {b}") for a, b in pairwise(title_words)})


def pack(ids: list[int]) -> bytes:
    """Ids as big-endian uint32 (PostgreSQL's ``int4send``: readable in SQL too)."""
    return pack_array(array("I", ids))


def pack_array(ids: array[int]) -> bytes:
    if sys.byteorder == "little":
        ids = array("I", ids)
        ids.byteswap()
    return ids.tobytes()


def unpack(data: bytes) -> array[int]:
    """The ids of a chunk, ascending."""
    ids = array("I")
    ids.frombytes(data)
    if sys.byteorder == "little":
        ids.byteswap()
    return ids


def write_postings(session: Session, entry_id: int, title_words: list[str], body_words: list[str]) -> None:
    """PostgreSQL: list the entry under its new terms and take it out of the ones it no longer has."""
    words = sorted(set(title_words).union(body_words))
    stored = (" ".join(title_words), " ".join(words))
    row = session.execute(text(f"SELECT title, terms FROM {ENTRY_TERMS_TABLE} WHERE entry_id = :id FOR UPDATE"),
                          {"id": entry_id}).first()
    if row is not None and tuple(row) == stored:
        return
    old = entry_terms(row.title.split(), row.terms.split()) if row is not None else set()
    new = entry_terms(title_words, words)
    session.execute(text(f"INSERT INTO {ENTRY_TERMS_TABLE} (entry_id, title, terms) VALUES (:id, :title, :terms) "
                         "ON CONFLICT (entry_id) DO UPDATE SET title = EXCLUDED.title, terms = EXCLUDED.terms"),
                    {"id": entry_id, "title": stored[0], "terms": stored[1]})
    changes = sorted([(field, term, 1) for field, term in new - old] + [(field, term, -1) for field, term in old - new])
    if not changes:
        return
    fields, terms, deltas = (list(column) for column in zip(*changes, strict=True))
    # The counts first, in sorted order: the row lock each upsert takes holds off every other writer of that
    # term's chunks until this transaction ends, and taking them in one order keeps two answers from
    # deadlocking. The chunks below are then read and rewritten without a race.
    session.execute(text(
        f"INSERT INTO {TERM_TABLE} (field, term, df) SELECT field, term, delta FROM unnest(CAST(:fields AS text[]), "
        "CAST(:terms AS text[]), CAST(:deltas AS int[])) WITH ORDINALITY AS u(field, term, delta, n) ORDER BY n "
        f"ON CONFLICT (field, term) DO UPDATE SET df = {TERM_TABLE}.df + EXCLUDED.df"),
        {"fields": fields, "terms": terms, "deltas": deltas})
    # Each term's chunk that holds (or would hold) the entry: the one starting at or below its id.
    chunks = session.execute(text(
        f"SELECT u.n, c.low_id, c.ids FROM unnest(CAST(:fields AS text[]), CAST(:terms AS text[])) "
        f"WITH ORDINALITY AS u(field, term, n) LEFT JOIN LATERAL (SELECT p.low_id, p.ids FROM {POSTING_TABLE} p "
        "WHERE p.field = u.field AND p.term = u.term AND p.low_id <= :id ORDER BY p.low_id DESC LIMIT 1) c ON true"),
        {"fields": fields, "terms": terms, "id": entry_id}).all()
    updates: list[tuple[str, str, int, bytes]] = []
    inserts: list[tuple[str, str, int, bytes]] = []
    deletes: list[tuple[str, str, int]] = []
    for n, low_id, data in chunks:
        field, term, delta = changes[n - 1]
        ids = list(unpack(data)) if data is not None else []
        at = bisect_left(ids, entry_id)
        present = at < len(ids) and ids[at] == entry_id
        if delta < 0:
            if not present:
                continue
            del ids[at]
            if ids:
                updates.append((field, term, low_id, pack(ids)))  # low_id stays a lower bound of the chunk
            else:
                deletes.append((field, term, low_id))
            continue
        if present:
            continue
        if low_id is None:  # older than every chunk of the term (or a new term): a chunk of its own
            inserts.append((field, term, entry_id, pack([entry_id])))
            continue
        ids.insert(at, entry_id)
        if len(ids) <= CHUNK:
            updates.append((field, term, low_id, pack(ids)))
        elif at == len(ids) - 1:  # the newest entry of a full head chunk starts the next one
            inserts.append((field, term, entry_id, pack([entry_id])))
        else:
            half = len(ids) // 2
            updates.append((field, term, low_id, pack(ids[:half])))
            inserts.append((field, term, ids[half], pack(ids[half:])))
    _apply_chunks(session, updates, inserts, deletes)


def _apply_chunks(session: Session, updates: list[tuple[str, str, int, bytes]],
                  inserts: list[tuple[str, str, int, bytes]], deletes: list[tuple[str, str, int]]) -> None:
    """Write the changed chunks back: one statement each for the rewritten, the new and the emptied."""
    if deletes:
        f, t, low = (list(column) for column in zip(*deletes, strict=True))
        session.execute(text(f"DELETE FROM {POSTING_TABLE} p USING unnest(CAST(:f AS text[]), CAST(:t AS text[]), "
                             "CAST(:low AS int[])) AS u(field, term, low_id) "
                             "WHERE p.field = u.field AND p.term = u.term AND p.low_id = u.low_id"),
                        {"f": f, "t": t, "low": low})
    if updates:
        f, t, low, ids = (list(column) for column in zip(*updates, strict=True))
        session.execute(text(f"UPDATE {POSTING_TABLE} p SET ids = u.ids FROM unnest(CAST(:f AS text[]), "
                             "CAST(:t AS text[]), CAST(:low AS int[]), CAST(:ids AS bytea[])) AS u(field, term, low_id, ids) "
                             "WHERE p.field = u.field AND p.term = u.term AND p.low_id = u.low_id"),
                        {"f": f, "t": t, "low": low, "ids": ids})
    if inserts:
        f, t, low, ids = (list(column) for column in zip(*inserts, strict=True))
        session.execute(text(f"INSERT INTO {POSTING_TABLE} (field, term, low_id, ids) SELECT * FROM "
                             "unnest(CAST(:f AS text[]), CAST(:t AS text[]), CAST(:low AS int[]), CAST(:ids AS bytea[]))"),
                        {"f": f, "t": t, "low": low, "ids": ids})


# A condition's chunks over a window are read whole (a primary-key range) while they are few; once the
# conditions read so far leave fewer candidates than that, only the chunks holding a candidate are read
# (one index probe a candidate and term). A rare word among common ones ("ket hon yeu to nuoc ngoai thoi
# han": one entry has "yeu") then reads a handful of chunks instead of every chunk of "han", "to" and
# "nuoc" (13 MB, 70-140 ms). The conditions are taken rarest first, so candidates only shrink.
# Both are psycopg's own statements, run on the session's connection in binary: bytea in text form is hex,
# twice the bytes and a decode, which cost 2-3 times the binary read (26-30 ms against 10 ms for 2,000
# chunks), and SQLAlchemy's row-by-row fetch added as much again.
_RANGE = (
    "SELECT u.term, c.low_id, c.ids FROM unnest(%(terms)s::text[]) AS u(term) CROSS JOIN LATERAL ("
    f"SELECT p.low_id, p.ids FROM {POSTING_TABLE} p WHERE p.field = %(field)s AND p.term = u.term "
    f"AND p.low_id <= %(hi)s AND p.low_id >= COALESCE((SELECT MAX(q.low_id) FROM {POSTING_TABLE} q "
    "WHERE q.field = %(field)s AND q.term = u.term AND q.low_id <= %(lo)s), 0)) c")
# The chunk that would list an id is the one starting at or below it; each distinct chunk is read once.
_PROBE = (
    f"SELECT p.term, p.low_id, p.ids FROM (SELECT DISTINCT u.term, (SELECT MAX(q.low_id) FROM {POSTING_TABLE} q "
    "WHERE q.field = %(field)s AND q.term = u.term AND q.low_id <= c.id) AS low_id "
    "FROM unnest(%(terms)s::text[]) AS u(term) CROSS JOIN unnest(%(ids)s::int[]) AS c(id)) k "
    f"JOIN {POSTING_TABLE} p ON p.field = %(field)s AND p.term = k.term AND p.low_id = k.low_id")


def window_matches(session: Session, field: str, groups: list[dict[str, int]], newest: int, lo: int,
                    hi: int) -> list[int]:
    """PostgreSQL: the ids from ``lo`` to ``hi`` listed under some term of every group (rarest first), newest first."""
    share = (hi - lo + 1) / newest

    def chunks_over(group: dict[str, int]) -> float:  # the chunks a range read of the window would return
        return sum(df * share / CHUNK + 1 for df in group.values())

    read: dict[str, list[tuple[int, np.ndarray]]] = {}

    raw = session.connection().connection.driver_connection

    def fetch(statement: str, terms: list[str], **params: object) -> None:
        for term in terms:
            read[term] = []
        with raw.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(statement, {"terms": terms, "field": field, **params})
            for term, low_id, data in cursor.fetchall():
                read[term].append((low_id, decode(data)))

    # The rarest condition and every condition as cheap to read whole come in one statement.
    cheap = [g for g in groups[1:] if chunks_over(g) <= 2 * len(g)]
    fetch(_RANGE, sorted(set(groups[0]).union(*cheap)), lo=lo, hi=hi)
    candidates = union([within(read[term], lo, hi) for term in groups[0]])
    for group in groups[1:]:
        if not len(candidates):
            break
        missing = sorted(term for term in group if term not in read)
        if missing and len(candidates) * len(missing) <= chunks_over({t: group[t] for t in missing}):
            fetch(_PROBE, missing, ids=candidates.tolist())
        elif missing:
            fetch(_RANGE, missing, lo=lo, hi=hi)
        candidates = keep_listed(candidates, [within(read[term], lo, hi) for term in group])
    return candidates[::-1].tolist()  # type: ignore[no-any-return]



# Reads decode and intersect chunks as numpy arrays: the big-endian bytes are read in place, and a
# condition's membership test is one vectorised binary search over the candidates. A common word's
# window is hundreds of thousands of ids; Python-level bisects and array joins were half of a search
# that must read them (25 of 50 ms for "chung thuc chu ky nguoi o xa" at a million entries).
def decode(data: bytes) -> np.ndarray:
    """A chunk's ids, ascending, as int64."""
    return np.frombuffer(data, dtype=">u4").astype(np.int64)


def within(chunks: list[tuple[int, np.ndarray]], lo: int, hi: int) -> np.ndarray:
    """A term's ids from ``lo`` to ``hi``, ascending, from its chunks (disjoint ranges, in any order)."""
    if not chunks:
        return np.empty(0, dtype=np.int64)
    ids = np.concatenate([part for _, part in sorted(chunks, key=lambda chunk: chunk[0])])
    return ids[np.searchsorted(ids, lo):np.searchsorted(ids, hi, side="right")]


def union(lists: list[np.ndarray]) -> np.ndarray:
    """The ids in any of ``lists`` (each ascending), ascending, once each (a sort: numpy's hashing unique
    took 8 ms for a prefix's 50 terms)."""
    if len(lists) == 1:
        return lists[0]
    ids = np.sort(np.concatenate(lists))
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids


def keep_listed(candidates: np.ndarray, lists: list[np.ndarray]) -> np.ndarray:
    """The ``candidates`` (ascending) listed in some of ``lists`` (each ascending)."""
    keep = np.zeros(len(candidates), dtype=bool)
    for ids in lists:
        if len(ids):
            at = np.minimum(np.searchsorted(ids, candidates), len(ids) - 1)
            keep |= ids[at] == candidates
    return candidates[keep]
