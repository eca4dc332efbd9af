"""Telling people: every level change becomes a domain event and a live map message; a rise warns the
residents of the station's units through the host's notifier (inbox, FCM, live), as do operators' manual
warnings. Each warning is one use case in one ``host.transaction()``: the warning, its notice and its feed
item (for its units until it expires, announced as already notified so the host does not tell residents
twice) commit together or not at all, and so do a return to normal's closing CAP message and its note.
The live map and the events follow the commit. Warnings are stored so they can be published as CAP 1.2.

A level change and what it owes residents never part: the ingest commits the station's new level with its
``floodmap_level_change`` row, and that row is the durable record that a warning (a rise) or the event's
closing (a return to normal) is owed. ``settle_station`` issues what the station's latest move owes, keyed by
that row: the warning's CAP identifier is ``hue-floodmap-change-<row id>`` (unique), and the station row is
locked while it looks, so the immediate path after the ingest and the minute job ``settle_owed`` (which finds
what a crash, a restart or an error left owed) issue it exactly once, however many workers try.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from miniapps.floodmap.alerts import LEVEL_NAMES, level_rule, number
from miniapps.floodmap.cap import cap_reference
from miniapps.floodmap.events import (
    FloodWarningIssued,
    StationLevelChanged,
    StationWentStale,
)
from miniapps.floodmap.ingest import StationUpdate
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodLevelChange,
    FloodThing,
    FloodWarning,
    StationKind,
)
from miniapps.floodmap.stations import layer_cache, load_features
from plugins import FeedError, Host

log = logging.getLogger(__name__)
MINIAPP = "floodmap"
MAP_CHANNEL = "miniapp:floodmap:map"
WARNING_HOURS = 12
SEVERITY_OF_LEVEL = {1: "warning", 2: "critical", 3: "critical"}
# The CAP identifier of what a level change owes: one per ``floodmap_level_change`` row, so at most one.
OWED_PREFIX = "hue-floodmap-change-"
RISES = ("threshold", "rate_of_rise")
# How far back the job looks for level changes still owed (a crash mid-night is found within a minute).
SETTLE_WINDOW = timedelta(hours=6)


def warning_hours(host: Host) -> int:
    """How long a warning lasts, from the mini-app's settings (call from a worker thread)."""
    return host.settings_for(MINIAPP).warning_hours if host.miniapp_settings is not None else WARNING_HOURS


async def live(host: Host, message: dict[str, Any]) -> None:
    """Publish on the map channel; a live hiccup never fails the caller (the data is stored)."""
    try:
        await host.publish_realtime(MAP_CHANNEL, message)
    except Exception:
        log.exception("could not publish a flood map update")


async def announce_updates(host: Host, updates: list[StationUpdate]) -> list[int]:
    """After an ingest commit: warnings first (they are what residents wait for), then events and live map
    updates; returns the warning ids issued. Safe to run late or twice: what a change owes is issued once."""
    if not updates:
        return []
    layer_cache(host).forget()
    issued = []
    for update in updates:
        change = update.change
        if change is not None and (change.rising or change.to_level == 0):
            warning_id = await settle_station(host, update.thing_id)
            if warning_id is not None and change.rising:
                issued.append(warning_id)
    features = await run_in_threadpool(load_features, host.engine, [u.thing_id for u in updates])
    for update in updates:
        feature = features.get(update.thing_id)
        if feature is None:
            continue
        props = feature["properties"]
        change = update.change
        if change is not None:
            await host.publish_event(StationLevelChanged(
                station_id=update.thing_id, station_code=props["code"], from_level=change.from_level,
                to_level=change.to_level, reason=change.reason, value=change.value, observed_at=change.at,
                units=props["warn_units"]))
        await live(host, {"type": "station", "feature": feature,
                             "change": None if change is None else {"from": change.from_level, "to": change.to_level,
                                                                    "reason": change.reason}})
    return issued


async def announce_after_response(host: Host, updates: list[StationUpdate]) -> None:
    """``announce_updates`` as a response's background task: the sensor has its answer once the readings are
    committed; a failure here is logged, and the minute job issues what the level changes still owe."""
    try:
        await announce_updates(host, updates)
    except Exception:
        log.exception("flood stations %s: announcing after the ingest failed; the job will issue what is owed",
                      [u.thing_id for u in updates])


async def settle_station(host: Host, thing_id: int) -> int | None:
    """Issue what the station's latest level move owes and nobody issued yet: the warning for a rise, or the
    closing of its event for a return to normal; returns the stored warning's id (None when nothing was owed)."""
    try:
        stored = await run_in_threadpool(_settle, host, thing_id)
    except (IntegrityError, OperationalError) as exc:
        if not _raced(exc):
            raise
        # Another worker issued it in the same moment (the identifier is unique): nothing is owed any more.
        log.info("flood station %s: what its level change owed was issued by another worker", thing_id)
        return None
    if stored is None:
        return None
    warning, item, units = stored
    if warning.level >= 1:
        await _announce_warning(host, warning, item, units)
    return warning.id


def _raced(exc: Exception) -> bool:
    """The owed message's unique identifier was taken (PostgreSQL), or SQLite refused a write that raced one."""
    text = str(exc.orig).lower()
    return "identifier" in text if isinstance(exc, IntegrityError) else ("locked" in text or "busy" in text)


_MOVE = select(FloodLevelChange.id, FloodLevelChange.from_level, FloodLevelChange.to_level, FloodLevelChange.reason,
               FloodLevelChange.value, FloodLevelChange.at)


# The moves that owe residents something: a rise by threshold or rate of rise, a return to normal.
_MOVES = or_((FloodLevelChange.to_level > FloodLevelChange.from_level) & FloodLevelChange.reason.in_(RISES),
             (FloodLevelChange.to_level == 0) & (FloodLevelChange.from_level > 0) & (FloodLevelChange.reason == "fell"))


def _latest_move(db: Session, thing_id: int) -> Any:
    """The station's latest rise (by threshold or rate of rise) or return to normal, whichever came last."""
    return db.execute(_MOVE.where(FloodLevelChange.thing_id == thing_id, _MOVES)
                      .order_by(FloodLevelChange.id.desc()).limit(1)).first()


def _settle(host: Host, thing_id: int) -> tuple[FloodWarning, Any, list[str]] | None:
    """In one transaction, the station locked: what its latest move owes, stored with its notice (and for a
    warning its feed item); None when nothing is owed (already issued, or the station moved on)."""
    with host.transaction() as db:
        # Locked: a second worker settling the same station waits here, then finds the message issued.
        thing = db.scalars(select(FloodThing).where(FloodThing.id == thing_id).with_for_update()).first()
        if thing is None:
            return None
        move = _latest_move(db, thing_id)
        if move is None:
            return None
        identifier = f"{OWED_PREFIX}{move.id}"
        if db.scalar(select(FloodWarning.id).where(FloodWarning.identifier == identifier)) is not None:
            return None  # issued already
        if move.to_level > move.from_level:
            if thing.level < 1 or not thing.warn_units or _warned_before(db, thing_id, move.at):
                return None
            warning = _store_rise(host, db, thing, move.to_level, move.value, move.reason, identifier=identifier)
            item, units = _send_and_publish(host, db, warning)
            return warning, item, units
        if thing.level != 0:
            return None  # risen again since: that rise is what is owed now
        closing = store_all_clear(db, thing_id, thing.name, hours=warning_hours(host), identifier=identifier)
        if closing is None:
            return None  # no open event: nobody was warned, so nobody is told it is over
        _note_all_clear(host, db, closing, thing)
        return closing, None, []


def _warned_before(db: Session, thing_id: int, at: datetime) -> bool:
    """A warning from before owed messages were keyed by their level change answered this rise already
    (issued after the reading that raised the level); only such warnings, so a crash is never mistaken."""
    return db.scalar(select(FloodWarning.id).where(
        FloodWarning.thing_id == thing_id, FloodWarning.manual.is_(False), FloodWarning.level >= 1,
        FloodWarning.issued_at >= at, FloodWarning.identifier.not_like(f"{OWED_PREFIX}%")).limit(1)) is not None


async def settle_owed(host: Host, *, now: datetime | None = None) -> list[int]:
    """The minute job: issue every warning or closing that a level change of the last hours still owes (the
    ingest's own request died, errored or was restarted before issuing it); returns the warning ids issued."""
    since = (now or datetime.now(UTC)) - SETTLE_WINDOW

    def stations() -> list[int]:
        # One query: the stations whose latest move of the window has no message under its identifier yet
        # (settle_station looks again, under the lock, before issuing anything).
        latest = (select(FloodLevelChange.thing_id, func.max(FloodLevelChange.id).label("id"))
                  .where(FloodLevelChange.at >= since, _MOVES).group_by(FloodLevelChange.thing_id).subquery())
        owed = (select(latest.c.thing_id).outerjoin(
            FloodWarning, FloodWarning.identifier == literal(OWED_PREFIX) + cast(latest.c.id, String))
            .where(FloodWarning.id.is_(None)).order_by(latest.c.thing_id))
        with Session(host.engine) as db:
            return list(db.scalars(owed))

    issued = []
    for thing_id in await run_in_threadpool(stations):
        try:
            warning_id = await settle_station(host, thing_id)
        except Exception:  # one station's failure must not keep the others' warnings back
            log.exception("flood station %s: could not issue what its level change owes", thing_id)
            continue
        if warning_id is not None:
            log.warning("flood station %s: issued warning %s that its level change still owed", thing_id, warning_id)
            issued.append(warning_id)
    return issued


async def announce_stale(host: Host, thing_ids: list[int]) -> None:
    """After the stale job: an event and a live map update per station that fell silent."""
    if not thing_ids:
        return
    layer_cache(host).forget()
    features = await run_in_threadpool(load_features, host.engine, thing_ids)
    for thing_id in thing_ids:
        feature = features.get(thing_id)
        if feature is None:
            continue
        props = feature["properties"]
        await host.publish_event(StationWentStale(
            station_id=thing_id, station_code=props["code"], level=props["level"],
            last_observed_at=_parse(props["observed_at"])))
        await live(host, {"type": "station", "feature": feature, "change": None})


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _texts_for_rise(thing: FloodThing, level: int, value: float | None, unit_symbol: str, *,
                    reason: str = "threshold", threshold: float | None = None) -> dict[str, str]:
    """The warning's words: the level, the reading, and the rule that raised it with its threshold."""
    name = LEVEL_NAMES[level]
    texts: dict[str, str] = {}
    for lang in ("vi", "en"):
        reading = f"{number(value, lang)} {unit_symbol}".strip() if value is not None else ""
        rule = level_rule(reason, level, threshold, unit_symbol, lang)
        if thing.kind is StationKind.river_gauge:
            texts[f"body_{lang}"] = (
                f"{name['vi']} tại {thing.name}: mực nước {reading}, {rule}. Theo dõi thông báo của chính quyền, "
                "chuẩn bị di dời người và tài sản khỏi vùng trũng." if lang == "vi" else
                f"{name['en']} at {thing.name}: the water is at {reading}, {rule}. Follow the authorities' "
                "instructions and be ready to move people and belongings away from low ground.")
        else:
            texts[f"body_{lang}"] = (
                f"{name['vi']} tại {thing.name}: ngập {reading}, {rule}. Tránh đi qua khu vực này." if lang == "vi"
                else f"{name['en']} at {thing.name}: flooding {reading}, {rule}. Avoid the area.")
    return {"title_vi": f"{name['vi']}: {thing.name}", "title_en": f"{name['en']}: {thing.name}", **texts}


async def issue_automatic(host: Host, thing_id: int, level: int, value: float | None,
                          reason: str = "threshold") -> int | None:
    """A station rose to ``level`` by ``reason`` (threshold or rate_of_rise): warn the residents of its
    units now, saying the rule and the threshold; returns the warning id. (After an ingest, ``settle_station``
    issues the warning its level change owes, once.)"""

    def store_and_send() -> tuple[FloodWarning, Any, list[str]] | None:
        with host.transaction() as db:
            thing = db.get(FloodThing, thing_id)
            if thing is None or not thing.warn_units:
                return None
            warning = _store_rise(host, db, thing, level, value, reason)
            # The warning, its notice and its feed item: one transaction, committed as the block ends.
            item, units = _send_and_publish(host, db, warning)
            return warning, item, units

    stored = await run_in_threadpool(store_and_send)
    if stored is None:
        return None
    await _announce_warning(host, *stored)
    return stored[0].id


def _store_rise(host: Host, db: Session, thing: FloodThing, level: int, value: float | None, reason: str,
                identifier: str | None = None) -> FloodWarning:
    """The warning for ``thing``'s rise to ``level``, added to ``db``'s transaction (it has an id on return)."""
    stream = db.execute(select(FloodDatastream.unit_symbol, FloodDatastream.level_1, FloodDatastream.level_2,
                               FloodDatastream.level_3).where(
        FloodDatastream.thing_id == thing.id, FloodDatastream.drives_alert)).first()
    symbol = (stream[0] if stream else "") or ""
    threshold = stream[level] if stream is not None and 1 <= level <= 3 else None
    warning = _new_warning(hours=warning_hours(host), identifier=identifier, thing_id=thing.id, level=level,
                           severity=SEVERITY_OF_LEVEL[level], manual=False, units=list(thing.warn_units),
                           issued_by=None, **_texts_for_rise(thing, level, value, symbol, reason=reason,
                                                             threshold=threshold),
                           **_continuing(db, thing.id))
    db.add(warning)
    db.flush()
    return warning


def open_event(db: Session, thing_id: int) -> FloodWarning | None:
    """The station's latest automatic warning when its event is still open (no return to normal since)."""
    latest = db.scalars(select(FloodWarning).where(FloodWarning.thing_id == thing_id, FloodWarning.manual.is_(False))
                        .order_by(FloodWarning.id.desc()).limit(1)).first()
    return latest if latest is not None and latest.level >= 1 else None


def _continuing(db: Session, thing_id: int) -> dict[str, Any]:
    """CAP fields for the station's next message: an Update naming every earlier message of an open event,
    else a new Alert."""
    earlier = open_event(db, thing_id)
    if earlier is None:
        return {"msg_type": "Alert", "cap_references": None}
    chain = " ".join(part for part in (earlier.cap_references, cap_reference(earlier)) if part)
    return {"msg_type": "Update", "cap_references": chain}


def _new_warning(*, hours: int = WARNING_HOURS, identifier: str | None = None, **fields: Any) -> FloodWarning:
    now = datetime.now(UTC)
    return FloodWarning(identifier=identifier or f"hue-floodmap-{uuid.uuid4()}", issued_at=now,
                        expires_at=now + timedelta(hours=hours), **fields)


def store_manual(db: Session, *, units: list[str], level: int, title: dict[str, str], body: dict[str, str],
                 issued_by: int | None, thing_id: int | None = None, hours: int = WARNING_HOURS) -> FloodWarning:
    """An operator's warning for chosen units, added to ``db``'s transaction (it has an id on return)."""
    warning = _new_warning(hours=hours, thing_id=thing_id, level=level, severity=SEVERITY_OF_LEVEL[level],
                           manual=True, units=units, issued_by=issued_by, title_vi=title["vi"],
                           title_en=title["en"], body_vi=body["vi"], body_en=body["en"])
    db.add(warning)
    db.flush()
    return warning


async def issue_manual(host: Host, *, units: list[str], level: int, title: dict[str, str], body: dict[str, str],
                       issued_by: int | None, thing_id: int | None = None) -> FloodWarning:
    """An operator's warning: stored with its notice (inbox, FCM topic per unit when critical, live) and feed
    item in one transaction, then the map and an event."""

    def store_and_send() -> tuple[FloodWarning, Any, list[str]]:
        with host.transaction() as db:
            warning = store_manual(db, units=units, level=level, title=title, body=body, issued_by=issued_by,
                                   thing_id=thing_id, hours=warning_hours(host))
            item, target = _send_and_publish(host, db, warning)
            return warning, item, target

    warning, item, target = await run_in_threadpool(store_and_send)
    await _announce_warning(host, warning, item, target)
    return warning


def _send_and_publish(host: Host, db: Session, warning: FloodWarning) -> tuple[Any, list[str]]:
    """In ``db``'s transaction: the warning's notice and its feed item (for its units until it expires,
    announced as already notified), to commit with the warning. Returns the feed item and its units."""
    if host.notifier is not None:
        receipt = host.notify(
            db, miniapp=MINIAPP, topic="flood_warnings", severity=warning.severity, units=warning.units,
            title={"vi": warning.title_vi, "en": warning.title_en}, body={"vi": warning.body_vi, "en": warning.body_en},
            url=f"/m/floodmap/warnings/{warning.id}",
            data={"warning_id": warning.id, "station_id": warning.thing_id, "level": warning.level})
        warning.notification_id = receipt.notification_id
        db.add(warning)
    try:
        # publish_item commits the session: the warning, its notice and the item land together.
        item = host.feed.publish(
            db, author_unit_id="hue", author_user_id=warning.issued_by, kind="warning", severity=warning.severity,
            audience="everyone", title={"vi": warning.title_vi, "en": warning.title_en},
            body={"vi": warning.body_vi, "en": warning.body_en}, url=f"/m/floodmap/warnings/{warning.id}",
            unit_ids=list(warning.units), expires_at=warning.expires_at, miniapp=MINIAPP)
    except FeedError:  # the feed refused the item: the warning and its notice still go out (the caller commits)
        log.exception("flood warning %s could not be put on the feed", warning.id)
        return None, []
    return item, host.feed.target_units(db, item.id or 0)


async def _announce_warning(host: Host, warning: FloodWarning, item: Any, units: list[str]) -> None:
    """After the commit: the live map first (what people watch), the warning's event, then the feed's event
    (residents already notified; its live feed messages are the least urgent)."""
    await live(host, {"type": "warning", "warning": warning_json(warning)})
    await host.publish_event(FloodWarningIssued(
        warning_id=warning.id, station_id=warning.thing_id, level=warning.level, severity=warning.severity,
        manual=warning.manual, units=list(warning.units), notification_id=warning.notification_id))
    if item is not None:
        await host.publish_event(host.feed.published_event(item, units, notified=True))


def store_all_clear(db: Session, thing_id: int, name: str, *, hours: int = WARNING_HOURS,
                    identifier: str | None = None) -> FloodWarning | None:
    """Close the station's open event with a CAP Update (level 0, AllClear) naming its messages, in ``db``'s
    transaction; None when no event is open. Residents hear of it through ``_note_all_clear``'s note, not a
    second warning."""
    fields = _continuing(db, thing_id)
    if fields["msg_type"] != "Update":
        return None
    warning = _new_warning(
        hours=hours, identifier=identifier, thing_id=thing_id, level=0, severity="info", manual=False,
        units=list(open_event(db, thing_id).units), issued_by=None,  # type: ignore[union-attr]
        title_vi=f"Hết báo động: {name}"[:200], title_en=f"Back to normal: {name}"[:200],
        body_vi=f"Mực nước tại {name} đã xuống dưới mức báo động."[:2000],
        body_en=f"The water at {name} is below the alarm levels again."[:2000], **fields)
    db.add(warning)
    db.flush()
    return warning


def _note_all_clear(host: Host, db: Session, closing: FloodWarning, thing: FloodThing) -> None:
    """In ``db``'s transaction, with the closing CAP message: the informational note to the event's units
    (no closed event without its note, no note without the closed event)."""
    if not closing.units or host.notifier is None:
        return
    host.notify(
        db, miniapp=MINIAPP, topic="flood_updates", severity="info", units=list(closing.units),
        title={"vi": f"Hết báo động: {thing.name}", "en": f"Back to normal: {thing.name}"},
        body={"vi": f"Mực nước tại {thing.name} đã xuống dưới mức báo động.",
              "en": f"The water at {thing.name} is below the alarm levels again."},
        url=f"/m/floodmap/stations/{thing.id}", data={"station_id": thing.id, "level": 0})


def warning_json(warning: FloodWarning) -> dict[str, Any]:
    """A warning as the API and the live map show it."""
    return {
        "id": warning.id, "identifier": warning.identifier, "station_id": warning.thing_id, "level": warning.level,
        "severity": warning.severity, "manual": warning.manual, "units": list(warning.units),
        "title": {"vi": warning.title_vi, "en": warning.title_en}, "body": {"vi": warning.body_vi, "en": warning.body_en},
        "issued_at": _iso(warning.issued_at), "expires_at": _iso(warning.expires_at),
        "notification_id": warning.notification_id, "cap": f"/api/miniapps/floodmap/cap/{warning.id}.xml",
        "msg_type": warning.msg_type,
        "url": f"/m/floodmap/warnings/{warning.id}",
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def active_warnings(db: Session, *, now: datetime | None = None, limit: int = 50) -> list[FloodWarning]:
    """Warnings not yet expired whose station (if any) is still at an alarm level, newest first."""
    now = now or datetime.now(UTC)
    rows = db.scalars(select(FloodWarning).where(FloodWarning.expires_at > now)
                      .order_by(FloodWarning.id.desc()).limit(limit)).all()
    levels: dict[int, int] = dict(db.execute(select(FloodThing.id, FloodThing.level).where(
        FloodThing.id.in_([w.thing_id for w in rows if w.thing_id is not None]))).all())
    # a level-0 row is the CAP message closing an event, not a warning in force
    return [w for w in rows if w.level >= 1 and (w.thing_id is None or w.manual or levels.get(w.thing_id, 0) >= 1)]


def recent_warnings(db: Session, *, limit: int = 50) -> list[FloodWarning]:
    """The latest warnings, newest first (the CAP index and the warnings list)."""
    return list(db.scalars(select(FloodWarning).order_by(FloodWarning.id.desc()).limit(limit)))
