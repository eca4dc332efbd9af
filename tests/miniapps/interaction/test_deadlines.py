"""First-answer deadlines in working days, overdue flags and the escalation job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from core.worktime import HUE_TIME
from miniapps.interaction.jobs import escalate_overdue
from miniapps.interaction.models import Question
from miniapps.interaction.routing import FIRST_ANSWER_WORKING_DAYS, first_answer_due
from tests.inbox import inbox_of
from tests.miniapps.interaction.conftest import API, answer, ask


def _hue(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=HUE_TIME)  # 23 November 2026 is a Monday


def test_three_working_days_skip_the_weekend() -> None:
    assert FIRST_ANSWER_WORKING_DAYS == 3
    assert first_answer_due(_hue(23)) == _hue(26)  # Monday -> Thursday
    assert first_answer_due(_hue(27)).astimezone(HUE_TIME).date().isoformat() == "2026-12-02"  # Friday -> Wednesday
    assert first_answer_due(_hue(28)).astimezone(HUE_TIME).date().isoformat() == "2026-12-02"  # Saturday -> Wednesday
    late_friday = datetime(2026, 11, 27, 20, tzinfo=UTC)  # already Saturday 03:00 in Hue
    assert first_answer_due(late_friday).astimezone(HUE_TIME).date().isoformat() == "2026-12-02"
    assert first_answer_due(late_friday).tzinfo == UTC


def _make_overdue(host, question_id: int) -> None:
    with Session(host.app.state.engine) as db:
        question = db.get(Question, question_id)
        question.due_at = datetime.now(UTC) - timedelta(hours=1)
        db.add(question)
        db.commit()


def test_overdue_questions_are_flagged_and_escalated_once(host, phu_vang, nnmt, operator) -> None:
    late = ask(host, phu_vang, title="Câu hỏi quá hạn về đất đai")
    on_time = ask(host, phu_vang, title="Câu hỏi còn hạn")
    answered_late = ask(host, phu_vang, title="Câu hỏi quá hạn nhưng đã trả lời")
    _make_overdue(host, late["id"])
    _make_overdue(host, answered_late["id"])
    answer(host, nnmt, answered_late["id"])
    overdue = host.get(f"{API}/questions", params={"box": "overdue"}, headers=nnmt.headers).json()
    assert [(q["id"], q["overdue"]) for q in overdue] == [(late["id"], True)]
    assert host.get(f"{API}/questions/{on_time['id']}", headers=nnmt.headers).json()["overdue"] is False

    assert host.portal.call(escalate_overdue, host.app.state.host) == 1
    assert host.portal.call(escalate_overdue, host.app.state.host) == 0  # once per question
    with Session(host.app.state.engine) as db:
        assert db.get(Question, late["id"]).escalated_at is not None
        told = {user_id for user_id in (operator.user_id, nnmt.user_id)
                if any(n.topic == "question_overdue" for n in inbox_of(db, user_id, miniapp="interaction"))}
    assert told == {operator.user_id, nnmt.user_id}
