"""Operators' pages for web mini-apps (``/admin/webapps``): the versions waiting for review, approve or reject
with a reason, publish, widen the rollout, roll back.

The pages call the same ``WebApps`` service functions as the API and the CLI (so every step is audited the
same way) and check the same permission, ``core.webapps.manage``. Their forms are cookie-authenticated POSTs,
so the authenticator refuses any that does not come from this site's own pages (the Origin check every
admin form has).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from core.errors import Problem, error_page
from core.identity.authn import client_address
from core.identity.deps import PrincipalDep
from core.web import page_locale, render_page
from core.webapps.models import VersionStatus, WebApp, WebAppVersion
from core.webapps.service import WebApps

router = APIRouter(include_in_schema=False)
MANAGE = "core.webapps.manage"
PAGE_SIZE = 100
# What a refused field means, in the page's language (the service's reasons are for the API).
FIELD_MESSAGES = {
    "reason": {"vi": "Từ chối cần nêu lý do để nhà phát triển sửa.",
               "en": "A rejection needs a reason the developer can act on."},
    "version": {"vi": "Phiên bản này không ở trạng thái cho phép việc này (hoặc không nằm trong 5 bản đã phát hành "
                      "gần nhất).",
                "en": "This version is not in a state that allows this (or is not one of the last five published)."},
    "rollout_percent": {"vi": "Tỷ lệ triển khai là 1–100 và chỉ được tăng, không giảm; phát hành trước đã.",
                        "en": "The rollout is 1–100 and only grows, never shrinks; publish a version first."},
}
DONE = {
    "approved": {"vi": "Đã duyệt phiên bản.", "en": "Version approved."},
    "rejected": {"vi": "Đã từ chối phiên bản.", "en": "Version rejected."},
    "published": {"vi": "Đã phát hành.", "en": "Published."},
    "widened": {"vi": "Đã mở rộng triển khai.", "en": "Rollout widened."},
    "rolled_back": {"vi": "Đã quay lại phiên bản cũ.", "en": "Rolled back."},
}
STATUS_NAMES = {
    "submitted": {"vi": "Chờ duyệt", "en": "Awaiting review"},
    "approved": {"vi": "Đã duyệt", "en": "Approved"},
    "rejected": {"vi": "Bị từ chối", "en": "Rejected"},
    "published": {"vi": "Đang phát hành", "en": "Live"},
    "retired": {"vi": "Đã thay thế", "en": "Replaced"},
}


def _gate(request: Request, principal: Any) -> Response | None:
    """Signed out: to the officials' sign-in; without the permission: the localized 403 page."""
    if not principal.is_authenticated:
        here = request.url.path
        return RedirectResponse(f"/auth/login?next={here}", status_code=303)
    if not request.app.state.authorizer.allows(principal, MANAGE):
        return error_page(request, 403) or Response(status_code=403)
    return None


def _session(request: Request) -> Session:
    return Session(request.app.state.engine, expire_on_commit=False)


@router.get("/admin/webapps", response_class=HTMLResponse, name="admin_webapps")
def webapps_page(request: Request, principal: PrincipalDep,
                 after: Annotated[str, Query(max_length=40)] = "") -> Response:
    """Every registered web mini-app (100 a page) and, first, the versions waiting for review."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    with _session(request) as db:
        waiting = list(db.exec(select(WebAppVersion).where(WebAppVersion.status == VersionStatus.submitted)
                               .order_by(WebAppVersion.submitted_at).limit(PAGE_SIZE)))
        query = select(WebApp).order_by(WebApp.id).limit(PAGE_SIZE + 1)
        if after:
            query = query.where(WebApp.id > after)
        rows = list(db.exec(query))
    locale = page_locale(request)
    return render_page(request, "webapps/admin_list.html", {
        "waiting": [{"webapp_id": v.webapp_id, "number": v.number, "submitted_at": v.submitted_at,
                     "name": v.manifest.get("name", {}).get(locale, v.webapp_id)} for v in waiting],
        "webapps": rows[:PAGE_SIZE], "next_after": rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None})


def _detail(request: Request, webapp_id: str, *, error: str = "", done: str = "", status_code: int = 200) -> Response:
    webapps: WebApps = request.app.state.webapps
    locale = page_locale(request)
    with _session(request) as db:
        webapp = db.get(WebApp, webapp_id)
        if webapp is None:
            return error_page(request, 404) or Response(status_code=404)
        versions = list(db.exec(select(WebAppVersion).where(WebAppVersion.webapp_id == webapp_id)
                                .order_by(col(WebAppVersion.number).desc()).limit(50)))
        rollback_to = [n for n in webapps.rollback_candidates(db, webapp_id) if n != webapp.live_version]
    return render_page(request, "webapps/admin_detail.html", {
        "webapp": webapp, "versions": versions, "rollback_to": rollback_to, "error": error,
        "done": DONE.get(done, {}).get(locale, ""), "status_names": STATUS_NAMES,
        "name": (versions[-1].manifest.get("name", {}).get(locale, webapp_id) if versions else webapp_id),
    }, status_code=status_code)


@router.get("/admin/webapps/{webapp_id}", response_class=HTMLResponse, name="admin_webapp")
def webapp_page(request: Request, webapp_id: str, principal: PrincipalDep,
                done: Annotated[str, Query(max_length=20)] = "") -> Response:
    """One web mini-app: its versions with their manifests and reviews, and the forms for each next step."""
    return _gate(request, principal) or _detail(request, webapp_id, done=done)


def _act(request: Request, principal: Any, webapp_id: str, done: str, work: Any) -> Response:
    """Run one lifecycle step (a service call that audits) and show the page again, or its refusal in words."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    webapps: WebApps = request.app.state.webapps
    with _session(request) as db:
        try:
            work(webapps, db, client_address(request))
            db.commit()
        except Problem as exc:
            db.rollback()
            if exc.status == 404:
                return error_page(request, 404) or Response(status_code=404)
            message = FIELD_MESSAGES.get(exc.field or "", FIELD_MESSAGES["version"])[page_locale(request)]
            return _detail(request, webapp_id, error=message, status_code=exc.status)
    webapps.changed()
    return RedirectResponse(f"/admin/webapps/{webapp_id}?done={done}&lang={page_locale(request)}", status_code=303)


@router.post("/admin/webapps/{webapp_id}/versions/{number}/review", response_class=HTMLResponse)
def review(request: Request, webapp_id: str, number: int, principal: PrincipalDep,
           decision: Annotated[str, Form(max_length=10)] = "",
           reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Approve or reject a submitted version (a rejection needs its reason)."""
    approve = decision == "approve"
    return _act(request, principal, webapp_id, "approved" if approve else "rejected",
                lambda w, db, address: w.review(db, webapp_id, number, approve=approve, reason=reason,
                                                actor_id=principal.user_id, address=address))


@router.post("/admin/webapps/{webapp_id}/versions/{number}/publish", response_class=HTMLResponse)
def publish(request: Request, webapp_id: str, number: int, principal: PrincipalDep,
            rollout_percent: Annotated[int, Form(ge=1, le=100)] = 100) -> Response:
    """Publish an approved version to a share of residents."""
    return _act(request, principal, webapp_id, "published",
                lambda w, db, address: w.publish(db, webapp_id, number, rollout_percent=rollout_percent,
                                                 actor_id=principal.user_id, address=address))


@router.post("/admin/webapps/{webapp_id}/rollout", response_class=HTMLResponse)
def rollout(request: Request, webapp_id: str, principal: PrincipalDep,
            rollout_percent: Annotated[int, Form(ge=1, le=100)] = 100) -> Response:
    """Widen the rollout of the live version (narrowing is refused)."""
    return _act(request, principal, webapp_id, "widened",
                lambda w, db, address: w.set_rollout(db, webapp_id, rollout_percent, actor_id=principal.user_id,
                                                     address=address))


@router.post("/admin/webapps/{webapp_id}/rollback", response_class=HTMLResponse)
def rollback(request: Request, webapp_id: str, principal: PrincipalDep,
             version: Annotated[int, Form(ge=1)] = 0) -> Response:
    """Make one of the last five published versions live again."""
    return _act(request, principal, webapp_id, "rolled_back",
                lambda w, db, address: w.rollback(db, webapp_id, version, actor_id=principal.user_id,
                                                  address=address))
