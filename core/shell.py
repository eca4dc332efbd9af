"""The web shell: the mobile-width home screen that shows the caller's mini-app tiles."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.banner import PLACE_COOKIE
from core.db import SessionDep
from core.identity.deps import PrincipalDep
from core.identity.resident_pages import ward_choices
from core.manifests import manifest_view, visible_miniapps
from core.search import search_hint
from core.web import page_locale, render_page
from core.webapps.service import tile as webapp_tile

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse, name="shell_home")
def home(request: Request, principal: PrincipalDep, db: SessionDep) -> HTMLResponse:
    """The home screen: a tile per mini-app the caller may open, then the feed, warnings and notifications."""
    locale = page_locale(request)
    state = request.app.state
    granted = state.consents.granted_by_miniapp(principal)
    shown = visible_miniapps(state.miniapps, principal)
    tiles = [manifest_view(m, locale=locale, granted=granted.get(m.id, ())) for m in shown] + [webapp_tile(w, locale=locale, granted=granted.get(w.id, set())) for w in state.webapps.visible(principal)]
    # The unread badge (a bounded count; push's inbox, wired in by core.app) and the places a visitor may
    # pick for warnings.
    unread_count = getattr(state, "unread_count", None)
    signed_in = principal.is_authenticated and principal.user_id
    unread = unread_count(db, principal.user_id) if unread_count is not None and signed_in else None
    places = ward_choices(db, locale) if not principal.is_authenticated else []
    return render_page(request, "shell/home.html", {
        "tiles": tiles, "unread": unread, "places": places, "place": request.cookies.get(PLACE_COOKIE, ""),
        "search_hint": search_hint(shown, locale)})
