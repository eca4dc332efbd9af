"""Notifications API: the inbox, devices, followed units, and sending by officials."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from core.db import SessionDep
from core.errors import Problem
from core.feed.models import Severity
from core.i18n import negotiate
from core.identity.authz import require_permission
from core.identity.deps import CurrentUser
from core.identity.models import utcnow
from core.identity.principal import Principal
from core.units.models import OrgUnit, UnitKind
from plugins import Cache
from plugins.manifest import LocalizedText
from push import inbox
from push.inbox_answers import badge_key, page_key
from push.inbox_cache import InboxCache, user_key
from push.models import (
    CITY_AUDIENCE,
    Device,
    Notification,
    NotificationAudience,
    OutboxKind,
    Platform,
    PushOutbox,
    UnitFollow,
)
from push.notifier import NotifierError, unit_topic

router = APIRouter(tags=["notifications"])
FCM_TOKEN = r"^[A-Za-z0-9_:\-]{20,4096}$"


class Strict(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


# --- Inbox -----------------------------------------------------------------------------------------


class InboxEntry(BaseModel):
    """One notification in the caller's inbox, in the caller's language."""

    id: int = Field(description="The notification's id (the same for everyone who received it).")
    notification_id: int
    miniapp: str
    topic: str
    severity: Severity
    title: str
    body: str
    url: str | None
    created_at: datetime
    read: bool


class Badge(BaseModel):
    """The unread count for the app's badge."""

    unread: int = Field(description="Unread notifications, at most 999.")


class InboxPage(BaseModel):
    """A page of the inbox, newest first, with the unread count for the badge (at most 999)."""

    items: list[InboxEntry]
    unread: int
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the next page after ``last_id``."""
    return base64.urlsafe_b64encode(f"n{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor stands for; Problem 422 naming ``query.cursor`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("n") and raw[1:].isdigit() and len(raw) < 20:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Problem(422, "cursor is not valid; use next_cursor from the previous page", field="query.cursor")


def _locale(request: Request, principal: Principal) -> str:
    return negotiate(user_locale=principal.locale, accept_language=request.headers.get("accept-language"),
                     default=request.app.state.settings.locale)


def entry_view(entry: inbox.Entry, locale: str) -> InboxEntry:
    """An inbox entry in ``locale``."""
    note = entry.notification
    return InboxEntry(id=note.id, notification_id=note.id, miniapp=note.miniapp, topic=note.topic,
                      severity=note.severity, title=note.title_en if locale == "en" else note.title_vi,
                      body=note.body_en if locale == "en" else note.body_vi, url=note.url,
                      created_at=note.created_at, read=entry.read)


def _inbox_page(engine: Any, user_id: int, locale: str, before: int | None, limit: int,
                cache: InboxCache | None) -> bytes:
    """A page of ``user_id``'s inbox as JSON, read from the database (and remembered when it is the first)."""
    stamp = cache.stamp() if cache is not None else 0
    with Session(engine) as db:
        who = inbox.reader(db, user_id)  # once for the page and the badge
        entries, more = inbox.page(db, user_id, before=before, limit=limit, who=who)
        unread = inbox.unread(db, user_id, who=who)
    items = [entry_view(entry, locale) for entry in entries]
    body = InboxPage(items=items, unread=unread,
                     next_cursor=encode_cursor(items[-1].id) if more else None).model_dump_json().encode()
    if cache is not None and before is None:
        cache.remember(page_key(user_id, locale, limit), body, stamp=stamp, user_id=user_id,
                       audiences=[a.audience for a in who.audiences])
    return body


def _badge(engine: Any, user_id: int, cache: InboxCache | None) -> bytes:
    """``{"unread": n}`` for ``user_id``, read from the database and remembered."""
    stamp = cache.stamp() if cache is not None else 0
    with Session(engine) as db:
        who = inbox.reader(db, user_id)
        body = f'{{"unread":{inbox.unread(db, user_id, who=who)}}}'.encode()
    if cache is not None:
        cache.remember(badge_key(user_id), body, stamp=stamp, user_id=user_id,
                       audiences=[a.audience for a in who.audiences])
    return body


@router.get("/api/inbox", operation_id="list_inbox", response_model=InboxPage)
async def list_inbox(request: Request, principal: CurrentUser, cursor: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=50)] = 20) -> Response:
    """The caller's notifications (personal and broadcast), newest first; pass ``next_cursor`` for older ones."""
    locale = _locale(request, principal)
    user_id = principal.user_id or 0
    before = decode_cursor(cursor) if cursor else None
    cache: InboxCache | None = request.app.state.inbox_cache
    # The first page is what every app open asks for: answered from memory until something changes.
    body = cache.recall(page_key(user_id, locale, limit)) if cache is not None and before is None else None
    if body is None:
        body = await run_in_threadpool(_inbox_page, request.app.state.engine, user_id, locale, before, limit, cache)
    return Response(body, media_type="application/json")


@router.get("/api/inbox/badge", operation_id="inbox_badge", response_model=Badge)
async def inbox_badge(request: Request, principal: CurrentUser) -> Response:
    """How many notifications the caller has not read (at most 999)."""
    user_id = principal.user_id or 0
    cache: InboxCache | None = request.app.state.inbox_cache
    body = cache.recall(badge_key(user_id)) if cache is not None else None
    if body is None:
        body = await run_in_threadpool(_badge, request.app.state.engine, user_id, cache)
    return Response(body, media_type="application/json")


def _inbox_changed(request: Request, user_id: int) -> None:
    """Tell every worker that ``user_id``'s inbox changed (read marks, follows)."""
    cache: InboxCache | None = request.app.state.inbox_cache
    if cache is not None:
        cache.changed([user_key(user_id)])


@router.post("/api/inbox/{item_id}/read", operation_id="mark_read", status_code=204)
def mark_read(item_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request, principal: CurrentUser,
              db: SessionDep) -> Response:
    """Mark one of the caller's notifications read (one not in your inbox is 404: it does not exist for you)."""
    if not inbox.mark_read(db, principal.user_id or 0, item_id):
        raise Problem(404, f"no notification {item_id} in your inbox", field="path.item_id")
    db.commit()
    _inbox_changed(request, principal.user_id or 0)
    return Response(status_code=204)


@router.post("/api/inbox/read-all", operation_id="mark_all_read")
def mark_all_read(request: Request, principal: CurrentUser, db: SessionDep) -> dict[str, int]:
    """Mark every notification of the caller read; returns how many were unread."""
    changed = inbox.mark_all_read(db, principal.user_id or 0)
    db.commit()
    _inbox_changed(request, principal.user_id or 0)
    return {"marked": changed}


# --- Devices and followed units -----------------------------------------------------------------------


class DeviceIn(Strict):
    """An FCM registration token of this app install."""

    token: Annotated[str, StringConstraints(pattern=FCM_TOKEN)]
    platform: Platform
    app_version: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    locale: Literal["vi", "en"] = "vi"


class DeviceOut(BaseModel):
    """A registered device (the token is not echoed back)."""

    id: int
    platform: Platform
    app_version: str
    locale: str
    active: bool
    created_at: datetime


def _topics_for(db: Session, user_id: int) -> list[str]:
    from core.identity.models import User

    user = db.get(User, user_id)
    units = set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == user_id)))
    if user is not None and user.home_unit_id:
        units.add(user.home_unit_id)
    return sorted(unit_topic(u) for u in units)


def _queue_topic_change(db: Session, kind: OutboxKind, tokens: list[str], topics: list[str]) -> None:
    for topic in topics:
        if tokens:
            db.add(PushOutbox(kind=kind, payload={"topic": topic, "tokens": tokens}))


@router.post("/api/devices", operation_id="register_device", response_model=DeviceOut, status_code=201)
def register_device(body: DeviceIn, request: Request, principal: CurrentUser, db: SessionDep) -> DeviceOut:
    """Register (or move to this account) an FCM token; it is subscribed to the topics of your units."""
    device = db.exec(select(Device).where(Device.token == body.token)).first()
    if device is None:
        device = Device(user_id=principal.user_id, token=body.token, platform=body.platform,
                        app_version=body.app_version, locale=body.locale)
    else:
        if device.user_id != principal.user_id:
            # The phone signed in with another account: the old account must stop receiving on it.
            _queue_topic_change(db, OutboxKind.unsubscribe, [device.token], _topics_for(db, device.user_id))
        device.user_id, device.platform, device.app_version = principal.user_id, body.platform, body.app_version
        device.locale, device.active, device.deactivated_reason, device.last_seen_at = body.locale, True, None, utcnow()
    db.add(device)
    if principal.kind == "resident":
        _queue_topic_change(db, OutboxKind.subscribe, [body.token], _topics_for(db, principal.user_id or 0))
    db.commit()
    db.refresh(device)
    _wake(request)
    return DeviceOut.model_validate(device, from_attributes=True)


@router.get("/api/devices", operation_id="list_devices", response_model=list[DeviceOut])
def list_devices(principal: CurrentUser, db: SessionDep) -> list[DeviceOut]:
    """The caller's registered devices."""
    return [DeviceOut.model_validate(d, from_attributes=True)
            for d in db.exec(select(Device).where(Device.user_id == principal.user_id).order_by(Device.id))]


@router.delete("/api/devices/{device_id}", operation_id="unregister_device", status_code=204)
def unregister_device(device_id: int, request: Request, principal: CurrentUser, db: SessionDep) -> Response:
    """Stop pushing to one of the caller's devices (for example at sign-out on the phone)."""
    device = db.get(Device, device_id)
    if device is None or device.user_id != principal.user_id:
        raise Problem(404, f"no device {device_id} of yours", field="path.device_id")
    _queue_topic_change(db, OutboxKind.unsubscribe, [device.token], _topics_for(db, device.user_id))
    db.delete(device)
    db.commit()
    _wake(request)
    return Response(status_code=204)


@router.get("/api/me/follows", operation_id="list_followed_units")
def list_followed_units(principal: CurrentUser, db: SessionDep) -> list[str]:
    """The units the caller follows besides their home unit."""
    return list(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)
                        .order_by(UnitFollow.unit_id)))


def _follow_target(db: Session, unit_id: str) -> OrgUnit:
    unit = db.get(OrgUnit, unit_id)
    if unit is None or unit.kind not in (UnitKind.ward, UnitKind.commune):
        raise Problem(404, f"no commune or ward {unit_id!r}", field="path.unit_id")
    return unit


def _active_tokens(db: Session, user_id: int) -> list[str]:
    return list(db.exec(select(Device.token).where(Device.user_id == user_id, Device.active)))


@router.put("/api/me/follows/{unit_id}", operation_id="follow_unit", status_code=204)
def follow_unit(unit_id: str, request: Request, principal: CurrentUser, db: SessionDep) -> Response:
    """Follow a commune or ward: its warnings reach you as if you lived there."""
    _follow_target(db, unit_id)
    if db.get(UnitFollow, (principal.user_id, unit_id)) is None:
        db.add(UnitFollow(user_id=principal.user_id, unit_id=unit_id))
        _queue_topic_change(db, OutboxKind.subscribe, _active_tokens(db, principal.user_id or 0), [unit_topic(unit_id)])
        db.commit()
        _inbox_changed(request, principal.user_id or 0)
        _wake(request)
    return Response(status_code=204)


@router.delete("/api/me/follows/{unit_id}", operation_id="unfollow_unit", status_code=204)
def unfollow_unit(unit_id: str, request: Request, principal: CurrentUser, db: SessionDep) -> Response:
    """Stop following a unit."""
    _follow_target(db, unit_id)
    follow = db.get(UnitFollow, (principal.user_id, unit_id))
    if follow is not None:
        db.delete(follow)
        _queue_topic_change(db, OutboxKind.unsubscribe, _active_tokens(db, principal.user_id or 0),
                            [unit_topic(unit_id)])
        db.commit()
        _inbox_changed(request, principal.user_id or 0)
        _wake(request)
    return Response(status_code=204)


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, "outbox_worker", None)
    if worker is not None:
        worker.wake()


# --- Sending (officials and operators) -----------------------------------------------------------------


class NotificationIn(Strict):
    """A notification an official sends to the residents of units (or the city), or to officials by role."""

    title: LocalizedText
    body: LocalizedText
    severity: Severity = Severity.info
    units: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default_factory=list, max_length=40)
    roles: list[tuple[Literal["commune_official", "department_official", "operator"],
                      Annotated[str, StringConstraints(max_length=64)]]] = Field(default_factory=list, max_length=50)
    city: bool = Field(False, description="Every resident of the city (operators, departments and admins only).")
    url: Annotated[str, StringConstraints(pattern=r"^/\S*$", max_length=500)] | None = None


class NotificationReceipt(BaseModel):
    """What was stored: the notification and its audiences; push is planned by the delivery worker."""

    notification_id: int
    audiences: list[str]
    push_jobs: int
    status_url: str


class NotificationStatus(BaseModel):
    """A sent notification and how far its push delivery has come."""

    notification_id: int
    miniapp: str
    topic: str
    severity: Severity
    created_at: datetime
    audiences: list[str]
    reach: int = Field(description="How many people have it in their inbox.")
    delivery: dict[str, Any]
    outbox: dict[str, int] = Field(description="Push rows by status (pending, sent, dead).")


def _city_level(principal: Principal) -> bool:
    # Departments, operators and admins work city-wide; a commune official speaks for their own unit.
    return bool(principal.roles & {"department_official", "operator", "admin"})


@router.post("/api/notifications", operation_id="send_notification", response_model=NotificationReceipt,
             status_code=202)
def send_notification(body: NotificationIn, request: Request, db: SessionDep,
                      principal=require_permission("core.notifications.send")) -> NotificationReceipt:
    """Send to the residents of units or the city and/or to officials by role; each target unit must be yours."""
    authorizer = request.app.state.authorizer
    city_level = _city_level(principal)
    targets = [(f"body.units.{i}", u) for i, u in enumerate(body.units)]
    targets += [(f"body.roles.{i}", u) for i, (_role, u) in enumerate(body.roles)]
    if not targets and not body.city:
        raise Problem(422, "name at least one unit or role to notify, or the city", field="body.units")
    if body.city and not city_level:
        raise Problem(403, "only operators, departments and admins may notify the whole city", field="body.city")
    for where, unit_id in targets:
        if db.get(OrgUnit, unit_id) is None:
            raise Problem(422, f"unknown unit {unit_id!r}", field=where)
        if not city_level and not authorizer.allows(principal, "core.notifications.send", unit_id):
            raise Problem(403, f"you may not notify {unit_id!r}: it is not your unit", field=where)
    try:
        receipt = request.app.state.notifier.send(
            db, miniapp="core", topic="announcements", title=body.title, body=body.body, severity=body.severity,
            units=body.units, roles=body.roles, city=body.city, url=body.url)
    except NotifierError as exc:
        raise Problem(422, str(exc), field=f"body.{exc.field}") from None
    db.commit()
    return NotificationReceipt(notification_id=receipt.notification_id, audiences=receipt.audiences,
                               push_jobs=receipt.push_jobs,
                               status_url=f"/api/notifications/{receipt.notification_id}")


def _reach_counts(request: Request) -> Cache[int]:
    """This app's remembered reach counts.

    Reach counts the members of every audience (about a second for a city-wide notice) and changes only
    as people move, follow or take roles: a sender polling the status page re-counts once a minute at most.
    """
    counts = getattr(request.app.state, "reach_counts", None)
    if counts is None:
        counts = request.app.state.reach_counts = Cache(ttl=60, max_entries=1000)
    return counts


@router.get("/api/notifications/{notification_id}", operation_id="notification_status",
            response_model=NotificationStatus)
def notification_status(notification_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request, db: SessionDep,
                        principal=require_permission("core.notifications.send")) -> NotificationStatus:
    """A notification sent to units, roles or the city, with its push delivery so far (senders only)."""
    note = db.get(Notification, notification_id)
    audiences = list(db.exec(select(NotificationAudience.audience)
                             .where(NotificationAudience.notification_id == notification_id)))
    units = {a.split(":")[-1] for a in audiences if a != CITY_AUDIENCE}
    allowed = _city_level(principal) or (
        bool(units) and CITY_AUDIENCE not in audiences
        and all(request.app.state.authorizer.allows(principal, "core.notifications.send", u) for u in units))
    if note is None or not audiences or not allowed:
        raise Problem(404, f"no notification {notification_id} you sent or may follow", field="path.notification_id")
    counts = dict(db.exec(select(PushOutbox.status, func.count()).where(PushOutbox.notification_id == notification_id)
                          .group_by(PushOutbox.status)).all())
    return NotificationStatus(notification_id=note.id, miniapp=note.miniapp, topic=note.topic, severity=note.severity,
                              created_at=note.created_at, audiences=audiences,
                              reach=_reach_counts(request).get_or_set(notification_id,
                                                                      lambda: inbox.reach(db, notification_id)),
                              delivery=note.delivery or {},
                              outbox={str(getattr(k, "value", k)): v for k, v in counts.items()})
