"""Demo stations: the Huong River gauge at Kim Long with its real alarm levels (1.0 / 2.0 / 3.5 m),
and synthetic sensors, named as such, at streets, rain gauges and a camera in Hue's units. Every
sensor's demo key is ``demo-<station code>`` (printed by ``superapp seed demo``), so an operator can
push readings with curl (see docs/floodmap.md). Idempotent: stations already present are left alone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from miniapps.floodmap.alerts import AlertRules
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodObservation,
    FloodThing,
    StationKind,
)
from miniapps.floodmap.service import (
    MEASURES,
    WATER_TEMPERATURE,
    StationSpec,
    register_multi_datastream,
    register_station,
    station_features,
)

RIVER_UNITS = ["kim-long", "phu-xuan", "thuan-hoa", "vy-da", "thuy-xuan", "huong-an"]
SYNTHETIC = " (mô phỏng / synthetic)"

DEMO_STATIONS = (
    StationSpec("kim-long-gauge", "Trạm thủy văn Kim Long (sông Hương)", StationKind.river_gauge, "kim-long",
                16.4586, 107.5561, "Bến Kim Long, sông Hương", warn_units=RIVER_UNITS, levels=(1.0, 2.0, 3.5),
                description="Huong River at Kim Long; alarm levels I/II/III at 1.0 / 2.0 / 3.5 m. Demo readings."),
    StationSpec("phu-oc-gauge", "Trạm sông Bồ tại Phú Ốc" + SYNTHETIC, StationKind.river_gauge, "kim-tra",
                16.5221, 107.4981, "Phú Ốc, sông Bồ", warn_units=["kim-tra", "huong-tra", "quang-dien"], synthetic=True,
                levels=(1.5, 3.0, 4.5), description="Synthetic gauge for the demo."),
    StationSpec("le-loi-hotspot", "Điểm ngập đường Lê Lợi" + SYNTHETIC, StationKind.street_hotspot, "thuan-hoa",
                16.4627, 107.5853, "Đường Lê Lợi, trước ĐH Sư phạm", synthetic=True),
    StationSpec("tran-hung-dao-hotspot", "Điểm ngập đường Trần Hưng Đạo" + SYNTHETIC, StationKind.street_hotspot,
                "phu-xuan", 16.4717, 107.5884, "Đường Trần Hưng Đạo, chợ Đông Ba", synthetic=True),
    StationSpec("kim-long-street-hotspot", "Điểm ngập đường Kim Long" + SYNTHETIC, StationKind.street_hotspot,
                "kim-long", 16.4557, 107.5470, "Đường Kim Long, gần chùa Thiên Mụ", synthetic=True),
    StationSpec("vy-da-hotspot", "Điểm ngập đường Nguyễn Sinh Cung" + SYNTHETIC, StationKind.street_hotspot, "vy-da",
                16.4760, 107.6045, "Đường Nguyễn Sinh Cung, Vỹ Dạ", synthetic=True),
    StationSpec("a-luoi-rain", "Trạm đo mưa A Lưới" + SYNTHETIC, StationKind.rain_gauge, "a-luoi-2",
                16.2566, 107.198, "Thị trấn A Lưới cũ", synthetic=True),
    StationSpec("nam-dong-rain", "Trạm đo mưa Nam Đông" + SYNTHETIC, StationKind.rain_gauge, "nam-dong",
                16.066, 107.717, "Nam Đông", synthetic=True),
    StationSpec("truong-tien-camera", "Camera cầu Trường Tiền" + SYNTHETIC, StationKind.camera, "thuan-hoa",
                16.4673, 107.5906, "Cầu Trường Tiền", synthetic=True,
                camera_url="https://camera.example.org/hue/truong-tien/latest.jpg"),
)


def demo_key(code: str) -> str:
    """The demo sensor key of station ``code`` (the demo only: production refuses demo seeding)."""
    return f"demo-{code}"


def _baseline(kind: StationKind, hours_ago: float) -> float:
    """A calm, made-up series for the chart: a slow daily swing well below the first alarm level."""
    swing = math.sin(hours_ago / 24 * 2 * math.pi)
    if kind is StationKind.river_gauge:
        return round(0.55 + 0.15 * swing, 2)
    if kind is StationKind.street_hotspot:
        return round(max(0.0, 2.0 + 2.0 * swing), 1)
    return round(max(0.0, 4.0 + 4.0 * swing), 1)


def load_demo_stations(host) -> list[str]:
    """Add the demo stations and 72 hours of calm readings; returns progress lines with the sensor keys."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    lines = []
    added = 0
    with host.session() as db:
        existing = set(db.scalars(select(FloodThing.code)))
        for spec in DEMO_STATIONS:
            if spec.code in existing:
                continue
            thing = register_station(db, spec, sensor_key=demo_key(spec.code))
            if spec.kind is StationKind.camera:
                thing.camera_image_at = now - timedelta(minutes=2)
            else:
                _seed_readings(db, thing, spec.kind, now)
            if spec.code == "kim-long-gauge":
                _seed_multi(db, thing, now)
            added += 1
        db.commit()
    lines.append(f"{added} stations added ({len(DEMO_STATIONS)} in the demo; names marked 'synthetic' are made up)")
    for spec in DEMO_STATIONS:
        if spec.kind is not StationKind.camera:
            lines.append(f"sensor {spec.code}: key {demo_key(spec.code)}")
    return lines


def _seed_multi(db, thing: FloodThing, now: datetime) -> None:
    """Kim Long's sensor also reads the water temperature with each level: a MultiDatastream, 24 hours of it."""
    stream = db.scalars(select(FloodDatastream).where(FloodDatastream.thing_id == thing.id)).one()
    multi = register_multi_datastream(db, thing_id=thing.id, sensor_id=stream.sensor_id,
                                      name=f"Water level and temperature at {thing.name}",
                                      measures=[MEASURES[StationKind.river_gauge], WATER_TEMPERATURE])
    times = [now - timedelta(hours=step) for step in range(24, 0, -1)]
    feature = station_features(db.connection(), {thing.id})[thing.id]
    db.execute(insert(FloodObservation), [
        {"multi_datastream_id": multi.id, "phenomenon_time": at, "result_time": at, "feature_id": feature,
         "results": [_baseline(StationKind.river_gauge, (now - at).total_seconds() / 3600),
                     round(24.0 + 1.5 * math.sin((now - at).total_seconds() / 3600 / 24 * 2 * math.pi), 2)]}
        for at in times])


def _seed_readings(db, thing: FloodThing, kind: StationKind, now: datetime) -> None:
    stream = db.scalars(select(FloodDatastream).where(FloodDatastream.thing_id == thing.id)).one()
    times = [now - timedelta(minutes=30 * step) for step in range(72 * 2, 0, -1)]
    feature = station_features(db.connection(), {thing.id})[thing.id]  # the station's place, as the ingest gives
    rows = [{"datastream_id": stream.id, "phenomenon_time": at, "result_time": at, "feature_id": feature,
             "result": _baseline(kind, (now - at).total_seconds() / 3600)} for at in times]
    db.execute(insert(FloodObservation), rows)
    last = rows[-1]
    rules = AlertRules((stream.level_1, stream.level_2, stream.level_3))
    thing.last_value, thing.last_observed_at = last["result"], last["phenomenon_time"]
    thing.level = rules.raw_level(last["result"])
    thing.level_since = last["phenomenon_time"]
    db.add(thing)
