"""The notification inbox page: server-rendered, then kept live over /ws.

Each item links through ``/inbox/{id}/open``, which marks it read and goes on to the thing it is about
(a report, an answer, a warning); "mark all read" is one form. Times are Hue time.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import select

from core.db import SessionDep
from core.errors import Problem
from core.identity.deps import PrincipalDep
from core.identity.principal import Principal
from core.manifests import visible_miniapps
from core.web import page_locale, render_page
from plugins.inbox import InboxPrompt, PromptContext
from push import inbox
from push.models import Notification, UnitFollow

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)
PROMPT_LIMIT = 5
SIGN_IN = "/auth/phone?next="


def _sign_in(target: str) -> RedirectResponse:
    return RedirectResponse(SIGN_IN + quote(target, safe="/"), status_code=303)


def object_url(url: str | None, notification_id: int) -> str:
    """Where an inbox item leads: its own page on this site, else the inbox entry itself."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    if url and url.startswith("https://"):
        return url
    return f"/inbox#note-{notification_id}"


def prompts_for(request: Request, principal: Principal, locale: str) -> list[dict[str, str]]:
    """The mini-apps' calls to act for this reader (rate a resolved report), at most ``PROMPT_LIMIT`` each.

    Asked on every inbox page, so a prompt goes once it is done; a provider that fails is logged and
    left out: the inbox shows anyway.
    """
    state = request.app.state
    context = PromptContext(principal=principal, locale=locale, host=state.host, limit=PROMPT_LIMIT)
    shown: list[dict[str, str]] = []
    for miniapp in visible_miniapps(state.miniapps, principal):
        for provider in miniapp.inbox_prompts:
            try:
                got = [p if isinstance(p, InboxPrompt) else InboxPrompt.model_validate(p)
                       for p in provider.prompts(context) or []]
            except (ValidationError, TypeError) as exc:
                log.warning("inbox prompts of mini-app %r are not a list of InboxPrompt: %s", miniapp.id, exc)
                continue
            except Exception:
                log.exception("inbox prompts of mini-app %r failed", miniapp.id)
                continue
            shown += [{"miniapp": miniapp.id, **p.model_dump()} for p in got[:PROMPT_LIMIT]]
    return shown


@router.get("/inbox", response_class=HTMLResponse, name="inbox_page")
def inbox_page(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The caller's notifications; new ones appear without reloading."""
    if not principal.is_authenticated:
        return _sign_in("/inbox")
    locale = page_locale(request)
    user_id = principal.user_id or 0
    who = inbox.reader(db, user_id)
    entries, _more = inbox.page(db, user_id, limit=50, who=who)
    unread = inbox.unread(db, user_id, who=who)
    items = [{"id": e.notification.id, "severity": getattr(e.notification.severity, "value", e.notification.severity),
              "read": e.read, "created_at": e.notification.created_at,
              "title": e.notification.title_en if locale == "en" else e.notification.title_vi,
              "body": e.notification.body_en if locale == "en" else e.notification.body_vi,
              "open_url": f"/inbox/{e.notification.id}/open"} for e in entries]
    prompts = prompts_for(request, principal, locale)
    # the newest item about the same page as a prompt carries the prompt's action beside it
    actions = {p["url"].split("#", 1)[0]: p for p in prompts}
    for item, entry in zip(items, entries):
        item["prompt"] = actions.pop((entry.notification.url or "").split("#", 1)[0], None)
    channels = [f"user:{principal.user_id}"]
    units = {principal.home_unit_id} if principal.home_unit_id else set()
    units |= set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)))
    channels += [f"unit:{u}" for u in sorted(units)]
    return render_page(request, "push/inbox.html", {"items": items, "channels": channels, "unread": unread,
                                                  "prompts": prompts})


@router.get("/inbox/{notification_id}/open", name="open_inbox_item")
def open_inbox_item(notification_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request,
                    principal: PrincipalDep, db: SessionDep) -> Response:
    """Mark one notification read and go to what it is about (only one in the caller's own inbox)."""
    from push.routes import mark_read

    if not principal.is_authenticated:
        return _sign_in(f"/inbox/{notification_id}/open")
    try:
        mark_read(notification_id, request, principal, db)
    except Problem:
        return render_page(request, "push/not_found.html", {}, status_code=404)
    url = db.exec(select(Notification.url).where(Notification.id == notification_id)).first()
    return RedirectResponse(object_url(url, notification_id), status_code=303)


@router.post("/inbox/read-all", name="mark_inbox_read")
def mark_inbox_read(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """"Mark all read" from the inbox page."""
    from push.routes import mark_all_read

    if not principal.is_authenticated:
        return _sign_in("/inbox")
    mark_all_read(request, principal, db)
    return RedirectResponse("/inbox", status_code=303)
