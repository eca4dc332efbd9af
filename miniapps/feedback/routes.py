"""The feedback JSON API, under /api/miniapps/feedback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from miniapps.feedback import apikeys, cache, handling, listings, service, stats
from miniapps.feedback.models import FeedbackPhoto, ReportState
from miniapps.feedback.schemas import ApiKeyCreate, RatingCreate
from plugins import (
    CurrentUser,
    DomainError,
    PhotoRejected,
    Principal,
    PrincipalDep,
    ProcessedPhoto,
    allow_uploads,
    encoded_answer,
    host_of,
    page_locale,
    process_photo,
    require_permission,
)

log = logging.getLogger(__name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
api = APIRouter()
T = TypeVar("T")

FILE = "feedback.reports.file"
DASHBOARD = "feedback.dashboard.read"
# A signed-in caller may send a form with MAX_PHOTOS photos; everyone else is held to the host's body limit.
PHOTO_UPLOADS = allow_uploads(files=service.MAX_PHOTOS)
KEYS = "feedback.api_keys.manage"


async def run_db(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in the thread pool on a fresh session (a FeedbackError is answered by the host)."""

    def call() -> T:
        with Session(host_of(request).engine, expire_on_commit=False) as session:
            return work(session)

    return await run_in_threadpool(call)


async def read_photos(request: Request, uploads: list[UploadFile] | None, *, field: str = "photos") -> list[ProcessedPhoto]:
    """Check and process uploaded photos (all or none); FeedbackError names the photo at fault."""
    uploads = [u for u in uploads or [] if u.filename or u.size]
    if len(uploads) > service.MAX_PHOTOS:
        raise service.FeedbackError(422, f"at most {service.MAX_PHOTOS} photos", field=field)
    limit = host_of(request).settings.media_max_bytes
    blobs = [await upload.read(limit + 1) for upload in uploads]  # never more than the limit in memory
    # Processed side by side (Pillow releases the GIL), each within the worker's decode budget (core.media).
    results = await asyncio.gather(*(run_in_threadpool(process_photo, blob, max_bytes=limit) for blob in blobs),
                                   return_exceptions=True)
    for index, (upload, result) in enumerate(zip(uploads, results, strict=True)):
        if isinstance(result, PhotoRejected):
            raise service.FeedbackError(result.status, f"photo {index + 1} ({upload.filename}): {result.detail}",
                                        field=f"{field}[{index}]")
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


def place_of(lat: float | None, lon: float | None, photos: list[ProcessedPhoto]) -> tuple[float, float]:
    """The point given, else the GPS of the first photo that has one; 422 naming ``lat`` when neither."""
    if lat is not None and lon is not None:
        return lat, lon
    found = next((photo.gps for photo in photos if photo.gps is not None), None)
    if found is None:
        raise service.FeedbackError(422, "give lat and lon, or a photo that carries its location", field="lat")
    return found


async def cached(request: Request, key: Any, render: Callable[[Session], T]) -> T:
    """The answer for ``key`` from the answer cache (no database when fresh), else rendered and stored."""
    answers = cache.answer_cache(host_of(request))
    body = answers.fresh(key)
    if body is None:
        body = await run_db(request, lambda s: answers.answer(s, key, lambda: render(s)))
    return body


def authorizer(request: Request) -> Any:
    """The host's authorizer."""
    return host_of(request).authorizer


# --- reference ---------------------------------------------------------------------------------------


@api.get("/categories", operation_id="list_categories")
async def list_categories(request: Request) -> list[dict[str, Any]]:
    """The report categories, with the unit kind that handles each."""
    rows = await run_db(request, service.list_categories)
    return [{"id": c.id, "name": {"vi": c.name_vi, "en": c.name_en}, "department_id": c.department_id,
             "deadline_hours": c.deadline_hours, "urgent_deadline_hours": c.urgent_deadline_hours} for c in rows]


@api.get("/locate", operation_id="locate_unit")
async def locate_unit(request: Request, lat: Annotated[float, Query(ge=-90, le=90)],
                      lon: Annotated[float, Query(ge=-180, le=180)]) -> dict[str, Any]:
    """The commune or ward a point lies in (``core.units.places.unit_at``); 422 for points outside Hue."""
    unit = await run_db(request, lambda s: service.locate(s, lat=lat, lon=lon, lat_field="query.lat"))
    return {"id": unit.id, "name": {"vi": unit.name_vi, "en": unit.name_en}, "kind": unit.kind.value}


@api.get("/duplicates", operation_id="possible_duplicates")
async def possible_duplicates(request: Request, category_id: str, lat: Annotated[float, Query(ge=-90, le=90)],
                              lon: Annotated[float, Query(ge=-180, le=180)]) -> list[dict[str, Any]]:
    """Up to 5 open reports of the same category within 250 m: follow one instead of filing anew."""

    def work(session: Session) -> list[dict[str, Any]]:
        service.get_category(session, category_id, field="query.category_id")
        return [listings.view(session, r, "public") for r in
                service.possible_duplicates(session, category_id=category_id, lat=lat, lon=lon)]

    return await run_db(request, work)


# --- residents ------------------------------------------------------------------------------------------


@api.post("/reports", status_code=201, operation_id="file_report", dependencies=[PHOTO_UPLOADS])
async def file_report(
    request: Request, principal: Annotated[Principal, require_permission(FILE)],
    category_id: Annotated[str, Form(max_length=40)], description: Annotated[str, Form(min_length=1, max_length=4000)],
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None, lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    unit_id: Annotated[str | None, Form(max_length=64)] = None,
    address: Annotated[str | None, Form(max_length=300)] = None, urgent: Annotated[bool, Form()] = False,
    photos: Annotated[list[UploadFile] | None, File()] = None,
) -> dict[str, Any]:
    """File a report (multipart form, up to 5 photos); it is created whole with its photos or not at all.

    Without ``lat``/``lon`` the place is taken from the first photo that carries GPS in its EXIF.
    """
    processed = await read_photos(request, photos)
    lat, lon = place_of(lat, lon, processed)
    store = host_of(request).media

    def work(session: Session) -> dict[str, Any]:
        report = service.file_report(
            session, store=store, reporter_id=principal.user_id, category_id=category_id, description=description,
            lat=lat, lon=lon, unit_id=unit_id or None, address=address, urgent=urgent, photos=processed,
            notifier=host_of(request).notifier)
        return listings.view(session, report, "reporter")

    return await run_db(request, work)


@api.get("/reports/mine", operation_id="my_reports")
async def my_reports(request: Request, principal: CurrentUser) -> list[dict[str, Any]]:
    """The reports the caller filed or follows."""
    def work(session: Session) -> list[dict[str, Any]]:
        return [listings.view(session, r, "reporter" if r.reporter_id == principal.user_id else "public")
                for r in listings.my_reports(session, user_id=principal.user_id or 0)]

    return await run_db(request, work)


@api.get("/reports/{report_id}", operation_id="get_report")
async def get_report(request: Request, report_id: int, principal: PrincipalDep) -> dict[str, Any]:
    """One report as the caller may see it (the reporter's identity only for operators)."""
    def work(session: Session) -> dict[str, Any]:
        report, level = service.visible_report(session, principal=principal, authorizer=authorizer(request),
                                               report_id=report_id)
        return listings.view(session, report, level)

    return await run_db(request, work)


@api.post("/reports/{report_id}/follow", operation_id="follow_report")
async def follow_report(request: Request, report_id: int,
                        principal: Annotated[Principal, require_permission(FILE)]) -> dict[str, Any]:
    """Follow a report to be told of its progress (instead of filing a duplicate)."""
    def work(session: Session) -> dict[str, Any]:
        report, _level = service.visible_report(session, principal=principal, authorizer=authorizer(request),
                                                report_id=report_id)
        return {"report_id": report.id, "followed": service.follow(session, principal=principal, report=report)}

    return await run_db(request, work)


@api.post("/reports/{report_id}/actions", operation_id="act_on_report", dependencies=[PHOTO_UPLOADS])
async def act_on_report(
    request: Request, report_id: int, principal: CurrentUser,
    action: Annotated[str, Form(max_length=20)], note: Annotated[str | None, Form(max_length=4000)] = None,
    reason: Annotated[str | None, Form(max_length=1000)] = None,
    response: Annotated[str | None, Form(max_length=4000)] = None,
    unit_id: Annotated[str | None, Form(max_length=64)] = None, duplicate_of: Annotated[int | None, Form()] = None,
    assignee_id: Annotated[int | None, Form()] = None, photos: Annotated[list[UploadFile] | None, File()] = None,
) -> dict[str, Any]:
    """Move a report on: accept, reject, duplicate, assign, start, resolve (with photos), transfer, close, reopen."""
    processed = await read_photos(request, photos)
    store = host_of(request).media

    def work(session: Session) -> dict[str, Any]:
        report = handling.act(
            session, store=store, principal=principal, authorizer=authorizer(request), report_id=report_id,
            action=action, note=note, reason=reason, response=response, unit_id=unit_id, duplicate_of=duplicate_of,
            assignee_id=assignee_id, photos=processed, notifier=host_of(request).notifier)
        level = service.access(principal, report, authorizer(request), session) or "public"
        return listings.view(session, report, level)

    return await run_db(request, work)


@api.post("/reports/{report_id}/rating", operation_id="rate_report")
async def rate_report(request: Request, report_id: int, rating: RatingCreate, principal: CurrentUser) -> dict[str, Any]:
    """The reporter rates the handling 1-5 with a comment, after resolution."""
    def work(session: Session) -> dict[str, Any]:
        report = handling.rate(session, principal=principal, authorizer=authorizer(request), report_id=report_id,
                              stars=rating.stars, comment=rating.comment, notifier=host_of(request).notifier)
        return listings.view(session, report, "reporter")

    return await run_db(request, work)


# --- officials and operators ------------------------------------------------------------------------


def json_bytes(body: Any) -> bytes:
    """``body`` encoded as compact UTF-8 JSON (datetimes as ISO 8601), as JSONResponse would send it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_iso).encode("utf-8")


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


@api.get("/queue", operation_id="report_queue")
async def report_queue(
    request: Request, principal: Annotated[Principal, require_permission(service.HANDLE)],
    unit_id: str | None = None, state: ReportState | None = None, category_id: str | None = None,
    overdue: bool | None = None, urgent: bool | None = None,
    needs_placing: Annotated[bool | None, Query(description=(
        "Open311 requests whose address matched no unit, for an operator to place (the place action)"))] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1, description=(
        "Keyset paging: reports older than this id (the previous page's next_before); page is then ignored."))] = None,
) -> Response:
    """The reports handled by the caller's units, newest first, filtered; operators see every unit.

    ``next_before`` continues after the last item at constant cost, however deep the queue.
    """
    units = authorizer(request).units_for(principal, service.HANDLE)
    if unit_id and units is not None and unit_id not in units:
        raise DomainError(403, f"you do not handle reports for {unit_id!r}", field="query.unit_id")

    def render(session: Session) -> bytes:
        rows, total = listings.queue(session, units=units, unit_id=unit_id, state=state.value if state else None,
                                    category_id=category_id, overdue=overdue, urgent=urgent, page=page,
                                    per_page=per_page, before=before, needs_placing=needs_placing)
        now = service.utcnow()
        return json_bytes({"total": min(total, listings.COUNT_CAP), "total_exact": total <= listings.COUNT_CAP,
                           "page": None if before else page, "per_page": per_page,
                           "next_before": rows[-1].id if len(rows) == per_page else None,
                           "items": [queue_row(r, now) for r in rows]})

    # The caller's units are part of the key: an answer is only ever served to callers who handle the same units.
    key = ("queue", None if units is None else tuple(sorted(units)), unit_id, state, category_id, overdue, urgent,
           page, per_page, before, needs_placing)
    body = await cached(request, key, render)
    return Response(body, media_type="application/json")


def queue_row(report: Any, now: datetime) -> dict[str, Any]:
    """A compact queue line (no reporter identity) from a report or a ``listings.QUEUE_COLUMNS`` row."""
    return {"id": report.id, "category_id": report.category_id, "state": report.state.value,
            "urgent": report.urgent, "unit_id": report.unit_id, "handling_unit_id": report.handling_unit_id,
            "description": report.description[:200], "created_at": service.aware(report.created_at),
            "due_at": service.aware(report.due_at), "overdue": listings.is_overdue(report, now),
            "needs_placing": report.needs_placing}


@api.get("/dashboard", operation_id="dashboard")
async def dashboard(request: Request, principal: Annotated[Principal, require_permission(DASHBOARD)],
                    since: datetime | None = None, until: datetime | None = None) -> Response:
    """Received, processed, on time, overdue, handling hours and satisfaction, city-wide, per unit and category."""
    def render(session: Session) -> bytes:
        board = stats.dashboard(session, since=since, until=until)
        return json_bytes({"total": board["total"].as_dict(), "per_unit": [line.as_dict() for line in board["per_unit"]],
                           "per_category": [line.as_dict() for line in board["per_category"]]})

    body = await cached(request, ("dashboard", since, until), render)
    return Response(body, media_type="application/json")


# Exports head their columns in the reader's language (``lang``, the language cookie, Accept-Language);
# ``headers=keys`` gives the stable machine names that scripts read.
HeaderChoice = Annotated[Literal["titles", "keys"], Query(description="titles: column titles in the page's "
                                                                      "language; keys: machine-readable names")]


def header_style(request: Request, choice: str) -> str:
    """``keys``, or the language the export's column titles are written in."""
    return "keys" if choice == "keys" else page_locale(request)


@api.get("/dashboard.csv", operation_id="dashboard_csv", responses={200: {"content": {"text/csv; charset=utf-8": {"schema": {"type": "string"}}}}})
async def dashboard_csv(request: Request, principal: Annotated[Principal, require_permission(DASHBOARD)],
                        since: datetime | None = None, until: datetime | None = None,
                        headers: HeaderChoice = "titles") -> Response:
    """The dashboard as CSV, streamed line by line."""
    board = await run_db(request, lambda s: stats.dashboard(s, since=since, until=until))
    return StreamingResponse(stats.csv_lines(board, header_style(request, headers)), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="feedback-dashboard.csv"'})


@api.get("/dashboard.xlsx", operation_id="dashboard_xlsx", responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
async def dashboard_xlsx(request: Request, principal: Annotated[Principal, require_permission(DASHBOARD)],
                         since: datetime | None = None, until: datetime | None = None,
                         headers: HeaderChoice = "titles") -> Response:
    """The dashboard as an XLSX workbook (written row by row to a spooled file, then streamed)."""
    board = await run_db(request, lambda s: stats.dashboard(s, since=since, until=until))
    spooled = await run_in_threadpool(stats.to_xlsx, board, header_style(request, headers))
    return StreamingResponse(stats.chunks_of(spooled),
                             media_type=XLSX,
                             headers={"Content-Disposition": 'attachment; filename="feedback-dashboard.xlsx"'})


@api.get("/reports.csv", operation_id="export_reports_csv", responses={200: {"content": {"text/csv; charset=utf-8": {"schema": {"type": "string"}}}}})
async def export_reports_csv(request: Request, principal: Annotated[Principal, require_permission(DASHBOARD)],
                             since: datetime | None = None, until: datetime | None = None,
                             headers: HeaderChoice = "titles") -> Response:
    """Every report created in [since, until) as CSV, one line each, streamed from a server-side cursor.

    Memory stays bounded whatever the window (two years are 360,000 lines); no reporter identity.
    """
    engine = host_of(request).engine
    style = header_style(request, headers)
    return StreamingResponse(stats.report_lines(engine, since=since, until=until, style=style), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="feedback-reports.csv"'})


# --- public map and photos ------------------------------------------------------------------------------


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError:
        raise DomainError(422, "bbox is west,south,east,north in degrees", field="query.bbox") from None
    if not (west <= east and south <= north):
        raise DomainError(422, "bbox is west,south,east,north with west <= east and south <= north", field="query.bbox")
    return west, south, east, north


@api.get("/reports.geojson", operation_id="reports_geojson",
         responses={200: {"content": {"application/geo+json": {}}}, 304: {"description": "Not modified"}})
async def reports_geojson(request: Request, bbox: str | None = None, category_id: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> Response:
    """Public reports as a GeoJSON FeatureCollection (RFC 7946) for the map: no reporter, no photos.

    Bounded: the newest ``limit`` (at most 5,000) in ``bbox``; the layer is rendered and gzipped once per
    data version and filter, then served from memory until a report changes (or a minute passes:
    "overdue" ages). Gzipped when the client accepts it; 304 when its ``If-None-Match`` names the layer.
    """
    box = _bbox(bbox)

    def render(session: Session) -> cache.EncodedAnswer:
        rows = listings.public_reports(session, bbox=box, category_id=category_id, limit=limit)
        now = service.utcnow()
        return cache.EncodedAnswer.of(json_bytes({"type": "FeatureCollection", "features": [{
            "type": "Feature", "id": r.id,
            "geometry": {"type": "Point", "coordinates": [round(r.lon, 6), round(r.lat, 6)]},
            "properties": {"id": r.id, "category_id": r.category_id, "state": r.state.value,
                           "status": "open" if r.state in service.OPEN_STATES else "closed", "urgent": r.urgent,
                           "overdue": listings.is_overdue(r, now), "description": r.description[:200],
                           "created_at": service.aware(r.created_at).isoformat(),  # type: ignore[union-attr]
                           "url": f"/m/{service.MINIAPP}/reports/{r.id}"},
        } for r in rows]}))

    layer = await cached(request, ("geojson", box, category_id, limit), render)
    return encoded_response(request, layer, media_type="application/geo+json")


GEOJSON_PARAMS = frozenset({"bbox", "category_id", "limit"})


def kept_geojson(request: Request) -> Response | None:
    """The layer ``reports_geojson`` would send, answered before routing while it is kept and trusted (the
    public map on a flood night: FastAPI's routing cost more than the answer); None for anything else,
    bad input included, which the route then answers."""
    params = request.query_params
    if not GEOJSON_PARAMS.issuperset(params) or len(params.multi_items()) != len(params):
        return None
    limit, category_id = params.get("limit", "1000"), params.get("category_id")
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 4 and 1 <= int(limit) <= 5000) or category_id == "":
        return None
    try:
        box = _bbox(params.get("bbox"))
    except DomainError:
        return None
    layer = cache.answer_cache(host_of(request)).trusted(("geojson", box, category_id, int(limit)))
    return None if layer is None else encoded_response(request, layer, media_type="application/geo+json")


def encoded_response(request: Request, answer: cache.EncodedAnswer, *, media_type: str) -> Response:
    """``answer`` as the client can best take it: 304 when it holds it already, gzipped when it accepts that."""
    # no-cache: a client keeps the layer but asks each time (a 304 is a few bytes), since a report may
    # have changed; the ETag is the layer's content hash, so equal layers from two workers match.
    return encoded_answer(request, body=answer.body, gzipped=answer.gzipped, etag=answer.etag,
                          media_type=media_type, headers={"Cache-Control": "public, no-cache"})


# Photo ids in URLs are random tokens (models.new_photo_id): counting cannot find a photo.
PHOTO_ID = "^[A-Za-z0-9_-]{16,32}$"


@api.get("/photos/{photo_id}", operation_id="get_photo")
async def get_photo(request: Request, photo_id: Annotated[str, Path(pattern=PHOTO_ID, description=
                    "The photo's opaque id, as report answers give it.")], principal: PrincipalDep,
                    size: Annotated[str, Query(pattern="^(display|thumb)$")] = "display") -> Response:
    """A report's photo (EXIF-free JPEG) for whoever may see the report."""
    def work(session: Session) -> str:
        photo = session.exec(select(FeedbackPhoto).where(FeedbackPhoto.public_id == photo_id)).first()
        if photo is None:
            raise service.FeedbackError(404, f"no photo {photo_id}", field="photo_id")
        service.visible_report(session, principal=principal, authorizer=authorizer(request), report_id=photo.report_id)
        return photo.key if size == "display" else service.thumbnail_key(photo.key)

    key = await run_db(request, work)
    try:
        data = await run_in_threadpool(host_of(request).media.get, key)
    except KeyError:
        raise DomainError(404, f"photo {photo_id} is missing from the store", field="photo_id") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


# --- Open311 api keys (admins) ------------------------------------------------------------------------


def _key_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_at": service.aware(row.created_at),
            "revoked_at": service.aware(row.revoked_at)}


@api.get("/api-keys", operation_id="list_api_keys")
async def list_api_keys(request: Request, principal: Annotated[Principal, require_permission(KEYS)]) -> list[dict[str, Any]]:
    """Issued Open311 keys (never the keys themselves)."""
    return [_key_view(k) for k in await run_db(request, apikeys.list_keys)]


@api.post("/api-keys", status_code=201, operation_id="issue_api_key")
async def issue_api_key(request: Request, body: ApiKeyCreate,
                        principal: Annotated[Principal, require_permission(KEYS)]) -> dict[str, Any]:
    """Issue an Open311 api_key; the key is in this answer only."""
    row, key = await run_db(request, lambda s: apikeys.issue(s, name=body.name, created_by=principal.user_id))
    return {**_key_view(row), "api_key": key}


@api.delete("/api-keys/{key_id}", operation_id="revoke_api_key")
async def revoke_api_key(request: Request, key_id: int,
                         principal: Annotated[Principal, require_permission(KEYS)]) -> dict[str, Any]:
    """Revoke an Open311 api_key."""
    row = await run_db(request, lambda s: apikeys.revoke(s, key_id=key_id))
    if row is None:
        raise DomainError(404, f"no api key {key_id}", field="key_id")
    return _key_view(row)
