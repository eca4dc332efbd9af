"""Questions and their threads: asking, answering, commenting, settling, transferring, duplicates,
visibility, handbook articles, deadlines and response-time figures. No HTTP here; every function takes
the caller (``Principal``) and the host's ``Authorizer`` and checks the object itself."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, select

from miniapps.interaction import knowledge, notices, routing
from miniapps.interaction.attachments import MAX_FILES, CheckedFile
from miniapps.interaction.models import (
    Article,
    Attachment,
    Question,
    QuestionStatus,
    Reply,
    ReplyKind,
    Transfer,
    utcnow,
)
from plugins import CITY_ID, Authorizer, DomainError, FileBatch, OrgUnit, Principal, UnitKind, all_or_nothing

MINIAPP = "interaction"
READ = "interaction.questions.read"
ASK = "interaction.questions.ask"
ANSWER = "interaction.questions.answer"
TRANSFER = "interaction.questions.transfer"
CURATE = "interaction.questions.curate"
PUBLISH = "interaction.articles.publish"
FIELDS = "interaction.fields.manage"
TITLE_MAX, BODY_MAX, REPLY_MAX, NOTE_MAX, ARTICLE_MAX = 200, 5000, 10000, 1000, 20000
BOXES = ("all", "new", "overdue", "mine")
# The roles granted each permission (declared to the host by superapp_register_permissions; admins hold all).
PERMISSION_ROLES: dict[str, tuple[str, ...]] = {
    READ: ("commune_official", "department_official", "operator"),
    ASK: ("commune_official",),
    ANSWER: ("department_official",),
    TRANSFER: ("department_official", "operator"),
    CURATE: ("department_official", "operator"),
    PUBLISH: ("department_official",),
    FIELDS: (),
}


def declared_authorizer() -> Authorizer:
    """An Authorizer that knows this mini-app's permissions, for code outside a request (channels, search)."""
    from plugins.manifest import LocalizedText
    from plugins.registry import Permission

    authorizer = Authorizer(())
    for name, roles in PERMISSION_ROLES.items():
        authorizer.permissions[name] = Permission(name, LocalizedText(vi=name, en=name), roles, MINIAPP)
    return authorizer


def _text(value: str | None, name: str, limit: int, *, least: int = 1) -> str:
    cleaned = (value or "").strip()
    if len(cleaned) < least:
        raise DomainError(422, f"{name} must not be empty" if least == 1 else
                               f"{name} needs at least {least} characters", field=name)
    if len(cleaned) > limit:
        raise DomainError(422, f"{name} must be at most {limit} characters (got {len(cleaned)})", field=name)
    return cleaned


# --- Who may do what ------------------------------------------------------------------------------------


def is_public(question: Question) -> bool:
    """An answered question that is not internal: every commune and ward may read it."""
    return question.status in (QuestionStatus.answered, QuestionStatus.settled) and not question.internal


def may_see(principal: Principal, authorizer: Authorizer, question: Question) -> bool:
    """The asking unit, the responsible department, operators and admins; any official once it is public."""
    if not principal.is_authenticated:
        return False
    if authorizer.allows(principal, READ, question.asker_unit_id) or authorizer.allows(principal, READ, question.department_id):
        return True
    return is_public(question) and authorizer.allows(principal, READ)


def is_participant(principal: Principal, authorizer: Authorizer, question: Question) -> bool:
    """The asking unit's officials, the responsible department's, operators and admins take part in the thread."""
    return (authorizer.allows(principal, ASK, question.asker_unit_id)
            or authorizer.allows(principal, ANSWER, question.department_id)
            or bool({"operator", "admin"} & principal.roles))


def reading_scope(principal: Principal, authorizer: Authorizer) -> knowledge.Scope:
    """The search scope of a reader: everything for operators and admins, else public plus their units'."""
    units = authorizer.units_for(principal, READ)
    return knowledge.Scope(units=None if units is None else frozenset(units))


def _visible(session: Session, principal: Principal, authorizer: Authorizer, question_id: int) -> Question:
    question = session.get(Question, question_id)
    if question is None or not may_see(principal, authorizer, question):
        raise DomainError(404, f"no question {question_id} that you may see")
    return question


def get_question(session: Session, *, principal: Principal, authorizer: Authorizer, question_id: int) -> Question:
    """A question the caller may see (404 otherwise, so its existence is not revealed)."""
    return _visible(session, principal, authorizer, question_id)


def _ensure(allowed: bool, message: str, field: str | None = None) -> None:
    if not allowed:
        raise DomainError(403, message, field=field)


# --- Asking ---------------------------------------------------------------------------------------------


def _asking_unit(session: Session, principal: Principal, authorizer: Authorizer, unit_id: str | None) -> str:
    units = authorizer.units_for(principal, ASK)
    if unit_id is None:
        if units is None or len(units) != 1:
            raise DomainError(422, "say which commune or ward asks (unit_id)", field="unit_id")
        unit_id = next(iter(units))
    elif not authorizer.allows(principal, ASK, unit_id):
        raise DomainError(403, f"you may not ask for unit {unit_id!r}", field="unit_id")
    unit = session.get(OrgUnit, unit_id)
    if unit is None or unit.kind not in (UnitKind.ward, UnitKind.commune):
        raise DomainError(422, f"{unit_id!r} is not a commune or ward", field="unit_id")
    return unit_id


def ask(session: Session, *, principal: Principal, authorizer: Authorizer, media: Any, title: str, body: str,
        field_key: str, unit_id: str | None = None, files: Sequence[CheckedFile] = (), notifier: Any = None) -> Question:
    """Ask a question for a commune or ward; the field decides the department. One transaction, files and the
    department's notice included."""
    title = _text(title, "title", TITLE_MAX, least=5)
    body = _text(body, "body", BODY_MAX)
    if len(files) > MAX_FILES:
        raise DomainError(422, f"at most {MAX_FILES} attachments", field="files")
    asker_unit = _asking_unit(session, principal, authorizer, unit_id)
    department = routing.department_for(session, field_key)
    now = utcnow()
    question = Question(title=title, body=body, field_key=field_key, department_id=department,
                        asker_user_id=principal.user_id, asker_unit_id=asker_unit, created_at=now,
                        due_at=routing.first_answer_due(now), updated_at=now)
    session.add(question)
    session.flush()
    try:
        with all_or_nothing(media) as written:
            _store_files(session, written, question, files, principal)
            knowledge.index_question(session, question, replies=[])
            notices.question_asked(notifier, session, question)
            session.commit()
    except Exception:
        session.rollback()
        raise
    session.refresh(question)
    return question


def _store_files(session: Session, written: FileBatch, question: Question, files: Sequence[CheckedFile],
                 principal: Principal) -> list[str]:
    """Put the files in the media store (through ``written``) and their rows in the session; their keys."""
    keys = []
    for checked in files:
        key = written.put(f"{MINIAPP}/q{question.id}/{uuid.uuid4().hex}.{checked.extension}", checked.data,
                          checked.content_type)
        keys.append(key)
        session.add(Attachment(question_id=question.id, filename=checked.filename,  # type: ignore[arg-type]
                               content_type=checked.content_type, size=len(checked.data),
                               sha256=checked.sha256, storage_key=key, uploaded_by=principal.user_id))
    session.flush()
    return keys


def attach(session: Session, *, principal: Principal, authorizer: Authorizer, media: Any, question_id: int,
           files: Sequence[CheckedFile]) -> list[Attachment]:
    """Add files to a question (its thread's participants), all or none."""
    question = _visible(session, principal, authorizer, question_id)
    _ensure(is_participant(principal, authorizer, question), "only the asking unit and the department add files")
    existing = session.exec(select(func.count()).select_from(Attachment).where(Attachment.question_id == question.id)).one()
    if not files:
        raise DomainError(422, "send at least one file", field="files")
    if existing + len(files) > MAX_FILES:
        raise DomainError(422, f"a question holds at most {MAX_FILES} attachments", field="files")
    try:
        with all_or_nothing(media) as written:
            stored = _store_files(session, written, question, files, principal)
            session.commit()
    except Exception:
        session.rollback()
        raise
    return list(session.exec(select(Attachment).where(Attachment.storage_key.in_(stored)).order_by(Attachment.id)))  # type: ignore[attr-defined]


def get_attachment(session: Session, *, principal: Principal, authorizer: Authorizer, attachment_id: int) -> Attachment:
    """An attachment of a question the caller may see (404 otherwise)."""
    attachment = session.get(Attachment, attachment_id)
    if attachment is None:
        raise DomainError(404, f"no attachment {attachment_id}")
    _visible(session, principal, authorizer, attachment.question_id)
    return attachment


# --- The thread -----------------------------------------------------------------------------------------


def _author_unit(principal: Principal, authorizer: Authorizer, question: Question, kind: ReplyKind) -> str:
    """The unit a reply speaks for: the department for answers, else the side the author is on."""
    if kind is ReplyKind.answer:
        return question.department_id
    if "admin" not in principal.roles:
        if authorizer.allows(principal, ASK, question.asker_unit_id):
            return question.asker_unit_id
        if authorizer.allows(principal, ANSWER, question.department_id):
            return question.department_id
    return CITY_ID


def reply(session: Session, *, principal: Principal, authorizer: Authorizer, question_id: int, kind: ReplyKind,
          body: str, notifier: Any = None) -> tuple[Question, Reply]:
    """Post an answer (the responsible department) or a comment (the asking unit, the department, operators);
    the other side's notice is written in the same transaction."""
    question = _visible(session, principal, authorizer, question_id)
    body = _text(body, "body", REPLY_MAX)
    if kind is ReplyKind.answer:
        _ensure(authorizer.allows(principal, ANSWER, question.department_id),
                f"only {question.department_id} answers this question")
    else:
        _ensure(is_participant(principal, authorizer, question),
                "only the asking unit, the department and operators comment on this question")
    now = utcnow()
    posted = Reply(question_id=question.id, kind=kind, body=body, author_user_id=principal.user_id,  # type: ignore[arg-type]
                   author_name=principal.display_name or "—",
                   author_unit_id=_author_unit(principal, authorizer, question, kind), created_at=now)
    session.add(posted)
    if kind is ReplyKind.answer:
        if question.first_answered_at is None:
            question.first_answered_at = now
        if question.status is QuestionStatus.new:
            question.status = QuestionStatus.answered
        if question.assignee_user_id is None:
            question.assignee_user_id = principal.user_id
    question.updated_at = now
    session.add(question)
    session.flush()
    knowledge.index_question(session, question)
    try:
        notices.reply_posted(notifier, session, question, posted)
    except Exception:
        session.rollback()
        raise
    session.commit()
    session.refresh(posted)
    session.refresh(question)
    return question, posted


def _save(session: Session, question: Question) -> None:
    """Commit a changed question together with its search index entry (the index must never lag)."""
    session.add(question)
    knowledge.index_question(session, question)
    session.commit()
    session.refresh(question)


def accept(session: Session, *, principal: Principal, authorizer: Authorizer, question_id: int, reply_id: int) -> Question:
    """The asking unit marks the answer that settled its question."""
    question = _visible(session, principal, authorizer, question_id)
    _ensure(authorizer.allows(principal, ASK, question.asker_unit_id), "only the asking unit settles its question")
    chosen = session.get(Reply, reply_id)
    if chosen is None or chosen.question_id != question.id or chosen.kind is not ReplyKind.answer:
        raise DomainError(422, f"reply {reply_id} is not an answer to question {question_id}", field="reply_id")
    question.accepted_reply_id = chosen.id
    question.status = QuestionStatus.settled
    question.updated_at = utcnow()
    _save(session, question)
    return question


def transfer(session: Session, *, principal: Principal, authorizer: Authorizer, question_id: int,
             department_id: str, note: str, notifier: Any = None) -> tuple[Question, Transfer]:
    """Move a question to another department with a note: the department holding it, or an operator re-routing.
    The receiving department's and the asker's notices are written in the same transaction."""
    question = _visible(session, principal, authorizer, question_id)
    _ensure(authorizer.allows(principal, TRANSFER, question.department_id),
            "only the department holding the question, or an operator, moves it")
    note = _text(note, "note", NOTE_MAX)
    routing.check_department(session, department_id)
    if department_id == question.department_id:
        raise DomainError(422, f"the question is already with {department_id}", field="department_id")
    now = utcnow()
    moved = Transfer(question_id=question.id, from_department_id=question.department_id,  # type: ignore[arg-type]
                     to_department_id=department_id, note=note, by_user_id=principal.user_id, created_at=now)
    session.add(moved)
    question.department_id = department_id
    question.assignee_user_id = None
    if question.first_answered_at is None:
        # The new department gets its own three working days; the old escalation no longer applies.
        question.due_at = routing.first_answer_due(now)
        question.escalated_at = None
    question.updated_at = now
    try:
        notices.question_transferred(notifier, session, question, note)
    except Exception:
        session.rollback()
        raise
    _save(session, question)
    session.refresh(moved)
    return question, moved


def mark_duplicate(session: Session, *, principal: Principal, authorizer: Authorizer, question_id: int,
                   canonical_id: int) -> Question:
    """The department marks a question a duplicate of an earlier, answered one and links its answer."""
    question = _visible(session, principal, authorizer, question_id)
    _ensure(authorizer.allows(principal, CURATE, question.department_id),
            "only the responsible department, or an operator, marks duplicates")
    if canonical_id == question.id:
        raise DomainError(422, "a question cannot duplicate itself", field="canonical_id")
    canonical = session.get(Question, canonical_id)
    if canonical is None or not may_see(principal, authorizer, canonical):
        raise DomainError(422, f"no question {canonical_id} that you may see", field="canonical_id")
    if canonical.status not in (QuestionStatus.answered, QuestionStatus.settled) or canonical.duplicate_of_id:
        raise DomainError(422, f"question {canonical_id} has no answer to point to", field="canonical_id")
    # Everyone who reads this question sees the link to the original: it must be readable by them too.
    if not is_public(canonical) and canonical.asker_unit_id != question.asker_unit_id:
        raise DomainError(422, f"question {canonical_id} is internal to another unit; point to a public answer",
                               field="canonical_id")
    now = utcnow()
    question.status = QuestionStatus.duplicate
    question.duplicate_of_id = canonical.id
    if question.first_answered_at is None:
        question.first_answered_at = now  # pointing to an answer is answering
    question.updated_at = now
    _save(session, question)
    return question


def set_internal(session: Session, *, principal: Principal, authorizer: Authorizer, question_id: int,
                 internal: bool) -> Question:
    """The department keeps a question to the asking unit (internal) or opens it to every commune and ward."""
    question = _visible(session, principal, authorizer, question_id)
    _ensure(authorizer.allows(principal, CURATE, question.department_id),
            "only the responsible department, or an operator, changes who may read it")
    question.internal = internal
    question.updated_at = utcnow()
    _save(session, question)
    return question


@dataclass
class Thread:
    """A question with everything shown on its page."""

    question: Question
    replies: list[Reply]
    attachments: list[Attachment]
    transfers: list[Transfer]
    accepted: Reply | None
    canonical: Question | None
    units: dict[str, OrgUnit] = field(default_factory=dict)


def thread(session: Session, question: Question) -> Thread:
    """The question's replies (oldest first), attachments, transfers, accepted answer and canonical question."""
    replies = list(session.exec(select(Reply).where(Reply.question_id == question.id).order_by(Reply.id)))
    attachments = list(session.exec(select(Attachment).where(Attachment.question_id == question.id).order_by(Attachment.id)))
    transfers = list(session.exec(select(Transfer).where(Transfer.question_id == question.id).order_by(Transfer.id)))
    accepted = next((r for r in replies if r.id == question.accepted_reply_id), None)
    canonical = session.get(Question, question.duplicate_of_id) if question.duplicate_of_id else None
    wanted = {question.asker_unit_id, question.department_id, *(r.author_unit_id for r in replies),
              *(t.from_department_id for t in transfers), *(t.to_department_id for t in transfers)}
    units = {u.id: u for u in session.exec(select(OrgUnit).where(OrgUnit.id.in_(wanted)))}  # type: ignore[attr-defined]
    return Thread(question, replies, attachments, transfers, accepted, canonical, units)


# --- Lists, deadlines, figures --------------------------------------------------------------------------


def is_overdue(question: Question, now: datetime | None = None) -> bool:
    """No first answer yet and the deadline has passed."""
    return question.first_answered_at is None and question.due_at < (now or utcnow())


def inbox(session: Session, *, principal: Principal, authorizer: Authorizer, box: str = "all",
          department_id: str | None = None, unit_id: str | None = None, field_key: str | None = None,
          limit: int = 50, offset: int = 0, now: datetime | None = None) -> list[Question]:
    """The questions the caller works on: their department's, their unit's, or all for operators, filtered."""
    if box not in BOXES:
        raise DomainError(422, f"box must be one of {', '.join(BOXES)}", field="box")
    query = select(Question)
    answering = authorizer.units_for(principal, ANSWER)
    asking = authorizer.units_for(principal, ASK)
    reading = authorizer.units_for(principal, READ)
    if reading is not None:
        mine = [Question.department_id.in_(sorted(answering or ())),  # type: ignore[attr-defined]
                Question.asker_unit_id.in_(sorted(asking or ()))]  # type: ignore[attr-defined]
        query = query.where(or_(*mine))
    if department_id:
        query = query.where(Question.department_id == department_id)
    if unit_id:
        query = query.where(Question.asker_unit_id == unit_id)
    if field_key:
        query = query.where(Question.field_key == field_key)
    now = now or utcnow()
    if box == "new":
        query = query.where(Question.status == QuestionStatus.new)
    elif box == "overdue":
        query = query.where(Question.first_answered_at.is_(None), Question.due_at < now)  # type: ignore[union-attr,operator]
    elif box == "mine":
        query = query.where(or_(Question.assignee_user_id == principal.user_id,
                                Question.asker_user_id == principal.user_id))
    order = (Question.due_at.asc(),) if box == "overdue" else (Question.created_at.desc(),)  # type: ignore[attr-defined]
    return list(session.exec(query.order_by(*order, Question.id.desc()).offset(offset).limit(limit)))  # type: ignore[attr-defined]


def escalate_overdue(session: Session, now: datetime | None = None, limit: int = 500,
                     notifier: Any = None) -> list[Question]:
    """Mark newly overdue questions escalated (the oldest ``limit`` a run), each with its notice to operators and
    the department in the same transaction, and return them."""
    now = now or utcnow()
    overdue = list(session.exec(select(Question).where(
        Question.first_answered_at.is_(None), Question.due_at < now, Question.escalated_at.is_(None),  # type: ignore[union-attr,operator]
        Question.status == QuestionStatus.new).order_by(Question.due_at).limit(limit)))
    try:
        for question in overdue:
            question.escalated_at = now
            session.add(question)
            notices.question_overdue(notifier, session, question)
    except Exception:
        session.rollback()
        raise
    session.commit()
    return overdue


@dataclass
class DepartmentFigures:
    """Response times of one department: how many asked, answered, on time, and hours to a first answer."""

    department_id: str
    name_vi: str
    name_en: str
    asked: int = 0
    answered: int = 0
    answered_on_time: int = 0
    open_overdue: int = 0
    median_hours: float | None = None
    average_hours: float | None = None

    @property
    def on_time_rate(self) -> float | None:
        """Share of first answers given by the deadline."""
        return round(self.answered_on_time / self.answered, 3) if self.answered else None


def department_figures(session: Session, *, since: datetime | None = None, now: datetime | None = None) -> list[DepartmentFigures]:
    """Response-time figures per department (every department, even with no questions)."""
    now = now or utcnow()
    departments = session.exec(select(OrgUnit).where(OrgUnit.kind == UnitKind.department).order_by(OrgUnit.name_vi))
    figures = {d.id: DepartmentFigures(d.id, d.name_vi, d.name_en) for d in departments}
    query = select(Question.department_id, Question.created_at, Question.first_answered_at, Question.due_at)
    if since is not None:
        query = query.where(Question.created_at >= since)
    hours: dict[str, list[float]] = {}
    for department_id, created_at, answered_at, due_at in session.exec(query):
        row = figures.get(department_id)
        if row is None:
            continue
        row.asked += 1
        if answered_at is None:
            row.open_overdue += due_at < now
            continue
        row.answered += 1
        row.answered_on_time += answered_at <= due_at
        hours.setdefault(department_id, []).append((answered_at - created_at).total_seconds() / 3600)
    for department_id, spans in hours.items():
        figures[department_id].median_hours = round(statistics.median(spans), 1)
        figures[department_id].average_hours = round(statistics.fmean(spans), 1)
    return list(figures.values())


# --- Handbook -------------------------------------------------------------------------------------------


def publish_article(session: Session, *, principal: Principal, authorizer: Authorizer, title: str, body: str,
                    field_key: str, department_id: str | None = None) -> Article:
    """A department publishes a handbook article; it is searchable beside the answers at once."""
    title = _text(title, "title", TITLE_MAX, least=5)
    body = _text(body, "body", ARTICLE_MAX)
    units = authorizer.units_for(principal, PUBLISH)
    if department_id is None:
        departments = [u for u in (units or ()) if u != CITY_ID]
        if len(departments) != 1:
            raise DomainError(422, "say which department publishes (department_id)", field="department_id")
        department_id = departments[0]
    _ensure(authorizer.allows(principal, PUBLISH, department_id),
            f"you may not publish for {department_id!r}", field="department_id")
    routing.check_department(session, department_id)
    routing.department_for(session, field_key)
    article = Article(department_id=department_id, field_key=field_key, title=title, body=body,
                      author_user_id=principal.user_id)
    session.add(article)
    session.flush()
    knowledge.index_article(session, article)
    session.commit()
    session.refresh(article)
    return article


def get_article(session: Session, *, principal: Principal, authorizer: Authorizer, article_id: int) -> Article:
    """A handbook article: every official reads the handbook."""
    article = session.get(Article, article_id)
    if article is None or not authorizer.allows(principal, READ):
        raise DomainError(404, f"no article {article_id}")
    return article


def list_articles(session: Session, *, department_id: str | None = None, field_key: str | None = None,
                  limit: int = 50, offset: int = 0) -> list[Article]:
    """Handbook articles, newest first."""
    query = select(Article)
    if department_id:
        query = query.where(Article.department_id == department_id)
    if field_key:
        query = query.where(Article.field_key == field_key)
    return list(session.exec(query.order_by(Article.published_at.desc(), Article.id.desc()).offset(offset).limit(limit)))  # type: ignore[attr-defined]
