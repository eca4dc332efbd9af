"""The flood map at city size: keyset pages of a datastream's readings, calm batches judged at once,
retention folding old readings into hourly summaries in bounded batches, and the city loader."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bench.city import floodmap as city_floodmap
from bench.city.base import City, CityError
from core.miniapp_settings import SettingsRejected
from miniapps.floodmap import retention
from miniapps.floodmap.alerts import AlertRules, AlertState, step
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodObservation,
    FloodObservationHourly,
    FloodThing,
)
from miniapps.floodmap.retention import apply_retention
from miniapps.floodmap.service import MEASURES
from tests.miniapps.floodmap.conftest import KIM_LONG

ST = "/api/miniapps/floodmap/v1.1"


def _kim_long_stream(app) -> int:
    with Session(app.state.engine) as db:
        return db.scalar(select(FloodDatastream.id).where(
            FloodDatastream.thing_id == app.state.test_stations[KIM_LONG]))


def _store(app, stream_id: int, rows: list[tuple[datetime, float]]) -> None:
    with Session(app.state.engine) as db:
        db.execute(insert(FloodObservation), [{"datastream_id": stream_id, "phenomenon_time": at, "result_time": at,
                                                "result": value} for at, value in rows])
        db.commit()


# --- Calm readings are judged at once -------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_a_reading_inside_the_quiet_band_never_moves_the_level(level: int) -> None:
    rng = random.Random(level)
    rules = AlertRules((1.0, 2.0, 3.5), hysteresis=0.1, hold_down=timedelta(minutes=30), rise_per_hour=0.3,
                       rise_near=0.3)
    low, high = rules.quiet_band(level)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for _ in range(500):
        value = rng.uniform(max(low, -2.0), min(high, 12.0) - 1e-9)
        fastest = (at - timedelta(minutes=20), value - 5.0)  # a steep rise: the rate rule would fire if it could
        state, change = step(rules, AlertState(level=level, last_at=at - timedelta(minutes=10)), value=value, at=at,
                             previous=fastest)
        assert change is None and state.level == level and state.lowering_since is None, value
    if high < 12.0:  # the band ends where something can happen
        _, change = step(rules, AlertState(level=level, last_at=at - timedelta(minutes=10)), value=high, at=at,
                         previous=(at - timedelta(minutes=20), high - 5.0))
        assert change is not None and change.to_level > level


def test_the_quiet_band_is_none_when_the_level_has_no_threshold() -> None:
    assert AlertRules((None, 30.0, 50.0)).quiet_band(1) is None
    assert AlertRules((10.0, 30.0, 50.0)).quiet_band(0) == (float("-inf"), 10.0)


# --- Keyset pages -----------------------------------------------------------------------------------------


def _follow(client, url: str, params: dict[str, str]) -> tuple[list[str], list[str]]:
    """Every page's times and every nextLink, following nextLink to the end."""
    times, links = [], []
    page = client.get(url, params=params).json()
    while True:
        times.extend(o["phenomenonTime"] for o in page["value"])
        if "@iot.nextLink" not in page:
            return times, links
        links.append(page["@iot.nextLink"])
        page = client.get(page["@iot.nextLink"]).json()


def test_a_datastream_is_paged_by_key_in_time_order_without_gaps_or_repeats(fm_app, fm_client) -> None:
    stream_id = _kim_long_stream(fm_app)
    # late readings get higher ids than newer ones: time order and id order differ
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    _store(fm_app, stream_id, [(old + timedelta(minutes=10 * i), 0.5) for i in range(60)])
    with Session(fm_app.state.engine) as db:
        expected = [t.astimezone(UTC) for t in db.scalars(select(FloodObservation.phenomenon_time).where(
            FloodObservation.datastream_id == stream_id).order_by(FloodObservation.phenomenon_time))]
    url = f"{ST}/Datastreams({stream_id})/Observations"
    forward, links = _follow(fm_client, url, {"$top": "37", "$count": "true"})
    assert [datetime.fromisoformat(t) for t in forward] == expected
    assert links and all("%24skiptoken=" in link and "%24skip=" not in link for link in links)
    assert all(parse_qs(urlsplit(link).query)["$count"] == ["true"] for link in links)
    backward, _ = _follow(fm_client, url, {"$top": "50", "$orderby": "phenomenonTime desc", "$skip": "3"})
    assert [datetime.fromisoformat(t) for t in backward] == expected[::-1][3:]
    by_value, _ = _follow(fm_client, url, {"$top": "40", "$orderby": "result desc"})
    assert sorted(by_value) == sorted(t.isoformat().replace("+00:00", "Z") for t in expected)


def test_a_forged_token_or_a_deep_skip_is_400_naming_the_option(fm_app, fm_client) -> None:
    url = f"{ST}/Datastreams({_kim_long_stream(fm_app)})/Observations"
    for token in ("not-base64!", "eyJhIjoxfQ", "WyJ4Il0", "WzEsMiwzXQ"):  # junk, an object, a bad time, wrong length
        answer = fm_client.get(url, params={"$skiptoken": token})
        assert answer.status_code == 400, (token, answer.text)
        assert answer.json()["field"] == "query.$skiptoken"
    answer = fm_client.get(url, params={"$skip": "10001"})
    assert answer.status_code == 400 and answer.json()["field"] == "query.$skip"
    assert "nextLink" in answer.json()["detail"]


# --- Retention ----------------------------------------------------------------------------------------------


def test_retention_folds_old_readings_into_hours_in_bounded_batches(fm_app, monkeypatch) -> None:
    monkeypatch.setattr(retention, "BATCH_HOURS", 24)
    stream_id = _kim_long_stream(fm_app)
    now = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    first = datetime(2026, 8, 20, tzinfo=UTC)  # 104 days before now: three days of readings to fold
    old = [(first + timedelta(minutes=10 * i), round(0.5 + 0.01 * (i % 6), 3)) for i in range(3 * 144)]
    _store(fm_app, stream_id, old)
    with Session(fm_app.state.engine) as db:
        recent = db.scalar(select(FloodObservation.id).where(FloodObservation.phenomenon_time > first + timedelta(days=5)
                                                             ).limit(1))
    outcome = apply_retention(fm_app.state.engine, raw_days=90, hourly_days=0, now=now)
    assert outcome.finished and outcome.folded == len(old) and outcome.hours_written == 72
    assert len(outcome.batches) == 3 and all(end - start <= timedelta(hours=24) for _, start, end in outcome.batches)
    with Session(fm_app.state.engine) as db:
        hours = list(db.scalars(select(FloodObservationHourly).order_by(FloodObservationHourly.hour)))
        assert db.scalar(select(FloodObservation.id).where(FloodObservation.phenomenon_time < now - timedelta(days=90))
                         ) is None
        assert db.get(FloodObservation, recent) is not None  # recent readings stay as they are
    assert [h.hour.astimezone(UTC) for h in hours] == [first + timedelta(hours=i) for i in range(72)]
    assert all(h.count == 6 and h.minimum == 0.5 and h.maximum == 0.55 for h in hours)
    assert hours[0].mean == pytest.approx(0.525)
    # a reading arriving late for a summarised hour joins that hour's figures
    _store(fm_app, stream_id, [(first + timedelta(minutes=5), 0.9)])
    apply_retention(fm_app.state.engine, raw_days=90, hourly_days=0, now=now)
    with Session(fm_app.state.engine) as db:
        merged = db.get(FloodObservationHourly, (stream_id, first))
    assert (merged.count, merged.maximum) == (7, 0.9) and merged.mean == pytest.approx((0.525 * 6 + 0.9) / 7)
    # hourly summaries older than their own limit go too
    outcome = apply_retention(fm_app.state.engine, raw_days=90, hourly_days=103, now=now)
    assert outcome.hours_deleted == 24 + 4  # 20 August and the first four hours of the 21st


def test_a_run_out_of_time_stops_between_batches_and_the_next_goes_on(fm_app) -> None:
    stream_id = _kim_long_stream(fm_app)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    first = datetime(2026, 7, 1, tzinfo=UTC)
    _store(fm_app, stream_id, [(first + timedelta(minutes=10 * i), 0.4) for i in range(20 * 144)])
    stopped = apply_retention(fm_app.state.engine, raw_days=90, hourly_days=0, now=now, budget_seconds=0)
    assert not stopped.finished and stopped.folded == 0
    done = apply_retention(fm_app.state.engine, raw_days=90, hourly_days=0, now=now)
    assert done.finished and done.folded == 20 * 144 and len(done.batches) >= 20 * 24 // retention.BATCH_HOURS


def test_retention_deletes_old_multi_datastream_readings_in_bounded_batches(fm_app, monkeypatch) -> None:
    from miniapps.floodmap.models import FloodMultiDatastream

    monkeypatch.setattr(retention, "HOURLY_BATCH_ROWS", 50)
    now = datetime.now(UTC).replace(microsecond=0)
    with Session(fm_app.state.engine) as db:
        multi = db.scalar(select(FloodMultiDatastream.id))
        kept = len(db.scalars(select(FloodObservation.id).where(FloodObservation.multi_datastream_id == multi)).all())
        db.execute(insert(FloodObservation), [
            {"multi_datastream_id": multi, "phenomenon_time": now - timedelta(days=100, minutes=10 * i),
             "result_time": now, "results": [0.5, 24.0]} for i in range(120)])
        db.commit()
    outcome = apply_retention(fm_app.state.engine, raw_days=90, hourly_days=0, now=now)
    assert outcome.finished and outcome.multi_deleted == 120
    with Session(fm_app.state.engine) as db:
        left = db.scalars(select(FloodObservation.id).where(FloodObservation.multi_datastream_id == multi)).all()
    assert len(left) == kept > 0  # the demo's last day stays


def test_retention_settings_out_of_range_are_refused_naming_the_setting(fm_app) -> None:
    store = fm_app.state.miniapp_settings
    for changes, named in (({"raw_readings_days": 3}, "raw_readings_days"),
                           ({"raw_readings_days": 5000}, "raw_readings_days"),
                           ({"hourly_readings_days": -1}, "hourly_readings_days"),
                           ({"raw_readings_days": 120, "hourly_readings_days": 30}, "hourly_readings_days")):
        with pytest.raises(SettingsRejected) as refused:
            store.update("floodmap", changes, actor_id=None)
        assert named in refused.value.errors, (changes, refused.value.errors)
    saved = store.update("floodmap", {"raw_readings_days": 30, "hourly_readings_days": 0}, actor_id=None)
    assert (saved.raw_readings_days, saved.hourly_readings_days) == (30, 0)


async def test_the_scheduled_job_applies_the_saved_settings(fm_app) -> None:
    from miniapps.floodmap.jobs import fold_old_readings

    stream_id = _kim_long_stream(fm_app)
    fm_app.state.miniapp_settings.update("floodmap", {"raw_readings_days": 30}, actor_id=None)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    _store(fm_app, stream_id, [(now - timedelta(days=40, minutes=10 * i), 0.7) for i in range(12)])
    outcome = await fold_old_readings(fm_app.state.host, now=now)
    assert outcome.folded == 12 and outcome.hours_written == 3  # 22:10-22:50, 23:00-23:50 and 00:00


# --- The city loader ---------------------------------------------------------------------------------------


def _city_url(database_url: str) -> str:
    url = make_url(database_url)
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False) \
        if url.get_backend_name() == "postgresql" else database_url


def test_the_city_loader_writes_coherent_stations_and_readings(database_url: str) -> None:
    city = City(_city_url(database_url), scale=0.002)
    written = city_floodmap.load(city)
    days = city.size(city_floodmap.FULL_DAYS, minimum=3)
    streams = written["floodmap_datastream"]
    assert streams == 6 and written["floodmap_observation"] == streams * days * 144
    with Session(city.engine) as db:
        things = list(db.scalars(select(FloodThing).where(FloodThing.code.startswith("city-"))))
        assert len(things) == written["floodmap_thing"] and all(t.synthetic and "[synthetic]" in t.name for t in things)
        for stream in db.scalars(select(FloodDatastream).join(FloodThing).where(FloodThing.code.startswith("city-"))):
            values = list(db.scalars(select(FloodObservation.result).where(FloodObservation.datastream_id == stream.id)
                                     .order_by(FloodObservation.phenomenon_time)))
            thing = db.get(FloodThing, stream.thing_id)
            measure = MEASURES[thing.kind]
            assert len(values) == days * 144
            assert all(measure.valid_min <= v <= measure.valid_max for v in values)
            assert thing.last_value == values[-1]
            assert thing.last_observed_at.astimezone(UTC) == city.now
            # Every reading has its station's FeatureOfInterest, as the ingest gives one that names none.
            features = set(db.scalars(select(FloodObservation.feature_id).distinct()
                                      .where(FloodObservation.datastream_id == stream.id)))
            assert len(features) == 1 and None not in features
    with pytest.raises(CityError, match="already loaded"):
        city_floodmap.load(city)
    city.engine.dispose()


def test_the_city_loader_refuses_an_impossible_size(sqlite_url: str) -> None:
    with pytest.raises(CityError, match="flood observations"):
        city_floodmap.load(City(sqlite_url, scale=20))


def test_storms_come_in_october_and_november() -> None:
    storms = city_floodmap._storms(random.Random(7), datetime(2021, 11, 30, tzinfo=UTC),
                                   datetime(2026, 11, 30, tzinfo=UTC))
    assert storms and all(s.start.month in (10, 11, 12) for s in storms)  # a late-November storm may crest in December
    by_year = {year: len(list(group)) for year, group in itertools.groupby(storms, key=lambda s: s.start.year)}
    assert all(1 <= n <= 4 for n in by_year.values())


def test_history_joins_folded_hours_and_kept_readings_into_one_curve(fm_app, fm_client) -> None:
    stream_id = _kim_long_stream(fm_app)
    station = fm_app.state.test_stations[KIM_LONG]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old = now - timedelta(days=100)
    _store(fm_app, stream_id, [(old + timedelta(minutes=10 * i), 0.5 + 0.1 * (i % 2)) for i in range(12)])
    apply_retention(fm_app.state.engine, raw_days=90, hourly_days=0, now=now)
    answer = fm_client.get(f"/api/miniapps/floodmap/stations/{station}/history", params={
        "start": (old - timedelta(hours=1)).isoformat(), "end": now.isoformat()})
    assert answer.status_code == 200, answer.text
    hours = answer.json()["hours"]
    assert [h["count"] for h in hours[:2]] == [6, 6] and hours[0]["min"] == 0.5 and hours[0]["max"] == 0.6
    assert len(hours) > 2 and sum(h["count"] for h in hours[2:]) >= 100  # the demo's recent readings, by the hour
    too_long = fm_client.get(f"/api/miniapps/floodmap/stations/{station}/history", params={
        "start": (now - timedelta(days=400)).isoformat(), "end": now.isoformat()})
    assert too_long.status_code == 422 and too_long.json()["field"] == "query.end"
