"""Feed API: read the feed page by page, read one item, publish and withdraw (officials)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.errors import Problem
from core.feed import service
from core.feed.models import FeedAudience, FeedItem, FeedKind, Severity
from core.feed.service import FeedError
from core.i18n import negotiate
from core.identity.authz import require_permission
from core.identity.deps import PrincipalDep
from core.identity.principal import Principal
from core.manifests import visible_miniapps
from plugins.feed import FeedContext

log = logging.getLogger(__name__)
router = APIRouter(tags=["feed"])


# --- Shapes ------------------------------------------------------------------------------------------------


class FeedItemOut(BaseModel):
    """A feed item, its texts in the caller's language."""

    id: int
    kind: FeedKind
    severity: Severity
    audience: FeedAudience
    published_at: datetime
    author_unit_id: str
    author_unit_name: str
    miniapp: str | None = Field(description="The mini-app that published it, if one did.")
    title: str
    body: str
    url: str | None
    city_wide: bool
    unit_ids: list[str] = Field(description="The units a targeted item is for; empty when city-wide.")
    pinned: bool
    expires_at: datetime | None


class MiniAppCardOut(BaseModel):
    """A card a mini-app contributed for this reader (first page only; not stored, not in the stream)."""

    miniapp: str
    key: str
    title: str
    body: str
    url: str | None
    kind: str
    severity: str
    at: datetime | None


class FeedPageOut(BaseModel):
    """One page of the feed.

    ``items`` is the stream, newest first; pass ``next_cursor`` back as ``cursor`` for the next page
    (null: no more). No item is ever skipped or repeated across pages, however many are published in
    between; new items show up when the client reloads the first page. ``pinned`` and
    ``from_miniapps`` are filled on the first page only (empty on later ones), and a pinned item is
    never part of ``items``, so showing ``pinned`` above the stream never shows an item twice.
    """

    locale: str
    items: list[FeedItemOut]
    next_cursor: str | None
    pinned: list[FeedItemOut]
    from_miniapps: list[MiniAppCardOut]


Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Paragraph = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a misspelt field is named instead of ignored."""

    model_config = ConfigDict(extra="forbid")


class TitleIn(Strict):
    """A title in Vietnamese, and in English when there is a translation (else English readers see the
    Vietnamese: a ward may post in Vietnamese only)."""

    vi: Line
    en: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""


class BodyIn(Strict):
    """A text in Vietnamese, and in English when there is a translation."""

    vi: Paragraph
    en: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] = ""


class FeedItemCreate(Strict):
    """A news item or warning to publish. ``unit_ids`` empty means the whole city."""

    author_unit_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    kind: FeedKind
    severity: Severity | None = Field(None, description="Required for warnings; news items are 'info'.")
    audience: FeedAudience = FeedAudience.everyone
    title: TitleIn
    body: BodyIn
    url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    unit_ids: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=service.MAX_TARGETS)
    pinned: bool = False
    expires_at: AwareDatetime | None = None


# --- Helpers -----------------------------------------------------------------------------------------------


def locale_of(request: Request, principal: Principal) -> str:
    """The caller's language: their setting, then Accept-Language, then the server's default."""
    return negotiate(user_locale=principal.locale, accept_language=request.headers.get("accept-language"),
                     default=request.app.state.settings.locale)


def problem_of(exc: FeedError, prefix: str = "body") -> Problem:
    """A FeedError as a problem+json naming the request field (``body.title.en``, ``query.cursor``)."""
    field = f"{prefix}.{exc.field}" if exc.field else None
    kind = "/problems/forbidden" if exc.status == 403 else "/problems/validation" if exc.status == 422 else "about:blank"
    if exc.status == 422:
        return Problem(422, f"{field}: {exc.reason}" if field else exc.reason, title="Invalid request", field=field,
                       type=kind)
    return Problem(exc.status, exc.reason, field=field, type=kind)


def feed_cache(state: Any) -> service.PageCache:
    """This worker's page cache (made on first use; ``feed_cache_seconds`` setting, default 2 s)."""
    cache = getattr(state, "feed_cache", None)
    if cache is None:
        cache = state.feed_cache = service.PageCache(ttl=float(getattr(state.settings, "feed_cache_seconds", 2.0)))
    return cache


async def reader_of(state: Any, principal: Principal) -> service.Reader:
    """The caller's Reader; a resident's follows are read from the database at most every few seconds."""
    if not principal.is_authenticated:
        return service.ANONYMOUS_READER
    if principal.kind != "resident":
        return service.reader_for(None, principal)  # officials' units come with the principal
    cache = feed_cache(state)
    reader = cache.reader(principal.user_id or 0)
    if reader is None:
        def load() -> service.Reader:
            with state.engine.connect() as db:
                return service.reader_for(db, principal)

        reader = await run_in_threadpool(load)
        cache.keep_reader(principal.user_id or 0, reader)
    return reader


async def feed_page(request: Request, principal: Principal, *, cursor: str | None,
                    limit: int) -> tuple[service.FeedPage, dict[str, bytes]]:
    """The page after ``cursor`` for the caller, from this worker's cache when it was read a moment ago.

    Returns the page and the dict where its rendered forms (by locale) are kept with it.
    """
    state = request.app.state
    try:
        position = service.cursor_position(cursor)
    except FeedError as exc:
        raise problem_of(exc, "query") from None
    reader = await reader_of(state, principal)
    cache = feed_cache(state)
    key = (reader, position, limit)
    hit = cache.page(key)
    if hit is not None:
        return hit
    # One read per page however many callers miss it at once: when an entry lapses under load, the
    # others wait for the first caller's read instead of each taking a thread and a connection.
    loading = cache.loading.get(key)
    if loading is not None:
        try:
            return await asyncio.shield(loading)
        except asyncio.CancelledError:
            if not loading.cancelled():
                raise  # this request was cancelled, not the read it waited for
    loading = cache.loading[key] = asyncio.get_running_loop().create_future()
    now, generation = datetime.now(UTC), cache.generation

    def read() -> service.FeedPage:
        with state.engine.connect() as db:
            return service.read_page(db, principal=principal, cursor=cursor, limit=limit, now=now, reader=reader)

    try:
        page = await run_in_threadpool(read)
        found = page, cache.keep_page(key, page, now, generation)
        loading.set_result(found)
        return found
    except asyncio.CancelledError:
        loading.cancel()  # the waiters read the page themselves
        raise
    except Exception as exc:
        loading.set_exception(exc)
        loading.exception()  # retrieved: the waiters (if any) re-raise it; nobody else must log it
        raise
    finally:
        cache.loading.pop(key, None)


def card_cache(state: Any) -> service.CardCache:
    """This worker's cache of the mini-apps' cards (made on first use; kept as long as feed pages)."""
    cache = getattr(state, "feed_cards", None)
    if cache is None:
        cache = state.feed_cards = service.CardCache(ttl=float(getattr(state.settings, "feed_cache_seconds", 2.0)))
    return cache


async def miniapp_cards(request: Request, principal: Principal, locale: str) -> list[dict[str, Any]]:
    """The cards of the mini-apps this caller may see (as on the home screen, in its order).

    Asked within the contributors' budget the first time; then served from this worker's CardCache
    and refreshed in the background, so the first page does not wait for the mini-apps again.
    """
    state = request.app.state
    contributors = [c for m in visible_miniapps(state.miniapps, principal) for c in m.feed_contributors]
    if not contributors:
        return []

    async def ask() -> list[dict[str, Any]]:
        context = FeedContext(principal=principal, locale=locale, host=state.host, now=datetime.now(UTC),
                              limit=service.CARDS_PER_CONTRIBUTOR)
        return await service.contributed_cards(contributors, context)

    # Per person: a contributor may answer each reader differently (anonymous readers are one person).
    return await card_cache(state).cards((principal.user_id if principal.is_authenticated else None, locale), ask)


async def announce(request: Request, event: Any) -> None:
    """Forget this worker's cached pages, then tell subscribers (notifications) and the realtime hub."""
    state = request.app.state
    feed_cache(state).clear()
    await service.announce(event, events=state.events, realtime=getattr(state, "realtime", None))


# --- Reading -----------------------------------------------------------------------------------------------


@router.get("/api/feed", operation_id="read_feed", response_model=FeedPageOut)
async def read_feed(request: Request, principal: PrincipalDep,
                    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
                    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = service.DEFAULT_LIMIT) -> Response:
    """The feed the caller may see, newest first, in their language; pinned items and mini-apps' cards on the first page."""
    locale = locale_of(request, principal)
    page, rendered = await feed_page(request, principal, cursor=cursor, limit=limit)
    head = rendered.get(locale)
    if head is None:
        # Everything but the mini-apps' cards, rendered once per page and language: the shape is
        # FeedPageOut (documented above) without a second validation of what the service just read.
        head = rendered[locale] = json.dumps({
            "locale": locale,
            "items": [e.localized(locale) for e in page.items],
            "next_cursor": page.next_cursor,
            "pinned": [e.localized(locale) for e in page.pinned],
        }, ensure_ascii=False, separators=(",", ":")).encode()[:-1]
    cards = await miniapp_cards(request, principal, locale) if page.first else []
    body = head + b',"from_miniapps":' + json.dumps(cards, ensure_ascii=False, separators=(",", ":")).encode() + b"}"
    return Response(body, media_type="application/json",
                    headers={"Content-Language": locale, "Vary": "Accept-Language, Authorization, Cookie"})


@router.get("/api/feed/{item_id}", operation_id="read_feed_item", response_model=FeedItemOut)
async def read_feed_item(request: Request, principal: PrincipalDep,
                         item_id: Annotated[int, Path(ge=1)]) -> Response:
    """One item, if the caller may see it (404 otherwise, whether or not it exists)."""
    locale = locale_of(request, principal)

    def load() -> service.FeedEntry | None:
        with request.app.state.engine.connect() as db:
            return service.get_item(db, principal=principal, item_id=item_id)

    entry = await run_in_threadpool(load)
    if entry is None:
        raise Problem(404, f"no feed item {item_id}", type="/problems/not-found")
    return JSONResponse(entry.localized(locale), headers={"Content-Language": locale})


# --- Publishing --------------------------------------------------------------------------------------------


@router.post("/api/feed", operation_id="publish_feed_item", response_model=FeedItemOut, status_code=201)
async def publish_feed_item(body: FeedItemCreate, request: Request,
                            principal: Principal = require_permission(service.PUBLISH_PERMISSION)) -> Response:
    """Officials: publish a news item or warning as one of their units, to the city or to some units."""
    state = request.app.state

    def store() -> tuple[FeedItem, list[str]]:
        with Session(state.engine, expire_on_commit=False) as db:
            service.check_publish(db, principal=principal, authorizer=state.authorizer,
                                  author_unit_id=body.author_unit_id, unit_ids=body.unit_ids)
            item = service.publish_item(
                db, author_unit_id=body.author_unit_id, author_user_id=principal.user_id, kind=body.kind,
                severity=body.severity, audience=body.audience, title=body.title, body=body.body, url=body.url,
                unit_ids=body.unit_ids, pinned=body.pinned, expires_at=body.expires_at)
            return item, service.target_units(db, item.id or 0)

    try:
        item, units = await run_in_threadpool(store)
    except FeedError as exc:
        raise problem_of(exc) from None
    log.info("feed item published", extra={"feed_item_id": item.id, "author_unit_id": item.author_unit_id,
                                           "actor_id": principal.user_id})
    await announce(request, service.published_event(item, units))

    def reread() -> service.FeedEntry | None:
        with state.engine.connect() as db:
            return service.get_item(db, principal=principal, item_id=item.id or 0,
                                    reader=service.EVERYTHING)  # the author sees what they just posted

    entry = await run_in_threadpool(reread)
    assert entry is not None
    locale = locale_of(request, principal)
    return JSONResponse(entry.localized(locale), status_code=201,
                        headers={"Location": f"/api/feed/{item.id}", "Content-Language": locale})


@router.delete("/api/feed/{item_id}", operation_id="withdraw_feed_item", status_code=204)
async def withdraw_feed_item(request: Request, item_id: Annotated[int, Path(ge=1)],
                             principal: Principal = require_permission(service.PUBLISH_PERMISSION)) -> Response:
    """Withdraw an item: its author unit's officials, operators and admins (404 if the caller cannot see it)."""
    state = request.app.state

    def withdraw() -> tuple[FeedItem, list[str]]:
        with Session(state.engine, expire_on_commit=False) as db:
            entry = service.get_item(db, principal=principal, item_id=item_id)
            if entry is None:
                raise FeedError(404, f"no feed item {item_id}")
            if not state.authorizer.allows(principal, service.PUBLISH_PERMISSION, entry.author_unit_id):
                raise FeedError(403, f"only officials of {entry.author_unit_id!r}, operators and admins may "
                                     "withdraw this item")
            item = service.withdraw_item(db, item_id=item_id)
            if item is None:  # withdrawn by someone else a moment ago
                raise FeedError(404, f"no feed item {item_id}")
            return item, entry.unit_ids

    try:
        item, units = await run_in_threadpool(withdraw)
    except FeedError as exc:
        raise Problem(exc.status, exc.reason, type="/problems/not-found" if exc.status == 404 else
                      "/problems/forbidden") from None
    log.info("feed item withdrawn", extra={"feed_item_id": item.id, "actor_id": principal.user_id})
    await announce(request, service.withdrawn_event(item, units))
    return Response(status_code=204)
