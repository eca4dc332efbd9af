"""Telling people: notifications through the host's notifier, live thread events over /ws.

Notifications are written in the use case's own transaction (``notifier.send(session, ...)``, called by
the service before it commits): the question, answer, move or escalation and its notice commit together
or not at all. Live thread events are published after the commit (FastAPI background tasks in the
routes); a failed live event is logged, and an open page catches up when it reloads.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from miniapps.interaction.models import Question, Reply

log = logging.getLogger(__name__)
MINIAPP = "interaction"


def channel(question_id: int) -> str:
    """The realtime channel of one question's thread."""
    return f"miniapp:{MINIAPP}:question:{question_id}"


def thread_url(question_id: int) -> str:
    """The page of one question's thread."""
    return f"/m/{MINIAPP}/questions/{question_id}"


def reply_event(reply: Reply) -> dict[str, Any]:
    """What subscribers of the thread receive for a new answer or comment."""
    return {"type": "reply", "question_id": reply.question_id, "reply": {
        "id": reply.id, "kind": reply.kind.value, "body": reply.body, "author_name": reply.author_name,
        "author_unit_id": reply.author_unit_id, "created_at": reply.created_at.isoformat(),
    }}


def status_event(question: Question) -> dict[str, Any]:
    """What subscribers receive when the question's state changes (settled, moved, duplicate)."""
    return {"type": "status", "question_id": question.id, "status": question.status.value,
            "department_id": question.department_id, "accepted_reply_id": question.accepted_reply_id,
            "duplicate_of_id": question.duplicate_of_id}


async def publish(realtime: Any, question_id: int, event: dict[str, Any]) -> None:
    """Send ``event`` to everyone watching the thread."""
    try:
        await realtime.publish(channel(question_id), event)
    except Exception:
        log.exception("interaction: live event for question %s not published", question_id)


async def readers_changed(realtime: Any, question_id: int) -> None:
    """Who may read the question changed (moved, made internal or public, marked duplicate): everyone
    watching its thread is checked again with ``live.may_watch`` before the next event reaches them.

    Runs before the status event of the same change, so that event already goes only to those who may
    still read the thread.
    """
    try:
        await realtime.rights_changed(channel(question_id))
    except Exception:
        log.exception("interaction: watchers of question %s not checked again", question_id)


def notify(notifier: Any, db: Session, *, topic: str, title: dict[str, str], body: dict[str, str],
           question_id: int, users: tuple[int, ...] = (), roles: tuple[tuple[str, str], ...] = ()) -> None:
    """One notification about a question, to users and officials holding roles in units, in ``db``'s transaction.

    A failure raises, so the caller's transaction rolls back with it: nothing is half done.
    """
    users = tuple(u for u in users if u is not None)
    if notifier is None or not (users or roles):
        return
    notifier.send(db, miniapp=MINIAPP, topic=topic, title=title, body=body, users=users, roles=roles,
                  url=thread_url(question_id), data={"question_id": question_id})


def _short(text: str, limit: int = 180) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def question_asked(notifier: Any, db: Session, question: Question) -> None:
    """The responsible department's officials hear of a new question."""
    notify(notifier, db, topic="question_asked", question_id=question.id,  # type: ignore[arg-type]
                 title={"vi": "Câu hỏi mới từ phường, xã", "en": "A new question from a commune"},
                 body={"vi": _short(question.title), "en": _short(question.title)},
                 roles=(("department_official", question.department_id),))


def reply_posted(notifier: Any, db: Session, question: Question, reply: Reply) -> None:
    """An answer goes to the asker; a comment to the other side of the thread."""
    from_department = reply.author_unit_id == question.department_id
    if reply.kind.value == "answer":
        notify(notifier, db, topic="question_answered", question_id=question.id,  # type: ignore[arg-type]
                     title={"vi": "Sở đã trả lời câu hỏi của bạn", "en": "Your question has an answer"},
                     body={"vi": _short(question.title), "en": _short(question.title)},
                     users=(question.asker_user_id,) if question.asker_user_id else (),
                     roles=() if question.asker_user_id else (("commune_official", question.asker_unit_id),))
        return
    if from_department:
        users: tuple[int, ...] = (question.asker_user_id,) if question.asker_user_id else ()
        roles: tuple[tuple[str, str], ...] = () if users else (("commune_official", question.asker_unit_id),)
    else:
        users = (question.assignee_user_id,) if question.assignee_user_id else ()
        roles = () if users else (("department_official", question.department_id),)
    users = tuple(u for u in users if u != reply.author_user_id)
    notify(notifier, db, topic="question_comment", question_id=question.id,  # type: ignore[arg-type]
                 title={"vi": "Trao đổi mới về câu hỏi", "en": "A new comment on a question"},
                 body={"vi": _short(question.title), "en": _short(question.title)}, users=users, roles=roles)


def question_transferred(notifier: Any, db: Session, question: Question, note: str) -> None:
    """The receiving department, and the asker, hear of a move."""
    notify(notifier, db, topic="question_transferred", question_id=question.id,  # type: ignore[arg-type]
                 title={"vi": "Câu hỏi được chuyển tới sở", "en": "A question was transferred to your department"},
                 body={"vi": _short(f"{question.title} — {note}"), "en": _short(f"{question.title} — {note}")},
                 roles=(("department_official", question.department_id),))
    notify(notifier, db, topic="question_transferred", question_id=question.id,  # type: ignore[arg-type]
                 title={"vi": "Câu hỏi của bạn được chuyển sở khác", "en": "Your question moved to another department"},
                 body={"vi": _short(question.title), "en": _short(question.title)},
                 users=(question.asker_user_id,) if question.asker_user_id else ())


def question_overdue(notifier: Any, db: Session, question: Question) -> None:
    """Operators and the department hear that a first answer is late."""
    notify(notifier, db, topic="question_overdue", question_id=question.id,  # type: ignore[arg-type]
                 title={"vi": "Câu hỏi quá hạn trả lời", "en": "A question is overdue"},
                 body={"vi": _short(question.title), "en": _short(question.title)},
                 roles=(("operator", "hue"), ("department_official", question.department_id)))
