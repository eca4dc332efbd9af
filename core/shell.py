"""The web shell: the mobile-width home screen that shows the caller's mini-app tiles."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.identity.deps import PrincipalDep
from core.manifests import manifest_view, visible_miniapps
from core.web import page_locale, render_page

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse, name="shell_home")
def home(request: Request, principal: PrincipalDep) -> HTMLResponse:
    """The home screen: a tile per mini-app the caller may open, then the feed and notifications."""
    locale = page_locale(request)
    state = request.app.state
    granted = state.consents.granted_by_miniapp(principal)
    tiles = [
        manifest_view(m, locale=locale, granted=granted.get(m.id, ()))
        for m in visible_miniapps(state.miniapps, principal)
    ]
    return render_page(request, "shell/home.html", {"tiles": tiles})
