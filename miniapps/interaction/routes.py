"""The interaction JSON API, under /api/miniapps/interaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import TypeAdapter

from miniapps.interaction import knowledge, notices, routing, service
from miniapps.interaction.attachments import (
    MAX_BYTES,
    MAX_FILES,
    AttachmentRejected,
    CheckedFile,
    check_file,
)
from miniapps.interaction.models import (
    Article,
    Attachment,
    Question,
    ReplyKind,
    SearchKind,
)
from miniapps.interaction.schemas import (
    AcceptBody,
    ArticleCreate,
    ArticlePublic,
    AttachmentPublic,
    DepartmentFiguresPublic,
    DuplicateBody,
    FieldPublic,
    FieldUpdate,
    QuestionCreate,
    QuestionPublic,
    QuestionSummary,
    ReplyCreate,
    ReplyPublic,
    SearchHit,
    SearchPage,
    TransferBody,
    TransferPublic,
    VisibilityBody,
)
from plugins import CurrentUser, DomainError, SessionDep, allow_uploads, fold, host_of, require_permission

api = APIRouter()
API = "/api/miniapps/interaction"
# A signed-in caller may send MAX_FILES files of MAX_BYTES; everyone else is held to the host's body limit.
ATTACHMENT_UPLOADS = allow_uploads(files=MAX_FILES, each=MAX_BYTES)
SUGGESTIONS = 5


# --- Serialising ----------------------------------------------------------------------------------------


def summary(question: Question) -> QuestionSummary:
    """A question as lists show it."""
    return QuestionSummary(
        id=question.id, title=question.title, field=question.field_key, department_id=question.department_id,  # type: ignore[arg-type]
        asker_unit_id=question.asker_unit_id, status=question.status, internal=question.internal,
        created_at=question.created_at, due_at=question.due_at, first_answered_at=question.first_answered_at,
        overdue=service.is_overdue(question), url=notices.thread_url(question.id),  # type: ignore[arg-type]
    )


def attachment_public(attachment: Attachment) -> AttachmentPublic:
    """An attachment with the URL that serves it."""
    return AttachmentPublic(id=attachment.id, filename=attachment.filename, content_type=attachment.content_type,  # type: ignore[arg-type]
                            size=attachment.size, url=f"{API}/attachments/{attachment.id}")


def full(thread: service.Thread) -> QuestionPublic:
    """A question with its thread; the accepted answer first among the answers."""
    question = thread.question
    replies = [ReplyPublic(id=r.id, kind=r.kind, body=r.body, author_name=r.author_name,  # type: ignore[arg-type]
                           author_unit_id=r.author_unit_id, created_at=r.created_at,
                           accepted=r.id == question.accepted_reply_id) for r in thread.replies]
    answers = sorted((r for r in replies if r.kind is ReplyKind.answer), key=lambda r: (not r.accepted, r.id))
    return QuestionPublic(
        **summary(question).model_dump(), body=question.body, accepted_reply_id=question.accepted_reply_id,
        duplicate_of_id=question.duplicate_of_id, answers=answers, thread=replies,
        attachments=[attachment_public(a) for a in thread.attachments],
        transfers=[TransferPublic(from_department_id=t.from_department_id, to_department_id=t.to_department_id,
                                  note=t.note, created_at=t.created_at) for t in thread.transfers],
    )


def article_public(article: Article) -> ArticlePublic:
    """A handbook article."""
    return ArticlePublic(id=article.id, department_id=article.department_id, field=article.field_key,  # type: ignore[arg-type]
                         title=article.title, body=article.body, published_at=article.published_at,
                         url=f"/m/interaction/handbook/{article.id}")


def hit_url(kind: SearchKind, ref_id: int) -> str:
    """Where a search hit opens."""
    return notices.thread_url(ref_id) if kind is SearchKind.question else f"/m/interaction/handbook/{ref_id}"


def search_hits(hits: list[knowledge.Hit]) -> list[SearchHit]:
    """Search entries as the API returns them."""
    return [SearchHit(kind=h.entry.kind, id=h.entry.ref_id, title=h.entry.title, snippet=h.entry.snippet,
                      field=h.entry.field_key, department_id=h.entry.department_id, answered=h.entry.answered,
                      score=round(h.score, 4), url=hit_url(h.entry.kind, h.entry.ref_id)) for h in hits]


def read_uploads(uploads: list[UploadFile]) -> list[CheckedFile]:
    """Check every uploaded file from its bytes before anything is saved (all or nothing)."""
    if len(uploads) > MAX_FILES:
        raise DomainError(422, f"at most {MAX_FILES} attachments", field="files")
    checked = []
    for index, upload in enumerate(uploads):
        data = upload.file.read(MAX_BYTES + 1)
        try:
            checked.append(check_file(upload.filename or "", data))
        except AttachmentRejected as exc:
            exc.field = f"files.{index}"  # the service's refusal, naming which file
            raise
    return checked


# --- Routing table --------------------------------------------------------------------------------------


@api.get("/fields", operation_id="list_fields", dependencies=[require_permission(service.READ)])
def list_fields(db: SessionDep) -> list[FieldPublic]:
    """The fields questions are asked in, each with the department that answers for it."""
    return [FieldPublic(**f.model_dump(include={"key", "name_vi", "name_en", "department_id"}))
            for f in routing.list_fields(db)]


@api.put("/fields/{key}", operation_id="set_field", dependencies=[require_permission(service.FIELDS)])
def set_field(key: str, body: FieldUpdate, db: SessionDep) -> FieldPublic:
    """Create or change a field's department (admins). Questions already asked stay where they are."""
    row = routing.set_field(db, key=key, name_vi=body.name_vi, name_en=body.name_en,
                            department_id=body.department_id)
    return FieldPublic(key=row.key, name_vi=row.name_vi, name_en=row.name_en, department_id=row.department_id)


# --- Questions ------------------------------------------------------------------------------------------


@api.get("/questions", operation_id="list_questions", dependencies=[require_permission(service.READ)])
def list_questions(request: Request, principal: CurrentUser, db: SessionDep,
                   box: Annotated[str, Query(description="all, new, overdue or mine")] = "all",
                   department_id: str | None = None, unit_id: str | None = None, field: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0)] = 0) -> list[QuestionSummary]:
    """The caller's working list: their department's inbox, their unit's questions, or all for operators."""
    questions = service.inbox(db, principal=principal, authorizer=host_of(request).authorizer, box=box,
                              department_id=department_id, unit_id=unit_id, field_key=field, limit=limit,
                              offset=offset)
    return [summary(q) for q in questions]


@api.post("/questions", status_code=201, operation_id="ask_question", dependencies=[require_permission(service.ASK)])
def ask_question(request: Request, body: QuestionCreate, principal: CurrentUser, db: SessionDep) -> QuestionPublic:
    """Ask a department: the field decides which one. Attach files afterwards with POST .../attachments."""
    question = service.ask(db, principal=principal, authorizer=host_of(request).authorizer,
                           media=host_of(request).media, title=body.title, body=body.body,
                           field_key=body.field, unit_id=body.unit_id, notifier=host_of(request).notifier)
    return full(service.thread(db, question))


@api.get("/questions/{question_id}", operation_id="get_question", dependencies=[require_permission(service.READ)])
def get_question(request: Request, question_id: int, principal: CurrentUser, db: SessionDep) -> QuestionPublic:
    """A question and its thread (404 when the caller may not see it)."""
    question = service.get_question(db, principal=principal, authorizer=host_of(request).authorizer,
                                    question_id=question_id)
    return full(service.thread(db, question))


def _post_reply(request: Request, question_id: int, kind: ReplyKind, body: str, principal, db,
                background: BackgroundTasks) -> ReplyPublic:
    question, posted = service.reply(db, principal=principal, authorizer=host_of(request).authorizer,
                                     question_id=question_id, kind=kind, body=body,
                                     notifier=host_of(request).notifier)
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.reply_event(posted))
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return ReplyPublic(id=posted.id, kind=posted.kind, body=posted.body, author_name=posted.author_name,  # type: ignore[arg-type]
                       author_unit_id=posted.author_unit_id, created_at=posted.created_at)


@api.post("/questions/{question_id}/answers", status_code=201, operation_id="answer_question",
          dependencies=[require_permission(service.ANSWER)])
def answer_question(request: Request, question_id: int, body: ReplyCreate, principal: CurrentUser, db: SessionDep,
                    background: BackgroundTasks) -> ReplyPublic:
    """The responsible department answers; the asker is notified and open pages show it at once."""
    return _post_reply(request, question_id, ReplyKind.answer, body.body, principal, db, background)


@api.post("/questions/{question_id}/comments", status_code=201, operation_id="comment_on_question",
          dependencies=[require_permission(service.READ)])
def comment_on_question(request: Request, question_id: int, body: ReplyCreate, principal: CurrentUser,
                        db: SessionDep, background: BackgroundTasks) -> ReplyPublic:
    """A follow-up from the asking unit, the department or an operator."""
    return _post_reply(request, question_id, ReplyKind.comment, body.body, principal, db, background)


@api.post("/questions/{question_id}/accept", operation_id="accept_answer", dependencies=[require_permission(service.ASK)])
def accept_answer(request: Request, question_id: int, body: AcceptBody, principal: CurrentUser, db: SessionDep,
                  background: BackgroundTasks) -> QuestionPublic:
    """The asking unit marks the answer that settled the question."""
    question = service.accept(db, principal=principal, authorizer=host_of(request).authorizer,
                              question_id=question_id, reply_id=body.reply_id)
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return full(service.thread(db, question))


@api.post("/questions/{question_id}/transfer", operation_id="transfer_question",
          dependencies=[require_permission(service.TRANSFER)])
def transfer_question(request: Request, question_id: int, body: TransferBody, principal: CurrentUser,
                      db: SessionDep, background: BackgroundTasks) -> QuestionPublic:
    """Move the question to another department with a note (its department, or an operator re-routing)."""
    question, moved = service.transfer(db, principal=principal, authorizer=host_of(request).authorizer,
                                       question_id=question_id, department_id=body.department_id, note=body.note,
                                       notifier=host_of(request).notifier)
    background.add_task(notices.readers_changed, host_of(request).realtime, question.id)
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return full(service.thread(db, question))


@api.post("/questions/{question_id}/duplicate", operation_id="mark_duplicate",
          dependencies=[require_permission(service.CURATE)])
def mark_duplicate(request: Request, question_id: int, body: DuplicateBody, principal: CurrentUser, db: SessionDep,
                   background: BackgroundTasks) -> QuestionPublic:
    """Mark the question a duplicate of an earlier answered one, linking its answer."""
    question = service.mark_duplicate(db, principal=principal, authorizer=host_of(request).authorizer,
                                      question_id=question_id, canonical_id=body.canonical_id)
    background.add_task(notices.readers_changed, host_of(request).realtime, question.id)
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return full(service.thread(db, question))


@api.put("/questions/{question_id}/visibility", operation_id="set_visibility",
         dependencies=[require_permission(service.CURATE)])
def set_visibility(request: Request, question_id: int, body: VisibilityBody, principal: CurrentUser,
                   db: SessionDep, background: BackgroundTasks) -> QuestionPublic:
    """Keep the question internal (asking unit and department only) or open it to every commune and ward."""
    question = service.set_internal(db, principal=principal, authorizer=host_of(request).authorizer,
                                    question_id=question_id, internal=body.internal)
    background.add_task(notices.readers_changed, host_of(request).realtime, question.id)
    return full(service.thread(db, question))


@api.post("/questions/{question_id}/attachments", status_code=201, operation_id="attach_files",
          dependencies=[require_permission(service.READ), ATTACHMENT_UPLOADS])
def attach_files(request: Request, question_id: int, principal: CurrentUser, db: SessionDep,
                 files: Annotated[list[UploadFile], File(description="PDF, images or office documents, 10 MB each")]
                 ) -> list[AttachmentPublic]:
    """Attach files to a question; each type is checked from its bytes, and all are saved or none."""
    checked = read_uploads(files)
    saved = service.attach(db, principal=principal, authorizer=host_of(request).authorizer,
                           media=host_of(request).media, question_id=question_id, files=checked)
    return [attachment_public(a) for a in saved]


@api.get("/attachments/{attachment_id}", operation_id="download_attachment",
         dependencies=[require_permission(service.READ)], response_class=Response)
def download_attachment(request: Request, attachment_id: int, principal: CurrentUser, db: SessionDep) -> Response:
    """The file, to those who may see its question."""
    attachment = service.get_attachment(db, principal=principal, authorizer=host_of(request).authorizer,
                                        attachment_id=attachment_id)
    try:
        data = host_of(request).media.get(attachment.storage_key)
    except KeyError:
        raise DomainError(404, f"the file of attachment {attachment_id} is missing from the store") from None
    inline = attachment.content_type == "application/pdf" or attachment.content_type.startswith("image/")
    disposition = f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(attachment.filename)}"
    return Response(data, media_type=attachment.content_type, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox", "Cache-Control": "private, max-age=300"})


# --- Knowledge base -------------------------------------------------------------------------------------


_HIT_LIST = TypeAdapter(list[SearchHit])


def _rendered(host: Any, key: tuple, hits: list[knowledge.Hit], render: Callable[[], bytes]) -> Response:
    """The JSON of ``hits``, made once per kept list: a kept search hands back the very list it kept, so the
    body made from it is reused while that list is what the cache returns (checked by identity)."""
    memo = host.cache(knowledge.MINIAPP, "rendered", ttl=knowledge.CACHE_SECONDS, max_entries=knowledge.CACHE_SIZE)
    found = memo.get((*key, id(hits)))
    if found is None or found[0] is not hits:
        found = (hits, render())  # holding the list keeps its id from being reused while the entry lives
        memo.set((*key, id(hits)), found)
    return Response(found[1], media_type="application/json")


@api.get("/search", operation_id="search", response_model=SearchPage,
         dependencies=[require_permission(service.READ)])
async def search(request: Request, principal: CurrentUser,
                 q: Annotated[str, Query(max_length=200, description="Words, with or without diacritics")] = "",
                 field: str | None = None, department_id: str | None = None, kind: SearchKind | None = None,
                 limit: Annotated[int, Query(ge=1, le=50)] = 20, offset: Annotated[int, Query(ge=0, le=1000)] = 0) -> Response:
    """Answered questions and handbook articles, best match first; without words, the newest."""
    # Async, with no session of its own: a kept answer is served on the event loop (knowledge.answer) and
    # its JSON made once (_rendered); together most of a repeated search's cost beside the request path.
    host = host_of(request)
    scope = service.reading_scope(principal, host.authorizer)
    filters = {"scope": scope, "field_key": field, "department_id": department_id, "kind": kind,
               "limit": limit, "offset": offset}
    asked = knowledge.search_asked(q, **filters) or knowledge.newest_asked(**filters)
    hits = await knowledge.answer(host, asked)
    return _rendered(host, ("search", q, asked.key), hits, lambda: SearchPage(
        query=q, folded=fold(q), results=search_hits(hits)).model_dump_json().encode())


@api.get("/suggestions", operation_id="suggest_similar", response_model=list[SearchHit],
         dependencies=[require_permission(service.READ)])
async def suggest_similar(request: Request, principal: CurrentUser,
                          q: Annotated[str, Query(max_length=200, description="The title being typed")] = "",
                          field: str | None = None) -> Response:
    """Answered questions like the title being typed, so the asker can reuse an answer (fast; for typing)."""
    asked = None
    if len(fold(q).strip()) >= 3:
        host = host_of(request)
        asked = knowledge.search_asked(q, scope=service.reading_scope(principal, host.authorizer), field_key=field,
                                       kind=SearchKind.question, answered_only=True, limit=SUGGESTIONS, title_only=True)
    if asked is None:
        return Response(b"[]", media_type="application/json")
    hits = await knowledge.answer(host, asked)
    return _rendered(host, ("suggest", asked.key), hits, lambda: _HIT_LIST.dump_json(search_hits(hits)))


# --- Handbook -------------------------------------------------------------------------------------------


@api.get("/articles", operation_id="list_articles", dependencies=[require_permission(service.READ)])
def list_articles(db: SessionDep, department_id: str | None = None, field: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0) -> list[ArticlePublic]:
    """The handbook, newest first."""
    return [article_public(a) for a in service.list_articles(db, department_id=department_id, field_key=field,
                                                             limit=limit, offset=offset)]


@api.post("/articles", status_code=201, operation_id="publish_article",
          dependencies=[require_permission(service.PUBLISH)])
def publish_article(request: Request, body: ArticleCreate, principal: CurrentUser, db: SessionDep) -> ArticlePublic:
    """A department publishes a guidance article; it is searchable beside the answers at once."""
    article = service.publish_article(db, principal=principal, authorizer=host_of(request).authorizer,
                                      title=body.title, body=body.body, field_key=body.field,
                                      department_id=body.department_id)
    return article_public(article)


@api.get("/articles/{article_id}", operation_id="get_article", dependencies=[require_permission(service.READ)])
def get_article(request: Request, article_id: int, principal: CurrentUser, db: SessionDep) -> ArticlePublic:
    """One handbook article."""
    article = service.get_article(db, principal=principal, authorizer=host_of(request).authorizer,
                                  article_id=article_id)
    return article_public(article)


# --- Figures --------------------------------------------------------------------------------------------


@api.get("/stats/departments", operation_id="department_figures", dependencies=[require_permission(service.READ)])
def department_figures(db: SessionDep) -> list[DepartmentFiguresPublic]:
    """Per department: questions asked and answered, first answers on time, hours to a first answer."""
    return [DepartmentFiguresPublic(**vars(f), on_time_rate=f.on_time_rate) for f in service.department_figures(db)]
