"""The operators' admin pages (``/admin``): officials and their roles per unit, the audit log with filters,
and links to the mini-apps' settings and admin tables, instead of the command line.

Every page checks the caller's permission (the same ones the API checks: ``core.users.manage``,
``core.audit.read``, ``core.miniapps.configure``); a signed-in caller without it gets the localized 403
page. Changes go through ``core.identity.service``, which audits them and ends sessions where needed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, or_
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from core.errors import error_page
from core.identity import service
from core.identity.deps import PrincipalDep
from core.identity.models import AuditEvent, Membership, Role, User, UserKind
from core.identity.principal import Principal
from core.identity.service import IdentityError
from core.units.models import OrgUnit, UnitKind
from core.web import page_locale, render_page
from core.worktime import HUE_TIME

router = APIRouter(include_in_schema=False)
USERS = "core.users.manage"
AUDIT = "core.audit.read"
SETTINGS = "core.miniapps.configure"
PAGE_SIZE = 50

ROLE_NAMES = {
    "commune_official": {"vi": "Cán bộ phường, xã", "en": "Commune or ward official"},
    "department_official": {"vi": "Cán bộ sở, ngành", "en": "Department official"},
    "operator": {"vi": "Điều hành (IOC)", "en": "Operator (IOC)"},
    "admin": {"vi": "Quản trị", "en": "Administrator"},
}
# What each refused field means, in the page's language (the service's reasons are for the API).
FIELD_MESSAGES = {
    "username": {"vi": "Tên đăng nhập: 3-64 ký tự, chữ thường, số, dấu . _ -; và chưa có ai dùng.",
                 "en": "Username: 3-64 characters, lower-case letters, digits, . _ -; and not taken."},
    "name": {"vi": "Nhập họ tên.", "en": "Enter a name."},
    "password": {"vi": "Mật khẩu: ít nhất 12 ký tự, có chữ và số, không chứa tên đăng nhập, không quá phổ biến.",
                 "en": "Password: at least 12 characters with letters and digits, not containing the username, "
                       "not a common one."},
    "role": {"vi": "Chọn một vai trò trong danh sách.", "en": "Choose a role from the list."},
    "unit": {"vi": "Vai trò này không thuộc đơn vị đã chọn (cán bộ phường, xã ở phường, xã; cán bộ sở ở sở; "
                   "điều hành và quản trị ở cấp thành phố).",
             "en": "This role is not held in the chosen unit (commune officials in a ward or commune, department "
                   "officials in a department, operators and administrators in the city)."},
    "user_id": {"vi": "Không thể làm việc này với tài khoản này (không tự khoá tài khoản của mình).",
                "en": "This cannot be done to this account (you cannot disable your own)."},
    "membership_id": {"vi": "Vai trò này không còn nữa.", "en": "This role no longer exists."},
    "since": {"vi": "Ngày không hợp lệ (dd/mm/yyyy).", "en": "Not a valid date (dd/mm/yyyy)."},
    "actor": {"vi": "Không có cán bộ với tên đăng nhập hoặc số này.", "en": "No account with this username or number."},
}
MINIAPP_TABLES = (
    {"url": "/m/feedback/admin/categories", "testid": "admin-feedback-categories",
     "permission": "feedback.categories.manage",
     "name": {"vi": "Loại phản ánh và đơn vị xử lý", "en": "Report categories and their routing"}},
    {"url": "/m/interaction/admin/fields", "testid": "admin-interaction-fields",
     "permission": "interaction.fields.manage",
     "name": {"vi": "Lĩnh vực và sở trả lời", "en": "Fields and the departments that answer"}},
)
AUDIT_ACTIONS = (
    "user_created", "membership_added", "membership_removed", "password_reset", "user_disabled", "user_enabled",
    "sign_in", "sign_in_failed", "sign_in_attack", "sign_out", "sign_out_everywhere", "refresh_token_reuse",
    "miniapp_settings_changed", "personal_data_exported", "account_deletion_requested", "account_deleted",
)


ACTION_NAMES = {
    "user_created": {"vi": "Tạo tài khoản", "en": "Account created"},
    "membership_added": {"vi": "Thêm vai trò", "en": "Role added"},
    "membership_removed": {"vi": "Bỏ vai trò", "en": "Role removed"},
    "password_reset": {"vi": "Đặt lại mật khẩu", "en": "Password reset"},
    "user_disabled": {"vi": "Khoá tài khoản", "en": "Account disabled"},
    "user_enabled": {"vi": "Mở khoá tài khoản", "en": "Account enabled"},
    "sign_in": {"vi": "Đăng nhập", "en": "Signed in"},
    "sign_in_failed": {"vi": "Đăng nhập sai", "en": "Failed sign-in"},
    "sign_in_attack": {"vi": "Đăng nhập sai liên tục", "en": "Sustained failed sign-ins"},
    "sign_out": {"vi": "Đăng xuất", "en": "Signed out"},
    "sign_out_everywhere": {"vi": "Đăng xuất mọi nơi", "en": "Signed out everywhere"},
    "refresh_token_reuse": {"vi": "Dùng lại mã làm mới (phiên bị thu hồi)", "en": "Refresh token reused (session revoked)"},
    "miniapp_settings_changed": {"vi": "Đổi cài đặt tiện ích", "en": "Mini-app settings changed"},
    "personal_data_exported": {"vi": "Tải dữ liệu cá nhân", "en": "Personal data downloaded"},
    "account_deletion_requested": {"vi": "Yêu cầu xoá tài khoản", "en": "Account deletion requested"},
    "account_deleted": {"vi": "Đã xoá tài khoản", "en": "Account deleted"},
}


def _gate(request: Request, principal: Principal, permission: str | None) -> Response | None:
    """Signed out: to the officials' sign-in; without the permission (or, for the menu, any admin role): 403."""
    if not principal.is_authenticated:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/auth/login?next={quote(here)}", status_code=303)
    authorizer = request.app.state.authorizer
    allowed = (authorizer.allows(principal, permission) if permission
               else bool({"admin", "operator"} & principal.roles))
    if not allowed:
        return error_page(request, 403) or Response(status_code=403)
    return None


def _engine_session(request: Request) -> Session:
    return Session(request.app.state.engine, expire_on_commit=False)


def _message(field: str | None, locale: str) -> str:
    text = FIELD_MESSAGES.get(field or "", {"vi": "Yêu cầu chưa đúng.", "en": "The request needs correcting."})
    return text[locale]


# --- The menu ---------------------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse, name="admin_menu")
def admin_menu(request: Request, principal: PrincipalDep) -> Response:
    """One menu of what the caller may administer: officials, audit log, settings, mini-apps' tables."""
    refused = _gate(request, principal, None)
    if refused is not None:
        return refused
    state = request.app.state
    locale = page_locale(request)
    allows = state.authorizer.allows
    loaded = {m.id: m for m in state.miniapps}
    settings = [{"id": m, "name": loaded[m].manifest.name.get(locale)}
                for m in sorted(state.miniapp_settings.configurable()) if m in loaded] if allows(principal, SETTINGS) else []
    # The mini-apps' own admin tables, each shown to those holding the permission its page checks.
    tables = [table for table in MINIAPP_TABLES if table["permission"] in state.authorizer.permissions
              and allows(principal, table["permission"])]
    return render_page(request, "admin/menu.html", {
        "can_users": allows(principal, USERS), "can_audit": allows(principal, AUDIT),
        "can_webapps": allows(principal, "core.webapps.manage"), "settings": settings, "tables": tables})


# --- Officials --------------------------------------------------------------------------------------------


def _unit_choices(db: Session, locale: str) -> list[dict[str, str]]:
    """Every unit a role can be held in, the city first, then departments, then wards and communes."""
    order = {UnitKind.city: 0, UnitKind.department: 1, UnitKind.ward: 2, UnitKind.commune: 2}
    units = sorted(db.exec(select(OrgUnit)), key=lambda u: (order.get(u.kind, 3), u.name_vi))
    return [{"id": u.id, "name": u.name_en if locale == "en" else u.name_vi} for u in units]


def _officials_context(request: Request, db: Session, *, q: str, unit: str, page: int) -> dict[str, Any]:
    query = select(User).where(User.kind == UserKind.official)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(or_(func.lower(User.username).like(pattern), func.lower(User.display_name).like(pattern)))
    if unit:
        query = query.where(col(User.id).in_(select(Membership.user_id).where(Membership.unit_id == unit)))
    rows = list(db.exec(query.order_by(User.username).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    officials = rows[:PAGE_SIZE]
    ids = [u.id for u in officials]
    roles: dict[int, list[Membership]] = {i: [] for i in ids}
    if ids:
        for m in db.exec(select(Membership).where(col(Membership.user_id).in_(ids)).order_by(Membership.id)):
            roles[m.user_id].append(m)
    locale = page_locale(request)
    return {"officials": [{"user": u, "memberships": roles[u.id]} for u in officials], "q": q, "unit": unit,
            "page": page, "more": len(rows) > PAGE_SIZE, "units": _unit_choices(db, locale),
            "role_names": ROLE_NAMES, "roles": [r.value for r in Role]}


@router.get("/admin/officials", response_class=HTMLResponse, name="admin_officials")
def officials_page(request: Request, principal: PrincipalDep, q: Annotated[str, Query(max_length=64)] = "",
                   unit: Annotated[str, Query(max_length=64)] = "",
                   page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    """Officials, 50 a page, searchable by name and unit, with the form that creates one."""
    refused = _gate(request, principal, USERS)
    if refused is not None:
        return refused
    with _engine_session(request) as db:
        context = _officials_context(request, db, q=q.strip(), unit=unit, page=page)
    return render_page(request, "admin/officials.html", {**context, "errors": {}, "values": {}})


@router.post("/admin/officials", response_class=HTMLResponse)
async def create_official(request: Request, principal: PrincipalDep,
                          username: Annotated[str, Form(max_length=64)] = "",
                          display_name: Annotated[str, Form(max_length=120)] = "",
                          password: Annotated[str, Form(max_length=256)] = "",
                          role: Annotated[str, Form(max_length=40)] = "",
                          unit_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Create an official with an initial password and a first role; audited as ``user_created``."""
    refused = _gate(request, principal, USERS)
    if refused is not None:
        return refused
    locale = page_locale(request)

    def create() -> tuple[int | None, dict[str, Any] | None]:
        with _engine_session(request) as db:
            try:
                user = service.create_official(db, username=username, display_name=display_name, password=password,
                                               memberships=[(role, unit_id)], actor_id=principal.user_id)
                return user.id, None
            except IdentityError as exc:
                db.rollback()
                context = _officials_context(request, db, q="", unit="", page=1)
                field = exc.field or "username"
                return None, {**context, "errors": {field: _message(field, locale)},
                              "values": {"username": username, "display_name": display_name, "role": role,
                                         "unit_id": unit_id}}

    user_id, failed = await run_in_threadpool(create)
    if failed is not None:
        return render_page(request, "admin/officials.html", failed, status_code=422)
    return RedirectResponse(f"/admin/officials/{user_id}?done=created&lang={locale}", status_code=303)


def _official_page(request: Request, user_id: int, *, errors: dict[str, str], done: str = "",
                   status_code: int = 200) -> Response:
    with _engine_session(request) as db:
        user = db.get(User, user_id)
        if user is None or user.kind != UserKind.official:
            return error_page(request, 404) or Response(status_code=404)
        memberships = list(db.exec(select(Membership).where(Membership.user_id == user_id).order_by(Membership.id)))
        locale = page_locale(request)
        names = {u.id: (u.name_en if locale == "en" else u.name_vi)
                 for u in db.exec(select(OrgUnit).where(col(OrgUnit.id).in_([m.unit_id for m in memberships] or [""])))}
        return render_page(request, "admin/official.html", {
            "official": user, "memberships": memberships, "unit_names": names, "units": _unit_choices(db, locale),
            "role_names": ROLE_NAMES, "roles": [r.value for r in Role], "errors": errors, "done": done,
        }, status_code=status_code)


@router.get("/admin/officials/{user_id}", response_class=HTMLResponse, name="admin_official")
def official_page(request: Request, user_id: int, principal: PrincipalDep,
                  done: Annotated[str, Query(max_length=20)] = "") -> Response:
    """One official: roles per unit (add, remove), disable or enable, reset the password."""
    return _gate(request, principal, USERS) or _official_page(request, user_id, errors={}, done=done)


async def _change(request: Request, principal: Principal, user_id: int, done: str, work: Any) -> Response:
    """Run ``work(db)`` (a service call that audits); forget the official's cached sessions everywhere."""
    refused = _gate(request, principal, USERS)
    if refused is not None:
        return refused

    def run() -> IdentityError | None:
        with _engine_session(request) as db:
            try:
                work(db)
            except IdentityError as exc:
                db.rollback()
                return exc
        return None

    failed = await run_in_threadpool(run)
    if failed is not None:
        if failed.status == 404 and failed.field == "user_id":
            return error_page(request, 404) or Response(status_code=404)
        field = failed.field or "user_id"
        return await run_in_threadpool(lambda: _official_page(
            request, user_id, errors={field: _message(field, page_locale(request))}, status_code=failed.status))
    await request.app.state.authenticator.invalidate(user_id)
    return RedirectResponse(f"/admin/officials/{user_id}?done={done}&lang={page_locale(request)}", status_code=303)


@router.post("/admin/officials/{user_id}/memberships", response_class=HTMLResponse)
async def add_membership(request: Request, user_id: int, principal: PrincipalDep,
                         role: Annotated[str, Form(max_length=40)] = "",
                         unit_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Give the official a role in a unit (``membership_added``)."""
    return await _change(request, principal, user_id, "role_added", lambda db: service.add_membership(
        db, user_id=user_id, role=role, unit_id=unit_id, actor_id=principal.user_id))


@router.post("/admin/officials/{user_id}/memberships/{membership_id}/remove", response_class=HTMLResponse)
async def remove_membership(request: Request, user_id: int, membership_id: int, principal: PrincipalDep) -> Response:
    """Take a role away (``membership_removed``); the official's sessions end at once."""
    def work(db: Session) -> None:
        membership = db.get(Membership, membership_id)
        if membership is None or membership.user_id != user_id:  # only this official's roles, from this page
            raise IdentityError(404, "no such membership", field="membership_id")
        service.remove_membership(db, membership_id=membership_id, actor_id=principal.user_id)

    return await _change(request, principal, user_id, "role_removed", work)


@router.post("/admin/officials/{user_id}/active", response_class=HTMLResponse)
async def set_active(request: Request, user_id: int, principal: PrincipalDep,
                     active: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Disable the account (its sessions end) or enable it again (``user_disabled`` / ``user_enabled``)."""
    enable = active == "1"
    return await _change(request, principal, user_id, "enabled" if enable else "disabled",
                         lambda db: service.set_official_active(db, user_id=user_id, active=enable,
                                                                actor_id=principal.user_id))


@router.post("/admin/officials/{user_id}/password", response_class=HTMLResponse)
async def reset_password(request: Request, user_id: int, principal: PrincipalDep,
                         password: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Set a new password for the official to change on first use (``password_reset``); sessions end."""
    return await _change(request, principal, user_id, "password", lambda db: service.reset_official_password(
        db, user_id=user_id, password=password, actor_id=principal.user_id))


# --- Audit log --------------------------------------------------------------------------------------------


def _day(text: str) -> date | None:
    """A date typed as dd/mm/yyyy or given by a date input (yyyy-mm-dd); None when blank."""
    text = text.strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(text)


def _hue_midnight(day: date) -> datetime:
    """The UTC moment a Hue day begins (stored moments are UTC)."""
    return datetime.combine(day, time(0), tzinfo=HUE_TIME).astimezone(UTC)


@router.get("/admin/audit", response_class=HTMLResponse, name="admin_audit")
def audit_page(request: Request, principal: PrincipalDep, action: Annotated[str, Query(max_length=40)] = "",
               actor: Annotated[str, Query(max_length=64)] = "", since: Annotated[str, Query(max_length=10)] = "",
               until: Annotated[str, Query(max_length=10)] = "",
               before: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """The audit log, newest first, 50 a page (``before`` pages on), filtered by action, actor and Hue dates."""
    refused = _gate(request, principal, AUDIT)
    if refused is not None:
        return refused
    locale = page_locale(request)
    errors: dict[str, str] = {}
    with _engine_session(request) as db:
        query = select(AuditEvent)
        if action:
            query = query.where(AuditEvent.action == action)
        if actor.strip():
            who = actor.strip()
            actor_id = int(who) if who.isdigit() else db.exec(
                select(User.id).where(User.username == who.lower())).first()
            if actor_id is None:
                errors["actor"] = _message("actor", locale)
            query = query.where(AuditEvent.actor_id == (actor_id or -1))
        try:
            first, last = _day(since), _day(until)
        except ValueError:
            errors["since"], first, last = _message("since", locale), None, None
        if first:
            query = query.where(AuditEvent.at >= _hue_midnight(first))
        if last:
            query = query.where(AuditEvent.at < _hue_midnight(last + timedelta(days=1)))
        if before is not None:
            query = query.where(AuditEvent.id < before)
        rows = list(db.exec(query.order_by(col(AuditEvent.id).desc()).limit(PAGE_SIZE + 1)))
        events = rows[:PAGE_SIZE]
        people = {i for e in events for i in (e.actor_id, e.subject_id) if i is not None}
        names = {u.id: u.username or u.display_name
                 for u in db.exec(select(User).where(col(User.id).in_(people or {-1})))}
    filters = {"action": action, "actor": actor, "since": since, "until": until}
    next_url = None
    if len(rows) > PAGE_SIZE:
        next_url = "/admin/audit?" + urlencode({**{k: v for k, v in filters.items() if v},
                                                "before": events[-1].id, "lang": locale})
    return render_page(request, "admin/audit.html", {
        "events": events, "names": names, "filters": filters, "actions": AUDIT_ACTIONS, "errors": errors,
        "action_names": ACTION_NAMES,
        "next_url": next_url}, status_code=422 if errors else 200)
