"""Flood map: river gauges, street hotspots, rain gauges and cameras; sensor ingest, alert levels and
warnings to residents by area. Only the hooks live here; the work is in the modules beside it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from miniapps.floodmap import demo, jobs, models, pages, routes, search, sta_mqtt
from miniapps.floodmap.settings import FloodmapSettings, read_deployment
from plugins import MiniAppsLoaded, hookimpl, read_manifest

HERE = Path(__file__).parent


@hookimpl
def superapp_manifest():
    """The manifest kept in manifest.json."""
    return read_manifest(__file__)


@hookimpl
def superapp_register_models(register):
    """The SensorThings tables, alert history, warnings and reports, with their migration branch."""
    register(*models.ALL_MODELS, migrations=HERE / "migrations")


@hookimpl
def superapp_register_permissions(register):
    """Operators issue warnings by hand; officials watch the dashboard and read residents' reports."""
    register("warnings.issue", description={"vi": "Phát cảnh báo ngập cho phường, xã",
                                            "en": "Issue flood warnings to wards and communes"}, roles=["operator"])
    register("dashboard.view", description={"vi": "Xem bảng điều hành ngập lụt", "en": "See the flood operations dashboard"},
             roles=["commune_official", "department_official", "operator"])
    register("sensorthings.write", description={"vi": "Tạo, sửa, xóa trạm và số đo qua SensorThings",
                                                "en": "Create, change and delete stations and readings through SensorThings"},
             roles=["operator"])
    register("reports.read", description={"vi": "Xem báo cáo ngập của người dân trong đơn vị",
                                          "en": "Read residents' flood reports in the unit"},
             roles=["commune_official", "operator"])


@hookimpl
def superapp_register_settings(register):
    """Admins tune the ingest rate limit, how long warnings last and how long readings are kept."""
    register(FloodmapSettings)


@hookimpl
def superapp_register_routes(register):
    """The JSON API (ingest, SensorThings, GeoJSON, warnings, CAP), the pages, templates and static files."""
    register(api=routes.api, pages=pages.pages, templates=HERE / "templates" / "floodmap", static=HERE / "static")


@hookimpl
def superapp_register_event_subscribers(register):
    """When the host starts, connect to the SensorThings MQTT broker if one is configured; a bad
    SUPERAPP_FLOODMAP_MQTT_URL stops start-up here, in one line naming it."""
    read_deployment()
    register(MiniAppsLoaded, sta_mqtt.start_on_load)


@hookimpl
def superapp_register_scheduled_jobs(register):
    """Stations whose sensor fell silent turn stale, checked every minute; warnings (and closings) that a
    committed level change still owes are issued every minute; old readings are folded into hourly summaries
    every 10 minutes (a run stops after a time budget, the next goes on)."""
    register("mark_stale", jobs.mark_silent_stations_stale, every=timedelta(minutes=1))
    register("settle_owed_warnings", jobs.settle_owed_warnings, every=timedelta(minutes=1))
    register("fold_old_readings", jobs.fold_old_readings, every=timedelta(minutes=10))


@hookimpl
def superapp_register_search_providers(register):
    """Stations and the places they stand at."""
    register(search.search_stations, label={"vi": "Trạm đo ngập", "en": "Flood stations"})


@hookimpl
def superapp_register_channels(register):
    """miniapp:floodmap:map, live station levels and warnings: public data, so anyone signed in."""
    register("map", lambda principal, name: name == "map")


@hookimpl
def superapp_register_demo_data(register):
    """Kim Long gauge and the synthetic demo stations."""
    register(demo.load_demo_stations)
