"""PostgreSQL's posting lists: kept equal to what the texts say through ask, answer, edit, removal and
rebuild; searched with the same results as SQLite's FTS5 on the same data; prefixes expanded within bounds;
filled by the migration from the old tsvector table; a search runs a bounded number of statements."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from alembic import command
from sqlalchemy import make_url, text
from sqlmodel import Session, select

from bench.bench_interaction import SEARCHES, TITLES_TYPED
from bench.city import interaction as city_interaction
from bench.city.base import City
from core.app import discover
from core.db import make_engine
from core.migrate import alembic_config, upgrade
from miniapps.interaction import knowledge, postings
from miniapps.interaction.knowledge import Group, Scope
from miniapps.interaction.models import Article, Question, Reply, SearchEntry, SearchKind
from plugins import fold
from tests.conftest import PG_URL, _migrate_and_load, _truncate, base_settings
from tests.miniapps.interaction.conftest import Statements, answer, ask


def _postgres_only(host) -> None:
    if host.app.state.engine.dialect.name != "postgresql":
        pytest.skip("posting lists are PostgreSQL's index (SQLite keeps FTS5)")


def _listed(db: Session) -> dict[tuple[str, str], list[int]]:
    """Every posting list as stored, checking each chunk's shape on the way: ids ascending, none below the
    chunk's key, none reaching the next chunk's key, at most CHUNK of them; and the term counts agree."""
    lists: dict[tuple[str, str], list[int]] = defaultdict(list)
    previous: tuple[str, str, int] | None = None
    for field, term, low_id, data in db.execute(
        text(f"SELECT field, term, low_id, ids FROM {postings.POSTING_TABLE} ORDER BY field, term, low_id")
    ):
        ids = list(postings.unpack(data))
        assert ids and ids == sorted(set(ids)) and ids[0] >= low_id and len(ids) <= postings.CHUNK
        if previous is not None and previous[:2] == (field, term):
            assert lists[field, term][-1] < low_id
        lists[field, term] += ids
        previous = (field, term, low_id)
    counts = {
        (f, t): df for f, t, df in db.execute(text(f"SELECT field, term, df FROM {postings.TERM_TABLE} WHERE df <> 0"))
    }
    assert counts == {key: len(ids) for key, ids in lists.items()}
    return dict(lists)


def _said(db: Session) -> dict[tuple[str, str], list[int]]:
    """The posting lists the entries' current texts call for, computed from the questions and articles."""
    lists: dict[tuple[str, str], list[int]] = defaultdict(list)
    for entry in db.exec(select(SearchEntry).order_by(SearchEntry.id)):
        if entry.kind is SearchKind.question:
            question = db.get(Question, entry.ref_id)
            replies = db.exec(select(Reply).where(Reply.question_id == entry.ref_id).order_by(Reply.id)).all()
            title, body = question.title, "\n".join([question.body, *(r.body for r in replies)])
        else:
            article = db.get(Article, entry.ref_id)
            title, body = article.title, article.body
        title_words = knowledge.tokens_of(fold(title))
        for key in postings.entry_terms(title_words, set(title_words).union(knowledge.tokens_of(fold(body)))):
            lists[key].append(entry.id)
    return dict(lists)


def test_postings_follow_ask_answer_edit_removal_and_rebuild(host, kim_long, phu_vang, tu_phap, monkeypatch) -> None:
    _postgres_only(host)
    monkeypatch.setattr(postings, "CHUNK", 3)  # common words fill several chunks and split
    made = []
    for n in range(8):
        question = ask(
            host,
            kim_long if n % 2 else phu_vang,
            title=f"Đăng ký khai sinh cho trẻ số {n}",
            body="Cha mẹ ở xa, hồ sơ thiếu giấy chứng sinh.",
            field="civil-status",
        )
        made.append(question["id"])
        if n % 3:
            answer(host, tu_phap, question["id"], f"Đăng ký tại UBND cấp xã, trường hợp {n}.")
    engine = host.app.state.engine
    with Session(engine) as db:
        listed = _listed(db)
        assert listed == _said(db)
        assert len(listed[postings.TEXT, "khai"]) == 8 and (postings.PAIRS, "khai sinh") in listed
        # An edited title: the entry leaves the old words' lists and joins the new ones'.
        question = db.get(Question, made[3])
        question.title = "Trích lục hộ tịch bản sao"
        knowledge.index_question(db, question)
        # A removed reply: its words go unless another text of the entry still has them.
        reply = db.exec(select(Reply).where(Reply.question_id == made[4])).first()
        db.delete(reply)
        db.flush()
        knowledge.index_question(db, db.get(Question, made[4]))
        db.commit()
        listed = _listed(db)
        assert listed == _said(db)
        entry_id = db.exec(select(SearchEntry.id).where(SearchEntry.ref_id == made[3])).one()
        assert entry_id not in listed[postings.TITLE, "khai"] and entry_id in listed[postings.PAIRS, "trich luc"]
        assert "truong" not in [t for (f, t), ids in listed.items() if f == postings.TEXT and ids == [made[4]]]
        # Rebuild from empty gives the same lists.
        db.execute(text(f"DELETE FROM {postings.POSTING_TABLE} WHERE term = 'khai'"))
        assert knowledge.rebuild(db) == 8
        db.commit()
        assert _listed(db) == _said(db)


def test_an_answer_to_an_older_question_goes_into_the_middle_of_full_chunks(
    host, kim_long, tu_phap, monkeypatch
) -> None:
    _postgres_only(host)
    monkeypatch.setattr(postings, "CHUNK", 2)
    made = [
        ask(host, kim_long, title=f"Chứng thực bản sao {n}", body="Cần gấp.", field="notarisation")["id"]
        for n in range(7)
    ]
    for qid in (made[2], made[5], made[0], made[3]):  # "ubnd" arrives out of id order, chunks split
        answer(host, tu_phap, qid, "UBND cấp xã chứng thực.")
    with Session(host.app.state.engine) as db:
        listed = _listed(db)
        assert listed == _said(db)
        assert len(listed[postings.TEXT, "ubnd"]) == 4


def test_the_bulk_builder_hands_out_idle_chunks_and_lists_the_same(monkeypatch) -> None:
    """Chunks left alone for OPEN_SPAN ids leave memory part full; the lists read back are unchanged."""
    monkeypatch.setattr(postings, "CHUNK", 3)
    entries = [
        (n, f"ho so {'hiem' if n % 5 == 0 else 'thuong'}", f"ho ma{n} so {'hiem' if n % 5 == 0 else 'x'}")
        for n in range(1, 41)
    ]

    def build(span: int) -> tuple[dict, int, list]:
        builder = postings.PostingBuilder()
        builder.OPEN_SPAN = span
        rows, most_open = [], 0
        for n, title, terms in entries:
            builder.add(n, title, " ".join(sorted(set(terms.split()) | set(title.split()))))
            rows += builder.drain()
            most_open = max(most_open, len(builder._open))
        chunks, counts = builder.finish()
        lists: dict = defaultdict(list)
        for field, term, low_id, data in sorted(rows + chunks):
            ids = list(postings.unpack(data))
            assert ids[0] == low_id and len(ids) <= postings.CHUNK
            lists[field, term] += ids
        assert {(f, t): n for f, t, n in counts} == {key: len(ids) for key, ids in lists.items()}
        return dict(lists), most_open, rows

    whole, open_whole, _ = build(10**9)
    swept, open_swept, _ = build(4)
    assert swept == whole and all(ids == sorted(ids) for ids in whole.values())
    assert open_whole >= 40 and open_swept < 20  # the one-off words ("ma7") do not pile up
    ordered = postings.PostingBuilder()
    ordered.add(2, "a", "a")
    with pytest.raises(ValueError):
        ordered.add(1, "a", "a")  # ids must ascend: chunks are cut in id order


@pytest.fixture
def both(sqlite_url, postgres_url, monkeypatch):
    """The same synthetic city quarter loaded into SQLite (FTS5) and PostgreSQL (posting lists of small
    chunks, so a search crosses many of them)."""
    monkeypatch.setattr(postings, "CHUNK", 7)
    engines = []
    for url in (sqlite_url, postgres_url):
        city = City(url, scale=0.0004)
        city_interaction.load(city)
        city.engine.dispose()
        engines.append(make_engine(url))
    yield engines
    for engine in engines:
        engine.dispose()
    _truncate(postgres_url)


def _hits(db: Session, query: str, **options) -> list[tuple[int, float]]:
    return [(hit.entry.id, round(hit.score, 9)) for hit in knowledge.search(db, query, **options)]


@pytest.mark.parametrize("pool", [200, 6])
def test_searches_find_what_fts5_finds_on_the_same_data(both, monkeypatch, pool) -> None:
    """The same ids in the same order with the same scores, for the bench's searches and typed titles, for a
    reader with a scope and one without, with the whole pool or a small one (the newest matches then
    matter)."""
    monkeypatch.setattr(knowledge, "POOL", pool)
    sqlite, postgres = both
    compared = 0
    with Session(sqlite) as lite, Session(postgres) as pg:
        titles = [t for (t,) in lite.execute(text("SELECT title FROM interaction_search_entry ORDER BY id LIMIT 12"))]
        for scope in (Scope(units=None), Scope(units=frozenset({"kim-long", "phu-vang"}))):
            for query in (*SEARCHES, *titles, "ho so", "d", "nghi dinh 101", "kl"):
                assert _hits(lite, query, scope=scope) == _hits(pg, query, scope=scope), query
                compared += 1
        for title in (*TITLES_TYPED[:6], *titles[:4]):
            for end in range(3, len(title) + 1, 3):
                options = {
                    "scope": Scope(units=frozenset({"kim-long"})),
                    "kind": SearchKind.question,
                    "answered_only": True,
                    "limit": 5,
                    "title_only": True,
                }
                assert _hits(lite, title[:end], **options) == _hits(pg, title[:end], **options), title[:end]
                compared += 1
    assert compared > 150


def test_a_prefix_stands_for_its_most_common_terms_only(host, kim_long, monkeypatch) -> None:
    _postgres_only(host)
    for n, title in enumerate(
        [
            "Mở rộng đường",
            "Mở lớp học",
            "Mở cửa hàng",
            "Mộc bản triều Nguyễn",
            "Mới về",
            "Mới nhận",
            "Mới đến",
            "Mời họp",
            "Móc nối",
        ]
    ):
        ask(host, kim_long, title=title, body=f"Nội dung {n}.", field="culture")
    with Session(host.app.state.engine) as db:
        every, _ = knowledge._vocabulary(db, [Group(postings.TITLE, (), "mo")])
        assert every == [{"mo": 3, "moc": 2, "moi": 4}]  # "mời" and "mới" fold alike
        monkeypatch.setattr(knowledge, "MAX_EXPANSIONS", 2)
        top, _ = knowledge._vocabulary(db, [Group(postings.TITLE, (), "mo")])
        assert top == [{"mo": 3, "moi": 4}]  # "moc" (2) is left out
        monkeypatch.setattr(knowledge, "EXPANSION_SCAN", 2)
        first, _ = knowledge._vocabulary(db, [Group(postings.TITLE, (), "mo")])
        assert first == [{"mo": 3, "moc": 2}]  # only the first two terms in order are looked at


def test_a_search_runs_a_bounded_number_of_statements(host, kim_long, phu_vang, tu_phap, monkeypatch) -> None:
    _postgres_only(host)
    monkeypatch.setattr(postings, "CHUNK", 2)
    monkeypatch.setattr(knowledge, "POOL", 3)
    engine = host.app.state.engine
    reader = Scope(units=frozenset({"kim-long"}))
    counts = []
    for batch in range(3):
        for n in range(6 * (batch + 1)):  # 6, then 18, then 36 matches, most hidden from Kim Long
            question = ask(
                host,
                phu_vang if n % 4 else kim_long,
                title=f"Hòa giải ở cơ sở lần {batch}.{n}",
                body="Tranh chấp ranh giới.",
                field="legal-aid",
            )
            answer(host, tu_phap, question["id"], "Hòa giải viên.")
        with Session(engine) as db:
            knowledge.knowledge_version(db)  # the connection is taken before counting
            with Statements(db.connection()) as counted:
                assert knowledge.search(db, "hoa giai co so", scope=reader, prefix_last=False)
        counts.append(counted.count)
    # the vocabulary; per window one read of the rarest word (and any cheap ones) and at most one per other
    # word; the filtered batches
    bound = 1 + knowledge.ROUNDS * 4 + knowledge.FILTER_ROUNDS
    assert all(count <= bound for count in counts), counts


def test_a_rare_word_among_common_ones_reads_only_the_chunks_of_its_candidates(host, kim_long, tu_phap,
                                                                                monkeypatch) -> None:
    """The common words' chunks are probed at the rare word's one entry instead of read whole."""
    _postgres_only(host)
    monkeypatch.setattr(postings, "CHUNK", 2)  # each common word: 12 chunks
    made = {}
    for n in range(24):
        extra = " cho homestay" if n == 5 else ""
        question = ask(host, kim_long, title=f"Thủ tục hành chính{extra} số {n}", body="Hồ sơ nộp trực tuyến.",
                       field="legal-aid")
        answer(host, tu_phap, question["id"], "Nộp tại bộ phận một cửa.")
        made[n] = question["id"]
    engine = host.app.state.engine
    with Session(engine) as db:
        knowledge.knowledge_version(db)  # the connection is taken before counting
        with Statements(db.connection(), (postings.POSTING_TABLE,)) as counted:
            hits = knowledge.search(db, "homestay thu tuc hanh chinh", scope=Scope(units=None), prefix_last=False)
        every = knowledge.search(db, "thu tuc hanh chinh", scope=Scope(units=None), prefix_last=False, limit=50)
    assert [hit.entry.ref_id for hit in hits] == [made[5]]
    assert counted.rows == 5  # homestay's chunk, then the one chunk holding its entry for each other word
    assert sorted(hit.entry.ref_id for hit in every) == sorted(made.values())  # read whole: every entry


def test_the_migration_fills_postings_from_the_old_index(monkeypatch) -> None:
    """A database at interaction_0003 with entries (their tsvectors written as the old code wrote them) gets the
    same posting lists from interaction_0004 as the mini-app writes; the old table is gone; down and up again
    keeps them."""
    if not PG_URL:
        pytest.skip("PostgreSQL (SUPERAPP_TEST_DATABASE_URL)")
    monkeypatch.setattr(postings, "CHUNK", 5)
    server = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"superapp_test_{uuid.uuid4().hex[:10]}"
    maintenance = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = (
        server.set(database=name)
        .render_as_string(hide_password=False)
        .replace("postgresql+psycopg://", "postgresql://", 1)
    )
    try:
        _migrate_and_load(url)
        city = City(url, scale=0.0003)
        city_interaction.load(city)
        city.engine.dispose()
        engine = make_engine(url)
        miniapps = discover(base_settings(database_url=url))
        with Session(engine) as db:
            written = _listed(db)
            assert written == _said(db)
        command.downgrade(alembic_config(engine, miniapps), "interaction_0003")
        with engine.begin() as connection:
            assert connection.execute(text("SELECT to_regclass('interaction_posting')")).scalar() is None
            # The tsvectors as the old code wrote them: the folded title and the folded text with its replies.
            with Session(bind=connection) as db:
                for question in db.exec(select(Question)):
                    replies = db.exec(select(Reply).where(Reply.question_id == question.id).order_by(Reply.id)).all()
                    entry = db.exec(select(SearchEntry).where(SearchEntry.ref_id == question.id)).one()
                    connection.execute(
                        text(
                            "UPDATE interaction_fts SET doc = setweight(to_tsvector('simple', :title), 'A') || "
                            "setweight(to_tsvector('simple', :body), 'B'), title_doc = to_tsvector('simple', :title) "
                            "WHERE entry_id = :id"
                        ),
                        {
                            "id": entry.id,
                            "title": fold(question.title),
                            "body": fold("\n".join([question.body, *(r.body for r in replies)])),
                        },
                    )
        upgrade(engine, miniapps)
        with Session(engine) as db:
            assert _listed(db) == written
            assert db.execute(text("SELECT to_regclass('interaction_fts')")).scalar() is None
            hits = knowledge.search(db, "dang ky khai sinh", scope=Scope(units=None))
            assert hits and all("khai sinh" in fold(hit.entry.title) for hit in hits[:3])
        engine.dispose()
    finally:
        with maintenance.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maintenance.dispose()
