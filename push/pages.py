"""The notification inbox page: server-rendered, then kept live over /ws."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from core.db import SessionDep
from core.identity.deps import PrincipalDep
from core.web import page_locale, render_page
from push import inbox
from push.models import UnitFollow

router = APIRouter(include_in_schema=False)


@router.get("/inbox", response_class=HTMLResponse, name="inbox_page")
def inbox_page(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The caller's notifications; new ones appear without reloading."""
    if not principal.is_authenticated:
        return RedirectResponse("/auth/login?next=/inbox", status_code=303)
    locale = page_locale(request)
    entries, _more = inbox.page(db, principal.user_id or 0, limit=50)
    items = [{"id": e.notification.id, "severity": e.notification.severity.value, "read": e.read,
              "title": e.notification.title_en if locale == "en" else e.notification.title_vi,
              "body": e.notification.body_en if locale == "en" else e.notification.body_vi,
              "url": e.notification.url} for e in entries]
    channels = [f"user:{principal.user_id}"]
    units = {principal.home_unit_id} if principal.home_unit_id else set()
    units |= set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)))
    channels += [f"unit:{u}" for u in sorted(units)]
    return render_page(request, "push/inbox.html", {"items": items, "channels": channels})
