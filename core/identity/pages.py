"""Web pages for identity: officials' sign-in and the profile page (cookie or bearer, same checks);
residents' pages are in ``core/identity/resident_pages.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import SessionDep
from core.identity import resident_pages
from core.identity.authn import SESSION_COOKIE
from core.identity.deps import PrincipalDep
from core.identity.routes import end_sessions, remember_device, sign_in_official
from core.identity.service import IdentityError
from core.identity.tokens import WEB_SESSION_TTL
from core.web import render_page

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a signed-in official to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/me"


@router.get("/auth/login", response_class=HTMLResponse, name="sign_in_page")
def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The officials' sign-in form."""
    return render_page(request, "identity/login.html", {"next": _safe_next(next), "error": None})


@router.post("/auth/login", response_class=HTMLResponse)
def sign_in_form(request: Request, db: SessionDep, username: Annotated[str, Form(max_length=64)] = "",
                 password: Annotated[str, Form(max_length=256)] = "", next: Annotated[str, Form()] = "/me") -> Response:
    """Check the form; on success set the session cookie and go to ``next``."""
    error = None
    status, retry_after = 401, None
    if not username.strip() or not password:
        error = {"vi": "Nhập tên đăng nhập và mật khẩu.", "en": "Enter your username and password."}
    else:
        try:
            pair = sign_in_official(request, db, username=username, password=password, web=True)
        except IdentityError as exc:
            error = {"vi": _vietnamese(exc), "en": exc.reason}
            status, retry_after = exc.status, exc.retry_after
    if error is not None:
        page = render_page(request, "identity/login.html", {"next": _safe_next(next), "error": error,
                                                            "username": username}, status_code=status)
        if retry_after:
            page.headers["Retry-After"] = str(retry_after)
        return page
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, pair.access_token, max_age=int(WEB_SESSION_TTL.total_seconds()),
                        httponly=True, samesite="lax", secure=request.app.state.settings.env == "production",
                        path="/")
    remember_device(request, response, username)
    return response


def _vietnamese(exc: IdentityError) -> str:
    if exc.status == 429:
        seconds = exc.retry_after or 60
        wait = f"{seconds} giây" if seconds < 120 else f"{round(seconds / 60)} phút"
        return f"Đăng nhập sai quá nhiều lần; thử lại sau {wait}."
    return "Sai tên đăng nhập hoặc mật khẩu."


@router.get("/me", response_class=HTMLResponse, name="profile_page")
def profile_page(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The caller's profile: name, unit, roles and open sessions; residents also edit theirs here."""
    return resident_pages.profile_response(request, principal, db)


@router.post("/auth/logout")
async def sign_out_form(request: Request, principal: PrincipalDep) -> Response:
    """Sign this browser out and return to the home page."""
    if principal.is_authenticated:
        await end_sessions(request, principal, everywhere=False)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# Residents' pages (phone sign-in, first run, profile form, my data, launch codes) share this router.
router.include_router(resident_pages.router)
