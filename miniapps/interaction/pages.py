"""The interaction pages, under /m/interaction: knowledge base, asking, inbox, thread, handbook."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select

from miniapps.interaction import knowledge, notices, routing, service
from miniapps.interaction.models import QuestionStatus, ReplyKind, SearchKind
from miniapps.interaction.routes import ATTACHMENT_UPLOADS, read_uploads
from plugins import (
    HUE_TIME,
    DomainError,
    OrgUnit,
    Principal,
    PrincipalDep,
    SessionDep,
    UnitKind,
    host_of,
    page_locale,
    render_page,
)

pages = APIRouter()
BOX_NAMES = {
    "new": {"vi": "Mới", "en": "New"}, "overdue": {"vi": "Quá hạn", "en": "Overdue"},
    "mine": {"vi": "Của tôi", "en": "Mine"}, "all": {"vi": "Tất cả", "en": "All"},
}
STATUS_NAMES = {
    "new": {"vi": "Chờ trả lời", "en": "Waiting"}, "answered": {"vi": "Đã trả lời", "en": "Answered"},
    "settled": {"vi": "Đã giải quyết", "en": "Settled"}, "duplicate": {"vi": "Trùng lặp", "en": "Duplicate"},
}
# What the forms say, in Vietnamese, for each field the service can refuse (English shows its own reason).
VI_ERRORS = {
    "title": "Nhập tiêu đề từ 5 đến 200 ký tự.",
    "body": "Nhập nội dung (tối đa 5000 ký tự với câu hỏi, 10000 với trả lời).",
    "field": "Chọn lĩnh vực.",
    "unit_id": "Chọn phường, xã hỏi.",
    "files": "Tệp đính kèm phải là PDF, ảnh hoặc văn bản (docx, xlsx, odt...), tối đa 10 MB, không quá 5 tệp.",
    "department_id": "Chọn một sở khác với sở đang giữ câu hỏi.",
    "note": "Ghi lý do chuyển (tối đa 1000 ký tự).",
}


def _gate(request: Request, principal: Principal, permission: str = service.READ) -> Response | None:
    """None when the caller may open the page; else the sign-in redirect or a 403 page."""
    if not principal.is_authenticated:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": target, "lang": page_locale(request)})
        # Residents sign in by phone; the page links to the officials' form for the rest.
        return RedirectResponse(f"/auth/phone?{query}", status_code=303)
    if not host_of(request).authorizer.allows(principal, permission):
        return render_page(request, "interaction/forbidden.html", {}, status_code=403)
    return None


def _names(session: Session) -> dict[str, dict[str, str]]:
    return {u.id: {"vi": u.name_vi, "en": u.name_en} for u in session.exec(select(OrgUnit))}


def _field_names(session: Session) -> dict[str, dict[str, str]]:
    return {f.key: {"vi": f.name_vi, "en": f.name_en} for f in routing.list_fields(session)}


def _error_text(locale: str, field: str | None, message: str) -> str:
    return VI_ERRORS.get((field or "").split(".")[0], message) if locale == "vi" else message


def _hue_time(moment: datetime) -> str:
    """A moment as Hue reads it: day/month/year hour:minute, Indochina Time."""
    return moment.astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M")


def _can(request: Request, principal: Principal, permission: str) -> bool:
    return principal.is_authenticated and host_of(request).authorizer.allows(principal, permission)


def _nav(request: Request, principal: Principal) -> dict[str, bool]:
    """What the page's menu offers this caller."""
    return {"may_ask": _can(request, principal, service.ASK), "may_publish": _can(request, principal, service.PUBLISH)}


@pages.get("/", response_class=HTMLResponse)
def knowledge_base(request: Request, principal: PrincipalDep, db: SessionDep, q: str = "", field: str = "",
                   department_id: str = "", kind: str = "") -> Response:
    """The knowledge base: answered questions and handbook articles, searched with or without diacritics."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    scope = service.reading_scope(principal, host_of(request).authorizer)
    chosen_kind = SearchKind(kind) if kind in ("question", "article") else None
    q = q[:200]
    if knowledge.tokens(q):
        hits = knowledge.search(db, q, scope=scope, field_key=field or None, department_id=department_id or None,
                                kind=chosen_kind, limit=30, kept=knowledge.results_cache(host_of(request)))
    else:
        hits = [knowledge.Hit(e, 0.0) for e in knowledge.newest(db, scope=scope, field_key=field or None,
                                                                 department_id=department_id or None,
                                                                 kind=chosen_kind, limit=30, kept=knowledge.results_cache(host_of(request)))]
    departments = [u for u in db.exec(select(OrgUnit).where(OrgUnit.kind == UnitKind.department).order_by(OrgUnit.name_vi))]
    return render_page(request, "interaction/knowledge.html", {
        "q": q, "field": field, "department_id": department_id, "kind": kind, "hits": hits,
        "fields": _field_names(db), "units": _names(db), "departments": departments, **_nav(request, principal),
    })


def _ask_page(request: Request, db: Session, *, values: dict[str, Any], errors: dict[str, str],
              status_code: int = 200) -> Response:
    principal = request.scope.get("superapp.principal")
    units = host_of(request).authorizer.units_for(principal, service.ASK)
    communes = db.exec(select(OrgUnit).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune]))  # type: ignore[attr-defined]
                       .order_by(OrgUnit.name_vi))
    # Officials of one unit ask for it; someone holding several (or an admin) chooses.
    choices = [u for u in communes if units is None or u.id in units]
    return render_page(request, "interaction/ask.html", {
        "values": values, "errors": errors, "fields": routing.list_fields(db), "units": _names(db),
        "asking_units": choices if len(choices) > 1 else [],
    }, status_code=status_code)


@pages.get("/ask", response_class=HTMLResponse)
def ask_form(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The form a commune or ward official asks with; similar answered questions appear while typing."""
    if (refused := _gate(request, principal, service.ASK)) is not None:
        return refused
    return _ask_page(request, db, values={}, errors={})


@pages.post("/ask", response_class=HTMLResponse, dependencies=[ATTACHMENT_UPLOADS])
def ask_submit(request: Request, principal: PrincipalDep, db: SessionDep,
               title: Annotated[str, Form()] = "", body: Annotated[str, Form()] = "",
               field: Annotated[str, Form()] = "", unit_id: Annotated[str, Form()] = "",
               files: Annotated[list[UploadFile] | None, File()] = None) -> Response:
    """Ask: on success to the new thread; otherwise the form again with the fields marked."""
    if (refused := _gate(request, principal, service.ASK)) is not None:
        return refused
    locale = page_locale(request)
    values = {"title": title, "body": body, "field": field, "unit_id": unit_id}
    uploads = [f for f in (files or []) if f.filename]
    try:
        checked = read_uploads(uploads)
        question = service.ask(db, principal=principal, authorizer=host_of(request).authorizer,
                               media=host_of(request).media, title=title, body=body, field_key=field,
                               unit_id=unit_id or None, files=checked, notifier=host_of(request).notifier)
    except DomainError as exc:  # a file refused names "files.N": the form marks "files"
        key = (exc.field or "title").split(".")[0]
        return _ask_page(request, db, values=values, errors={key: _error_text(locale, exc.field, exc.detail)},
                         status_code=exc.status)
    return RedirectResponse(f"{notices.thread_url(question.id)}?lang={locale}", status_code=303)  # type: ignore[arg-type]


@pages.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, principal: PrincipalDep, db: SessionDep, box: str = "new") -> Response:
    """The department's inbox (or the unit's questions): new, overdue, mine, all."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    box = box if box in service.BOXES else "new"
    questions = service.inbox(db, principal=principal, authorizer=host_of(request).authorizer, box=box, limit=100)
    figures = service.department_figures(db) if _can(request, principal, service.ANSWER) or \
        _can(request, principal, service.TRANSFER) else []
    return render_page(request, "interaction/inbox.html", {
        "box": box, "boxes": BOX_NAMES, "questions": questions, "units": _names(db), "fields": _field_names(db),
        "statuses": STATUS_NAMES, "overdue": service.is_overdue, "figures": [f for f in figures if f.asked],
        "when": _hue_time,
        **_nav(request, principal),
    })


def _thread_page(request: Request, principal: Principal, db: Session, question_id: int, *,
                 errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                 status_code: int = 200) -> Response:
    authorizer = host_of(request).authorizer
    try:
        question = service.get_question(db, principal=principal, authorizer=authorizer, question_id=question_id)
    except DomainError:
        return render_page(request, "interaction/not_found.html", {}, status_code=404)
    thread = service.thread(db, question)
    if thread.canonical is not None and not service.may_see(principal, authorizer, thread.canonical):
        thread = replace(thread, canonical=None)  # an original made internal later stays out of sight
    departments = [u for u in db.exec(select(OrgUnit).where(OrgUnit.kind == UnitKind.department).order_by(OrgUnit.name_vi))]
    return render_page(request, "interaction/thread.html", {
        "thread": thread, "q": question, "units": _names(db), "fields": _field_names(db), "statuses": STATUS_NAMES,
        "overdue": service.is_overdue(question), "channel": notices.channel(question.id),  # type: ignore[arg-type]
        "may_answer": authorizer.allows(principal, service.ANSWER, question.department_id),
        "may_comment": service.is_participant(principal, authorizer, question),
        "may_accept": authorizer.allows(principal, service.ASK, question.asker_unit_id)
        and question.status is not QuestionStatus.duplicate,
        "may_move": authorizer.allows(principal, service.TRANSFER, question.department_id), "when": _hue_time,
        "errors": errors or {}, "values": values or {}, "departments": departments, **_nav(request, principal),
    }, status_code=status_code)


@pages.get("/questions/{question_id}", response_class=HTMLResponse)
def thread_page(request: Request, question_id: int, principal: PrincipalDep, db: SessionDep) -> Response:
    """A question's thread; new answers and comments appear live."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    return _thread_page(request, principal, db, question_id)


@pages.post("/questions/{question_id}/reply", response_class=HTMLResponse)
def reply_submit(request: Request, question_id: int, principal: PrincipalDep, db: SessionDep,
                 background: BackgroundTasks, body: Annotated[str, Form()] = "",
                 kind: Annotated[str, Form()] = "comment") -> Response:
    """Post an answer or a comment from the thread page."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    locale = page_locale(request)
    reply_kind = ReplyKind.answer if kind == "answer" else ReplyKind.comment
    try:
        question, posted = service.reply(db, principal=principal, authorizer=host_of(request).authorizer,
                                         question_id=question_id, kind=reply_kind, body=body,
                                         notifier=host_of(request).notifier)
    except DomainError as exc:
        if exc.status == 404:
            return render_page(request, "interaction/not_found.html", {}, status_code=404)
        return _thread_page(request, principal, db, question_id, status_code=exc.status,
                            errors={"reply": _error_text(locale, exc.field, exc.detail)}, values={"body": body})
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.reply_event(posted))
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return RedirectResponse(f"{notices.thread_url(question_id)}?lang={locale}#reply-{posted.id}", status_code=303)


@pages.post("/questions/{question_id}/transfer", response_class=HTMLResponse)
def transfer_submit(request: Request, question_id: int, principal: PrincipalDep, db: SessionDep,
                    background: BackgroundTasks, department_id: Annotated[str, Form()] = "",
                    note: Annotated[str, Form()] = "") -> Response:
    """The department (or an operator) moves the question to another department, with a note."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    locale = page_locale(request)
    try:
        question, moved = service.transfer(db, principal=principal, authorizer=host_of(request).authorizer,
                                           question_id=question_id, department_id=department_id, note=note,
                                           notifier=host_of(request).notifier)
    except DomainError as exc:
        if exc.status == 404:
            return render_page(request, "interaction/not_found.html", {}, status_code=404)
        return _thread_page(request, principal, db, question_id, status_code=exc.status,
                            errors={"transfer": _error_text(locale, exc.field, exc.detail)},
                            values={"note": note, "department_id": department_id})
    background.add_task(notices.readers_changed, host_of(request).realtime, question.id)
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return RedirectResponse(f"{notices.thread_url(question_id)}?lang={locale}", status_code=303)


@pages.post("/questions/{question_id}/accept", response_class=HTMLResponse)
def accept_submit(request: Request, question_id: int, principal: PrincipalDep, db: SessionDep,
                  background: BackgroundTasks, reply_id: Annotated[int, Form()] = 0) -> Response:
    """The asking unit marks the answer that settled the question."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    locale = page_locale(request)
    try:
        question = service.accept(db, principal=principal, authorizer=host_of(request).authorizer,
                                  question_id=question_id, reply_id=reply_id)
    except DomainError as exc:
        if exc.status == 404:
            return render_page(request, "interaction/not_found.html", {}, status_code=404)
        return _thread_page(request, principal, db, question_id, status_code=exc.status,
                            errors={"accept": _error_text(locale, exc.field, exc.detail)})
    background.add_task(notices.publish, host_of(request).realtime, question.id, notices.status_event(question))
    return RedirectResponse(f"{notices.thread_url(question_id)}?lang={locale}", status_code=303)


@pages.get("/handbook/new", response_class=HTMLResponse)
def article_form(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The form a department publishes a handbook article with."""
    if (refused := _gate(request, principal, service.PUBLISH)) is not None:
        return refused
    return render_page(request, "interaction/article_new.html",
                       {"values": {}, "errors": {}, "fields": routing.list_fields(db)})


@pages.post("/handbook/new", response_class=HTMLResponse)
def article_submit(request: Request, principal: PrincipalDep, db: SessionDep, title: Annotated[str, Form()] = "",
                   body: Annotated[str, Form()] = "", field: Annotated[str, Form()] = "") -> Response:
    """Publish, then show the article."""
    if (refused := _gate(request, principal, service.PUBLISH)) is not None:
        return refused
    locale = page_locale(request)
    try:
        article = service.publish_article(db, principal=principal, authorizer=host_of(request).authorizer,
                                          title=title, body=body, field_key=field)
    except DomainError as exc:
        return render_page(request, "interaction/article_new.html", {
            "values": {"title": title, "body": body, "field": field}, "fields": routing.list_fields(db),
            "errors": {(exc.field or "title"): _error_text(locale, exc.field, exc.detail)}}, status_code=exc.status)
    return RedirectResponse(f"/m/interaction/handbook/{article.id}?lang={locale}", status_code=303)


@pages.get("/handbook/{article_id}", response_class=HTMLResponse)
def article_page(request: Request, article_id: int, principal: PrincipalDep, db: SessionDep) -> Response:
    """One handbook article."""
    if (refused := _gate(request, principal)) is not None:
        return refused
    try:
        article = service.get_article(db, principal=principal, authorizer=host_of(request).authorizer,
                                      article_id=article_id)
    except DomainError:
        return render_page(request, "interaction/not_found.html", {}, status_code=404)
    return render_page(request, "interaction/article.html",
                       {"a": article, "units": _names(db), "fields": _field_names(db), **_nav(request, principal)})


# --- admins: the field-to-department table ---------------------------------------------------------------

FIELD_ERRORS = {
    "key": {"vi": "Mã lĩnh vực: các từ chữ thường nối bằng '-', ví dụ 'ho-tich'.",
            "en": "Field code: lower-case words joined by '-', such as 'civil-status'."},
    "name": {"vi": "Nhập tên tiếng Việt và tiếng Anh (1-120 ký tự).",
             "en": "Give the Vietnamese and English names (1 to 120 characters)."},
    "department_id": {"vi": "Chọn một sở trong danh sách.", "en": "Choose a department from the list."},
}


def _fields_context(session: Session, *, errors: dict[str, str], values: dict[str, str], saved: str = "") -> dict[str, Any]:
    departments = list(session.exec(select(OrgUnit).where(OrgUnit.kind == UnitKind.department).order_by(OrgUnit.name_vi)))
    return {"fields": routing.list_fields(session), "departments": departments, "errors": errors, "values": values,
            "saved": saved}


@pages.get("/admin/fields", response_class=HTMLResponse)
def fields_page(request: Request, principal: PrincipalDep, db: SessionDep, saved: str = "") -> Response:
    """Admins: which department answers for each field; questions already asked stay where they are."""
    refused = _gate(request, principal, service.FIELDS)
    if refused is not None:
        return refused
    return render_page(request, "interaction/fields.html", _fields_context(db, errors={}, values={}, saved=saved[:60]))


@pages.post("/admin/fields", response_class=HTMLResponse)
def save_field(request: Request, principal: PrincipalDep, db: SessionDep, key: Annotated[str, Form(max_length=60)] = "",
               name_vi: Annotated[str, Form(max_length=120)] = "", name_en: Annotated[str, Form(max_length=120)] = "",
               department_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Create or change one row of the table; a refusal names the field in the page's language."""
    refused = _gate(request, principal, service.FIELDS)
    if refused is not None:
        return refused
    locale = page_locale(request)
    values = {"key": key.strip(), "name_vi": name_vi, "name_en": name_en, "department_id": department_id}
    field = None
    if not name_vi.strip() or not name_en.strip():
        field = "name"
    else:
        try:
            routing.set_field(db, key=values["key"], name_vi=name_vi, name_en=name_en, department_id=department_id)
        except DomainError as exc:
            db.rollback()
            field = "key" if exc.field == "path.key" else "department_id"
    if field is not None:
        context = _fields_context(db, errors={field: FIELD_ERRORS[field][locale]}, values=values)
        return render_page(request, "interaction/fields.html", context, status_code=422)
    return RedirectResponse(f"/m/interaction/admin/fields?{urlencode({'saved': values['key'], 'lang': locale})}",
                            status_code=303)
