"""Feedback pages under /m/feedback: submit, my reports, a report, the queue, the dashboard, the map."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from miniapps.feedback import handling, listings, service, stats
from miniapps.feedback.deadlines import hue_time
from miniapps.feedback.models import ReportState
from miniapps.feedback.routes import (
    DASHBOARD,
    FILE,
    PHOTO_UPLOADS,
    place_of,
    read_photos,
    run_db,
)
from plugins import (
    MembershipRow as Membership,
)
from plugins import (
    OrgUnit,
    Principal,
    PrincipalDep,
    UnitKind,
    User,
    host_of,
    page_locale,
    render_page,
)

router = APIRouter(include_in_schema=False)


def _sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    # Residents sign in by phone; the page links to the officials' form for the rest.
    return RedirectResponse(f"/auth/phone?next={quote(target)}", status_code=303)


def _refused(request: Request, status: int, message: dict[str, str]) -> Response:
    return render_page(request, "feedback/refused.html", {"message": message}, status_code=status)


# What a page says when the service refuses, by the field at fault: the service's own detail is English
# developer text ("photos[0]: not a JPEG"), fine for the API but not for a resident's page.
FIELD_MESSAGES: dict[str, dict[str, str]] = {
    "lat": {"vi": "Hãy chọn vị trí: chạm vào bản đồ, dùng vị trí của bạn hoặc chọn ảnh có vị trí.",
            "en": "Choose the place: tap the map, use your location or choose a photo that carries its location."},
    "description": {"vi": "Hãy mô tả vấn đề.", "en": "Describe the problem."},
    "category_id": {"vi": "Hãy chọn loại vấn đề.", "en": "Choose the kind of problem."},
    "unit_id": {"vi": "Hãy chọn một phường, xã của Huế.", "en": "Choose a ward or commune of Hue."},
    "photos": {"vi": "Gửi tối đa 5 ảnh.", "en": "Send at most 5 photos."},
    "stars": {"vi": "Chọn từ 1 đến 5 sao.", "en": "Choose 1 to 5 stars."},
    "duplicate_of": {"vi": "Ghi số của phản ánh gốc (một phản ánh đang mở).",
                     "en": "Give the number of the original report (an open report)."},
    "assignee_id": {"vi": "Người được giao phải là cán bộ của đơn vị xử lý.",
                    "en": "The assignee must be an official of the handling unit."},
    "report_id": {"vi": "Không thực hiện được với phản ánh này.", "en": "This cannot be done with this report."},
}
STATUS_MESSAGES: dict[int, dict[str, str]] = {
    403: {"vi": "Bạn không được làm việc này.", "en": "You may not do this."},
    409: {"vi": "Phản ánh đang ở trạng thái không cho phép việc này, hoặc vừa có người thay đổi; hãy tải lại trang.",
          "en": "The report's state does not allow this, or someone changed it meanwhile; reload the page."},
    503: {"vi": "Hệ thống đang bận; chưa có gì được lưu, hãy thử lại.",
          "en": "The service is busy; nothing was saved, try again."},
}


def page_error(exc: service.FeedbackError) -> dict[str, str]:
    """The refusal in words for a page, in both languages, naming the field (``field`` kept for tests)."""
    field = exc.field or ""
    bare = field.removeprefix("body.").removeprefix("query.")
    if bare.startswith("photos["):
        number = int(bare[7:].split("]")[0]) + 1
        message = {"vi": f"Ảnh thứ {number} không dùng được: chỉ nhận ảnh JPEG, PNG, WebP hoặc HEIC, không quá lớn.",
                   "en": f"Photo {number} cannot be used: send a JPEG, PNG, WebP or HEIC photo that is not too large."}
    elif bare == "lat" and "outside" in exc.detail:
        message = {"vi": "Vị trí này nằm ngoài thành phố Huế.", "en": "This place is outside Hue City."}
    elif exc.status in STATUS_MESSAGES and bare in ("action", "report_id", ""):
        message = STATUS_MESSAGES[exc.status]
    else:
        message = FIELD_MESSAGES.get(bare) or STATUS_MESSAGES.get(exc.status) or {
            "vi": "Không thực hiện được; hãy kiểm tra lại.", "en": exc.detail}
    return {"field": field, **message}


def _may(request: Request, principal: Principal, permission: str) -> bool:
    return principal.is_authenticated and host_of(request).authorizer.allows(principal, permission)


def _roles(request: Request, principal: Principal) -> dict[str, bool]:
    return {"may_file": _may(request, principal, FILE), "may_handle": _may(request, principal, service.HANDLE),
            "may_dashboard": _may(request, principal, DASHBOARD)}


def _common(session: Session) -> dict[str, Any]:
    categories = service.list_categories(session)
    return {"categories": categories, "category_names": {c.id: {"vi": c.name_vi, "en": c.name_en} for c in categories},
            "units": {u.id: u for u in session.exec(select(OrgUnit))},
            "state_names": service.STATE_NAMES, "when": hue_time}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, principal: PrincipalDep) -> Response:
    """The entry page: what the caller can do here."""
    counts = await run_db(request, lambda s: {"open": listings.count_public(s)})
    return render_page(request, "feedback/home.html", {**_roles(request, principal), "counts": counts})


# --- residents --------------------------------------------------------------------------------------


def _local_units(session: Session) -> list[OrgUnit]:
    return list(session.exec(select(OrgUnit).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune]))
                             .order_by(OrgUnit.name_vi)))


async def _form(request: Request, *, values: dict[str, Any], error: dict[str, str] | None,
                status: int = 200) -> Response:
    context = await run_db(request, lambda s: {**_common(s), "local_units": _local_units(s)})
    return render_page(request, "feedback/new.html", {**context, "values": values, "error": error,
                                                      "tile_url": host_of(request).settings.map_tile_url},
                       status_code=status)


@router.get("/new", response_class=HTMLResponse)
async def new_report(request: Request, principal: PrincipalDep) -> Response:
    """Residents: the report form (category, place, description, photos, urgent)."""
    if not principal.is_authenticated:
        return _sign_in(request)
    if not _may(request, principal, FILE):
        return _refused(request, 403, {"vi": "Chỉ người dân mới gửi phản ánh.", "en": "Only residents file reports."})
    return await _form(request, values={}, error=None)


@router.post("/new", response_class=HTMLResponse, dependencies=[PHOTO_UPLOADS])
async def submit_report(request: Request, principal: PrincipalDep) -> Response:
    """File the report from the form; on a problem show the form again with the field named."""
    if not principal.is_authenticated:
        return _sign_in(request)
    if not _may(request, principal, FILE):
        return _refused(request, 403, {"vi": "Chỉ người dân mới gửi phản ánh.", "en": "Only residents file reports."})
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("category_id", "description", "lat", "lon", "unit_id",
                                                          "address")}
    values["urgent"] = form.get("urgent") in ("on", "true", "1")
    try:
        lat = float(values["lat"]) if values["lat"] else None
        lon = float(values["lon"]) if values["lon"] else None
    except ValueError:
        return await _form(request, values=values, status=422, error={"field": "lat", **FIELD_MESSAGES["lat"]})
    uploads = [f for f in form.getlist("photos") if hasattr(f, "read")]
    store = host_of(request).media
    try:
        photos = await read_photos(request, uploads)  # type: ignore[arg-type]
        lat, lon = place_of(lat, lon, photos)

        def work(session: Session) -> int:
            report = service.file_report(
                session, store=store, reporter_id=principal.user_id, category_id=values["category_id"],
                description=values["description"], lat=lat, lon=lon, unit_id=values["unit_id"] or None,
                address=values["address"], urgent=values["urgent"], photos=photos,
                notifier=host_of(request).notifier)
            return report.id or 0

        report_id = await run_db(request, work)
    except service.FeedbackError as exc:
        return await _form(request, values=values, status=exc.status, error=page_error(exc))
    return RedirectResponse(f"/m/feedback/reports/{report_id}?lang={page_locale(request)}", status_code=303)


@router.get("/mine", response_class=HTMLResponse)
async def mine(request: Request, principal: PrincipalDep) -> Response:
    """The reports the caller filed or follows."""
    if not principal.is_authenticated:
        return _sign_in(request)
    context = await run_db(request, lambda s: {**_common(s), "reports": listings.my_reports(s, user_id=principal.user_id or 0)})
    return render_page(request, "feedback/mine.html", context)


# --- one report -----------------------------------------------------------------------------------------


@router.get("/reports/{report_id}", response_class=HTMLResponse)
async def report_page(request: Request, report_id: int, principal: PrincipalDep) -> Response:
    """A report: details, photos, timeline, and the actions the caller may take."""
    authorizer = host_of(request).authorizer

    def work(session: Session) -> dict[str, Any]:
        report, level = service.visible_report(session, principal=principal, authorizer=authorizer,
                                               report_id=report_id)
        view = listings.view(session, report, level)
        actions = [a for a, (sources, _t, who) in handling.TRANSITIONS.items()
                   if report.state in sources and handling.may_take(level, who)
                   and (a != "place" or report.needs_placing)]
        # The resident who filed it answers a resolution in their own words (rate, which closes it, or
        # reopen), not with the officials' handling forms.
        may_reopen = level == "reporter" and "reopen" in actions
        if level == "reporter":
            actions = [a for a in actions if a not in ("close", "reopen")]
        following = principal.is_authenticated and session.get(
            service.FeedbackFollower, (report.id, principal.user_id)) is not None
        officials = []
        if "assign" in actions:
            officials = list(session.exec(select(User).join(Membership, Membership.user_id == User.id).where(
                Membership.unit_id == report.handling_unit_id, col(User.is_active)).order_by(User.display_name)))
        return {**_common(session), "report": view, "actions": actions, "level": level, "following": following,
                "may_reopen": may_reopen,
                "officials": officials,
                "may_follow": _may(request, principal, FILE) and level == "public" and not following,
                "transfer_units": [u for u in session.exec(select(OrgUnit).order_by(OrgUnit.kind, OrgUnit.name_vi))
                                   if u.kind is not UnitKind.city] if "transfer" in actions else [],
                "place_units": _local_units(session) if "place" in actions else []}

    try:
        context = await run_db(request, work)
    except service.FeedbackError:
        return _refused(request, 404, {"vi": "Không có phản ánh này.", "en": "No such report."})
    return render_page(request, "feedback/report.html", context)


def _back(request: Request, report_id: int) -> Response:
    return RedirectResponse(f"/m/feedback/reports/{report_id}?lang={page_locale(request)}", status_code=303)


def _failed(request: Request, report_id: int, exc: service.FeedbackError) -> Response:
    """The refusal as a page with the service's status (404, 403, 409, 422), naming the field."""
    if exc.status == 404:
        return _refused(request, 404, {"vi": "Không có phản ánh này.", "en": "No such report."})
    message = page_error(exc)
    return render_page(request, "feedback/refused.html", {"message": message, "field": message["field"],
                                                           "report_id": report_id}, status_code=exc.status)


@router.post("/reports/{report_id}/act", response_class=HTMLResponse, dependencies=[PHOTO_UPLOADS])
async def act_page(request: Request, report_id: int, principal: PrincipalDep) -> Response:
    """Take an action from the report page's form, then back to the report."""
    if not principal.is_authenticated:
        return _sign_in(request)
    form = await request.form()
    text = {k: (str(form.get(k) or "").strip() or None) for k in ("action", "note", "reason", "response", "unit_id",
                                                                 "duplicate_of", "assignee_id")}
    store, authorizer = host_of(request).media, host_of(request).authorizer
    try:
        photos = await read_photos(request, [f for f in form.getlist("photos") if hasattr(f, "read")])  # type: ignore[misc]
        duplicate_of = int(text["duplicate_of"]) if text["duplicate_of"] else None
        assignee_id = int(text["assignee_id"]) if text["assignee_id"] else None

        def work(session: Session) -> None:
            handling.act(
                session, store=store, principal=principal, authorizer=authorizer, report_id=report_id,
                action=text["action"] or "", note=text["note"], reason=text["reason"], response=text["response"],
                unit_id=text["unit_id"], duplicate_of=duplicate_of, assignee_id=assignee_id, photos=photos,
                notifier=host_of(request).notifier)

        await run_db(request, work)
    except ValueError:
        return _failed(request, report_id, service.FeedbackError(422, "not a number", field="duplicate_of"))
    except service.FeedbackError as exc:
        return _failed(request, report_id, exc)
    return _back(request, report_id)


@router.post("/reports/{report_id}/rate", response_class=HTMLResponse)
async def rate_page(request: Request, report_id: int, principal: PrincipalDep) -> Response:
    """The resident's rating form."""
    if not principal.is_authenticated:
        return _sign_in(request)
    form = await request.form()
    authorizer = host_of(request).authorizer
    try:
        stars = int(str(form.get("stars") or "0"))
        await run_db(request, lambda s: handling.rate(
            s, principal=principal, authorizer=authorizer, report_id=report_id, stars=stars,
            comment=str(form.get("comment") or ""), notifier=host_of(request).notifier))
    except ValueError:
        return _failed(request, report_id, service.FeedbackError(422, "choose 1 to 5 stars", field="stars"))
    except service.FeedbackError as exc:
        return _failed(request, report_id, exc)
    return _back(request, report_id)


@router.post("/reports/{report_id}/follow", response_class=HTMLResponse)
async def follow_page(request: Request, report_id: int, principal: PrincipalDep) -> Response:
    """Follow a report instead of filing a duplicate."""
    if not principal.is_authenticated:
        return _sign_in(request)
    if not _may(request, principal, FILE):
        return _refused(request, 403, {"vi": "Chỉ người dân theo dõi phản ánh.", "en": "Only residents follow reports."})
    authorizer = host_of(request).authorizer

    def work(session: Session) -> None:
        report, _level = service.visible_report(session, principal=principal, authorizer=authorizer,
                                                report_id=report_id)
        service.follow(session, principal=principal, report=report)

    try:
        await run_db(request, work)
    except service.FeedbackError as exc:
        return _failed(request, report_id, exc)
    return _back(request, report_id)


# --- officials ----------------------------------------------------------------------------------------


@router.get("/queue", response_class=HTMLResponse)
async def queue_page(request: Request, principal: PrincipalDep, unit_id: str = "", state: str = "",
                     category_id: str = "", overdue: str = "", placing: str = "", page: int = 1) -> Response:
    """The unit's queue with filters (state, category, overdue, needs placing)."""
    if not principal.is_authenticated:
        return _sign_in(request)
    if not _may(request, principal, service.HANDLE):
        return _refused(request, 403, {"vi": "Trang dành cho cán bộ xử lý phản ánh.",
                                       "en": "For officials who handle reports."})
    units = host_of(request).authorizer.units_for(principal, service.HANDLE)
    if unit_id and units is not None and unit_id not in units:
        return _refused(request, 403, {"vi": "Bạn không xử lý phản ánh của đơn vị này.",
                                       "en": "You do not handle this unit's reports."})
    state_filter = state if state in ReportState.__members__ else None
    overdue_filter = {"true": True, "false": False}.get(overdue)
    placing_filter = {"true": True, "false": False}.get(placing)
    page = max(page, 1)

    def work(session: Session) -> dict[str, Any]:
        rows, total = listings.queue(session, units=units, unit_id=unit_id or None, state=state_filter,
                                    category_id=category_id or None, overdue=overdue_filter, page=page,
                                    needs_placing=placing_filter)
        now = service.utcnow()
        own = sorted(units) if units is not None else []
        filters = {"unit_id": unit_id, "state": state_filter or "", "category_id": category_id, "overdue": overdue,
                   "placing": placing}
        return {**_common(session), "rows": rows, "total": total, "count_cap": listings.COUNT_CAP, "page": page,
                "now": now, "filters": filters,
                "page_query": lambda n: urlencode({**filters, "lang": page_locale(request), "page": n}),
                "overdue_of": lambda r: listings.is_overdue(r, now), "own_units": own}

    return render_page(request, "feedback/queue.html", await run_db(request, work))


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request, principal: PrincipalDep) -> Response:
    """The city dashboard with SVG bars and CSV/XLSX export links."""
    if not principal.is_authenticated:
        return _sign_in(request)
    if not _may(request, principal, DASHBOARD):
        return _refused(request, 403, {"vi": "Trang dành cho Trung tâm điều hành.", "en": "For city operators."})
    board = await run_db(request, stats.dashboard)
    return render_page(request, "feedback/dashboard.html", {"board": board})


@router.get("/map", response_class=HTMLResponse)
async def map_page(request: Request) -> Response:
    """The public map of reports (Leaflet, GeoJSON layer)."""
    return render_page(request, "feedback/map.html", {"tile_url": host_of(request).settings.map_tile_url})


# --- admins: categories and their routing ------------------------------------------------------------------

CATEGORIES = "feedback.categories.manage"
CATEGORY_MESSAGES: dict[str, dict[str, str]] = {
    "id": {"vi": "Mã loại: 2-40 chữ thường, số hoặc dấu '-'.", "en": "Category code: 2-40 lower-case letters, digits or '-'."},
    "name_vi": {"vi": "Tên tiếng Việt: 1-120 ký tự.", "en": "Vietnamese name: 1 to 120 characters."},
    "name_en": {"vi": "Tên tiếng Anh: 1-120 ký tự.", "en": "English name: 1 to 120 characters."},
    "department_id": {"vi": "Chọn một sở trong danh sách, hoặc để phường, xã xử lý.",
                      "en": "Choose a department from the list, or leave it to the ward or commune."},
    "deadline_hours": {"vi": "Thời hạn: từ 1 đến 2000 giờ làm việc.", "en": "Deadline: 1 to 2000 working hours."},
    "urgent_deadline_hours": {"vi": "Thời hạn khẩn: từ 1 đến 2000 giờ làm việc.",
                              "en": "Urgent deadline: 1 to 2000 working hours."},
    "position": {"vi": "Thứ tự: từ 0 đến 10000.", "en": "Order: 0 to 10000."},
}


def _categories_page(request: Request, session: Session, *, errors: dict[str, str], values: dict[str, Any],
                     saved: str = "") -> dict[str, Any]:
    departments = session.exec(select(OrgUnit).where(OrgUnit.kind == UnitKind.department).order_by(OrgUnit.name_vi))
    categories = service.all_categories(session)
    return {"all_categories": categories, "existing_ids": {c.id for c in categories},
            "departments": list(departments), "errors": errors, "values": values, "saved": saved}


@router.get("/admin/categories", response_class=HTMLResponse)
async def categories_page(request: Request, principal: PrincipalDep, saved: str = "") -> Response:
    """Admins: report categories, the department that handles each (or the local unit), and deadlines."""
    if not principal.is_authenticated:
        return RedirectResponse(f"/auth/login?next={quote(request.url.path)}", status_code=303)
    if not _may(request, principal, CATEGORIES):
        return _refused(request, 403, STATUS_MESSAGES[403])
    context = await run_db(request, lambda s: _categories_page(request, s, errors={}, values={}, saved=saved[:40]))
    return render_page(request, "feedback/categories.html", context)


@router.post("/admin/categories", response_class=HTMLResponse)
async def save_category_form(request: Request, principal: PrincipalDep) -> Response:
    """Create or change one category from its row of the table; a refusal names the field."""
    if not principal.is_authenticated:
        return RedirectResponse(f"/auth/login?next={quote(request.url.path)}", status_code=303)
    if not _may(request, principal, CATEGORIES):
        return _refused(request, 403, STATUS_MESSAGES[403])
    form = await request.form()
    values = {k: str(form.get(k) or "").strip()[:200] for k in (
        "id", "name_vi", "name_en", "department_id", "deadline_hours", "urgent_deadline_hours", "position")}
    values["active"] = form.get("active") in ("on", "1", "true")
    errors: dict[str, str] = {}
    numbers: dict[str, int] = {}
    for name in ("deadline_hours", "urgent_deadline_hours", "position"):
        try:
            numbers[name] = int(values[name])
        except ValueError:
            errors[name] = CATEGORY_MESSAGES[name][page_locale(request)]

    def save(session: Session) -> dict[str, Any] | None:
        if not errors:
            try:
                service.save_category(session, category_id=values["id"], name_vi=values["name_vi"],
                                      name_en=values["name_en"], department_id=values["department_id"] or None,
                                      active=values["active"], **numbers)
                return None
            except service.FeedbackError as exc:
                session.rollback()
                field = exc.field or "id"
                errors[field] = CATEGORY_MESSAGES.get(field, STATUS_MESSAGES[403])[page_locale(request)]
        return _categories_page(request, session, errors=errors, values=values)

    failed = await run_db(request, save)
    if failed is not None:
        return render_page(request, "feedback/categories.html", failed, status_code=422)
    return RedirectResponse(f"/m/feedback/admin/categories?saved={quote(values['id'])}&lang={page_locale(request)}",
                            status_code=303)
