"""The flood map's JSON API (the host mounts it under /api/miniapps/floodmap): sensor ingest, the
SensorThings read API under /v1.1, the GeoJSON layer, warnings and their CAP 1.2 form."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_args

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from limits import parse, storage, strategies
from sqlalchemy import Connection
from sqlalchemy.exc import DataError
from sqlmodel import Session, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from miniapps.floodmap import (
    cameras,
    cap,
    ingest,
    reports,
    retention,
    sensorthings,
    sta_batch,
    sta_mqtt,
    sta_paths,
    sta_read,
    sta_write,
)
from miniapps.floodmap.ingest import StationUpdate
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodReport,
    FloodSensor,
    FloodThing,
    FloodWarning,
)
from miniapps.floodmap.schemas import IngestReport, ManualWarning, ReadingBatch
from miniapps.floodmap.stations import layer_cache, load_features
from miniapps.floodmap.warnings import (
    announce_after_response,
    announce_updates,
    issue_manual,
    recent_warnings,
    warning_json,
)
from plugins import (
    CurrentUser,
    DomainError,
    Host,
    LocalFallback,
    OrgUnit,
    PhotoRejected,
    PrincipalDep,
    SessionDep,
    allow_uploads,
    encoded_answer,
    host_of,
    loads_json,
    process_photo,
    public_base_url,
    require_permission,
    require_scope,
)

api = APIRouter()


def ingest_rate(host: Host) -> Any:
    """Batches a minute per sensor, from the mini-app's settings (a device pushes about once a minute,
    and after an outage one batch catches up)."""
    return parse(f"{host.settings_for('floodmap').ingest_batches_per_minute} per minute")


def _limiter(host: Host) -> Any:
    """The host's ingest limiter, kept in the mini-app's state slot: in memory, or in Redis so every worker
    shares the counts (in memory while Redis is unreachable: sensors keep reporting through a Redis outage)."""
    slot = host.state("floodmap")
    limiter = getattr(slot, "ingest_limiter", None)
    if limiter is None:
        local = storage.storage_from_string("memory://", key_prefix="superapp-floodmap")
        limiter = strategies.MovingWindowRateLimiter(local)
        if host.settings.redis_url:
            shared = storage.storage_from_string(host.settings.redis_url, key_prefix="superapp-floodmap")
            limiter = LocalFallback(strategies.MovingWindowRateLimiter(shared), limiter, what="sensor ingest limits")
        slot.ingest_limiter = limiter
    return limiter


def _readings_of(body: Any) -> list[Any]:
    if isinstance(body, list):
        readings = body
    elif isinstance(body, dict) and "readings" in body:
        readings = body["readings"]
        if not isinstance(readings, list):
            raise DomainError(422, "readings must be a list of readings", field="body.readings")
    elif isinstance(body, dict):
        readings = [body]
    else:
        raise DomainError(422, "send a reading object, a list of readings or {\"readings\": [...]}", field="body")
    if not readings:
        raise DomainError(422, "the batch holds no readings", field="body.readings")
    if len(readings) > ingest.MAX_BATCH:
        raise DomainError(413, f"at most {ingest.MAX_BATCH} readings per batch; send the rest in another",
                      field="body.readings")
    return readings


def _admitted_sensor(host: Host, sensor_code: str, key: str | None) -> FloodSensor:
    """The sensor whose code and key match (401 otherwise), within its batches a minute (429 with
    Retry-After otherwise): what every push, readings or images, passes first."""
    with Session(host.engine, expire_on_commit=False) as db:
        sensor = ingest.authenticate(db, sensor_code=sensor_code, key=key)
    limiter, rate = _limiter(host), ingest_rate(host)
    if not limiter.hit(rate, "sensor", sensor.code):
        reset = limiter.get_window_stats(rate, "sensor", sensor.code).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        raise DomainError(429, f"sensor {sensor.code!r} sent more than {rate} batches; nothing of this batch was "
                           f"stored, send it again in {retry} s", headers={"Retry-After": str(retry)})
    return sensor


@api.post(
    "/ingest/{sensor_code}", operation_id="ingest_readings", response_model=IngestReport,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": ReadingBatch.model_json_schema(ref_template="#/components/schemas/{model}")}}}},
    responses={401: {"description": "Unknown sensor or wrong key"}, 429: {"description": "Too many batches"}},
)
async def ingest_readings(request: Request, sensor_code: str,
                          x_sensor_key: str | None = Header(default=None)) -> JSONResponse:
    """A sensor pushes readings with its key in ``X-Sensor-Key``; each reading is judged on its own."""
    host = host_of(request)
    sensor = await run_in_threadpool(_admitted_sensor, host, sensor_code, x_sensor_key)
    body = loads_json(await request.body())  # 422 naming the body when not JSON or nested too deeply
    readings = _readings_of(body)
    outcome = await run_in_threadpool(ingest.ingest, host.engine, sensor=sensor, readings=readings)
    sta_mqtt.announce(host, sta_mqtt.after_ingest(_base(request), outcome))
    # The sensor is answered once its readings and levels are committed: warnings, events and the live map
    # follow in the background (a level change's warning is owed durably: see warnings.settle_station).
    return JSONResponse({
        "accepted": outcome.count("accepted"), "duplicates": outcome.count("duplicate"),
        "rejected": outcome.count("rejected"), "results": [r.as_json() for r in outcome.results],
        "stations": [{"id": s.thing_id, "change": None if s.change is None else {
            "from": s.change.from_level, "to": s.change.to_level, "reason": s.change.reason}} for s in outcome.stations],
    }, background=BackgroundTask(announce_after_response, host, outcome.stations) if outcome.stations else None)


IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@api.post(
    "/ingest/{sensor_code}/image", operation_id="ingest_camera_image", status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": {
        kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES}}},
    responses={401: {"description": "Unknown sensor or wrong key"}, 409: {"description": "Not a camera's sensor"},
               413: {"description": "Over the host's body limit"}, 415: {"description": "Not an image"},
               429: {"description": "Too many images"}},
)
async def ingest_camera_image(request: Request, sensor_code: str,
                              x_sensor_key: str | None = Header(default=None)) -> dict[str, Any]:
    """A camera pushes its latest snapshot (JPEG, PNG or WebP, up to the host's body limit) with its key in ``X-Sensor-Key``;
    the station page and the map show it, EXIF-free, from then on."""
    host = host_of(request)
    sensor = await run_in_threadpool(_admitted_sensor, host, sensor_code, x_sensor_key)
    data = await request.body()  # within the host's body limit, which is this route's limit too
    try:
        photo = await run_in_threadpool(process_photo, data, max_bytes=host.settings.max_body_bytes)
    except PhotoRejected as exc:
        raise DomainError(exc.status, exc.detail, field="body") from None
    thing = await run_in_threadpool(cameras.store_image, host.engine, host.media, sensor_code=sensor.code,
                                    jpeg=photo.display)
    assert thing.id is not None and thing.camera_image_at is not None
    sta_mqtt.announce(host, sta_mqtt.after_camera_image(_base(request), thing.id))
    await announce_updates(host, [StationUpdate(thing_id=thing.id, change=None, came_back=False)])
    return {"station": thing.id, "code": thing.code, "image_at": thing.camera_image_at.isoformat(),
            "url": thing.camera_url, "width": photo.width, "height": photo.height}


@api.get("/stations/{station_id}/camera.jpg", operation_id="camera_image",
         responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No image kept for this station"}})
async def camera_image(request: Request, station_id: int) -> Response:
    """A camera station's latest image (EXIF-free JPEG), public like the map; its address changes with each image."""
    host = host_of(request)
    data, taken = await run_in_threadpool(cameras.latest_image, host.engine, host.media, station_id)
    return Response(data, media_type="image/jpeg", headers={
        "Cache-Control": "public, max-age=86400" if "at" in request.query_params else "public, max-age=60",
        "Last-Modified": taken.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")})


# --- SensorThings read API ----------------------------------------------------------------------------


def _base(request: Request) -> str:
    return public_base_url(request) + f"/api/miniapps/floodmap/{sensorthings.VERSION}"


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


@api.get(f"/{sensorthings.VERSION}", operation_id="sensorthings_root")
def sensorthings_root(request: Request) -> dict[str, Any]:
    """The SensorThings service root: the entity sets and conformance classes."""
    document = sensorthings.service_document(_base(request))
    document["serverSettings"].update(sta_mqtt.server_settings(host_of(request)))  # where MQTT updates go
    return document


# The SensorThings reads answer with the JSON they built (plain dicts of strings and numbers) and skip
# FastAPI's response encoding, which walks every value of a page of up to 1,000 entities once more.
_QUERY_REFUSED: dict[int | str, dict[str, Any]] = {400: {"description": "A query option is refused ($top over 1000, a $filter that does not parse, "
                                        "$expand too deep, ...); field names it"}}
_DOCUMENT = {"response_model": dict[str, Any], "methods": ["GET"], "responses": _QUERY_REFUSED}


async def _answer(request: Request, read: Callable[[Connection], sta_paths.Answer]) -> Response:
    """``read`` on a connection in autocommit, its JSON encoded, all in one worker thread.

    A page is one SELECT per expanded level (its count is cached apart anyway), so it needs no BEGIN and
    ROLLBACK round trips around it, nor an ORM session; and one thread hop per request instead of three
    (a dependency's enter and exit, then the endpoint) keeps the worker threads of a busy server from
    queueing for the interpreter lock.
    """
    engine = host_of(request).engine

    def work() -> Response:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            try:
                answer = read(connection)
            except DataError as exc:  # e.g. an integer overflow in $filter arithmetic on PostgreSQL
                raise DomainError(400, f"$filter: the expression cannot be evaluated on these data "
                                       f"({str(exc.orig).splitlines()[0]})", field="query.$filter") from None
        if answer.text is not None:
            return PlainTextResponse(answer.text)
        return JSONResponse(answer.json)

    return await run_in_threadpool(work)


async def _resolve(request: Request, path: str) -> Response:
    """Any SensorThings resource path below the version root, with the request's query options."""
    params, links = _params(request), sensorthings.Links(_base(request))
    counts = sta_read.counts_cache(host_of(request))
    return await _answer(request, lambda db: sta_paths.resolve(db, path, params, links, counts))


def _collection_route(name: str) -> None:
    entity = sensorthings.ENTITY_SETS[name]

    async def read_collection(request: Request) -> Response:
        return await _resolve(request, name)

    read_collection.__doc__ = f"SensorThings {name}: $top, $skip, $count, $orderby, $filter, $expand, $select."
    api.add_api_route(f"/{sensorthings.VERSION}/{name}", read_collection, operation_id=f"sensorthings_{name.lower()}",
                      **_DOCUMENT)

    async def read_entity(request: Request, entity_id: int) -> Response:
        return await _resolve(request, f"{name}({entity_id})")

    read_entity.__doc__ = f"One of the {name}, with $expand and $select."
    api.add_api_route(f"/{sensorthings.VERSION}/{name}({{entity_id}})", read_entity,
                      operation_id=f"sensorthings_{name.lower()}_entity", **_DOCUMENT)

    for nav_name in entity.navs:
        _nav_route(entity, nav_name)


def _nav_route(entity: sensorthings.EntitySet, nav_name: str) -> None:
    async def read_related(request: Request, entity_id: int) -> Response:
        return await _resolve(request, f"{entity.name}({entity_id})/{nav_name}")

    read_related.__doc__ = f"The {nav_name} of one of the {entity.name}."
    api.add_api_route(f"/{sensorthings.VERSION}/{entity.name}({{entity_id}})/{nav_name}", read_related,
                      operation_id=f"sensorthings_{entity.name.lower()}_{nav_name.lower()}", **_DOCUMENT)


for _name in sensorthings.ENTITY_SETS:
    _collection_route(_name)


@api.get(f"/{sensorthings.VERSION}/{{path:path}}", operation_id="sensorthings_path",
         responses={200: {"content": {"application/json": {}, "text/plain": {}}}, **_QUERY_REFUSED})
async def sensorthings_path(request: Request, path: str) -> Response:
    """Any other SensorThings resource path: deeper navigation (``Datastreams(1)/Thing/Locations``), an
    entity of a related set (``Things(1)/Datastreams(2)``), a property (``Things(1)/name``), its
    ``$value``, or ``$ref``."""
    return await _resolve(request, path)


# --- SensorThings Create-Update-Delete and Batch ----------------------------------------------------------

# the dependency PrincipalDep stands for, called only when no sensor credentials came (Basic is a sensor's)
_principal_of = get_args(PrincipalDep)[1].dependency


async def _writer(request: Request) -> sta_write.Writer:
    """A keyed sensor (HTTP Basic code:key, or X-Sensor-Key), rate-limited as at ingest; or an operator."""
    host = host_of(request)
    code, key = None, request.headers.get("x-sensor-key")
    authorization = request.headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            code, _, key = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            code = key = None
        if not key:
            raise DomainError(401, "Basic credentials are a sensor's code and key", field="header.authorization",
                              headers={"WWW-Authenticate": 'Basic realm="floodmap sensors"'})
    if key:
        def find() -> Any:
            with Session(host.engine, expire_on_commit=False) as db:
                return sta_write.sensor_by_key(db, code=code, key=key)

        sensor = await run_in_threadpool(find)
        if sensor is None:
            raise DomainError(401, "unknown sensor or wrong key", field="header.authorization",
                              headers={"WWW-Authenticate": 'Basic realm="floodmap sensors"'})
        limiter, rate = _limiter(host), await run_in_threadpool(ingest_rate, host)
        if not limiter.hit(rate, "sensor", sensor.code):
            retry = max(1, math.ceil(limiter.get_window_stats(rate, "sensor", sensor.code).reset_time - time.time()))
            raise DomainError(429, f"sensor {sensor.code!r} sent more than {rate} batches; send it again in {retry} s",
                              headers={"Retry-After": str(retry)})
        return sta_write.Writer(sensor=sensor)
    principal = await _principal_of(request)
    if not principal.is_authenticated:
        raise DomainError(401, "Sign in as an operator, or send a sensor's key", headers={
            "WWW-Authenticate": 'Bearer, Basic realm="floodmap sensors"'})
    if not host.authorizer.allows(principal, sta_write.WRITE_PERMISSION):
        raise DomainError(403, f"you do not have the permission {sta_write.WRITE_PERMISSION!r}",
                          type="/problems/forbidden", permission=sta_write.WRITE_PERMISSION)
    return sta_write.Writer()


async def _write(request: Request, method: str, path: str, body: Any, writer: sta_write.Writer) -> Response:
    """One write (POST, PATCH, PUT or DELETE) by ``writer``, its station news announced after it committed."""
    host = host_of(request)
    json_patch = method == "PATCH" and "json-patch" in request.headers.get("content-type", "")
    try:
        reply = await run_in_threadpool(sta_write.apply, host.engine, method, path, body, writer,
                                        sensorthings.Links(_base(request)), json_patch=json_patch)
    finally:
        sta_read.counts_cache(host).clear()  # the writer sees its write counted
    sta_mqtt.announce(host, sta_mqtt.after_write(_base(request), method, path, body, reply, json_patch=json_patch))
    if reply.stations:
        await announce_updates(host, reply.stations)
    if reply.status == 201:
        return JSONResponse(reply.body, status_code=201, headers=reply.headers)
    return Response(status_code=reply.status)


_WRITE_ERRORS = {400: {"description": "Refused: the field names what, and why (the ingest rules for readings)"},
                 401: {"description": "Neither an operator nor a sensor's key"},
                 403: {"description": "Not an operator, or another sensor's stream"},
                 404: {"description": "No such entity"}, 409: {"description": "Already stored, or still in use"}}


@api.post(f"/{sensorthings.VERSION}/$batch", operation_id="sensorthings_batch",
          openapi_extra={"requestBody": {"required": True, "content": {
              "application/json": {"schema": {"type": "object", "required": ["requests"], "properties": {
                  "requests": {"type": "array", "maxItems": sta_batch.MAX_REQUESTS, "items": {"type": "object"}}}}},
              "multipart/mixed": {"schema": {"type": "string"}}}}},
          responses={200: {"content": {"application/json": {}, "multipart/mixed": {}}},
                     400: {"description": "Not a batch, too many requests, or a group's requests not adjacent"}})
async def sensorthings_batch(request: Request) -> Response:
    """A batch of up to 100 reads and writes, answered in order: ``multipart/mixed`` with change sets (the
    SensorThings Batch class) or JSON ``{"requests": [...]}`` with atomicity groups. A change set's or
    group's writes commit together or not at all; ``$<id>`` refers to what an earlier request created."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/mixed")
    items = sta_batch.multipart_items(content_type, raw)[0] if multipart else sta_batch.json_items(loads_json(raw))
    writer: sta_write.Writer | DomainError
    try:
        writer = await _writer(request) if any(i.method in sta_batch.WRITES for i in items) else sta_write.Writer()
    except DomainError as refused:
        writer = refused  # reads still answer; each write is refused with this
    host = host_of(request)
    try:
        answers, stations = await run_in_threadpool(sta_batch.run, host.engine, items, writer,
                                                    sensorthings.Links(_base(request)))
    finally:
        sta_read.counts_cache(host).clear()
    sta_mqtt.announce(host, sta_mqtt.after_batch(_base(request), answers, stations))
    if stations:
        await announce_updates(host, stations)
    if multipart:
        body, kind = sta_batch.multipart_answer(answers)
        return Response(body, media_type=kind)
    return JSONResponse(sta_batch.json_answer(answers))


@api.post(f"/{sensorthings.VERSION}/CreateObservations", operation_id="sensorthings_create_observations",
          status_code=201, responses=_WRITE_ERRORS)
async def sensorthings_create_observations(request: Request) -> JSONResponse:
    """Many Observations at once in the data array format (``[{"Datastream": {"@iot.id": 1}, "components":
    ["phenomenonTime", "result"], "dataArray": [[...], ...]}]``), each group judged as one ingest batch;
    answers a selfLink or ``error`` per row, in order."""
    writer = await _writer(request)
    body = loads_json(await request.body())
    links = sensorthings.Links(_base(request))
    host = host_of(request)
    try:
        answers, stations = await run_in_threadpool(sta_write.create_observations, host.engine, body, writer, links)
    finally:
        sta_read.counts_cache(host).clear()  # the writer sees its readings counted
    sta_mqtt.announce(host, sta_mqtt.after_created_links(links.base, answers, stations))
    if stations:
        await announce_updates(host, stations)
    return JSONResponse(answers, status_code=201)


@api.post(f"/{sensorthings.VERSION}/{{path:path}}", operation_id="sensorthings_create", status_code=201,
          responses=_WRITE_ERRORS)
async def sensorthings_create(request: Request, path: str) -> Response:
    """Create in a collection (``Things``, ``Datastreams(1)/Observations``, ...): operators any entity,
    a keyed sensor (HTTP Basic code:key) Observations of its own streams, through the ingest rules."""
    writer = await _writer(request)
    return await _write(request, "POST", path, loads_json(await request.body()), writer)


@api.patch(f"/{sensorthings.VERSION}/{{path:path}}", operation_id="sensorthings_update", responses=_WRITE_ERRORS)
async def sensorthings_update(request: Request, path: str) -> Response:
    """Operators: change an entity (JSON merge, or JSON Patch as application/json-patch+json); a reading is
    judged again by the ingest rules and replaced only when accepted."""
    writer = await _writer(request)
    return await _write(request, "PATCH", path, loads_json(await request.body()), writer)


@api.put(f"/{sensorthings.VERSION}/{{path:path}}", operation_id="sensorthings_replace", responses=_WRITE_ERRORS)
async def sensorthings_replace(request: Request, path: str) -> Response:
    """Operators: replace an entity's properties with the whole entity sent (as FROST's client's update()
    does); what it leaves out goes back to its default. A reading is judged again by the ingest rules."""
    writer = await _writer(request)
    return await _write(request, "PUT", path, loads_json(await request.body()), writer)


@api.delete(f"/{sensorthings.VERSION}/{{path:path}}", operation_id="sensorthings_delete", responses=_WRITE_ERRORS)
async def sensorthings_delete(request: Request, path: str) -> Response:
    """Operators: delete an entity (a station with its locations, datastreams and readings)."""
    writer = await _writer(request)
    return await _write(request, "DELETE", path, None, writer)


# --- Map layer and warnings -------------------------------------------------------------------------------


@api.get("/stations.geojson", operation_id="stations_geojson",
         responses={200: {"content": {"application/geo+json": {}}}, 304: {"description": "Not modified"}})
async def stations_geojson(request: Request) -> Response:
    """Every station as GeoJSON (RFC 7946) with its current level, colour and last reading (at most 2 s old)."""
    # Served from memory on the event loop; only a stale layer is rebuilt, in the thread pool, so the
    # many readers of a flood night never queue for a worker thread.
    host = host_of(request)
    layers = layer_cache(host)
    layer = layers.fresh() or await run_in_threadpool(layers.get, host.engine)
    return encoded_answer(request, body=layer.body, gzipped=layer.gzipped, etag=layer.etag,
                          media_type="application/geo+json", headers={"Cache-Control": "public, max-age=2"})


@api.get("/stations/{station_id}/history", operation_id="station_history")
def station_history(station_id: int, start: datetime, end: datetime, db: SessionDep) -> dict[str, Any]:
    """A station's alert datastream by the hour (count, min, mean, max) from ``start`` to ``end`` (at most
    366 days): recent readings and the hourly summaries retention keeps of older ones, as one curve."""
    for name, value in (("start", start), ("end", end)):
        if value.utcoffset() is None:
            raise DomainError(422, f"{name} needs a time zone, e.g. 2025-11-01T00:00:00Z", field=f"query.{name}")
    if not timedelta(0) < end - start <= retention.MAX_HISTORY:
        raise DomainError(422, "end must come after start, at most 366 days later", field="query.end")
    stream_id = db.exec(select(FloodDatastream.id).where(FloodDatastream.thing_id == station_id,
                                                        FloodDatastream.drives_alert)).first() \
        if sensorthings._fits(FloodThing.__table__.c.id.type, station_id) else None  # type: ignore[attr-defined]
    if stream_id is None:
        raise DomainError(404, f"no measuring station {station_id}", field="path.station_id")
    return {"station": station_id, "datastream": stream_id,
            "hours": retention.hourly_history(db, stream_id, start.astimezone(UTC), end.astimezone(UTC))}


@api.get("/warnings", operation_id="list_warnings")
def list_warnings(db: SessionDep) -> dict[str, Any]:
    """The latest warnings, newest first, with links to their CAP documents."""
    return {"warnings": [warning_json(w) for w in recent_warnings(db)]}


@api.get("/warnings/{warning_id}", operation_id="get_warning")
def get_warning(warning_id: int, db: SessionDep) -> dict[str, Any]:
    """One warning."""
    warning = db.get(FloodWarning, warning_id)
    if warning is None:
        raise DomainError(404, f"no warning {warning_id}", field="path.warning_id")
    return warning_json(warning)


@api.post("/warnings", operation_id="issue_warning", status_code=201,
          dependencies=[require_permission("floodmap.warnings.issue")])
async def issue_warning(body: ManualWarning, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """Operators: warn the residents of chosen units now (critical from level II)."""
    host = host_of(request)

    def check() -> list[str]:
        with Session(host.engine) as db:
            units = list(dict.fromkeys(body.unit_ids))
            known = set(db.exec(select(OrgUnit.id).where(OrgUnit.id.in_(units), OrgUnit.kind.in_(["ward", "commune"]))))
            unknown = [u for u in units if u not in known]
            if unknown:
                raise DomainError(422, f"not a ward or commune: {unknown}", field="body.unit_ids")
            if body.station_id is not None and db.get(FloodThing, body.station_id) is None:
                raise DomainError(422, f"no station {body.station_id}", field="body.station_id")
        return units

    units = await run_in_threadpool(check)
    warning = await issue_manual(host, units=units, level=body.level, title=body.title.model_dump(),
                                 body=body.body.model_dump(), issued_by=principal.user_id, thing_id=body.station_id)
    return warning_json(warning)


def _site(request: Request) -> str:
    return public_base_url(request)


@api.get("/cap/feed.atom", operation_id="cap_index", responses={200: {"content": {"application/atom+xml": {}}}})
def cap_index(request: Request, db: SessionDep) -> Response:
    """An Atom feed of the latest warnings, each linking to its CAP 1.2 alert."""
    warnings = recent_warnings(db)
    updated = warnings[0].issued_at if warnings else datetime(2026, 1, 1, tzinfo=UTC)
    return Response(cap.index_atom(warnings, base_url=_site(request), updated=updated),
                    media_type="application/atom+xml")


@api.get("/cap/{warning_id}.xml", operation_id="cap_alert", responses={200: {"content": {"application/cap+xml": {}}}})
def cap_alert(request: Request, warning_id: int, db: SessionDep) -> Response:
    """One warning as a CAP 1.2 alert."""
    warning = db.get(FloodWarning, warning_id)
    if warning is None:
        raise DomainError(404, f"no warning {warning_id}", field="path.warning_id")
    units = {u.id: u for u in db.exec(select(OrgUnit).where(OrgUnit.id.in_(warning.units)))}
    station = None
    if warning.thing_id is not None:
        station = load_features(host_of(request).engine, [warning.thing_id]).get(warning.thing_id, {}).get("properties")
    return Response(cap.alert_xml(warning, units=units, station=station, base_url=_site(request)),
                    media_type="application/cap+xml")


# --- Residents' reports ---------------------------------------------------------------------------------


@api.post("/reports", operation_id="file_report", status_code=201,
          dependencies=[require_scope("location"), allow_uploads(files=1)])
async def file_report(
    request: Request, principal: PrincipalDep, depth_cm: Annotated[int, Form()],
    lat: Annotated[float | None, Form()] = None, lon: Annotated[float | None, Form()] = None,
    note: Annotated[str, Form(max_length=500)] = "", photo: Annotated[UploadFile | None, File()] = None,
) -> dict[str, Any]:
    """Residents: the water depth where you stand (multipart form), with an optional photo."""
    if principal.kind != "resident":
        raise DomainError(403, "residents report the water where they are; officials use the dashboard",
                      type="/problems/forbidden")
    processed = None
    if photo is not None and (photo.filename or photo.size):
        limit = host_of(request).settings.media_max_bytes
        data = await photo.read(limit + 1)  # never more than the limit in memory
        try:
            processed = await run_in_threadpool(process_photo, data, max_bytes=limit)
        except PhotoRejected as exc:
            raise DomainError(exc.status, exc.detail, field="body.photo") from None

    def store():
        with Session(host_of(request).engine, expire_on_commit=False) as db:
            return reports.file_report(db, host_of(request).media, reporter=reports.Reporter(principal.user_id),
                                       lat=lat, lon=lon, depth_cm=depth_cm, note=note, photo=processed)

    report = await run_in_threadpool(store)
    return reports.report_json(report)


@api.get("/reports", operation_id="list_reports")
def list_reports(request: Request, principal: CurrentUser, db: SessionDep) -> dict[str, Any]:
    """Residents: their own reports; officials of a unit: its reports; operators: all."""
    found = reports.visible_reports(db, principal=principal, authorizer=host_of(request).authorizer)
    return {"reports": [reports.report_json(r) for r in found]}


@api.get("/reports/{report_id}/photo", operation_id="report_photo",
         responses={200: {"content": {"image/jpeg": {}}}})
def report_photo(request: Request, report_id: int, principal: CurrentUser, db: SessionDep,
                 size: Annotated[str, Query(pattern="^(display|thumbnail)$")] = "display") -> Response:
    """A report's photo (EXIF-free JPEG) for whoever may see the report; 404 for everyone else."""
    report = db.get(FloodReport, report_id)
    if report is None or not reports.may_see(principal, host_of(request).authorizer, report):
        raise DomainError(404, f"no report {report_id}", field="path.report_id")
    key = report.thumbnail_key if size == "thumbnail" else report.photo_key
    if key is None:
        raise DomainError(404, f"report {report_id} has no photo", field="path.report_id")
    try:
        data = host_of(request).media.get(key)
    except KeyError:
        raise DomainError(404, f"report {report_id}'s photo is missing", field="path.report_id") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
