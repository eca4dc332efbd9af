"""Residents' pages for web mini-apps: the frame that opens one (with the shell's consent dialog) and the
page listing each web mini-app's granted scopes with revoke."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import SessionDep
from core.identity.authn import client_address
from core.identity.deps import PrincipalDep
from core.identity.resident_pages import resident_sign_in_url
from core.web import page_locale, render_page
from core.webapps import analytics, webhooks
from core.webapps.routes import LaunchRequest, _issuer, launch_for
from core.webapps.service import WebApps
from plugins._errors import DomainError

router = APIRouter(include_in_schema=False)


def _sign_in(next_path: str) -> RedirectResponse:
    """Residents sign in on the phone page, then come back here."""
    return RedirectResponse(resident_sign_in_url(next_path), status_code=303)


@router.get("/webapps/{webapp_id}", response_class=HTMLResponse, name="webapp_frame")
def frame(request: Request, webapp_id: str, principal: PrincipalDep, db: SessionDep,
          start: str | None = None) -> Response:
    """Open a web mini-app in a sandboxed frame with a fresh launch token; the bridge talks to this page."""
    if not principal.is_authenticated:
        return _sign_in(f"/webapps/{webapp_id}")
    webapps: WebApps = request.app.state.webapps
    # The launch token's theme: the device's colour scheme when the browser tells it (a client hint this page
    # asks for); the bridge's theme() and themeChanged give the live one.
    hint = request.headers.get("sec-ch-prefers-color-scheme", "").strip('" ')
    launched = launch_for(request, db, principal, webapp_id,
                          LaunchRequest(start_param=start, theme="dark" if hint == "dark" else "light"))
    webapp = webapps.openable(principal, webapp_id)
    locale = page_locale(request)
    # This page, and only this page, may frame this mini-app's origins (core/security.py reads this).
    request.scope.setdefault("state", {})["csp_frame_sources"] = webapp.manifest.allowed_origins
    scopes = [{"scope": s.scope.value, "reason": s.reason.get(locale)} for s in webapp.manifest.scopes]
    response = render_page(request, "webapps/frame.html", {
        "webapp": webapp, "name": webapp.manifest.name.get(locale), "frame_url": launched["frame_url"],
        "origins": " ".join(webapp.manifest.allowed_origins), "scopes": scopes})
    response.headers["Cache-Control"] = "no-store"  # the page carries a launch token
    response.headers["Accept-CH"] = "Sec-CH-Prefers-Color-Scheme"
    response.headers["Vary"] = "Sec-CH-Prefers-Color-Scheme"
    return response


@router.get("/me/webapps", response_class=HTMLResponse, name="webapp_consents")
def consents(request: Request, principal: PrincipalDep) -> Response:
    """Each web mini-app I may open, with the scopes I granted it and a revoke button for each."""
    if not principal.is_authenticated:
        return _sign_in("/me/webapps")
    locale = page_locale(request)
    webapps: WebApps = request.app.state.webapps
    granted = request.app.state.consents.granted_by_miniapp(principal)
    rows = []
    for webapp in webapps.live().values():
        mine = granted.get(webapp.id, set())
        if not mine and webapp not in webapps.visible(principal):
            continue
        rows.append({"id": webapp.id, "name": webapp.manifest.name.get(locale), "icon": webapp.manifest.icon,
                     "scopes": [{"scope": s.scope.value, "reason": s.reason.get(locale),
                                 "granted": s.scope.value in mine} for s in webapp.manifest.scopes]})
    return render_page(request, "webapps/consents.html", {"webapps": sorted(rows, key=lambda r: r["id"])})


@router.post("/me/webapps/{webapp_id}/revoke", name="webapp_revoke")
def revoke(request: Request, webapp_id: str, principal: PrincipalDep, scope: str = Form(max_length=20)) -> RedirectResponse:
    """Revoke one scope from the consents page, then show the page again."""
    if not principal.is_authenticated or principal.user_id is None:
        return _sign_in("/me/webapps")
    if request.app.state.consents.revoke(user_id=principal.user_id, miniapp_id=webapp_id, scope=scope,
                                         address=client_address(request)):
        webhooks.consent_revoked(request.app.state, issuer=_issuer(request), webapp_id=webapp_id,
                                 user_id=principal.user_id, scope=scope)
    return RedirectResponse(f"/me/webapps?lang={page_locale(request)}", status_code=303)


@router.get("/admin/webapps/{webapp_id}/analytics", response_class=HTMLResponse, name="webapp_dashboard")
def dashboard(request: Request, webapp_id: str, principal: PrincipalDep, db: SessionDep,
              days: int = 30) -> Response:
    """Operators' dashboard of one web mini-app: opens, unique residents and errors per day, with the CSV."""
    if not principal.is_authenticated:
        return RedirectResponse(f"/auth/login?next=/admin/webapps/{webapp_id}/analytics", status_code=303)
    if not request.app.state.authorizer.allows(principal, "core.webapps.manage"):
        raise DomainError(403, "you do not have the permission 'core.webapps.manage'", type="/problems/forbidden")
    webapps: WebApps = request.app.state.webapps
    webapps.get(db, webapp_id)
    rows = list(reversed(analytics.daily(db, webapp_id, days)))
    totals = {k: sum(r[k] for r in rows) for k in ("opens", "errors")}
    return render_page(request, "webapps/dashboard.html", {"webapp_id": webapp_id, "rows": rows, "totals": totals,
                                                           "days": len(rows)})
