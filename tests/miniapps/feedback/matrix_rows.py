"""Authorisation matrix rows for every feedback route (API, pages, Open311), merged by test_matrix.py.

Reports are filed by resident_a in Phú Xuân (handled by Phú Xuân's officials); the department persona
(Justice) and Kim Long's officials may see a public report but not act on it, and do not see a rejected one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from PIL import Image
from sqlmodel import select

from core.identity.principal import Membership, Principal
from core.media import process_photo
from miniapps.feedback import apikeys, handling, service
from miniapps.feedback.models import FeedbackApiKey, FeedbackPhoto
from tests.matrix import (
    ALLOW,
    PUBLIC,
    SIGN_IN,
    Case,
    World,
    everyone,
    only,
    residents,
    signed_in,
)

API = "/api/miniapps/feedback"
PAGES = "/m/feedback"
V2 = "/open311/v2"
HANDLERS = ("commune_px", "operator", "admin")
SEE_REJECTED = ("resident_a", "commune_px", "operator", "admin")


def _made(world: World) -> dict[str, Any]:
    return world.__dict__.setdefault("feedback", {})


def _report(world: World, name: str, *, state_path: tuple[str, ...] = (), photo: bool = False) -> int:
    """The id of report ``name`` of this world, filed by resident_a in Phú Xuân and moved along ``state_path``."""
    made = _made(world)
    if name not in made:
        app = world.api.app
        photos = []
        if photo:
            out = io.BytesIO()
            Image.new("RGB", (64, 48), (9, 9, 9)).save(out, format="JPEG")
            photos = [process_photo(out.getvalue(), max_bytes=1 << 20)]
        with world.db() as db:
            service.load_categories(db)
            report = service.file_report(
                db, store=app.state.media, reporter_id=world.personas["resident_a"].user_id,
                category_id="public-order", description=f"Lấn chiếm vỉa hè ({name})", lat=16.478, lon=107.577,
                photos=photos)
            operator = Principal(user_id=world.personas["operator"].user_id, kind="official",
                                 memberships=(Membership("operator", "hue"),))
            for action in state_path:
                handling.act(db, store=app.state.media, principal=operator, authorizer=app.state.authorizer,
                            report_id=report.id or 0, action=action, reason="Không đúng sự thật",
                            response="Đã xử lý")
        made[name] = report.id
    return made[name]


def _url(prefix: str, name: str, suffix: str = "", **options: Any) -> Callable[[World, str], str]:
    """The URL of one shared report (rows that only read)."""
    return lambda world, who: f"{prefix}/reports/{_report(world, name, **options)}{suffix}"


def _own_url(prefix: str, name: str, suffix: str, **options: Any) -> Callable[[World, str], str]:
    """The URL of a report of each persona's own (rows that change it)."""
    return lambda world, who: f"{prefix}/reports/{_report(world, f'{name} for {who}', **options)}{suffix}"


def _photo_url(world: World, who: str) -> str:
    report_id = _report(world, "with a photo", photo=True)
    with world.db() as db:
        photo = db.exec(select(FeedbackPhoto).where(FeedbackPhoto.report_id == report_id)).first()
    return f"{API}/photos/{photo.public_id}?size=thumb"


def _key_id(world: World, who: str) -> str:
    with world.db() as db:
        row, _key = apikeys.issue(db, name=f"matrix {who}", created_by=None)
    return f"{API}/api-keys/{row.id}"


def _open311_form(world: World, who: str) -> dict[str, str]:
    made = _made(world)
    if "api_key" not in made:
        with world.db() as db:
            service.load_categories(db)
            _row, made["api_key"] = apikeys.issue(db, name="matrix", created_by=None)
    return {"api_key": made["api_key"], "service_code": "trash", "lat": "16.478", "long": "107.577",
            "description": f"Rác ùn ứ ({who})"}


def _token_url(world: World, who: str) -> str:
    from miniapps.feedback.models import FeedbackReport

    report_id = _report(world, "public")
    with world.db() as db:
        token = db.get(FeedbackReport, report_id).token
    return f"{V2}/tokens/{token}.json"


def _categories(world: World) -> None:
    with world.db() as db:
        service.load_categories(db)


def no_reporter_unless_operator(world: World, who: str, creds: Any, response: Any) -> None:
    """The reporter's identity reaches operators and admins only."""
    if response.status_code != 200:
        return
    shown = "reporter" in response.json()
    assert shown == (who in ("operator", "admin")), f"reporter {'shown to' if shown else 'hidden from'} {who}"


def key_revoked(world: World, who: str, creds: Any, response: Any) -> None:
    """An allowed revocation revokes; a refused one leaves the key live."""
    key_id = int(response.request.url.path.rsplit("/", 1)[1])
    with world.db() as db:
        revoked = db.get(FeedbackApiKey, key_id).revoked_at is not None
    assert revoked == (response.status_code == 200), f"{who}: {response.status_code} but revoked={revoked}"


_REPORT_FORM = {"category_id": "public-order", "description": "Lấn chiếm vỉa hè", "lat": "16.478", "lon": "107.577"}
OFFICIALS_HANDLING = ("commune_px", "commune_kl", "department", "operator", "admin")
# Filing is a resident's act; admins hold every permission by the host's design, so they may too.
RESIDENTS_AND_ADMIN = residents(officials=403) | {"admin": ALLOW}

ROWS: dict[tuple[str, str], list[Case]] = {
    # --- JSON API ---
    ("GET", f"{API}/categories"): [Case("categories", f"{API}/categories", PUBLIC, before=_categories)],
    ("GET", f"{API}/locate"): [
        Case("a point in Phú Xuân", f"{API}/locate?lat=16.478&lon=107.577", PUBLIC),
        Case("a point in Hà Nội", f"{API}/locate?lat=21.03&lon=105.85", everyone(422)),
    ],
    ("GET", f"{API}/duplicates"): [
        Case("duplicates nearby", f"{API}/duplicates?category_id=public-order&lat=16.478&lon=107.577", PUBLIC,
             before=_categories),
    ],
    ("POST", f"{API}/reports"): [
        Case("file a report", f"{API}/reports", RESIDENTS_AND_ADMIN, data=_REPORT_FORM, before=_categories),
        Case("file a report outside Hue", f"{API}/reports", residents(422, officials=403) | {"admin": 422},
             data={**_REPORT_FORM, "lat": "21.03", "lon": "105.85"}),
    ],
    ("GET", f"{API}/reports/mine"): [Case("my reports", f"{API}/reports/mine", signed_in())],
    ("GET", f"{API}/reports/{{report_id}}"): [
        Case("a public report", _url(API, "public"), PUBLIC, check=no_reporter_unless_operator),
        Case("a rejected report", _url(API, "rejected", state_path=("reject",)),
             {**everyone(404), **dict.fromkeys(SEE_REJECTED, ALLOW)}),
        Case("no such report", f"{API}/reports/987654", everyone(404)),
    ],
    ("POST", f"{API}/reports/{{report_id}}/follow"): [
        Case("follow resident_a's report", _url(API, "followed", "/follow"),
             residents(officials=403) | {"resident_a": 409, "admin": ALLOW}),
        Case("follow a rejected report", _url(API, "rejected", "/follow", state_path=("reject",)),
             residents(404, officials=403) | {"resident_a": 409, "admin": ALLOW}),
    ],
    ("POST", f"{API}/reports/{{report_id}}/actions"): [
        Case("accept a Phú Xuân report", _own_url(API, "to accept", "/actions"),
             only(*HANDLERS), data={"action": "accept"}),
        Case("accept a rejected report", _own_url(API, "rejected to accept", "/actions", state_path=("reject",)),
             only(*HANDLERS, deny=404, commune_px=409, operator=409, admin=409, resident_a=403),
             data={"action": "accept"}),
        Case("reporter closes the resolved report", _own_url(API, "to close", "/actions", state_path=("accept", "resolve")),
             only("resident_a", "operator", "admin"), data={"action": "close"}),
    ],
    ("POST", f"{API}/reports/{{report_id}}/rating"): [
        Case("rate a resolved report", _own_url(API, "to rate", "/rating", state_path=("accept", "resolve")),
             only("resident_a"), json={"stars": 4, "comment": "Tốt"}),
    ],
    ("GET", f"{API}/queue"): [
        Case("the queue", f"{API}/queue", only(*OFFICIALS_HANDLING)),
        Case("Kim Long's queue", f"{API}/queue?unit_id=kim-long", only("commune_kl", "operator", "admin")),
    ],
    ("GET", f"{API}/dashboard"): [Case("dashboard", f"{API}/dashboard", only("operator", "admin"))],
    ("GET", f"{API}/dashboard.csv"): [Case("dashboard CSV", f"{API}/dashboard.csv", only("operator", "admin"))],
    ("GET", f"{API}/reports.csv"): [Case("every report, streamed", f"{API}/reports.csv", only("operator", "admin"))],
    ("GET", f"{API}/dashboard.xlsx"): [Case("dashboard XLSX", f"{API}/dashboard.xlsx", only("operator", "admin"))],
    ("GET", f"{API}/reports.geojson"): [Case("map layer", f"{API}/reports.geojson", PUBLIC)],
    ("GET", f"{API}/photos/{{photo_id}}"): [
        Case("a public report's photo", _photo_url, PUBLIC),
        Case("no such photo", f"{API}/photos/{'A' * 22}", everyone(404)),
    ],
    ("GET", f"{API}/api-keys"): [Case("Open311 keys", f"{API}/api-keys", only("admin"))],
    ("POST", f"{API}/api-keys"): [Case("issue a key", f"{API}/api-keys", only("admin"), json={"name": "Zalo"})],
    ("DELETE", f"{API}/api-keys/{{key_id}}"): [
        Case("revoke a key", _key_id, only("admin"), check=key_revoked),
        Case("revoke no such key", f"{API}/api-keys/987654", only("admin", admin=404)),
    ],
    # --- pages ---
    ("GET", f"{PAGES}/"): [Case("entry page", f"{PAGES}/", PUBLIC, before=_categories)],
    ("GET", f"{PAGES}/new"): [Case("report form", f"{PAGES}/new", RESIDENTS_AND_ADMIN | {"anonymous": SIGN_IN})],
    ("POST", f"{PAGES}/new"): [
        Case("report form posted", f"{PAGES}/new", RESIDENTS_AND_ADMIN | {"anonymous": SIGN_IN}, data=_REPORT_FORM),
        Case("report form posted outside Hue", f"{PAGES}/new",
             residents(422, officials=403) | {"anonymous": SIGN_IN, "admin": 422}, data={**_REPORT_FORM, "lat": "21.03"}),
    ],
    ("GET", f"{PAGES}/mine"): [Case("my reports page", f"{PAGES}/mine", signed_in(anonymous=SIGN_IN))],
    ("GET", f"{PAGES}/reports/{{report_id}}"): [
        Case("a public report's page", _url(PAGES, "public"), PUBLIC),
        Case("a rejected report's page", _url(PAGES, "rejected", state_path=("reject",)),
             {**everyone(404), **dict.fromkeys(SEE_REJECTED, ALLOW)}),
    ],
    ("POST", f"{PAGES}/reports/{{report_id}}/act"): [
        Case("accept from the page", _own_url(PAGES, "page accept", "/act"),
             only(*HANDLERS, anonymous=SIGN_IN), data={"action": "accept"}),
        Case("accept a rejected report from the page",
             _own_url(PAGES, "page rejected", "/act", state_path=("reject",)),
             only(*HANDLERS, deny=404, anonymous=SIGN_IN, commune_px=409, operator=409, admin=409, resident_a=403),
             data={"action": "accept"}),
    ],
    ("POST", f"{PAGES}/reports/{{report_id}}/rate"): [
        Case("rate from the page", _own_url(PAGES, "page rate", "/rate", state_path=("accept", "resolve")),
             only("resident_a", anonymous=SIGN_IN), data={"stars": "5"}),
    ],
    ("POST", f"{PAGES}/reports/{{report_id}}/follow"): [
        Case("follow from the page", _url(PAGES, "page followed", "/follow"),
             RESIDENTS_AND_ADMIN | {"resident_a": 409, "anonymous": SIGN_IN}),
    ],
    ("GET", f"{PAGES}/queue"): [
        Case("queue page", f"{PAGES}/queue", only(*OFFICIALS_HANDLING, anonymous=SIGN_IN)),
        Case("Kim Long's queue page", f"{PAGES}/queue?unit_id=kim-long",
             only("commune_kl", "operator", "admin", anonymous=SIGN_IN)),
    ],
    ("GET", f"{PAGES}/dashboard"): [Case("dashboard page", f"{PAGES}/dashboard",
                                         only("operator", "admin", anonymous=SIGN_IN))],
    ("GET", f"{PAGES}/map"): [Case("map page", f"{PAGES}/map", PUBLIC)],
    ("GET", f"{PAGES}/admin/categories"): [Case("categories table", f"{PAGES}/admin/categories",
                                                only("admin", anonymous=SIGN_IN), before=_categories)],
    ("POST", f"{PAGES}/admin/categories"): [
        Case("a category saved from the table", f"{PAGES}/admin/categories", only("admin", anonymous=SIGN_IN),
             before=_categories, data={"id": "other", "name_vi": "Vấn đề khác", "name_en": "Something else",
                                       "department_id": "", "deadline_hours": "120", "urgent_deadline_hours": "24",
                                       "position": "70", "active": "on"}),
        Case("a category routed to a ward", f"{PAGES}/admin/categories",
             only("admin", admin=422, anonymous=SIGN_IN), before=_categories,
             data={"id": "other", "name_vi": "Vấn đề khác", "name_en": "Something else", "department_id": "phu-xuan",
                   "deadline_hours": "120", "urgent_deadline_hours": "24", "position": "70", "active": "on"}),
    ],
    # --- Open311: public reads; creation needs an api_key, not a persona ---
    ("GET", f"{V2}/discovery.{{fmt}}"): [Case("discovery", f"{V2}/discovery.xml", PUBLIC)],
    ("GET", f"{V2}/services.{{fmt}}"): [Case("services", f"{V2}/services.json", PUBLIC, before=_categories)],
    ("GET", f"{V2}/services/{{service_code}}.{{fmt}}"): [
        Case("a service", f"{V2}/services/trash.xml", PUBLIC),
        Case("no such service", f"{V2}/services/nope.json", everyone(404)),
    ],
    ("GET", f"{V2}/requests.{{fmt}}"): [Case("requests", f"{V2}/requests.json", PUBLIC)],
    ("POST", f"{V2}/requests.{{fmt}}"): [
        Case("create with a key", f"{V2}/requests.json", PUBLIC, data=_open311_form),
        Case("create without a key", f"{V2}/requests.xml", everyone(403), data={"service_code": "trash"}),
    ],
    ("GET", f"{V2}/requests/{{service_request_id}}.{{fmt}}"): [
        Case("a request", lambda world, who: f"{V2}/requests/{_report(world, 'public')}.json", PUBLIC),
        Case("a rejected request", lambda world, who: f"{V2}/requests/{_report(world, 'rejected', state_path=('reject',))}.xml",
             everyone(404)),
    ],
    ("GET", f"{V2}/tokens/{{token}}.{{fmt}}"): [
        Case("a token", _token_url, PUBLIC),
        Case("no such token", f"{V2}/tokens/nope.json", everyone(404)),
    ],
}
