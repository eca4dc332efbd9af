"""The city's hot paths keep their shape: ingest stores a full batch with a bounded statement and one
station write, concurrent batches never store a reading twice, SensorThings pages read only what they
render."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import Session, func, select

from miniapps.floodmap.ingest import MAX_BATCH, ingest
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodObservation,
    FloodSensor,
    FloodThing,
)
from tests.miniapps.floodmap.conftest import KIM_LONG, push, readings

ST = "/api/miniapps/floodmap/v1.1"


@contextmanager
def statements(engine) -> Iterator[list[tuple[str, object]]]:
    """Every (SQL, parameters) the engine sends while the block runs."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _kim_long(app) -> tuple[FloodSensor, int]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        sensor = db.exec(select(FloodSensor).where(FloodSensor.code == KIM_LONG)).one()
        stream = db.exec(select(FloodDatastream.id).where(FloodDatastream.sensor_id == sensor.id)).one()
    return sensor, stream


def _stored(app, stream: int) -> int:
    with Session(app.state.engine) as db:
        return db.exec(select(func.count()).select_from(FloodObservation)
                       .where(FloodObservation.datastream_id == stream)).one()


def test_a_full_batch_is_stored_by_one_bounded_insert_and_one_station_write(fm_app) -> None:
    sensor, stream = _kim_long(fm_app)
    before = _stored(fm_app, stream)
    # a second apart, after the demo's last reading (half-hourly, on the minute): no duplicates, no jumps
    start = (datetime.now(UTC) - timedelta(minutes=17)).replace(second=15, microsecond=0)
    batch = readings(*[round(0.6 + 0.0002 * (i % 50), 4) for i in range(MAX_BATCH)], start=start,
                     every=timedelta(seconds=1))
    with statements(fm_app.state.engine) as seen:
        outcome = ingest(fm_app.state.engine, sensor=sensor, readings=batch)
    assert outcome.count("accepted") == MAX_BATCH
    assert _stored(fm_app, stream) == before + MAX_BATCH
    inserts = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith(("INSERT", "WITH"))
               and "floodmap_observation" in sql]
    if fm_app.state.engine.dialect.name == "postgresql":
        # four arrays (streams, times, values, features) and the time stored, however many readings the batch holds
        assert len(inserts) == 1 and len(inserts[0][1]) == 5
    station_writes = [sql for sql, _ in seen if sql.lstrip().upper().startswith("UPDATE floodmap_thing".upper())]
    assert len(station_writes) == 1
    with Session(fm_app.state.engine) as db:
        thing = db.get(FloodThing, fm_app.state.test_stations[KIM_LONG])
    assert thing.last_observed_at == datetime.fromisoformat(batch[-1]["time"]).astimezone(UTC)
    assert thing.last_value == batch[-1]["value"] and thing.level == 0


def test_overlapping_batches_racing_store_each_reading_once(fm_app) -> None:
    if fm_app.state.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL locks the station; SQLite serialises writers instead")
    sensor, stream = _kim_long(fm_app)
    before = _stored(fm_app, stream)
    start = (datetime.now(UTC) - timedelta(hours=10)).replace(second=15, microsecond=0)  # off the demo's minutes
    shared = readings(*[0.7] * 300, start=start, every=timedelta(minutes=1))
    batches = [shared[:200], shared[100:]]  # 100 readings in both
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda b: ingest(fm_app.state.engine, sensor=sensor, readings=b), batches))
    assert sum(o.count("accepted") for o in outcomes) == 300
    assert sum(o.count("duplicate") for o in outcomes) == 100
    assert _stored(fm_app, stream) == before + 300


def test_a_page_of_observations_is_one_query_and_an_unknown_datastream_is_404(fm_app, fm_client) -> None:
    _, stream = _kim_long(fm_app)
    assert push(fm_client, KIM_LONG, readings(0.6, 0.61, 0.62)).json()["accepted"] == 3
    with statements(fm_app.state.engine) as seen:
        page = fm_client.get(f"{ST}/Datastreams({stream})/Observations", params={"$top": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert len(body["value"]) == 2 and "skiptoken=" in body["@iot.nextLink"]
    first = body["value"][0]
    assert first["@iot.selfLink"].endswith(f"/v1.1/Observations({first['@iot.id']})")
    assert first["Datastream@iot.navigationLink"] == first["@iot.selfLink"] + "/Datastream"
    assert first["phenomenonTime"].endswith("Z") and isinstance(first["result"], float)
    reads = [sql for sql, _ in seen if "floodmap_" in sql]
    assert len(reads) == 1 and "floodmap_datastream" not in reads[0]
    empty = fm_client.get(f"{ST}/Datastreams({stream})/Observations", params={"$filter": "result gt 99"})
    assert empty.status_code == 200 and empty.json()["value"] == []
    missing = fm_client.get(f"{ST}/Datastreams(999999)/Observations")
    assert missing.status_code == 404 and missing.json()["field"] == "path.entity_id"


def test_sensors_are_listed_without_reading_their_key_hashes(fm_app, fm_client) -> None:
    with statements(fm_app.state.engine) as seen:
        sensors = fm_client.get(f"{ST}/Sensors", params={"$top": 50}).json()["value"]
    assert sensors and all("key_hash" not in s for s in sensors)
    assert not [sql for sql, _ in seen if "key_hash" in sql]


def test_a_page_without_expand_renders_entities_as_an_expanded_page_does(fm_client) -> None:
    plain = fm_client.get(f"{ST}/Things", params={"$top": 20}).json()["value"]
    expanded = fm_client.get(f"{ST}/Things", params={"$top": 20, "$expand": "Locations"}).json()["value"]
    assert len(plain) == len(expanded) > 1
    for bare, full in zip(plain, expanded, strict=True):
        assert full["Locations"] and bare["Locations@iot.navigationLink"] == full["@iot.selfLink"] + "/Locations"
        assert {k: v for k, v in bare.items() if k != "Locations@iot.navigationLink"} == \
            {k: v for k, v in full.items() if k != "Locations"}


def test_a_count_is_remembered_per_datastream_and_filter(fm_app, fm_client) -> None:
    _, stream = _kim_long(fm_app)
    url = f"{ST}/Datastreams({stream})/Observations"
    stored = _stored(fm_app, stream)
    # counts are remembered 30 s per process: a time bound of this run's own keeps earlier tests' counts apart
    since = (datetime.now(UTC) - timedelta(days=100)).isoformat().replace("+00:00", "Z")
    first = fm_client.get(url, params={"$top": 1, "$count": "true", "$filter": f"phenomenonTime gt {since}"}).json()
    assert first["@iot.count"] == stored
    with statements(fm_app.state.engine) as seen:
        again = fm_client.get(first["@iot.nextLink"]).json()
    assert again["@iot.count"] == stored and not [sql for sql, _ in seen if "count(" in sql.lower()]
    high = fm_client.get(url, params={"$count": "true", "$top": 1000,
                                      "$filter": f"result gt 0.6 and phenomenonTime gt {since}"}).json()
    assert high["@iot.count"] == len(high["value"]) < stored
