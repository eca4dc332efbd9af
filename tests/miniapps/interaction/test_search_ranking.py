"""Ranking the pool without bm25/ts_rank, and the steps that find the pool at a million entries."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from miniapps.interaction import knowledge, postings
from miniapps.interaction.knowledge import Scope, relevance, search
from tests.miniapps.interaction.conftest import API, answer, ask


def test_a_title_with_every_word_side_by_side_ranks_first() -> None:
    words = ["dang", "ky", "ho", "tich"]
    every_word_in_order = relevance(words, "Đăng ký hộ tịch cho trẻ", prefix_last=False, recency=0.0)
    every_word_scattered = relevance(words, "Hộ tịch: đăng ký lại", prefix_last=False, recency=0.0)
    half_the_words = relevance(words, "Đăng ký kết hôn có yếu tố nước ngoài", prefix_last=False, recency=1.0)
    assert every_word_in_order > every_word_scattered > half_the_words
    assert all(0 <= score < 1 for score in (every_word_in_order, every_word_scattered, half_the_words))


def test_the_last_word_is_a_prefix_only_when_asked_and_common_syllables_weigh_less() -> None:
    typed = relevance(["ket", "h"], "Đăng ký kết hôn", prefix_last=True, recency=0.0)
    assert typed > relevance(["ket", "h"], "Đăng ký kết hôn", prefix_last=False, recency=0.0)
    meaningful = relevance(["thu", "tuc", "cua", "xa"], "Thủ tục cấp xã", prefix_last=False, recency=0.0)
    stopword_only = relevance(["thu", "tuc", "cua", "xa"], "Của ai?", prefix_last=False, recency=0.0)
    assert meaningful > 0.5 > stopword_only


def test_recency_only_breaks_ties() -> None:
    older_but_complete = relevance(["giam", "ho"], "Giám hộ người chưa thành niên", prefix_last=False, recency=0.0)
    newest_but_partial = relevance(["giam", "ho"], "Hộ nghèo", prefix_last=False, recency=1.0)
    assert older_but_complete > newest_but_partial
    assert (relevance(["giam", "ho"], "Giám hộ", prefix_last=False, recency=1.0)
            > relevance(["giam", "ho"], "Giám hộ", prefix_last=False, recency=0.0))


def test_a_long_last_word_is_matched_whole_in_the_text_and_as_a_prefix_in_titles(host, kim_long, tu_phap) -> None:
    question = ask(host, kim_long, title="Hỏi về thủ tục hành chính", body="Giấy phép kinh doanh vận tải.",
                   field="civil-status")
    answer(host, tu_phap, question["id"], "Nộp tại trung tâm phục vụ hành chính công.")

    def found(q: str) -> bool:
        response = host.get(f"{API}/search", params={"q": q}, headers=kim_long.headers)
        assert response.status_code == 200, response.text
        return question["id"] in [hit["id"] for hit in response.json()["results"]]

    assert found("giay phep kinh doanh")
    assert found("giay phep kinh doa")  # three letters: FTS5's prefix index answers it
    assert not found("giay phep kinh doan")  # a longer unfinished word in the text is not expanded
    typed = host.get(f"{API}/suggestions", params={"q": "thu tuc hanh chin"}, headers=kim_long.headers)
    assert question["id"] in [hit["id"] for hit in typed.json()]  # titles keep it a prefix at any length


@pytest.mark.parametrize("rounds", [1, 6], ids=["one-window", "widening-windows"])
def test_the_pool_is_the_newest_visible_matches_whichever_step_finds_them(
        host, kim_long, phu_vang, tu_phap, monkeypatch, rounds) -> None:
    monkeypatch.setattr(postings, "CHUNK", 2)  # PostgreSQL: posting lists of many chunks, split as they fill
    made = []
    for n in range(9):
        title = f"Đăng ký giám hộ trường hợp {n}" if n % 3 == 0 else f"Chứng thực bản sao số {n}"
        question = ask(host, phu_vang if n == 6 else kim_long, title=title, body="Theo Luật Hộ tịch.",
                       field="civil-status")
        answer(host, tu_phap, question["id"], "Được.")
        if n == 6:  # another commune's question, made internal: Kim Long must not see it
            hidden = host.put(f"{API}/questions/{question['id']}/visibility", json={"internal": True},
                              headers=tu_phap.headers)
            assert hidden.status_code == 200, hidden.text
        made.append((n, question["id"]))
    monkeypatch.setattr(knowledge, "ROUNDS", rounds)  # PostgreSQL: the last window reads all the rest
    monkeypatch.setattr(knowledge, "POOL", 2)
    with Session(host.app.state.engine) as db:
        knowledge.bump_version(db)  # forget what earlier searches kept
        db.commit()
        reader = Scope(units=frozenset({"kim-long"}))
        ranked = search(db, "dang ky giam ho", scope=reader, limit=2, prefix_last=False)
    visible_matches = [qid for n, qid in made if n % 3 == 0 and n != 6]
    assert sorted(hit.entry.ref_id for hit in ranked) == sorted(visible_matches[-2:])
