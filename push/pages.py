"""The notification inbox page: server-rendered, then kept live over /ws."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from core.db import SessionDep
from core.identity.deps import PrincipalDep
from core.web import page_locale, render_page
from push.models import InboxItem, Notification, UnitFollow

router = APIRouter(include_in_schema=False)


@router.get("/inbox", response_class=HTMLResponse, name="inbox_page")
def inbox_page(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The caller's notifications; new ones appear without reloading."""
    if not principal.is_authenticated:
        return RedirectResponse("/auth/login?next=/inbox", status_code=303)
    locale = page_locale(request)
    rows = db.exec(select(InboxItem, Notification)
                   .where(InboxItem.user_id == principal.user_id, InboxItem.notification_id == Notification.id)
                   .order_by(InboxItem.id.desc()).limit(50))
    items = [{"id": item.id, "severity": note.severity.value, "read": item.read_at is not None,
              "title": note.title_en if locale == "en" else note.title_vi,
              "body": note.body_en if locale == "en" else note.body_vi, "url": note.url} for item, note in rows]
    channels = [f"user:{principal.user_id}"]
    units = {principal.home_unit_id} if principal.home_unit_id else set()
    units |= set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)))
    channels += [f"unit:{u}" for u in sorted(units)]
    return render_page(request, "push/inbox.html", {"items": items, "channels": channels})
