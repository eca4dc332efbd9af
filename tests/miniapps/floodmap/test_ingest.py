"""Sensors push readings: keys, per-reading checks, duplicates, late readings, rate limits; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, func, select

from miniapps.floodmap.models import (
    FloodLevelChange,
    FloodObservation,
    FloodSensor,
    FloodThing,
)
from tests.miniapps.floodmap.conftest import KIM_LONG, push, readings


def _count(app, code: str = KIM_LONG) -> int:
    with Session(app.state.engine) as db:
        return db.exec(select(func.count()).select_from(FloodObservation)
                       .where(FloodObservation.datastream_id == app.state.test_stations[code])).one()


def test_unknown_sensor_or_wrong_key_is_401_and_stores_nothing(fm_app, fm_client) -> None:
    before = _count(fm_app)
    for code, key in ((KIM_LONG, "wrong"), ("no-such-sensor", "demo-no-such-sensor"), (KIM_LONG, "")):
        answer = push(fm_client, code, readings(0.6), key=key or None) if key else fm_client.post(
            f"/api/miniapps/floodmap/ingest/{code}", json=readings(0.6))
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["field"] == "header.x-sensor-key"
    assert _count(fm_app) == before


def test_keys_are_stored_hashed(fm_app) -> None:
    with Session(fm_app.state.engine) as db:
        hashes = list(db.exec(select(FloodSensor.key_hash)))
    assert hashes and all(len(h) == 64 and not h.startswith("demo-") for h in hashes)


def test_a_malformed_batch_keeps_the_good_readings_and_reports_each_bad_one(fm_app, fm_client) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    good = readings(0.6, 0.62)
    batch = {"readings": [
        good[0], "not an object", {"time": now.isoformat(), "value": -999},
        {"time": (now + timedelta(hours=2)).isoformat(), "value": 0.61},
        {"time": now.isoformat(), "value": 61.0, "unit": "cm"},
        {"time": "yesterday", "value": 0.6}, {"time": now.replace(tzinfo=None).isoformat(), "value": 0.6},
        {"time": now.isoformat(), "value": "high"}, {"time": now.isoformat(), "value": 9.5},
        {"time": now.isoformat(), "value": 40.0}, good[1],
    ]}
    answer = push(fm_client, KIM_LONG, batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "rejected", "rejected", "rejected", "rejected",
                        "rejected", "rejected", "rejected", "accepted"]
    fields = {r["index"]: r.get("field") for r in body["results"]}
    assert fields[1] == "readings[1]" and fields[2] == "readings[2].value" and fields[3] == "readings[3].time"
    assert fields[4] == "readings[4].unit" and fields[5] == "readings[5].time" and fields[6] == "readings[6].time"
    assert fields[7] == "readings[7].value"
    reasons = {r["index"]: r.get("reason", "") for r in body["results"]}
    assert "sentinel" in reasons[2] and "future" in reasons[3] and "wrong unit" in reasons[4]
    assert "impossible jump" in reasons[8] and "range" in reasons[9]
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 9, 0)


def test_duplicates_are_reported_not_stored_again_and_late_readings_are_kept(fm_app, fm_client) -> None:
    first = readings(0.6, 0.61, 0.62)
    assert push(fm_client, KIM_LONG, first).json()["accepted"] == 3
    count = _count(fm_app)
    again = push(fm_client, KIM_LONG, first + first[:1]).json()
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 4
    assert _count(fm_app) == count
    late_time = datetime.fromisoformat(first[0]["time"]) - timedelta(minutes=2)
    late = push(fm_client, KIM_LONG, {"time": late_time.isoformat(), "value": 0.6}).json()
    assert late["results"][0]["status"] == "accepted"  # out of order: stored
    with Session(fm_app.state.engine) as db:
        thing = db.get(FloodThing, fm_app.state.test_stations[KIM_LONG])
    assert thing.last_value == 0.62  # but the newest reading is still the station's current one


def test_readings_crossing_level_two_raise_the_station_once(fm_app, fm_client) -> None:
    rising = readings(0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.1, 1.95, 2.05, 1.97, 2.04, every=timedelta(minutes=2))
    for reading in rising:  # one by one, as a gauge sends them
        assert push(fm_client, KIM_LONG, reading).status_code == 200
    with Session(fm_app.state.engine) as db:
        thing = db.get(FloodThing, fm_app.state.test_stations[KIM_LONG])
        changes = list(db.exec(select(FloodLevelChange).where(FloodLevelChange.thing_id == thing.id)))
    assert thing.level == 2
    assert [(c.from_level, c.to_level) for c in changes] == [(0, 1), (1, 2)]
    warnings = fm_client.get("/api/miniapps/floodmap/warnings").json()["warnings"]
    assert [(w["level"], w["severity"]) for w in warnings] == [(2, "critical"), (1, "warning")]


def test_a_bad_body_is_one_problem_naming_the_field(fm_client) -> None:
    not_json = fm_client.post("/api/miniapps/floodmap/ingest/" + KIM_LONG, content=b"{oops",
                              headers={"X-Sensor-Key": "demo-" + KIM_LONG, "Content-Type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["field"] == "body"
    empty = push(fm_client, KIM_LONG, {"readings": []})
    assert empty.status_code == 422 and empty.json()["field"] == "body.readings"
    huge = push(fm_client, KIM_LONG, [{"time": "x", "value": 1}] * 1001)
    assert huge.status_code == 413 and huge.json()["field"] == "body.readings"


def test_a_flood_of_batches_from_one_sensor_is_rate_limited(fm_app, fm_client) -> None:
    fm_app.state.miniapp_settings.update("floodmap", {"ingest_batches_per_minute": 3}, actor_id=None)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    answers = [push(fm_client, KIM_LONG, readings(0.6, start=start + timedelta(minutes=i))) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert "nothing of this batch was stored" in answers[-1].json()["detail"]
    # another sensor is not held back by this one
    assert push(fm_client, "le-loi-hotspot", readings(2.0)).status_code == 200
