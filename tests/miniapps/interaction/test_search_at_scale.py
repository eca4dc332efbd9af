"""Search at city size: a bounded pool of candidates, results kept per version of the knowledge base,
and the synthetic city's questions written exactly as the mini-app indexes them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, select

from bench.city import interaction as city_interaction
from bench.city.base import SYNTHETIC, City
from core.text import fold
from miniapps.interaction import knowledge, postings
from miniapps.interaction.knowledge import Scope, knowledge_version, search
from miniapps.interaction.models import Question, QuestionStatus, Reply, SearchEntry
from tests.miniapps.interaction.conftest import API, Statements, answer, ask

SEARCH_TABLES = ("interaction_search", knowledge.FTS_TABLE, postings.POSTING_TABLE, postings.TERM_TABLE)


def _search_ids(host, who, q: str) -> list[int]:
    response = host.get(f"{API}/search", params={"q": q}, headers=who.headers)
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def test_a_repeated_search_reads_only_the_version_token(host, kim_long, tu_phap) -> None:
    question = ask(host, kim_long, title="Ghi chú ly hôn ở nước ngoài", body="Bản án của tòa Nhật Bản.",
                   field="civil-status")
    answer(host, tu_phap, question["id"], "Ghi chú vào sổ hộ tịch trước.")
    engine = host.app.state.engine
    kept = knowledge.results_cache(host.app.state.host)
    with Session(engine) as db:
        first = search(db, "ghi chu ly hon", scope=Scope(units=None), kept=kept)
        with Statements(db.connection()) as counter:
            again = search(db, "ghi chu ly hon", scope=Scope(units=None), kept=kept)
    assert [h.entry.ref_id for h in again] == [h.entry.ref_id for h in first] == [question["id"]]
    assert counter.count == 1  # the token; no full-text query


def test_a_new_answer_changes_the_token_and_is_found_at_once(host, kim_long, phu_vang, tu_phap) -> None:
    older = ask(host, kim_long, title="Trích lục khai sinh bản sao", body="Người dân ở xa.", field="civil-status")
    answer(host, tu_phap, older["id"], "Cấp trích lục qua dịch vụ công.")
    assert _search_ids(host, phu_vang, "trich luc khai sinh") == [older["id"]]
    with Session(host.app.state.engine) as db:
        before = knowledge_version(db)
    newer = ask(host, kim_long, title="Trích lục khai sinh cho người cao tuổi", body="Không đi lại được.",
                field="civil-status")
    answer(host, tu_phap, newer["id"], "Ủy quyền cho người thân.")
    with Session(host.app.state.engine) as db:
        assert knowledge_version(db) != before
    assert set(_search_ids(host, phu_vang, "trich luc khai sinh")) == {older["id"], newer["id"]}


def test_readers_with_different_scopes_do_not_share_kept_results(host, kim_long, phu_vang, tu_phap) -> None:
    internal = ask(host, kim_long, title="Hồ sơ nội bộ về giám hộ", body="Chỉ phường biết.", field="civil-status")
    answer(host, tu_phap, internal["id"], "Trả lời nội bộ.")
    hidden = host.put(f"{API}/questions/{internal['id']}/visibility", json={"internal": True}, headers=tu_phap.headers)
    assert hidden.status_code == 200, hidden.text
    assert _search_ids(host, kim_long, "ho so noi bo giam ho") == [internal["id"]]
    assert internal["id"] not in _search_ids(host, phu_vang, "ho so noi bo giam ho")


def test_only_the_newest_pool_of_matches_is_ranked(host, kim_long, tu_phap, monkeypatch) -> None:
    made = []
    for n in range(5):
        question = ask(host, kim_long, title=f"Đăng ký giám hộ trường hợp {n}", body="Người chưa thành niên.",
                       field="civil-status")
        answer(host, tu_phap, question["id"], "Theo Luật Hộ tịch.")
        made.append(question["id"])
    monkeypatch.setattr(knowledge, "POOL", 3)
    with Session(host.app.state.engine) as db:
        knowledge.bump_version(db)  # forget what earlier searches kept
        db.commit()
        ranked = search(db, "dang ky giam ho", scope=Scope(units=None), limit=3)
    assert sorted(h.entry.ref_id for h in ranked) == sorted(made[-3:])


@pytest.mark.parametrize("scale", [0.0005])
def test_the_city_loader_writes_what_the_mini_app_would_index(host, scale) -> None:
    engine = host.app.state.engine
    city = City(str(engine.url.render_as_string(hide_password=False)), scale=scale)
    with Session(engine) as db:
        before = knowledge_version(db)
    rows = city_interaction.load(city)
    city.engine.dispose()
    wanted = round(city_interaction.QUESTIONS * scale)
    index = postings.ENTRY_TERMS_TABLE if engine.dialect.name == "postgresql" else knowledge.FTS_TABLE
    assert rows["interaction_question"] == rows["interaction_search_entry"] == rows[index] == wanted
    with Session(engine) as db:
        assert knowledge_version(db) != before
        questions = db.exec(select(Question)).all()
        assert {q.status for q in questions} <= {QuestionStatus.answered, QuestionStatus.settled}
        assert all(q.title.startswith(SYNTHETIC) and q.body.startswith(SYNTHETIC) for q in questions)
        settled = next(q for q in questions if q.status is QuestionStatus.settled)
        assert db.get(Reply, settled.accepted_reply_id).question_id == settled.id
        assert db.exec(select(func.count()).select_from(Reply)).one() == rows["interaction_reply"] >= wanted
        # Re-indexing a loaded question through the mini-app gives the same entry and full text.
        sample = questions[len(questions) // 2]
        entry = db.exec(select(SearchEntry).where(SearchEntry.ref_id == sample.id)).one()
        stored = (entry.title, entry.snippet, entry.public, entry.answered, _full_text(db, entry.id))
        knowledge.index_question(db, sample)
        db.flush()
        db.refresh(entry)
        assert (entry.title, entry.snippet, entry.public, entry.answered, _full_text(db, entry.id)) == stored
        db.rollback()
        hits = search(db, fold(sample.title.removeprefix(SYNTHETIC)), scope=Scope(units=None), limit=50)
    assert sample.id in [hit.entry.ref_id for hit in hits]


def _full_text(db: Session, entry_id: int) -> tuple:
    if db.get_bind().dialect.name == "sqlite":
        return tuple(db.execute(text(f"SELECT title, body FROM {knowledge.FTS_TABLE} WHERE rowid = :id"),
                                {"id": entry_id}).one())
    return tuple(db.execute(text(f"SELECT title, terms FROM {postings.ENTRY_TERMS_TABLE} WHERE entry_id = :id"),
                            {"id": entry_id}).one())


def test_a_kept_search_through_the_api_reads_nothing(host, kim_long, tu_phap, monkeypatch) -> None:
    clock = knowledge.time.monotonic()
    monkeypatch.setattr(knowledge.time, "monotonic", lambda: clock)  # a slow machine must not reach the recheck
    question = ask(host, kim_long, title="Cấp lại giấy khai sinh bị mất", body="Bản chính đã thất lạc.",
                   field="civil-status")
    answer(host, tu_phap, question["id"], "Cấp bản sao trích lục từ sổ hộ tịch.")
    assert _search_ids(host, kim_long, "cap lai giay khai sinh") == [question["id"]]
    suggested = host.get(f"{API}/suggestions", params={"q": "cap lai giay"}, headers=kim_long.headers).json()
    assert suggested[0]["id"] == question["id"]
    with Statements(host.app.state.engine, SEARCH_TABLES) as counted:
        assert _search_ids(host, kim_long, "cap lai giay khai sinh") == [question["id"]]
        again = host.get(f"{API}/suggestions", params={"q": "cap lai giay"}, headers=kim_long.headers).json()
    assert again == suggested
    assert counted.count == 0  # neither the token nor the index: this worker wrote nothing since it last read


def test_another_workers_answer_is_found_once_the_token_is_read_again(host, kim_long, tu_phap, monkeypatch) -> None:
    older = ask(host, kim_long, title="Đổi tên trong giấy khai sinh", body="Tên hay bị gọi nhầm.", field="civil-status")
    answer(host, tu_phap, older["id"], "Thủ tục thay đổi hộ tịch tại UBND cấp xã.")
    assert _search_ids(host, kim_long, "doi ten giay khai sinh") == [older["id"]]
    # Another worker's write: the token changes in the database, not through this process's sessions.
    with host.app.state.engine.begin() as connection:
        connection.execute(text(f"UPDATE {knowledge.SearchVersion.__tablename__} SET version = version + 1"))
        knowledge_row = connection.execute(text(f"SELECT version FROM {knowledge.SearchVersion.__tablename__}")).scalar()
    slot = host.app.state.host.state(knowledge.MINIAPP)
    assert slot.version != knowledge_row  # this worker has not read it yet: kept answers stand meanwhile
    clock = knowledge.time.monotonic() + knowledge.VERSION_RECHECK_SECONDS + 1
    monkeypatch.setattr(knowledge.time, "monotonic", lambda: clock)
    with Statements(host.app.state.engine, SEARCH_TABLES) as counted:
        assert _search_ids(host, kim_long, "doi ten giay khai sinh") == [older["id"]]
    assert slot.version == knowledge_row and counted.count >= 2  # the token read, then the search computed again
