"""Feed pages: the feed as a phone page (``/feed``) and the officials' publish form (``/feed/new``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.errors import Problem
from core.feed import service
from core.feed.models import FeedAudience, FeedKind, Severity
from core.feed.routes import announce, feed_page, miniapp_cards
from core.feed.service import FeedError
from core.identity.deps import PrincipalDep
from core.identity.principal import Principal
from core.units.models import OrgUnit, UnitKind
from core.units.service import CITY_ID, list_units
from core.web import page_locale, render_page
from core.worktime import HUE_TIME

router = APIRouter(include_in_schema=False)
# Hue keeps Indochina Time all year (no daylight saving): the form's local times are UTC+7.
FORM_FIELDS = ("author_unit_id", "kind", "severity", "audience", "title_vi", "title_en", "body_vi", "body_en", "url",
               "expires_at")
# What the form says, in Vietnamese, for each field the service can refuse (English shows its own reason).
VI_ERRORS = {
    "author_unit_id": "Bạn không được đăng tin cho đơn vị này.",
    "unit_ids": "Cán bộ phường, xã chỉ đăng tin cho đơn vị của mình; chọn đúng đơn vị nhận tin.",
    "kind": "Chọn loại tin.",
    "severity": "Cảnh báo cần có mức độ; tin tức thì để trống.",
    "audience": "Chọn đối tượng nhận tin.",
    "title_vi": "Nhập tiêu đề tiếng Việt (tối đa 200 ký tự).",
    "title_en": "Nhập tiêu đề tiếng Anh (tối đa 200 ký tự).",
    "body_vi": "Nhập nội dung tiếng Việt (tối đa 5000 ký tự).",
    "body_en": "Nhập nội dung tiếng Anh (tối đa 5000 ký tự).",
    "url": "Đường dẫn phải là một trang trong ứng dụng (/m/...) hoặc địa chỉ https://.",
    "expires_at": "Thời điểm hết hạn phải ở tương lai.",
}


EN_ERRORS = {
    "title_vi": "Give the Vietnamese title (at most 200 characters).",
    "body_vi": "Give the Vietnamese text (at most 5000 characters).",
    "severity": "A warning needs a severity.",
}


def _when(value: datetime | None) -> str:
    return value.astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M") if value else ""


def _may_publish(request: Request, principal: Principal) -> bool:
    return principal.is_authenticated and request.app.state.authorizer.allows(principal, service.PUBLISH_PERMISSION)


@router.get("/feed", response_class=HTMLResponse, name="feed_page")
async def feed(request: Request, principal: PrincipalDep, cursor: str | None = None) -> Response:
    """The feed as a phone page: mini-apps' cards and pinned items first, then the stream, then 'older'."""
    locale = page_locale(request)
    try:
        page, _rendered = await feed_page(request, principal, cursor=cursor, limit=service.DEFAULT_LIMIT)
    except Problem:
        return render_page(request, "feed/feed.html", {
            "items": [], "pinned": [], "cards": [], "next_cursor": None, "first": True, "bad_cursor": True,
            "may_publish": _may_publish(request, principal), "when": _when}, status_code=422)
    cards = await miniapp_cards(request, principal, locale) if page.first else []
    names = {m.id: m.manifest.name.get(locale) for m in request.app.state.miniapps}
    cards = [card | {"source": names.get(card["miniapp"], card["miniapp"]),
                     "when": _when(datetime.fromisoformat(card["at"])) if card.get("at") else ""} for card in cards]
    return render_page(request, "feed/feed.html", {
        "items": [e.localized(locale) | {"when": _when(e.published_at)} for e in page.items],
        "pinned": [e.localized(locale) | {"when": _when(e.published_at)} for e in page.pinned],
        "cards": cards, "next_cursor": page.next_cursor, "first": page.first, "bad_cursor": False,
        "may_publish": _may_publish(request, principal), "when": _when,
    })


def _form_choices(request: Request, principal: Principal) -> dict[str, Any]:
    """The author units the caller may publish for, and the units an item may target."""
    with Session(request.app.state.engine) as db:
        authors = service.publish_options(db, principal=principal, authorizer=request.app.state.authorizer)
        targets = [
            {"id": u.id, "name": {"vi": u.name_vi, "en": u.name_en}, "kind": u.kind.value}
            for u in service_units(db) if u.id != CITY_ID
        ]
    return {"authors": authors, "targets": targets, "own_unit_only": all(a["own_unit_only"] for a in authors)}


def service_units(db: Session) -> list[OrgUnit]:
    """Communes and wards first (where residents live), then departments, each by name."""
    order = {UnitKind.ward: 0, UnitKind.commune: 0, UnitKind.department: 1, UnitKind.city: 2}
    return sorted(list_units(db), key=lambda u: (order[u.kind], u.name_vi))


def _form_page(request: Request, principal: Principal, *, values: dict[str, Any], errors: dict[str, str],
               status_code: int = 200) -> HTMLResponse:
    choices = _form_choices(request, principal)
    return render_page(request, "feed/new.html", {
        **choices, "values": values, "errors": errors, "kinds": [k.value for k in FeedKind],
        "severities": [s.value for s in Severity], "audiences": [a.value for a in FeedAudience],
    }, status_code=status_code)


def _gate(request: Request, principal: Principal) -> Response | None:
    """Sign-in for anonymous callers, a 403 page for those who may not publish, None for the others."""
    if not principal.is_authenticated:
        return RedirectResponse("/auth/login?next=/feed/new", status_code=303)
    if not _may_publish(request, principal):
        return render_page(request, "feed/forbidden.html", {}, status_code=403)
    return None


@router.get("/feed/new", response_class=HTMLResponse, name="feed_publish_page")
def publish_form(request: Request, principal: PrincipalDep) -> Response:
    """Officials: the form to publish a news item or a warning."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    return _form_page(request, principal, values={"kind": "news", "audience": "everyone", "unit_ids": []}, errors={})


def _parse_local_time(text: str) -> datetime:
    """A ``datetime-local`` value (Hue time) as an aware datetime; ValueError when it is not one."""
    return datetime.fromisoformat(text).replace(tzinfo=HUE_TIME)


def _missing(values: dict[str, Any], locale: str) -> dict[str, str]:
    """Every empty required field at once (the service stops at the first), so one round trip fixes all."""
    required = ["title_vi", "body_vi"]  # English is optional: without it English readers see the Vietnamese
    if values["kind"] == FeedKind.warning.value:
        required.append("severity")
    return {name: VI_ERRORS[name] if locale == "vi" else EN_ERRORS[name] for name in required if not values[name]}


@router.post("/feed/new", response_class=HTMLResponse)
async def publish_from_form(request: Request, principal: PrincipalDep) -> Response:
    """Check the form; publish and go to the item on /feed, or show the form again with the errors."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    form = await request.form()
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in FORM_FIELDS}
    values["unit_ids"] = [str(u) for u in form.getlist("unit_ids") if str(u).strip()]
    values["pinned"] = form.get("pinned") in ("on", "true", "1")
    locale = page_locale(request)
    errors = _missing(values, locale)
    expires_at = None
    if values["expires_at"]:
        try:
            expires_at = _parse_local_time(values["expires_at"])
        except ValueError:
            errors["expires_at"] = VI_ERRORS["expires_at"] if locale == "vi" else "expires_at is not a date and time"
    if errors:
        return _form_page(request, principal, values=values, errors=errors, status_code=422)
    state = request.app.state

    def store() -> tuple[Any, list[str]]:
        with Session(state.engine, expire_on_commit=False) as db:
            unit_ids = values["unit_ids"]
            options = {o["id"]: o for o in service.publish_options(db, principal=principal, authorizer=state.authorizer)}
            option = options.get(values["author_unit_id"])
            if option is not None and option["own_unit_only"] and not unit_ids:
                unit_ids = [values["author_unit_id"]]  # a ward's item is for the ward: nothing to choose
            service.check_publish(db, principal=principal, authorizer=state.authorizer,
                                  author_unit_id=values["author_unit_id"], unit_ids=unit_ids)
            item = service.publish_item(
                db, author_unit_id=values["author_unit_id"], author_user_id=principal.user_id, kind=values["kind"],
                severity=values["severity"] or None, audience=values["audience"] or FeedAudience.everyone,
                title={"vi": values["title_vi"], "en": values["title_en"]},
                body={"vi": values["body_vi"], "en": values["body_en"]}, url=values["url"] or None,
                unit_ids=unit_ids, pinned=values["pinned"], expires_at=expires_at, now=datetime.now(UTC))
            return item, service.target_units(db, item.id or 0)

    try:
        item, units = await run_in_threadpool(store)
    except FeedError as exc:
        field = (exc.field or "author_unit_id").replace(".", "_")
        message = VI_ERRORS.get(field, exc.reason) if locale == "vi" else exc.reason
        return _form_page(request, principal, values=values, errors={field: message},
                          status_code=403 if exc.status == 403 else 422)
    await announce(request, service.published_event(item, units))
    return RedirectResponse(f"/feed?lang={locale}#item-{item.id}", status_code=303)
