"""A question, answer or escalation and its notice commit together or not at all (one transaction per use case)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.identity.models import utcnow
from miniapps.interaction import service
from miniapps.interaction.models import Question, Reply
from push.models import Notification
from tests.miniapps.interaction.conftest import API, ask


class NotifierDown(RuntimeError):
    """The failure the broken send raises."""


def _breaking(notifier):
    """A send that writes its rows and then fails, so a notice half-written must roll back with the change."""
    real = notifier.send

    def send(db, **fields):
        real(db, **fields)
        raise NotifierDown("the notifier failed after writing")

    return send


def _notices(engine, topic: str) -> list[Notification]:
    with Session(engine) as db:
        return list(db.exec(select(Notification).where(Notification.miniapp == "interaction",
                                                       Notification.topic == topic)))


def test_a_question_whose_notice_fails_is_not_stored_and_one_that_is_notified_is(
        host: TestClient, phu_vang, monkeypatch: pytest.MonkeyPatch) -> None:
    notifier, engine = host.app.state.notifier, host.app.state.engine
    real = notifier.send
    monkeypatch.setattr(notifier, "send", _breaking(notifier))
    failing = TestClient(host.app, raise_server_exceptions=False)
    refused = failing.post(f"{API}/questions", headers=phu_vang.headers, json={
        "title": "Thu hồi đất nông nghiệp làm đường", "body": "Xã có thẩm quyền không?", "field": "land"})
    assert refused.status_code == 500
    with Session(engine) as db:
        assert db.exec(select(Question)).all() == []
    assert _notices(engine, "question_asked") == []

    monkeypatch.setattr(notifier, "send", real)
    question = ask(host, phu_vang)
    [notice] = _notices(engine, "question_asked")
    assert notice.data["question_id"] == question["id"]


def test_an_answer_whose_notice_fails_rolls_back_with_it(host: TestClient, phu_vang, nnmt,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    question = ask(host, phu_vang)
    notifier, engine = host.app.state.notifier, host.app.state.engine
    monkeypatch.setattr(notifier, "send", _breaking(notifier))
    failing = TestClient(host.app, raise_server_exceptions=False)
    refused = failing.post(f"{API}/questions/{question['id']}/answers", headers=nnmt.headers, json={"body": "Được."})
    assert refused.status_code == 500
    with Session(engine) as db:
        assert db.exec(select(Reply)).all() == []
        assert db.get(Question, question["id"]).first_answered_at is None
    assert _notices(engine, "question_answered") == []


def test_an_escalation_whose_notice_fails_is_tried_again_and_then_commits_with_its_notice(
        host: TestClient, phu_vang) -> None:
    question = ask(host, phu_vang)
    notifier, engine = host.app.state.notifier, host.app.state.engine
    later = utcnow() + timedelta(days=30)
    with Session(engine, expire_on_commit=False) as db:
        row = db.get(Question, question["id"])
        with pytest.raises(NotifierDown):
            service.escalate_overdue(db, now=later, notifier=SimpleNamespace(send=_breaking(notifier)))
    with Session(engine) as db:
        assert db.get(Question, question["id"]).escalated_at is None  # the operators were not told: not escalated
    assert _notices(engine, "question_overdue") == []

    with Session(engine, expire_on_commit=False) as db:
        escalated = service.escalate_overdue(db, now=later, notifier=notifier)
    assert [q.id for q in escalated] == [question["id"]]
    with Session(engine) as db:
        assert db.get(Question, question["id"]).escalated_at is not None
    [notice] = _notices(engine, "question_overdue")
    assert notice.data["question_id"] == question["id"] and row is not None
    with Session(engine) as db:
        assert db.exec(select(Question).where(col(Question.escalated_at).is_not(None))).all()
