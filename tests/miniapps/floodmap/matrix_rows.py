"""The flood map's rows of the authorisation matrix (merged by tests/core/identity/test_matrix.py).

Station data, the SensorThings API, the map layer, warnings and CAP are public: a flood warning is for
everyone. Sensors authenticate with their own key, never with a person's token. Manual warnings are
for operators (and admins); the dashboard for officials.
"""

from __future__ import annotations

from typing import Any

from miniapps.floodmap import sensorthings
from miniapps.floodmap.demo import load_demo_stations
from miniapps.floodmap.warnings import store_manual
from plugins.context import HostContext
from tests.matrix import (
    PUBLIC,
    RESIDENTS,
    SIGN_IN,
    Case,
    World,
    everyone,
    only,
    residents,
    signed_in,
)

API = "/api/miniapps/floodmap"
ST = f"{API}/{sensorthings.VERSION}"
OFFICIALS_SEE = ("commune_px", "commune_kl", "department", "operator", "admin")


async def _no_events(event: Any) -> None:
    """The matrix publishes no events while it sets up."""


def _stations(world: World) -> dict[str, int]:
    """The demo stations and one stored warning in this world's database (made once)."""
    made = world.__dict__.setdefault("floodmap", {})
    if not made:
        engine = world.api.app.state.engine
        list(load_demo_stations(HostContext(engine=engine, settings=None, publish_event=_no_events)))
        with world.db() as db:
            warning = store_manual(db, units=["kim-long"], level=2, title={"vi": "Thử", "en": "Test"},
                                   body={"vi": "Thử", "en": "Test"}, issued_by=None)
            db.commit()
        made["warning"] = warning.id
        with world.db() as db:
            from sqlmodel import select

            from miniapps.floodmap.models import (
                FloodDatastream,
                FloodObservation,
                FloodThing,
            )

            made["thing"] = db.exec(select(FloodThing.id).order_by(FloodThing.id)).first()
            made["stream"] = db.exec(select(FloodDatastream.id).order_by(FloodDatastream.id)).first()
            made["observation"] = db.exec(select(FloodObservation.id).order_by(FloodObservation.id)).first()
            from miniapps.floodmap.models import FloodMultiDatastream, FloodObservedProperty

            made["property"] = db.exec(select(FloodObservedProperty.id).where(
                FloodObservedProperty.name == "Water level")).first()
            made["multi"] = db.exec(select(FloodMultiDatastream.id).order_by(FloodMultiDatastream.id)).first()
            made["multi_observation"] = db.exec(select(FloodObservation.id).where(
                FloodObservation.multi_datastream_id.is_not(None)).order_by(FloodObservation.id)).first()
    return made


ENTITY_IDS = {"Things": "thing", "Locations": "thing", "HistoricalLocations": "thing", "Sensors": "thing",
              "ObservedProperties": "thing", "Datastreams": "stream", "Observations": "observation",
              "FeaturesOfInterest": "thing", "MultiDatastreams": "multi"}


def _entity_url(name: str, nav: str = "") -> Any:
    def url(world: World, who: str) -> str:
        made = _stations(world)
        # a reading of a MultiDatastream, for the one navigation only such readings have
        key = "multi_observation" if (name, nav) == ("Observations", "MultiDatastream") else ENTITY_IDS[name]
        return f"{ST}/{name}({made[key]})" + (f"/{nav}" if nav else "")

    return url


def _sensorthings_rows() -> dict[tuple[str, str], list[Case]]:
    rows: dict[tuple[str, str], list[Case]] = {
        ("GET", ST): [Case("SensorThings service root", ST, PUBLIC)],
    }
    for name, entity in sensorthings.ENTITY_SETS.items():
        rows[("GET", f"{ST}/{name}")] = [Case(f"SensorThings {name}", f"{ST}/{name}?$top=2", PUBLIC,
                                              before=lambda world: _stations(world))]
        rows[("GET", f"{ST}/{name}({{entity_id}})")] = [Case(f"one of {name}", _entity_url(name), PUBLIC)]
        for nav in entity.navs:
            rows[("GET", f"{ST}/{name}({{entity_id}})/{nav}")] = [
                Case(f"{name} -> {nav}", _entity_url(name, nav), PUBLIC)]
    rows[("GET", f"{ST}/{{path:path}}")] = [
        Case("SensorThings deeper path", lambda world, who: f"{ST}/Datastreams({_stations(world)['stream']})/Thing/name",
             PUBLIC)]
    return rows


def _warning_url(suffix: str = "", prefix: str = f"{API}/warnings/") -> Any:
    return lambda world, who: f"{prefix}{_stations(world)['warning']}{suffix}"


def jpeg() -> bytes:
    """A small real JPEG, as a phone would send."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 90, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def _grant_location(world: World) -> None:
    for resident in RESIDENTS:
        world.api.put("/api/me/consents/floodmap/location", headers=dict(world.personas[resident]))


def _report_of_resident_a(world: World, who: str) -> str:
    """A report with a photo by resident_a in Phú Xuân (made once)."""
    made = world.__dict__.setdefault("floodmap_report", {})
    if not made:
        from core.media import process_photo
        from miniapps.floodmap.reports import Reporter, file_report

        with world.db() as db:
            report = file_report(db, world.api.app.state.media, reporter=Reporter(world.personas["resident_a"].user_id),
                                 lat=16.4785, lon=107.577, depth_cm=25, note="",
                                 photo=process_photo(jpeg(), max_bytes=10**6))
        made["id"] = report.id
    return f"{API}/reports/{made['id']}/photo"


def only_own_reports(world: World, who: str, creds: Any, response: Any) -> None:
    """A resident lists only their own reports; a Kim Long official none of Phú Xuân's."""
    if response.status_code != 200:
        return
    from miniapps.floodmap.models import FloodReport

    with world.db() as db:
        for item in response.json()["reports"]:
            report = db.get(FloodReport, item["id"])
            if who in RESIDENTS:
                assert report.user_id == creds.user_id, f"{who} sees another resident's report"
            if who == "commune_kl":
                assert report.unit_id == "kim-long", "a Kim Long official sees another unit's report"


MANUAL = {"unit_ids": ["kim-long"], "level": 1, "title": {"vi": "Nước lên", "en": "Water rising"},
          "body": {"vi": "Chú ý", "en": "Take care"}}

def _new_property(world: World, who: str) -> str:
    """A fresh ObservedProperty for ``who`` to delete (so each persona deletes its own)."""
    from miniapps.floodmap.models import FloodObservedProperty

    _stations(world)
    with world.db() as db:
        made = FloodObservedProperty(name=f"matrix {who} {len(world.__dict__)}-{id(db)}", definition="x")
        db.add(made)
        db.commit()
        return f"{ST}/ObservedProperties({made.id})"


def _camera_image(world: World, who: str) -> str:
    """The address of the demo camera's latest image (pushed once, as the camera would)."""
    made = world.__dict__.setdefault("floodmap_camera", {})
    if not made:
        import io

        from PIL import Image

        from miniapps.floodmap import cameras

        _stations(world)
        out = io.BytesIO()
        Image.new("RGB", (8, 8)).save(out, "JPEG")
        app = world.api.app
        thing = cameras.store_image(app.state.engine, app.state.host.media, sensor_code="truong-tien-camera",
                                    jpeg=out.getvalue())
        made["url"] = thing.camera_url
    return made["url"]


WRITERS = only("operator", "admin")

ROWS: dict[tuple[str, str], list[Case]] = {
    ("POST", f"{ST}/{{path:path}}"): [
        Case("SensorThings create", f"{ST}/ObservedProperties", WRITERS, before=lambda world: _stations(world),
             json=lambda world, who: {"name": f"matrix property of {who}", "definition": "https://example.org/x"})],
    ("POST", f"{ST}/$batch"): [
        Case("SensorThings batch of reads", f"{ST}/$batch", PUBLIC, before=lambda world: _stations(world),
             json={"requests": [{"id": "1", "method": "get", "url": "Things?$top=1"}]})],
    ("POST", f"{ST}/CreateObservations"): [
        Case("SensorThings data-array create", f"{ST}/CreateObservations", WRITERS, json=lambda world, who: [{
            "Datastream": {"@iot.id": _stations(world)["stream"]}, "components": ["phenomenonTime", "result"],
            "dataArray": [[f"2026-01-01T00:{len(who):02d}:00Z", 0.5]]}])],
    ("PATCH", f"{ST}/{{path:path}}"): [
        Case("SensorThings update", lambda world, who: f"{ST}/Things({_stations(world)['thing']})", WRITERS,
             json={"description": "checked by the matrix"})],
    ("DELETE", f"{ST}/{{path:path}}"): [Case("SensorThings delete", _new_property, WRITERS)],
    ("PUT", f"{ST}/{{path:path}}"): [
        Case("SensorThings replace", lambda world, who: f"{ST}/ObservedProperties({_stations(world)['property']})",
             WRITERS, json={"name": "Water level", "definition": "http://vocab.nerc.ac.uk/collection/P07/current/CFSN0723/",
                            "description": "replaced by the matrix"})],
    ("POST", f"{API}/ingest/{{sensor_code}}"): [
        Case("a person's token is no sensor key", f"{API}/ingest/kim-long-gauge", everyone(401),
             json={"time": "2026-11-25T00:00:00Z", "value": 0.5}, before=lambda world: _stations(world)),
    ],
    ("POST", f"{API}/ingest/{{sensor_code}}/image"): [
        Case("a person's token is no camera key", f"{API}/ingest/truong-tien-camera/image", everyone(401),
             before=lambda world: _stations(world)),
    ],
    ("GET", f"{API}/stations/{{station_id}}/camera.jpg"): [Case("a camera's latest image", _camera_image, PUBLIC)],
    ("GET", f"{API}/stations.geojson"): [Case("map layer", f"{API}/stations.geojson", PUBLIC)],
    ("GET", f"{API}/warnings"): [Case("warnings list", f"{API}/warnings", PUBLIC)],
    ("GET", f"{API}/warnings/{{warning_id}}"): [Case("one warning", _warning_url(), PUBLIC)],
    ("POST", f"{API}/warnings"): [Case("manual warning", f"{API}/warnings", only("operator", "admin"), json=MANUAL)],
    ("GET", f"{API}/cap/feed.atom"): [Case("CAP index", f"{API}/cap/feed.atom", PUBLIC)],
    ("GET", f"{API}/cap/{{warning_id}}.xml"): [Case("CAP alert", _warning_url(".xml", f"{API}/cap/"), PUBLIC)],
    ("GET", f"{API}/stations/{{station_id}}/history"): [
        Case("a station's hourly history", lambda world, who: (
            f"{API}/stations/{_stations(world)['thing']}/history?start=2025-11-01T00:00:00Z&end=2025-11-02T00:00:00Z"),
            PUBLIC)],
    ("GET", "/m/floodmap/"): [Case("map page", "/m/floodmap/", PUBLIC)],
    ("GET", "/m/floodmap/stations/{station_id}"): [
        Case("station page", lambda world, who: f"/m/floodmap/stations/{_stations(world)['thing']}", PUBLIC)],
    ("GET", "/m/floodmap/warnings/{warning_id}"): [Case("warning page", _warning_url(prefix="/m/floodmap/warnings/"),
                                                        PUBLIC)],
    ("GET", "/m/floodmap/dashboard"): [
        Case("operations dashboard", "/m/floodmap/dashboard", only(*OFFICIALS_SEE, anonymous=SIGN_IN))],
    ("POST", f"{API}/reports"): [
        Case("report the water depth here", f"{API}/reports", residents(), before=_grant_location,
             data={"depth_cm": "20", "lat": "16.4785", "lon": "107.577"}),
    ],
    ("GET", f"{API}/reports"): [Case("reports I may see", f"{API}/reports", signed_in(), check=only_own_reports,
                                     before=lambda world: _report_of_resident_a(world, ""))],
    ("GET", f"{API}/reports/{{report_id}}/photo"): [
        Case("a report's photo", _report_of_resident_a, {
            "anonymous": 401, "resident_a": "allow", "resident_b": 404, "commune_px": "allow", "commune_kl": 404,
            "department": 404, "operator": "allow", "admin": "allow"}),
    ],
    **_sensorthings_rows(),
}
