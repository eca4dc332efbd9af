"""Open311 GeoReport v2 under /open311/v2/, in JSON and XML, with Open311's own error format.

Our detailed states map to the standard's ``open``/``closed``; the detail travels in the
``extended_attributes`` extension (``status_detail``, ``handling_unit``, ``urgent``, ``overdue``).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from miniapps.feedback import apikeys, listings, service
from miniapps.feedback.models import (
    FeedbackCategory,
    FeedbackPhoto,
    FeedbackReport,
    ReportState,
)
from miniapps.feedback.routes import cached, run_db
from plugins import CITY_ID, DomainError, OrgUnit, fold, host_of, places, public_base_url

log = logging.getLogger(__name__)
SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-25T00:00:00Z"
MAX_REQUESTS = 1000
MAX_ID = 2**31 - 1  # report ids are PostgreSQL integers; a larger bound parameter is refused with a 500
DEFAULT_WINDOW = timedelta(days=90)
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
# Open311 is open/closed; "closed" means the city finished with it (resolved, closed, rejected, duplicate).
OPEN311_STATUS = {state: ("open" if state in service.OPEN_STATES else "closed") for state in ReportState}


def _report_id(text: str) -> int | None:
    """The report id ``text`` names, or None when it is no id a report can have."""
    # isdigit() alone also passes "²", which int() refuses; ASCII only, and short, before int() runs
    digits = text.lstrip("0") or "0"
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
        return None
    return int(digits)


def _format_of(request: Request) -> str:
    return "xml" if request.url.path.endswith(".xml") else "json"


def error_response(fmt: str, code: int, description: str) -> Response:
    """Open311's error list in JSON or XML, with ``code`` as the HTTP status."""
    if fmt == "xml":
        root = ET.Element("errors")
        error = ET.SubElement(root, "error")
        ET.SubElement(error, "code").text = str(code)
        ET.SubElement(error, "description").text = description
        return Response(_xml_bytes(root), status_code=code, media_type=FORMATS["xml"])
    return JSONResponse([{"code": code, "description": description}], status_code=code, media_type=FORMATS["json"])


OPEN311_ERRORS_SCHEMA = {
    "type": "array", "description": "Open311 GeoReport v2 errors (not RFC 9457): the code is the HTTP status.",
    "items": {"type": "object", "required": ["code", "description"],
              "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
}
OPEN311_ERROR_XML = {"type": "string", "description": "<errors><error><code>…</code><description>…</description>"
                                                     "</error></errors>"}


def _open311_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {FORMATS["json"]: {"schema": OPEN311_ERRORS_SCHEMA},
                                                     FORMATS["xml"]: {"schema": OPEN311_ERROR_XML}}}


class Open311Route(APIRoute):
    """Answers every failure of an Open311 route (validation, auth, ours) in Open311's error format."""

    # The host's OpenAPI documents these instead of problem details (core.problems); 200 in both formats.
    openapi_errors = {
        200: {"description": "The answer, in the format the path's extension names",
              "content": {FORMATS["json"]: {}, FORMATS["xml"]: {"schema": {"type": "string"}}}},
        400: _open311_error("Bad input (Open311 error list)"),
        403: _open311_error("api_key missing, unknown or revoked (Open311 error list)"),
        404: _open311_error("Unknown format, request, token or service_code (Open311 error list)"),
    }

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, wrapped so its failures answer in Open311's format."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            fmt = _format_of(request)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"loc": ("request",), "msg": "invalid request"}
                name = str(first["loc"][-1]) if first.get("loc") else "request"
                return error_response(fmt, 400, f"{name}: {first['msg']}")
            except DomainError as exc:
                return error_response(fmt, exc.status, exc.detail)
            except StarletteHTTPException as exc:
                return error_response(fmt, exc.status_code, str(exc.detail))

        return answer


router = APIRouter(route_class=Open311Route)


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DomainError(404, f"unknown format {fmt!r}: use .json or .xml")
    return fmt


def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8")


def _xml_value(parent: ET.Element, key: str, value: Any, item_name: str | None = None) -> None:
    node = ET.SubElement(parent, key)
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _xml_value(node, sub_key, sub_value)
    elif isinstance(value, list):
        for item in value:
            _xml_value(node, item_name or key.rstrip("s"), item)
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    elif value is not None:
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        # XML 1.0 cannot carry most control characters; a report's text may hold them, so they go.
        node.text = _NOT_XML.sub("", text)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render(fmt: str, body: Any, *, root: str, item: str, status_code: int = 200,
           lists: dict[str, str] | None = None) -> Response:
    """``body`` (a list of objects, or one object) as JSON, or as XML under ``root`` with ``item`` elements."""
    if fmt == "json":
        return JSONResponse(_jsonable(body), status_code=status_code, media_type=FORMATS["json"])
    element = ET.Element(root)
    for entry in body if isinstance(body, list) else [body]:
        target = ET.SubElement(element, item) if isinstance(body, list) else element
        for key, value in entry.items():
            _xml_value(target, key, value, (lists or {}).get(key))
    return Response(_xml_bytes(element), status_code=status_code, media_type=FORMATS["xml"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _base(request: Request) -> str:
    return public_base_url(request)


# --- discovery and services ------------------------------------------------------------------------------


@router.get("/v2/discovery.{fmt}", operation_id="open311_discovery")
async def discovery(request: Request, fmt: str) -> Response:
    """Where the GeoReport v2 endpoint is and what it speaks."""
    fmt = _fmt(fmt)
    body = {"changeset": CHANGESET, "contact": "Trung tâm Giám sát điều hành đô thị thông minh Huế (IOC)",
            "key_service": f"{_base(request)}/m/feedback/",
            "endpoints": [{"specification": SPEC, "url": f"{_base(request)}/open311/v2", "changeset": CHANGESET,
                           "type": "production", "formats": ["text/xml", "application/json"]}]}
    return render(fmt, body, root="discovery", item="discovery", lists={"endpoints": "endpoint", "formats": "format"})


def _service(category: FeedbackCategory, locale: str) -> dict[str, Any]:
    return {"service_code": category.id, "service_name": category.name_en if locale == "en" else category.name_vi,
            "description": f"{category.name_vi} / {category.name_en}", "metadata": True, "type": "realtime",
            "keywords": category.id.replace("-", ","),
            "group": "department" if category.department_id else "local"}


def _locale(request: Request) -> str:
    return "en" if request.query_params.get("lang") == "en" else "vi"  # our extension: names in English


@router.get("/v2/services.{fmt}", operation_id="open311_services")
async def services(request: Request, fmt: str) -> Response:
    """The service list: one service per report category (``lang=en`` for English names)."""
    fmt = _fmt(fmt)
    rows = await run_db(request, service.list_categories)
    return render(fmt, [_service(c, _locale(request)) for c in rows], root="services", item="service")


URGENT_ATTRIBUTE = {
    "variable": True, "code": "urgent", "datatype": "singlevaluelist", "required": False,
    "datatype_description": "true for a danger to people (urgent handling, 24 hours or less)", "order": 1,
    "description": "Khẩn cấp? / Urgent?",
    "values": [{"key": "false", "name": "Không / No"}, {"key": "true", "name": "Có / Yes"}],
}


@router.get("/v2/services/{service_code}.{fmt}", operation_id="open311_service_definition")
async def service_definition(request: Request, service_code: str, fmt: str) -> Response:
    """A service's definition: its extra attribute (urgent)."""
    fmt = _fmt(fmt)
    category = await run_db(request, lambda s: s.get(FeedbackCategory, service_code))
    if category is None or not category.active:
        raise DomainError(404, f"unknown service_code {service_code!r}")
    body = {"service_code": category.id, "attributes": [URGENT_ATTRIBUTE]}
    return render(fmt, body, root="service_definition", item="service_definition",
                  lists={"attributes": "attribute", "values": "value"})


# --- requests -------------------------------------------------------------------------------------------


def request_view(report: FeedbackReport, base: str, names: dict[str, FeedbackCategory], units: dict[str, OrgUnit],
                 first_photos: dict[int, str], now: datetime) -> dict[str, Any]:
    """A report as an Open311 service request (no reporter identity, ever)."""
    category = names.get(report.category_id)
    unit = units.get(report.handling_unit_id)
    photo_id = first_photos.get(report.id or 0)
    notes = report.response if report.state in (ReportState.resolved, ReportState.closed) else None
    if report.state is ReportState.duplicate:
        notes = f"duplicate of {report.duplicate_of_id}"
    return {
        "service_request_id": str(report.id), "status": OPEN311_STATUS[report.state], "status_notes": notes,
        "service_name": category.name_vi if category else report.category_id, "service_code": report.category_id,
        "description": report.description or None, "agency_responsible": unit.name_vi if unit else report.handling_unit_id,
        "service_notice": None, "requested_datetime": service.aware(report.created_at),
        "updated_datetime": service.aware(report.updated_at), "expected_datetime": service.aware(report.due_at),
        "address": report.address, "address_id": None, "zipcode": None,
        # an unplaced request has no point of its own yet (it is held at the city's centre)
        "lat": None if report.needs_placing else report.lat, "long": None if report.needs_placing else report.lon,
        # A client's own media_url first (kept as posted), else our first photo's address
        "media_url": report.media_url or (f"{base}/api/miniapps/feedback/photos/{photo_id}" if photo_id else None),
        "extended_attributes": {"status_detail": report.state.value, "handling_unit": report.handling_unit_id,
                                "unit": None if report.needs_placing else report.unit_id, "urgent": report.urgent,
                                "needs_placing": report.needs_placing,
                                "overdue": listings.is_overdue(report, now),
                                "duplicate_of": str(report.duplicate_of_id) if report.duplicate_of_id else None},
    }


def _views(session: Session, reports: list[FeedbackReport], base: str) -> list[dict[str, Any]]:
    names = {c.id: c for c in session.exec(select(FeedbackCategory))}
    # Every unit at once (about 50 rows) rather than a list of ids; the first photo of every listed report in
    # one grouped query (at most MAX_REQUESTS ids) rather than one query per report.
    units = {u.id: u for u in session.exec(select(OrgUnit))}
    ids = [r.id for r in reports]
    first_ids = select(func.min(FeedbackPhoto.id)).where(col(FeedbackPhoto.report_id).in_(ids)).group_by(
        FeedbackPhoto.report_id)
    first_photos = dict(session.exec(select(FeedbackPhoto.report_id, FeedbackPhoto.public_id).where(
        col(FeedbackPhoto.id).in_(first_ids))).all()) if ids else {}
    now = service.utcnow()
    return [request_view(r, base, names, units, first_photos, now) for r in reports]


def _when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DomainError(400, f"{name} must be a W3C date-time such as 2026-11-25T08:00:00+07:00") from None
    return service.aware(moment)


@router.get("/v2/requests.{fmt}", operation_id="open311_list_requests")
async def list_requests(request: Request, fmt: str) -> Response:
    """Requests by id list, or by service_code, status and a date window (default: the last 90 days)."""
    fmt = _fmt(fmt)
    params = request.query_params
    ids_text = params.get("service_request_id")
    start, end = _when(params.get("start_date"), "start_date"), _when(params.get("end_date"), "end_date")
    statuses = [s.strip() for s in (params.get("status") or "").split(",") if s.strip()]
    if any(s not in ("open", "closed") for s in statuses):
        raise DomainError(400, "status is open, closed or open,closed")
    codes = [c.strip() for c in (params.get("service_code") or "").split(",") if c.strip()]
    if ids_text:
        parsed = [_report_id(part.strip()) for part in ids_text.split(",") if part.strip()]
        ids = [report_id for report_id in parsed if report_id is not None]
        if len(ids) != len(parsed):
            raise DomainError(400, f"service_request_id is a comma-separated list of ids (at most {MAX_ID})")

    def listing(session: Session) -> list[dict[str, Any]]:
        where: list[Any] = [col(FeedbackReport.state).not_in(list(service.HIDDEN_STATES))]
        if ids_text:
            where.append(col(FeedbackReport.id).in_(ids[:MAX_REQUESTS]))  # the spec: other filters are ignored
        else:
            now = service.utcnow()
            where.append(FeedbackReport.created_at >= (start or (end or now) - DEFAULT_WINDOW))
            if end:
                where.append(FeedbackReport.created_at <= end)
            if codes:
                where.append(col(FeedbackReport.category_id).in_(codes))
            if statuses and len(set(statuses)) == 1:
                states = [s for s, o in OPEN311_STATUS.items() if o == statuses[0]]
                where.append(col(FeedbackReport.state).in_(states))
        rows = list(session.exec(select(FeedbackReport).where(*where).order_by(col(FeedbackReport.id).desc())
                                 .limit(MAX_REQUESTS)))
        return _views(session, rows, _base(request))

    def rendered(session: Session) -> bytes:
        return bytes(render(fmt, listing(session), root="service_requests", item="request").body)

    # Rendered once per data version and query (a default window moves with the clock: the cache's minute);
    # ids_text is parsed already, so the key is what the query means, not how it was spelled.
    key = ("open311", fmt, _base(request), tuple(ids[:MAX_REQUESTS]) if ids_text else None, start, end,
           tuple(codes), tuple(sorted(set(statuses))))
    body = await cached(request, key, rendered)
    return Response(body, media_type=FORMATS[fmt])


@router.get("/v2/requests/{service_request_id}.{fmt}", operation_id="open311_get_request")
async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    """One request, as a list of one (as the specification says)."""
    fmt = _fmt(fmt)
    report_id = _report_id(service_request_id)
    if report_id is None:  # an id no report can have names no report
        raise DomainError(404, f"no service request {service_request_id!r}")

    def work(session: Session) -> list[dict[str, Any]]:
        report = session.get(FeedbackReport, report_id)
        if report is None or report.state in service.HIDDEN_STATES:
            raise DomainError(404, f"no service request {service_request_id!r}")
        return _views(session, [report], _base(request))

    return render(fmt, await run_db(request, work), root="service_requests", item="request")


@router.get("/v2/tokens/{token}.{fmt}", operation_id="open311_token")
async def token_to_id(request: Request, token: str, fmt: str) -> Response:
    """The service_request_id a token (from creation) stands for."""
    fmt = _fmt(fmt)
    report = await run_db(request, lambda s: s.exec(select(FeedbackReport).where(FeedbackReport.token == token)).first())
    if report is None:
        raise DomainError(404, f"no request with token {token!r}")
    return render(fmt, [{"service_request_id": str(report.id), "token": token}], root="service_requests",
                  item="request")


def _float(form: Any, name: str) -> float:
    try:
        return float(form[name])
    except KeyError:
        raise DomainError(400, f"{name} is required with {'long' if name == 'lat' else 'lat'}") from None
    except ValueError:
        raise DomainError(400, f"{name} must be a number") from None


MAX_MEDIA_URL = 500
PROVINCE_KEY = "thanhphohue"  # vietnamadminunits' key for Huế


def unit_key(name_vi: str) -> str:
    """The key vietnamadminunits gives a unit ('Phường Kim Long' -> 'phuongkimlong')."""
    return "".join(ch for ch in fold(name_vi) if ch.isalnum())


def _media_url(form: Any) -> str | None:
    """The posted media_url, kept as given when it is an http(s) address of at most 500 characters."""
    url = str(form.get("media_url") or "").strip()
    if not url:
        return None
    if len(url) > MAX_MEDIA_URL or not re.fullmatch(r"https?://[^\s<>\"]+", url):
        raise DomainError(400, f"media_url must be an http(s) URL of at most {MAX_MEDIA_URL} characters")
    return url


def _words(text: str) -> str:
    """``text`` folded (no diacritics, lower case) to single-spaced words, for whole-word matching."""
    return " ".join(re.findall(r"\w+", fold(text)))


def _parsed_ward(address: str) -> tuple[str, str] | None:
    """(province key, 2025 ward key) a Vietnamese address names, old (pre-2025) or new unit names alike.

    The package's parser matches loosely ("Phú Hội" can come back as "Xã Phú Hồ"), so a ward counts only
    when its name appears as whole words in the address; a pre-2025 ward is converted to the unit it joined.
    """
    from vietnamadminunits import ParseMode, convert_address, parse_address  # its data loads on first use

    said = f" {_words(address)} "
    for mode in (ParseMode.FROM_2025, ParseMode.LEGACY):
        try:
            parsed = parse_address(address, mode=mode)
        except Exception:  # the parser raises plain exceptions on text it cannot read; that is "not placed"
            continue
        if not parsed.ward or f" {_words(parsed.short_ward or parsed.ward)} " not in said:
            continue
        if mode is ParseMode.FROM_2025:
            return str(parsed.province_key), str(parsed.ward_key)
        try:
            converted = convert_address(address)
        except Exception:
            continue
        return PROVINCE_KEY if "hue" in _words(converted.province or "") else "", unit_key(converted.ward or "")
    return None


def _elsewhere(address: str) -> bool:
    """Whether the address names another province (its name as whole words), with no ward we know."""
    from vietnamadminunits import ParseMode, parse_address

    try:
        parsed = parse_address(address, mode=ParseMode.FROM_2025)
    except Exception:  # text the parser cannot read names no province
        return False
    name = _words(parsed.short_province or "")
    return bool(name) and parsed.province_key != PROVINCE_KEY and f" {name} " in f" {_words(address)} "


def _unit_by_address(session: Session, address_id: str, address: str) -> OrgUnit | None:
    """The commune or ward an address_id (our unit id or its official code) or address_string names; None
    when none matches (an operator places the request). An address in another province is refused."""
    units = places.local_units(session)
    if address_id:
        found = next((u for u in units if address_id in (u.id, u.code)), None)
        if found is not None or not address:
            return found if found is None or found.lat is not None else None
    parsed = _parsed_ward(address)
    if parsed is None:
        if _elsewhere(address):
            raise DomainError(400, "address_string: the place is outside Hue City")
        return None
    province, ward = parsed
    if province != PROVINCE_KEY:
        raise DomainError(400, "address_string: the place is outside Hue City")
    found = next((u for u in units if unit_key(u.name_vi) == ward), None)
    return found if found is not None and found.lat is not None and found.lon is not None else None


@router.post("/v2/requests.{fmt}", operation_id="open311_create_request")
async def create_request(request: Request, fmt: str) -> Response:
    """Create a request (form-encoded, api_key required), located by lat/long, address_string or address_id.

    Answers with its service_request_id: the request exists at once, so no token is needed (the spec gives
    a token only when the id is not yet known). An address that matches no commune or ward is stored all
    the same, held by the city's operators until one places it (``needs_placing``); the service_notice
    says so.
    """
    fmt = _fmt(fmt)
    form = await request.form()
    key_row = await run_db(request, lambda s: apikeys.verify(s, str(form.get("api_key") or "")))
    if key_row is None:
        raise DomainError(403, "api_key is missing, unknown or revoked")
    code = str(form.get("service_code") or "")
    if not code:
        raise DomainError(400, "service_code is required")
    address = str(form.get("address_string") or "").strip()
    address_id = str(form.get("address_id") or "").strip()
    located = bool(form.get("lat") or form.get("long"))  # an empty field is a field not sent
    if not located and not address and not address_id:
        raise DomainError(400, "a location is required: lat and long, address_string or address_id")
    lat, lon = (_float(form, "lat"), _float(form, "long")) if located else (0.0, 0.0)
    description = str(form.get("description") or "").strip()  # optional in GeoReport v2
    media_url = _media_url(form)
    urgent = str(form.get("attribute[urgent]") or "false").lower() == "true"
    name = " ".join(str(form.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    contact = "; ".join(part for part in (name, str(form.get("email") or "").strip(),
                                          str(form.get("phone") or "").strip()) if part) or None
    store = host_of(request).media

    def work(session: Session) -> FeedbackReport:
        if session.get(FeedbackCategory, code) is None:
            raise DomainError(404, f"unknown service_code {code!r}")
        unit_id, point, unplaced = None, (lat, lon), False
        if not located:  # placed by its unit; the point is the unit's centre
            unit = _unit_by_address(session, address_id, address)
            if unit is None:  # kept with the words it came with, at the city's centre until placed
                unit, unplaced = session.get(OrgUnit, CITY_ID), True
            unit_id, point = (None if unplaced else unit.id), (unit.lat, unit.lon)  # type: ignore[union-attr]
        said = address or (f"address_id {address_id}" if unplaced else "")
        return service.file_report(session, store=store, reporter_id=None, category_id=code,
                                   description=description[:4000], lat=point[0], lon=point[1], unit_id=unit_id,
                                   address=said or None, urgent=urgent, media_url=media_url, unplaced=unplaced,
                                   description_required=False, source=f"open311:{key_row.id}",
                                   contact=contact[:300] if contact else None, notifier=host_of(request).notifier)

    try:
        report = await run_db(request, work)
    except service.FeedbackError as exc:
        names = {"category_id": "service_code", "lat": "lat", "description": "description"}
        field = names.get(exc.field or "", exc.field)
        raise DomainError(404 if field == "service_code" else 400, f"{field}: {exc.detail}") from None
    notice = f"Hạn xử lý / due by {service.aware(report.due_at).isoformat()}"  # type: ignore[union-attr]
    if report.needs_placing:
        notice = ("Địa chỉ chưa khớp phường, xã nào: cán bộ sẽ xác định vị trí / the address matched no ward or "
                  "commune: an operator will place it. " + notice)
    body = [{"service_request_id": str(report.id), "service_notice": notice, "account_id": None}]
    return render(fmt, body, root="service_requests", item="request")
