"""Flood map benchmarks, each against a baseline measured in the same run:

1. Ingest: observations per second through the ingest service (JSON readings checked one by one,
   duplicates and jumps judged against the stored series, alert step, one transaction per batch),
   against a raw ``executemany`` insert of the same rows into the same table; on SQLite and, with
   ``--pg URL``, on PostgreSQL (a temporary database on that server, dropped afterwards). Rounds
   alternate ingest and raw (ABBA); each round writes to stations of its own.
2. Warning latency: a served host (uvicorn, SQLite, in-process broker) with a resident's WebSocket
   open on ``miniapp:floodmap:map``; the time from posting a reading that crosses level II to the
   warning arriving on the socket, against the time from posting a calm reading to its map update on
   the same socket (the same path without the warning: notifier, inbox rows, outbox rows).
3. The GeoJSON layer with 1,000 stations: requests per second and p99 against the bare endpoint
   (``bench/harness.py``).

City size (``--city URL``): the same figures on a database holding the synthetic Hue's flood map
(``bench.city.floodmap``: 60 stations, five years of 10-minute readings, 15.8 million observations),
loaded first with ``--city-scale`` when the city's stations are not there yet:

4. The GeoJSON layer, and SensorThings pages of one datastream's 263,000 readings (the newest page,
   a keyset page deep in the past, a two-day ``$filter`` window of a flood, a page with ``$count``),
   each against ``/bare`` with p99.
5. Ingest into the city's table against a raw insert of the same rows into it (stations of its own,
   deleted afterwards). This writes into the ``--city`` database: on a shared database, point it at
   a copy (``createdb -T flood_city flood2_city``) or pass ``--skip-ingest``.

A report, not a test: exits 0 whatever the figures are.

    python -m bench.bench_floodmap [--pg postgresql://postgres@127.0.0.1:5432/test] [--batches 40]
        [--batch-size 500] [--ingest-rounds 4] [--crossings 40] [--stations 1000] [--skip-ingest]
        [--skip-latency] [--skip-layer] [--seconds S] [--concurrency C] [--rounds R]
    python -m bench.bench_floodmap --city postgresql://postgres@127.0.0.1:5432/flood_city [--city-scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    BenchError,
    RunningServer,
    Server,
    Target,
    add_load_arguments,
    compare,
    migrate_and_seed,
    percentile,
    report,
    settings_from,
    start_server,
)

LAYER_PATH = "/api/miniapps/floodmap/stations.geojson"
RESIDENT_PHONE = "+84905999111"


# --- 1. Ingest ---------------------------------------------------------------------------------------


def _fresh_database(url: str | None, workdir: Path) -> tuple[str, Any]:
    """(database url, cleanup) for a migrated database holding core and the flood map only."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlmodel import Session

    from config import Settings
    from core.app import discover
    from core.db import make_engine
    from core.migrate import upgrade
    from core.units.service import load_reference_units

    def cleanup() -> None:
        return None

    if url is None:
        target = f"sqlite:///{workdir / 'ingest.db'}"
    else:
        server = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
        name = f"floodmap_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        target = server.set(database=name).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1)

        def cleanup() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    settings = Settings(env="test", secret_key="bench-only-secret-key-32-chars!!", database_url=target,
                        miniapps=["floodmap"])
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine, discover(settings))
    with Session(engine) as db:
        load_reference_units(db)
    engine.dispose()
    return target, cleanup


def _station(engine: Any, code: str) -> tuple[Any, int]:
    """A calm river gauge of its own; returns (its sensor, its datastream id)."""
    from sqlmodel import Session, select

    from miniapps.floodmap.models import FloodDatastream, FloodSensor, StationKind
    from miniapps.floodmap.service import StationSpec, register_station

    with Session(engine, expire_on_commit=False) as db:
        thing = register_station(db, StationSpec(code, f"Bench {code}", StationKind.river_gauge, "phu-xuan",
                                                 16.47, 107.58, "bench"), sensor_key=f"key-{code}")
        db.commit()
        sensor = db.exec(select(FloodSensor).where(FloodSensor.code == code)).one()
        stream = db.exec(select(FloodDatastream.id).where(FloodDatastream.thing_id == thing.id)).one()
    return sensor, stream


def _batches(count: int, size: int) -> list[list[tuple[datetime, float]]]:
    """``count`` batches of ``size`` readings a minute apart ending now, a calm river (no alarm)."""
    total = count * size
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=total + 1)
    readings = [(start + timedelta(minutes=i), round(0.6 + 0.2 * math.sin(i / 90), 3)) for i in range(total)]
    return [readings[i:i + size] for i in range(0, total, size)]


def _run_ingest(engine: Any, code: str, batches: list[list[tuple[datetime, float]]]) -> float:
    """Seconds to push ``batches`` through the ingest service, as the JSON a sensor sends."""
    from miniapps.floodmap.ingest import ingest

    sensor, _ = _station(engine, code)
    payloads = [[{"time": at.isoformat(), "value": value} for at, value in batch] for batch in batches]
    started = time.perf_counter()
    for payload in payloads:
        outcome = ingest(engine, sensor=sensor, readings=payload)
        if outcome.count("accepted") != len(payload):
            raise BenchError(f"ingest refused readings: {[r for r in outcome.results if r.status != 'accepted'][:3]}")
    return time.perf_counter() - started


def _run_raw(engine: Any, code: str, batches: list[list[tuple[datetime, float]]]) -> float:
    """Seconds to insert the same rows with one executemany per batch, one transaction each."""
    from sqlalchemy import insert

    from miniapps.floodmap.models import FloodObservation

    _, stream = _station(engine, code)
    table = FloodObservation.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    rows = [[{"datastream_id": stream, "phenomenon_time": at, "result_time": now, "result": value}
             for at, value in batch] for batch in batches]
    started = time.perf_counter()
    for batch in rows:
        with engine.begin() as connection:
            connection.execute(insert(table), batch)
    return time.perf_counter() - started


def bench_ingest(label: str, url: str | None, *, batches: int, size: int, rounds: int,
                 reuse: bool = False) -> dict[str, float]:
    """Observations per second, ingest vs raw insert, interleaved rounds; prints a line per round.

    ``reuse``: write into the database at ``url`` as it is (the city), on stations deleted afterwards.
    """
    from core.db import make_engine

    with tempfile.TemporaryDirectory(prefix="bench-floodmap-") as tmp:
        target, cleanup = (url, _no_cleanup) if reuse and url else _fresh_database(url, Path(tmp))
        engine = make_engine(target)
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            series = _batches(batches, size)
            per = {"ingest": [], "raw": []}
            for round_no in range(rounds):
                order = ("ingest", "raw") if round_no % 2 == 0 else ("raw", "ingest")
                for kind in order:
                    run = _run_ingest if kind == "ingest" else _run_raw
                    seconds = run(engine, f"{prefix}-{kind}-{round_no}", series)
                    per[kind].append(batches * size / seconds)
                    print(f"  {label} round {round_no + 1}/{rounds} {kind:<6} {per[kind][-1]:10.0f} obs/s",
                          file=sys.stderr, flush=True)
        finally:
            if reuse:
                _delete_stations(engine, prefix)
            engine.dispose()
            cleanup()
    return {kind: statistics.median(values) for kind, values in per.items()}


def _no_cleanup() -> None:
    return None


def _delete_stations(engine: Any, prefix: str) -> None:
    """Remove the benchmark's own stations from a reused database (their readings go by cascade)."""
    from sqlalchemy import delete

    from miniapps.floodmap.models import FloodSensor, FloodThing

    with engine.begin() as connection:
        connection.execute(delete(FloodThing).where(FloodThing.code.startswith(prefix)))
        connection.execute(delete(FloodSensor).where(FloodSensor.code.startswith(prefix)))


# --- 2. and 3. A served host with stations ------------------------------------------------------------

STATIONS_SCRIPT = """
import sys
from sqlmodel import Session
from config import load_settings
from core.db import make_engine
from miniapps.floodmap.models import StationKind
from miniapps.floodmap.service import StationSpec, register_station
units = ["phu-xuan", "thuan-hoa", "vy-da", "kim-long", "an-cuu", "thuy-xuan", "huong-an", "phu-vang"]
layer, crossings = int(sys.argv[1]), int(sys.argv[2])
engine = make_engine(load_settings().sqlalchemy_url)
with Session(engine) as db:
    for i in range(layer):
        kind = [StationKind.river_gauge, StationKind.street_hotspot, StationKind.rain_gauge][i % 3]
        register_station(db, StationSpec(f"layer-{i}", f"Bench station {i}", kind, units[i % len(units)],
                                         16.3 + (i % 40) * 0.01, 107.4 + (i // 40) * 0.01, f"place {i}"),
                         sensor_key=f"key-layer-{i}")
    for i in range(crossings):
        register_station(db, StationSpec(f"cross-{i}", f"Bench river {i}", StationKind.river_gauge, "phu-xuan",
                                         16.47, 107.58, "bench", warn_units=["phu-xuan"]), sensor_key=f"key-cross-{i}")
    db.commit()
"""

RESIDENT_SCRIPT = """
from sqlmodel import Session
from config import load_settings
from core.db import make_engine
from core.identity import service
settings = load_settings()
engine = make_engine(settings.sqlalchemy_url)
with Session(engine, expire_on_commit=False) as db:
    user = service.find_or_create_resident(db, firebase_uid=None, phone=PHONE, address=None)
    user.home_unit_id = "phu-xuan"
    db.add(user)
    db.commit()
    pair = service.start_session(db, secret=settings.secret_key, user=user, method="bench", client="bench",
                                 address="127.0.0.1")
print(pair.access_token)
""".replace("PHONE", repr(RESIDENT_PHONE))


def _prepare(layer: int, crossings: int):
    def prepare(env: dict[str, str], workdir: Path) -> None:
        migrate_and_seed(env, workdir)
        done = subprocess.run([sys.executable, "-c", STATIONS_SCRIPT, str(layer), str(crossings)], env=env,
                              cwd=workdir, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise BenchError(f"could not add the stations: {done.stderr.strip()[-2000:]}")

    return prepare


def _product(layer: int, crossings: int) -> Server:
    return Server.product(env={"SUPERAPP_MINIAPPS": "floodmap", "SUPERAPP_PUSH_WORKER_ENABLED": "false"},
                          prepare=_prepare(layer, crossings))


def _resident_token(running: RunningServer) -> str:
    done = subprocess.run([sys.executable, "-c", RESIDENT_SCRIPT], env=running.env, cwd=running.workdir,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BenchError(f"could not make the resident: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


async def _latencies(running: RunningServer, crossings: int) -> dict[str, list[float]]:
    import httpx
    import websockets

    token = _resident_token(running)
    url = running.base_url
    found: dict[str, list[float]] = {"calm reading -> map update": [], "crossing reading -> warning": []}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
            websockets.connect(url.replace("http", "ws", 1) + "/ws?token=" + token) as socket:
        await socket.send(json.dumps({"type": "subscribe", "channels": ["miniapp:floodmap:map"]}))
        while json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] != "subscribed":
            pass

        async def timed(code: str, value: float, at: datetime, wanted) -> float:
            started = time.perf_counter()
            answer = await http.post(f"/api/miniapps/floodmap/ingest/{code}", headers={"X-Sensor-Key": f"key-{code}"},
                                     json={"time": at.isoformat(), "value": value})
            if answer.status_code != 200 or answer.json()["accepted"] != 1:
                raise BenchError(f"ingest failed: {answer.status_code} {answer.text[:300]}")
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if frame.get("type") == "event" and wanted(frame["data"]):
                    return (time.perf_counter() - started) * 1000

        now = datetime.now(UTC)
        for i in range(crossings):
            code = f"cross-{i}"
            found["calm reading -> map update"].append(await timed(
                code, 0.5, now - timedelta(minutes=40),
                lambda data, code=code: data.get("type") == "station" and data["feature"]["properties"]["code"] == code))
            found["crossing reading -> warning"].append(await timed(
                code, 2.05, now, lambda data: data.get("type") == "warning"))
    return found


def bench_latency(crossings: int) -> dict[str, list[float]]:
    """Start a host with ``crossings`` fresh river gauges and measure both latencies once per gauge."""
    with tempfile.TemporaryDirectory(prefix="bench-floodmap-ws-") as tmp, \
            start_server(_product(0, crossings), Path(tmp)) as running:
        return asyncio.run(_latencies(running, crossings))


# --- 4. and 5. The city ---------------------------------------------------------------------------------


def _city_engine_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def ensure_city(url: str, scale: float) -> None:
    """Load the city's flood map into ``url`` (migrated and seeded) unless its stations are there already."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from bench.city import floodmap as city_floodmap
    from bench.city.base import City
    from miniapps.floodmap.models import FloodThing

    city = City(_city_engine_url(url), scale=scale)
    try:
        with Session(city.engine) as db:
            present = db.scalar(select(func.count()).select_from(FloodThing).where(
                FloodThing.code.startswith(city_floodmap.CODE_PREFIX)))
        if present:
            return
        started = time.perf_counter()
        written = city_floodmap.load(city)
        print(f"   loaded the city's flood map in {time.perf_counter() - started:.0f} s: {written}")
    finally:
        city.engine.dispose()


def _city_paths(url: str) -> dict[str, str]:
    """The requests of the city benchmark, aimed at the busiest river gauge's datastream."""
    from urllib.parse import quote

    from sqlalchemy import create_engine, func, select
    from sqlmodel import Session

    from miniapps.floodmap.models import FloodDatastream, FloodObservation, FloodThing
    from miniapps.floodmap.sta_options import _encode_token

    engine = create_engine(_city_engine_url(url))
    try:
        with Session(engine) as db:
            stream = db.scalar(select(FloodDatastream.id).join(FloodThing).where(
                FloodThing.code == "city-river-gauge-01"))
            if stream is None:
                raise BenchError("the city's flood map is not loaded (city-river-gauge-01 is missing)")
            first, last = db.execute(select(func.min(FloodObservation.phenomenon_time),
                                            func.max(FloodObservation.phenomenon_time))
                                     .where(FloodObservation.datastream_id == stream)).one()
    finally:
        engine.dispose()
    middle = first + (last - first) / 2
    flood = datetime(last.year - 1, 11, 1, tzinfo=UTC)
    base = f"/api/miniapps/floodmap/v1.1/Datastreams({stream})/Observations"
    window = quote(f"phenomenonTime ge {flood.isoformat().replace('+00:00', 'Z')} and "
                   f"phenomenonTime lt {(flood + timedelta(days=2)).isoformat().replace('+00:00', 'Z')}")
    return {
        "newest 100": f"{base}?$top=100&$orderby=phenomenonTime%20desc",
        "keyset page mid-history": f"{base}?$top=100&$skiptoken={_encode_token([middle])}",
        "2-day $filter window": f"{base}?$top=300&$filter={window}",
        "page with $count": f"{base}?$top=100&$count=true",
    }


def bench_city(url: str, args: argparse.Namespace) -> None:
    """Layer and SensorThings pages on the city's database vs bare, then ingest into it vs a raw insert."""
    paths = _city_paths(url)

    def no_migration(env: dict[str, str], workdir: Path) -> None:
        return None  # the city database is migrated and loaded already

    product = Server.product(env={"SUPERAPP_MINIAPPS": "floodmap", "SUPERAPP_PUSH_WORKER_ENABLED": "false",
                                  "SUPERAPP_DATABASE_URL": url}, prepare=no_migration)
    targets = [Target("geojson gzip", product, LAYER_PATH, headers={"Accept-Encoding": "gzip"})]
    targets += [Target(label, product, path) for label, path in paths.items()]
    comparison = compare(baseline=Target("bare", Server.bare(), "/bare"), targets=targets,
                         settings=settings_from(args))
    print("4. City: the map layer and one datastream's 263,000 readings (of 15.8 million) on PostgreSQL")
    report(comparison, title="City flood map reads vs bare FastAPI GET /bare", rps_floor=0.5)
    if not args.skip_ingest:
        figures = bench_ingest("city", url, batches=args.batches, size=args.batch_size, rounds=args.ingest_rounds,
                               reuse=True)
        print(f"5. City ingest ({args.batches} batches of {args.batch_size} into the 15.8-million-row table): "
              f"ingest {figures['ingest']:.0f} obs/s, raw insert {figures['raw']:.0f} obs/s, "
              f"ratio {figures['ingest'] / figures['raw']:.2f} (target >= 0.60)")


# --- main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the three benchmarks and print their figures as ratios against their baselines."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_floodmap", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL for the ingest benchmark")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--ingest-rounds", type=int, default=4)
    parser.add_argument("--crossings", type=int, default=40)
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-layer", action="store_true")
    parser.add_argument("--city", default=None, metavar="URL",
                        help="a migrated, seeded PostgreSQL database: run the city benchmarks (4, 5) on it only")
    parser.add_argument("--city-scale", type=float, default=1.0,
                        help="scale of the flood map loaded into --city when it is not there yet")
    args = parser.parse_args(argv)
    try:
        if args.city:
            ensure_city(args.city, args.city_scale)
            bench_city(args.city, args)
            return 0
        if not args.skip_ingest:
            databases = [("SQLite", None)] + ([("PostgreSQL", args.pg)] if args.pg else [])
            print(f"1. Ingest: {args.batches} batches of {args.batch_size} readings, {args.ingest_rounds} "
                  "interleaved rounds, medians")
            for label, url in databases:
                figures = bench_ingest(label, url, batches=args.batches, size=args.batch_size,
                                       rounds=args.ingest_rounds)
                print(f"   {label:<11} ingest {figures['ingest']:9.0f} obs/s   raw insert {figures['raw']:9.0f} obs/s"
                      f"   ratio {figures['ingest'] / figures['raw']:.2f}")
            print()
        if not args.skip_latency:
            found = bench_latency(args.crossings)
            print(f"2. Latency on an open WebSocket, {args.crossings} stations, each once (ms)")
            base = sorted(found["calm reading -> map update"])
            for label, values in found.items():
                ordered = sorted(values)
                print(f"   {label:<30} p50 {percentile(ordered, 50):7.1f}  p99 {percentile(ordered, 99):7.1f}  "
                      f"p50 ratio {percentile(ordered, 50) / percentile(base, 50):.2f}")
            print()
        if not args.skip_layer:
            product = _product(args.stations, 0)
            comparison = compare(baseline=Target("bare", Server.bare(), "/bare"),
                                 targets=[Target("geojson gzip", product, LAYER_PATH, headers={"Accept-Encoding": "gzip"}),
                                          Target("geojson plain", product, LAYER_PATH)],
                                 settings=settings_from(args))
            print(f"3. GeoJSON layer with {args.stations:,} stations (+ the 9 demo stations)")
            report(comparison, title=f"GET {LAYER_PATH} vs bare FastAPI GET /bare")
            print("'geojson gzip' is what browsers and phones ask for (Accept-Encoding: gzip); 'plain' sends the "
                  "whole JSON. The layer is built at most every 2 s per worker and on a change in that worker.")
    except BenchError as exc:
        print(f"bench_floodmap: could not measure: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
