"""The flood map's JSON API (the host mounts it under /api/miniapps/floodmap): sensor ingest, the
SensorThings read API under /v1.1, the GeoJSON layer, warnings and their CAP 1.2 form."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_args
from urllib.parse import parse_qsl

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from limits import parse, storage, strategies
from sqlalchemy import Connection
from sqlalchemy.exc import DataError
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from plugins import (
    CurrentUser,
    DomainError,
    Host,
    LocalFallback,
    OrgUnit,
    PhotoRejected,
    PrincipalDep,
    SessionDep,
    encoded_answer,
    host_of,
    process_photo,
    require_permission,
    require_scope,
)
from plugins import allow_uploads, loads_json, public_base_url
from miniapps.floodmap import cap, ingest, reports, retention, sensorthings, sta_write
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodReport,
    FloodThing,
    FloodWarning,
)
from miniapps.floodmap.schemas import IngestReport, ManualWarning, ReadingBatch
from miniapps.floodmap.stations import LAYER_CACHE, load_features
from miniapps.floodmap.warnings import (
    Outlets,
    announce_updates,
    deliver,
    recent_warnings,
    store_manual,
    warning_json,
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

    def authenticate():
        with Session(host.engine, expire_on_commit=False) as db:
            return ingest.authenticate(db, sensor_code=sensor_code, key=x_sensor_key)

    try:
        sensor = await run_in_threadpool(authenticate)
    except ingest.SensorRefused:
        raise DomainError(401, "unknown sensor or wrong key", field="header.x-sensor-key",
                      headers={"WWW-Authenticate": 'SensorKey realm="floodmap"'}) from None
    limiter, rate = _limiter(host), await run_in_threadpool(ingest_rate, host)
    if not limiter.hit(rate, "sensor", sensor.code):
        reset = limiter.get_window_stats(rate, "sensor", sensor.code).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        raise DomainError(429, f"sensor {sensor.code!r} sent more than {rate} batches; nothing of this batch was "
                           f"stored, send it again in {retry} s", headers={"Retry-After": str(retry)})
    body = loads_json(await request.body())  # 422 naming the body when not JSON or nested too deeply
    readings = _readings_of(body)
    outcome = await run_in_threadpool(ingest.ingest, host.engine, sensor=sensor, readings=readings)
    await announce_updates(Outlets.of_host(host), outcome.stations)
    return JSONResponse({
        "accepted": outcome.count("accepted"), "duplicates": outcome.count("duplicate"),
        "rejected": outcome.count("rejected"), "results": [r.as_json() for r in outcome.results],
        "stations": [{"id": s.thing_id, "change": None if s.change is None else {
            "from": s.change.from_level, "to": s.change.to_level, "reason": s.change.reason}} for s in outcome.stations],
    })


# --- SensorThings read API ----------------------------------------------------------------------------


def _base(request: Request) -> str:
    return public_base_url(request) + f"/api/miniapps/floodmap/{sensorthings.VERSION}"


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


@api.get(f"/{sensorthings.VERSION}", operation_id="sensorthings_root")
def sensorthings_root(request: Request) -> dict[str, Any]:
    """The SensorThings service root: the entity sets and conformance classes."""
    return sensorthings.service_document(_base(request))


# The SensorThings reads answer with the JSON they built (plain dicts of strings and numbers) and skip
# FastAPI's response encoding, which walks every value of a page of up to 1,000 entities once more.
_DOCUMENT = {"response_model": dict[str, Any], "methods": ["GET"]}


async def _answer(request: Request, read: Callable[[Connection], sensorthings.Answer]) -> Response:
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
    return await _answer(request, lambda db: sensorthings.resolve(db, path, params, links))


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
         responses={200: {"content": {"application/json": {}, "text/plain": {}}}})
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


def _created(request: Request, written: sta_write.Written) -> Response:
    """201 with the new entity as a GET would read it, and its address in Location."""
    links = sensorthings.Links(_base(request))
    engine = host_of(request).engine
    with engine.connect() as db:
        body = sensorthings.resolve(db, f"{written.entity}({written.id})", {}, links).json
    return JSONResponse(body, status_code=201, headers={"Location": body["@iot.selfLink"], **written.headers})


async def _write(request: Request, method: str, path: str, body: Any, writer: sta_write.Writer) -> Response:
    """One write (POST, PATCH or DELETE) by ``writer``, its station news announced after it committed."""
    host = host_of(request)
    if method != "POST" and writer.sensor is not None:
        raise DomainError(403, "a sensor's key creates Observations only", field="header.authorization")
    if method == "POST":
        written = await run_in_threadpool(sta_write.create, host.engine, path, body, writer)
    elif method == "DELETE":
        await run_in_threadpool(sta_write.remove, host.engine, path)
        return Response(status_code=200)
    else:
        json_patch = method == "PATCH" and "json-patch" in request.headers.get("content-type", "")
        links = sensorthings.Links(_base(request))

        def read_and_patch() -> sta_write.Written:
            with host.engine.connect() as db:
                current = sensorthings.resolve(db, path, {}, links).json or {}
            return sta_write.patch(host.engine, path, body, json_patch=json_patch, current=current,
                                   replace=method == "PUT")

        written = await run_in_threadpool(read_and_patch)
    if written.stations:
        await announce_updates(Outlets.of_host(host), written.stations)
    if method == "POST":
        return await run_in_threadpool(_created, request, written)
    return Response(status_code=200)


_WRITE_ERRORS = {400: {"description": "Refused: the field names what, and why (the ingest rules for readings)"},
                 401: {"description": "Neither an operator nor a sensor's key"},
                 403: {"description": "Not an operator, or another sensor's stream"},
                 404: {"description": "No such entity"}, 409: {"description": "Already stored, or still in use"}}


MAX_BATCH_REQUESTS = 100


def _batch_target(text: Any, created: dict[str, str]) -> str:
    """A batch request's url relative to the version root, ``$<id>`` replaced by what request <id> created."""
    if not isinstance(text, str) or not text:
        raise DomainError(400, "each request has a url such as Things(1) or Datastreams(1)/Observations",
                          field="body.requests.url")
    path = text.split("?", 1)[0]
    marker = f"/{sensorthings.VERSION}/"
    path = path.split(marker, 1)[1] if marker in path else path.lstrip("/")
    if path.startswith("$"):
        head, _, rest = path[1:].partition("/")
        if head not in created:
            raise DomainError(400, f"${head} names no earlier request that created an entity",
                              field="body.requests.url")
        path = created[head] + (f"/{rest}" if rest else "")
    return path


def _with_created(value: Any, created: dict[str, str]) -> Any:
    """``{"@iot.id": "$1"}`` in a batch body: the id request 1 created."""
    if isinstance(value, dict):
        ident = value.get("@iot.id")
        if isinstance(ident, str) and ident.startswith("$") and ident[1:] in created:
            return {**value, "@iot.id": int(created[ident[1:]].rsplit("(", 1)[1][:-1])}
        return {k: _with_created(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_created(v, created) for v in value]
    return value


@api.post(f"/{sensorthings.VERSION}/$batch", operation_id="sensorthings_batch",
          responses={400: {"description": "Not a JSON batch, or too many requests"}})
async def sensorthings_batch(request: Request) -> JSONResponse:
    """A JSON batch (OData 4.01 ``{"requests": [...]}``) of up to 100 reads and writes, answered in order;
    ``$<id>`` in a url or ``{"@iot.id": "$<id>"}`` refers to what an earlier request created. Each write
    commits on its own (no atomicity groups)."""
    body = loads_json(await request.body())
    requests_ = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests_, list) or not requests_ or len(requests_) > MAX_BATCH_REQUESTS:
        raise DomainError(400, f"a batch is {{\"requests\": [...]}} with 1 to {MAX_BATCH_REQUESTS} requests",
                          field="body.requests")
    if any(isinstance(r, dict) and r.get("atomicityGroup") for r in requests_):
        raise DomainError(400, "atomicity groups are not supported: each write of a batch commits on its own",
                          field="body.requests.atomicityGroup")
    links = sensorthings.Links(_base(request))
    engine = host_of(request).engine
    writer: sta_write.Writer | None = None
    created: dict[str, str] = {}
    answers = []
    for position, item in enumerate(requests_):
        ident = str(item.get("id", position)) if isinstance(item, dict) else str(position)
        try:
            if not isinstance(item, dict):
                raise DomainError(400, "a batch request is an object with id, method and url", field="body.requests")
            method = str(item.get("method", "")).upper()
            raw_url = item.get("url")
            path = _batch_target(raw_url, created)
            query = dict(parse_qsl(raw_url.split("?", 1)[1])) if isinstance(raw_url, str) and "?" in raw_url else {}
            if method == "GET":
                answer = await run_in_threadpool(_read_path, engine, path, query, links)
                answers.append({"id": ident, "status": 200, "body": answer})
                continue
            if method not in ("POST", "PATCH", "DELETE"):
                raise DomainError(405, "a batch request's method is GET, POST, PATCH or DELETE",
                                  field="body.requests.method")
            writer = writer or await _writer(request)
            response = await _write(request, method, path, _with_created(item.get("body"), created), writer)
            entry: dict[str, Any] = {"id": ident, "status": response.status_code}
            if response.status_code == 201:
                entry["body"] = json.loads(response.body)
                entry["headers"] = {"location": response.headers["location"]}
                created[ident] = entry["body"]["@iot.selfLink"].rsplit("/", 1)[1]
            answers.append(entry)
        except DomainError as refused:
            answers.append({"id": ident, "status": refused.status, "body": {
                "type": refused.type, "title": refused.title, "status": refused.status, "detail": refused.detail,
                **({"field": refused.field} if refused.field else {})}})
    return JSONResponse({"responses": answers})


def _read_path(engine: Any, path: str, params: dict[str, str], links: sensorthings.Links) -> Any:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
        answer = sensorthings.resolve(db, path, params, links)
    return answer.json if answer.json is not None else answer.text


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
    answers, stations = await run_in_threadpool(sta_write.create_observations, host.engine, body, writer, links)
    if stations:
        await announce_updates(Outlets.of_host(host), stations)
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
    engine = host_of(request).engine
    layer = LAYER_CACHE.fresh(engine) or await run_in_threadpool(LAYER_CACHE.get, engine)
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

    def check_and_store() -> FloodWarning:
        with Session(host.engine) as db:
            units = list(dict.fromkeys(body.unit_ids))
            known = set(db.exec(select(OrgUnit.id).where(OrgUnit.id.in_(units), OrgUnit.kind.in_(["ward", "commune"]))))
            unknown = [u for u in units if u not in known]
            if unknown:
                raise DomainError(422, f"not a ward or commune: {unknown}", field="body.unit_ids")
            if body.station_id is not None and db.get(FloodThing, body.station_id) is None:
                raise DomainError(422, f"no station {body.station_id}", field="body.station_id")
        return store_manual(host.engine, units=units, level=body.level, title=body.title.model_dump(),
                            body=body.body.model_dump(), issued_by=principal.user_id, thing_id=body.station_id,
                            hours=Outlets.of_host(host).warning_hours())

    warning = await run_in_threadpool(check_and_store)
    await deliver(Outlets.of_host(host), warning)
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

    try:
        report = await run_in_threadpool(store)
    except reports.ReportRefused as exc:
        raise DomainError(exc.status, exc.detail, field=exc.field) from None
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
