"""Warning pages anyone can open: the warnings in force, and one warning with its places and times.

The banner on every page (core/banner.py) links here when a warning has no page of its own (flood
warnings link to the flood map's). A warning for everyone or for residents is public safety
information, so a signed-out visitor sees it whichever wards it targets; the feed's own targeting
decides what fills a person's stream, not who may read a warning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select

from core.banner import PLACE_COOKIE, active_for
from core.db import SessionDep
from core.feed.models import FeedAudience, FeedItem, FeedItemUnit, FeedKind
from core.identity.deps import PrincipalDep
from core.units.models import OrgUnit
from core.web import page_locale, render_page

router = APIRouter(include_in_schema=False)


@router.get("/warnings", response_class=HTMLResponse, name="warnings_page")
def warnings_page(request: Request, principal: PrincipalDep) -> HTMLResponse:
    """Every warning in force that concerns the caller (their ward or chosen place, else the whole city)."""
    locale = page_locale(request)
    shown = [{"id": w.id, "severity": w.severity, "title": w.title[locale], "body": w.body[locale], "url": w.url,
              "city_wide": w.city_wide, "places": ", ".join(w.unit_names[locale]), "published_at": w.published_at,
              "expires_at": w.expires_at} for w in active_for(request)]
    return render_page(request, "shell/warnings.html", {"warnings": shown,
                                                        "place": request.cookies.get(PLACE_COOKIE)})


@router.get("/warnings/{item_id}", response_class=HTMLResponse, name="warning_page")
def warning_page(item_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request, principal: PrincipalDep,
                 db: SessionDep) -> HTMLResponse:
    """One warning for everyone or residents: what, where, since and until when (404 for anything else)."""
    locale = page_locale(request)
    item = db.get(FeedItem, item_id)
    if (item is None or item.kind != FeedKind.warning or item.audience == FeedAudience.officials
            or item.withdrawn_at is not None):
        return render_page(request, "shell/warning.html", {"warning": None}, status_code=404)
    names = list(db.exec(select(OrgUnit.name_en if locale == "en" else OrgUnit.name_vi)
                         .join(FeedItemUnit, FeedItemUnit.unit_id == OrgUnit.id)
                         .where(FeedItemUnit.feed_item_id == item_id).order_by(OrgUnit.name_vi)))
    expires = item.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    warning = {"id": item.id, "severity": getattr(item.severity, "value", item.severity),
               "title": item.title_en if locale == "en" else item.title_vi,
               "body": item.body_en if locale == "en" else item.body_vi, "url": item.url,
               "city_wide": item.city_wide, "places": ", ".join(names), "published_at": item.published_at,
               "expires_at": item.expires_at, "ended": expires is not None and expires <= datetime.now(UTC)}
    return render_page(request, "shell/warning.html", {"warning": warning})
