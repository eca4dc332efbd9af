"""Residents' web pages: phone sign-in, the first-run home ward, the profile form, my data, deleting the
account, the WebView launch-code exchange and a visitor's chosen place for warnings.

Officials keep their username/password form at ``/auth/login``; every resident action that needs a
sign-in leads to ``/auth/phone``, which links to the officials' form for the few who need it.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from core.banner import PLACE_COOKIE
from core.db import SessionDep
from core.errors import Problem
from core.identity import resident, service
from core.identity.authn import SESSION_COOKIE, client_address
from core.identity.deps import PrincipalDep
from core.identity.models import RefreshToken, User, UserKind
from core.identity.principal import Principal
from core.identity.routes import erase_resident, profile_of, set_session_cookie
from core.identity.service import IdentityError
from core.units.models import OrgUnit, UnitKind
from core.web import page_locale, remember_locale, render_page

router = APIRouter(include_in_schema=False)
RESIDENT_SIGN_IN = "/auth/phone"
QUIET_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# Firebase's web SDK, reCAPTCHA and the token endpoints: allowed only on the sign-in page, only when
# Firebase is configured (everywhere else scripts come from this site alone).
FIREBASE_SDK = "https://www.gstatic.com/firebasejs/10.12.2"
FIREBASE_SOURCES = {
    "script-src": "https://www.gstatic.com https://www.google.com https://apis.google.com",
    "connect-src": "https://identitytoolkit.googleapis.com https://securetoken.googleapis.com https://www.google.com",
    "frame-src": "https://www.google.com https://*.firebaseapp.com",
    "img-src": "https://www.gstatic.com https://www.google.com",
}

MESSAGES = {
    "home_unit_id": {"vi": "Chọn một phường hoặc xã trong danh sách.", "en": "Choose a ward or commune from the list."},
    "display_name": {"vi": "Tên hiển thị dài từ 1 đến 120 ký tự.", "en": "Your name must be 1 to 120 characters."},
    "follows": {"vi": "Chỉ theo dõi được các phường, xã trong danh sách.",
                "en": "You can only follow wards and communes from the list."},
    "quiet_hours": {"vi": "Giờ yên lặng: nhập cả giờ bắt đầu và giờ kết thúc (HH:MM), hoặc bỏ trống cả hai.",
                    "en": "Quiet hours: give both a start and an end (HH:MM), or leave both empty."},
    "locale": {"vi": "Chọn Tiếng Việt hoặc English.", "en": "Choose Tiếng Việt or English."},
    "confirm": {"vi": "Đánh dấu ô xác nhận để xoá tài khoản.",
                "en": "Tick the confirmation box to delete your account."},
    "officials": {"vi": "Tài khoản cán bộ do quản trị viên đóng, không xoá được ở đây.",
                  "en": "Officials' accounts are closed by an administrator, not here."},
}


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to go to after a step (never another site, never back into a sign-in step)."""
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not target.startswith("/auth/")):
        return target
    return default


def resident_sign_in_url(next_path: str | None) -> str:
    """The residents' sign-in page, coming back to ``next_path`` afterwards."""
    return f"{RESIDENT_SIGN_IN}?next={quote(safe_next(next_path), safe='/')}"


def ward_choices(db: Session, locale: str) -> list[dict[str, str]]:
    """The city's communes and wards (the 40 units) as ``{id, name}``, by name in the page's language."""
    units = db.exec(select(OrgUnit).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune])))
    return sorted(({"id": u.id, "name": u.name_en if locale == "en" else u.name_vi} for u in units),
                  key=lambda u: u["name"])


def _firebase_web(request: Request) -> dict[str, str] | None:
    settings = request.app.state.settings
    if not (settings.firebase_project_id and settings.firebase_web_api_key):
        return None
    config = {"apiKey": settings.firebase_web_api_key, "projectId": settings.firebase_project_id,
              "authDomain": settings.firebase_web_auth_domain or f"{settings.firebase_project_id}.firebaseapp.com"}
    if settings.firebase_auth_emulator_host:
        config["emulator"] = f"http://{settings.firebase_auth_emulator_host}"
    return config


def _firebase_policy(request: Request, config: dict[str, str]) -> str | None:
    """This page's CSP with Firebase's hosts added (the security middleware keeps a policy already set)."""
    try:
        from core.security import content_security_policy, csp_nonce
    except ImportError:  # no policy middleware: nothing to widen
        return None
    policy = content_security_policy(request.app.state.settings, csp_nonce(request))
    extra = dict(FIREBASE_SOURCES)
    if "emulator" in config:
        extra["connect-src"] += " " + config["emulator"]
    parts = []
    for directive in policy.split("; "):
        name = directive.split(" ", 1)[0]
        parts.append(f"{directive} {extra[name]}" if name in extra else directive)
    return "; ".join(parts)


# --- Sign-in ------------------------------------------------------------------------------------------------


@router.get("/auth/phone", response_class=HTMLResponse, name="resident_sign_in_page")
def phone_sign_in_page(request: Request, principal: PrincipalDep, next: str | None = None) -> Response:
    """Residents' sign-in: a phone number, then a code (Firebase SMS, or the development code in dev)."""
    target = safe_next(next)
    if principal.is_authenticated:
        return RedirectResponse(target, status_code=303)
    # Sent here from a page opened with ?lang=: sign in in that page's language (the redirect carried no cookie).
    wanted = parse_qs(urlsplit(target).query).get("lang", [""])[0]
    if "lang" not in request.query_params and wanted in ("vi", "en"):
        return RedirectResponse(f"{RESIDENT_SIGN_IN}?next={quote(target, safe='/')}&lang={wanted}", status_code=303)
    locale = page_locale(request)
    firebase = _firebase_web(request)
    dev = request.app.state.settings.env == "dev"
    texts = {key: value[locale] for key, value in JS_TEXTS.items()}
    response = render_page(request, "identity/phone.html", {
        "next": target, "firebase": firebase, "dev": dev, "firebase_sdk": FIREBASE_SDK,
        "texts": json.dumps(texts, ensure_ascii=False), "firebase_json": json.dumps(firebase) if firebase else "",
        "officials_url": f"/auth/login?next={quote(target, safe='/')}",
    })
    if firebase:
        policy = _firebase_policy(request, firebase)
        if policy:
            response.headers["Content-Security-Policy"] = policy
    return response


# What the sign-in script says, in the page's language only.
JS_TEXTS = {
    "bad_phone": {"vi": "Số điện thoại chưa đúng. Nhập số Việt Nam, ví dụ 0912 345 678.",
                  "en": "That phone number is not right. Enter a Vietnamese number such as 0912 345 678."},
    "bad_code": {"vi": "Mã chưa đúng hoặc đã hết hạn. Kiểm tra lại hoặc xin mã mới.",
                 "en": "The code is wrong or has expired. Check it or ask for a new one."},
    "too_many": {"vi": "Bạn đã thử quá nhiều lần. Vui lòng đợi rồi thử lại.",
                 "en": "Too many tries. Please wait and try again."},
    "failed": {"vi": "Không đăng nhập được. Vui lòng thử lại.", "en": "Could not sign you in. Please try again."},
    "offline": {"vi": "Không kết nối được máy chủ. Kiểm tra mạng rồi thử lại.",
                "en": "Cannot reach the server. Check your connection and try again."},
    "sent_sms": {"vi": "Đã gửi mã 6 số qua tin nhắn tới", "en": "A 6-digit code was sent by SMS to"},
    "sent_dev": {"vi": "Môi trường phát triển: mã 6 số đã được ghi vào nhật ký máy chủ cho số",
                 "en": "Development: the 6-digit code was written to the server log for"},
    "working": {"vi": "Đang xử lý…", "en": "Working…"},
}


@router.get("/auth/continue", name="after_sign_in")
def after_sign_in(request: Request, principal: PrincipalDep, next: str | None = None) -> Response:
    """Where a resident goes after signing in: the home-ward step the first time, else back to ``next``."""
    target = safe_next(next)
    if not principal.is_authenticated:
        return RedirectResponse(resident_sign_in_url(target), status_code=303)
    if principal.kind == UserKind.resident.value and not principal.home_unit_id:
        return RedirectResponse(f"/me/home?first=1&next={quote(target, safe='/')}", status_code=303)
    return RedirectResponse(target, status_code=303)


# --- First run: the home ward ---------------------------------------------------------------------------------


@router.get("/me/home", response_class=HTMLResponse, name="home_ward_page")
def home_ward_page(request: Request, principal: PrincipalDep, db: SessionDep, next: str | None = None,
                   first: int = 0) -> Response:
    """Ask for the resident's ward or commune: warnings for it reach them, and reports start there."""
    target = safe_next(next)
    if not principal.is_authenticated:
        return RedirectResponse(resident_sign_in_url(f"/me/home?next={quote(target, safe='/')}"), status_code=303)
    if principal.kind != UserKind.resident.value:
        return RedirectResponse("/me", status_code=303)  # officials have units, not a home ward
    return render_page(request, "identity/home_ward.html", {
        "next": target, "first": bool(first), "units": ward_choices(db, page_locale(request)),
        "current": principal.home_unit_id, "error": None})


@router.post("/me/home", response_class=HTMLResponse)
async def save_home_ward(request: Request, principal: PrincipalDep,
                         home_unit_id: Annotated[str, Form(max_length=64)] = "",
                         next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Save the home ward chosen at first run (or later) and go on."""
    target = safe_next(next)
    if not principal.is_authenticated:
        return RedirectResponse(resident_sign_in_url("/me/home"), status_code=303)

    if principal.kind != UserKind.resident.value:
        return render_page(request, "identity/home_ward.html", {
            "next": target, "first": False, "units": [], "current": None,
            "error": MESSAGES["officials"]}, status_code=403)

    def save() -> list[dict[str, str]] | None:
        with Session(request.app.state.engine) as db:
            unit = db.get(OrgUnit, home_unit_id) if home_unit_id else None
            if unit is None or unit.kind not in (UnitKind.ward, UnitKind.commune):
                return ward_choices(db, page_locale(request))
            user = db.get(User, principal.user_id)
            assert user is not None
            user.home_unit_id = unit.id
            db.add(user)
            db.commit()
            return None

    units = await run_in_threadpool(save)
    if units is not None:
        return render_page(request, "identity/home_ward.html", {
            "next": target, "first": True, "units": units, "current": None,
            "error": MESSAGES["home_unit_id"]}, status_code=422)
    await _changed(request, principal.user_id or 0)
    return RedirectResponse(target, status_code=303)


async def _changed(request: Request, user_id: int) -> None:
    """Every worker forgets the cached caller, and with it their cached inbox (its audiences follow the
    home ward: push/inbox_cache.py listens to the authenticator's invalidations)."""
    await request.app.state.authenticator.invalidate(user_id)


# --- Profile ----------------------------------------------------------------------------------------------


# How a session was opened and which role an official holds, in words rather than codes.
SIGN_IN_METHODS = {
    "firebase": {"vi": "Số điện thoại (Firebase)", "en": "Phone number (Firebase)"},
    "dev_code": {"vi": "Mã phát triển", "en": "Development code"},
    "password": {"vi": "Mật khẩu", "en": "Password"},
    "launch_code": {"vi": "Trang mở từ ứng dụng", "en": "Page opened from the app"},
}
ROLE_NAMES = {
    "commune_official": {"vi": "Cán bộ phường, xã", "en": "Commune or ward official"},
    "department_official": {"vi": "Cán bộ sở, ngành", "en": "Department official"},
    "operator": {"vi": "Điều hành (IOC)", "en": "Operator (IOC)"},
    "admin": {"vi": "Quản trị", "en": "Administrator"},
}


def profile_context(request: Request, principal: Principal, db: Session, *, errors: dict[str, Any] | None = None,
                    values: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the profile page shows: the account, and for residents the form's choices and current values."""
    from core.notifications.models import UnitFollow

    locale = page_locale(request)
    profile = profile_of(db, principal.user_id or 0)
    open_sessions = service.list_sessions(db, user_id=principal.user_id or 0)
    # A launch code the WebView never exchanged (its one token unused) opened nothing a person would
    # recognise: not listed.
    launched = {s.id for s in open_sessions if s.sign_in_method == resident.LAUNCH_METHOD}
    opened = set(db.exec(select(RefreshToken.session_id).where(
        RefreshToken.session_id.in_(launched), RefreshToken.used_at.is_not(None)))) if launched else set()
    unopened = launched - opened
    sessions = [{"id": s.id, "created_at": s.created_at,
                 "method": SIGN_IN_METHODS.get(s.sign_in_method, {}).get(locale, s.sign_in_method)}
                for s in open_sessions if s.id not in unopened]
    units = {u.id: (u.name_en if locale == "en" else u.name_vi)
             for u in db.exec(select(OrgUnit).where(OrgUnit.id.in_([m.unit_id for m in profile.memberships])))}
    roles = [{"role": ROLE_NAMES.get(m.role, {}).get(locale, m.role), "unit": units.get(m.unit_id, m.unit_id)}
             for m in profile.memberships]
    context: dict[str, Any] = {"profile": profile, "sessions": sessions, "roles": roles,
                               "errors": errors or {}, "saved": request.query_params.get("saved") == "1"}
    if profile.kind == UserKind.resident:
        follows = set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)))
        quiet = (profile.notification_prefs or {}).get("quiet_hours") or {}
        current = {"display_name": profile.display_name, "home_unit_id": profile.home_unit_id or "",
                   "follows": follows, "locale": profile.locale or page_locale(request),
                   "quiet_start": quiet.get("start", ""), "quiet_end": quiet.get("end", "")}
        context.update(units=ward_choices(db, page_locale(request)), values=current | (values or {}))
    return context


def profile_response(request: Request, principal: Principal, db: Session) -> Response:
    """GET /me: the sign-in page for a visitor, else the caller's profile."""
    if not principal.is_authenticated:
        return RedirectResponse(resident_sign_in_url("/me"), status_code=303)
    return render_page(request, "identity/profile.html", profile_context(request, principal, db))


@router.post("/me", response_class=HTMLResponse)
async def save_profile(request: Request, principal: PrincipalDep) -> Response:
    """Save the resident's name, home ward, followed units, language and quiet hours."""
    if not principal.is_authenticated:
        return RedirectResponse(resident_sign_in_url("/me"), status_code=303)
    form = await request.form()
    values = {
        "display_name": str(form.get("display_name", "")).strip(),
        "home_unit_id": str(form.get("home_unit_id", "")).strip(),
        "follows": {str(v) for v in form.getlist("follows")},
        "locale": str(form.get("locale", "")),
        "quiet_start": str(form.get("quiet_start", "")).strip(),
        "quiet_end": str(form.get("quiet_end", "")).strip(),
    }

    def save() -> dict[str, Any] | None:
        from core.notifications.models import UnitFollow

        with Session(request.app.state.engine) as db:
            user = db.get(User, principal.user_id)
            if user is None or user.kind != UserKind.resident:
                return {"errors": {"officials": MESSAGES["officials"]}}
            wards = {u.id for u in db.exec(select(OrgUnit).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune])))}
            errors = {}
            if not 1 <= len(values["display_name"]) <= 120:
                errors["display_name"] = MESSAGES["display_name"]
            if values["home_unit_id"] and values["home_unit_id"] not in wards:
                errors["home_unit_id"] = MESSAGES["home_unit_id"]
            if not values["follows"] <= wards or len(values["follows"]) > len(wards):
                errors["follows"] = MESSAGES["follows"]
            if values["locale"] not in ("vi", "en"):
                errors["locale"] = MESSAGES["locale"]
            start, end = values["quiet_start"], values["quiet_end"]
            if bool(start) != bool(end) or (start and not (QUIET_TIME.match(start) and QUIET_TIME.match(end))):
                errors["quiet_hours"] = MESSAGES["quiet_hours"]
            if errors:
                return {"errors": errors}
            user.display_name = values["display_name"]
            user.home_unit_id = values["home_unit_id"] or None
            user.locale = values["locale"]
            prefs = dict(user.notification_prefs or {})
            if start:
                prefs["quiet_hours"] = {"start": start, "end": end}
            else:
                prefs.pop("quiet_hours", None)
            user.notification_prefs = prefs
            db.add(user)
            db.commit()
            # Follows go through the push API's own functions (core.app hands them in as app.state.follow_unit
            # and unfollow_unit), so the phone's FCM topics follow too.
            follow_unit, unfollow_unit = request.app.state.follow_unit, request.app.state.unfollow_unit
            current = set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)))
            for unit_id in sorted(values["follows"] - current):
                follow_unit(unit_id, request, principal, db)
            for unit_id in sorted(current - values["follows"]):
                unfollow_unit(unit_id, request, principal, db)
            return None

    refused = await run_in_threadpool(save)
    if refused is not None:
        def page() -> dict[str, Any]:
            with Session(request.app.state.engine) as db:
                return profile_context(request, principal, db, errors=refused["errors"], values=values)

        status = 403 if "officials" in refused["errors"] else 422
        return render_page(request, "identity/profile.html", await run_in_threadpool(page), status_code=status)
    await _changed(request, principal.user_id or 0)
    response = RedirectResponse("/me?saved=1", status_code=303)
    remember_locale(request, response, values["locale"])
    return response


# --- Delete my account ----------------------------------------------------------------------------------------


@router.post("/me/delete", response_class=HTMLResponse)
async def delete_account(request: Request, principal: PrincipalDep,
                         confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    """Delete the resident's account after they confirmed; reports and questions stay, without them."""
    if not principal.is_authenticated:
        return RedirectResponse(resident_sign_in_url("/me"), status_code=303)
    error = None
    if principal.kind != UserKind.resident.value:
        error = {"officials": MESSAGES["officials"]}
    elif confirm != "yes":
        error = {"confirm": MESSAGES["confirm"]}
    else:
        try:
            await run_in_threadpool(erase_resident, request, principal)
        except Problem:
            error = {"officials": MESSAGES["officials"]}
    if error is not None:
        def page() -> dict[str, Any]:
            with Session(request.app.state.engine) as db:
                return profile_context(request, principal, db, errors=error)

        status = 403 if "officials" in error else 422
        return render_page(request, "identity/profile.html", await run_in_threadpool(page), status_code=status)
    await request.app.state.authenticator.invalidate(principal.user_id)
    response = RedirectResponse("/auth/deleted", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me/delete", include_in_schema=False)
def delete_account_page(request: Request) -> Response:
    """The deletion form lives on the profile page (the language toggle of a refused deletion leads here)."""
    return RedirectResponse("/me", status_code=303)


@router.get("/auth/deleted", response_class=HTMLResponse)
def account_deleted_page(request: Request) -> HTMLResponse:
    """Said once the account is gone."""
    return render_page(request, "identity/deleted.html", {})


# --- WebView launch codes ------------------------------------------------------------------------------------


def _launch(request: Request, code: str, next_path: str | None) -> Response:
    target = safe_next(next_path)
    try:
        with Session(request.app.state.engine) as db:
            pair = resident.exchange_launch_code(db, secret=request.app.state.settings.secret_key, code=code,
                                                 address=client_address(request))
    except IdentityError:
        response = render_page(request, "identity/launch_failed.html", {}, status_code=401)
    else:
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(request, response, pair.access_token)
    # The code must not travel further: not in a Referer, not in a cache.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/auth/launch", response_class=HTMLResponse)
def launch_with_code_form(request: Request, code: Annotated[str, Form(max_length=200)] = "",
                          next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """The WebView's first request: exchange the app's one-time launch code for a cookie session."""
    return _launch(request, code, next)


@router.get("/auth/launch", response_class=HTMLResponse)
def launch_with_code_link(request: Request, code: str = "", next: str = "/") -> Response:
    """The same for WebViews that can only open a URL (the code still works once, for 60 seconds)."""
    return _launch(request, code[:200], next)


# --- A visitor's place for warnings ------------------------------------------------------------------------


@router.post("/place")
def choose_place(request: Request, db: SessionDep, unit: Annotated[str, Form(max_length=64)] = "",
                 next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Remember which ward's warnings this browser shows ("" for the whole city)."""
    response = RedirectResponse(safe_next(next), status_code=303)
    chosen = db.get(OrgUnit, unit) if unit else None
    if chosen is not None and chosen.kind in (UnitKind.ward, UnitKind.commune):
        response.set_cookie(PLACE_COOKIE, chosen.id, max_age=365 * 24 * 3600, samesite="lax", path="/",
                            secure=request.app.state.settings.env == "production")
    else:
        response.delete_cookie(PLACE_COOKIE, path="/")
    return response
