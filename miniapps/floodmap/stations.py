"""Stations as the map and pages show them: GeoJSON features with level and colour, a station's recent
readings, and its 72-hour chart drawn as SVG on the server."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from miniapps.floodmap.alerts import KIND_NAMES, LEVEL_COLOURS, LEVEL_NAMES, STALE_COLOUR, STALE_NAME
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodLocation,
    FloodObservation,
    FloodThing,
    StationKind,
)

MINIAPP = "floodmap"
CAMERA_COLOUR = "#1565c0"
CHART_HOURS = 72


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def colour_of(kind: str, level: int, stale: bool) -> str:
    """The marker colour: grey when stale, blue for cameras, green to red by alert level."""
    if stale:
        return STALE_COLOUR
    if kind == StationKind.camera:
        return CAMERA_COLOUR
    return LEVEL_COLOURS.get(level, STALE_COLOUR)


def _station_query():
    return (
        select(FloodThing.id, FloodThing.code, FloodThing.name, FloodThing.kind, FloodThing.unit_id,
               FloodThing.warn_units, FloodThing.synthetic, FloodThing.level, FloodThing.stale,
               FloodThing.last_value, FloodThing.last_observed_at, FloodThing.camera_url, FloodThing.camera_image_at,
               FloodDatastream.unit_symbol, FloodDatastream.level_1, FloodDatastream.level_2, FloodDatastream.level_3)
        .outerjoin(FloodDatastream, and_(FloodDatastream.thing_id == FloodThing.id, FloodDatastream.drives_alert))
        .order_by(FloodThing.id)
    )


def _points(db: Session, thing_ids: list[int] | None = None) -> dict[int, tuple[float, float]]:
    """Each station's first Location as (lon, lat)."""
    query = select(FloodLocation.thing_id, FloodLocation.lon, FloodLocation.lat).order_by(FloodLocation.id)
    if thing_ids is not None:
        query = query.where(FloodLocation.thing_id.in_(thing_ids))
    points: dict[int, tuple[float, float]] = {}
    for thing_id, lon, lat in db.execute(query):
        points.setdefault(thing_id, (lon, lat))
    return points


def _features(db: Session, query: Any, thing_ids: list[int] | None = None) -> list[dict[str, Any]]:
    points = _points(db, thing_ids)
    return [feature_of(row, points[row.id]) for row in db.execute(query) if row.id in points]


def _level_name(level: int, stale: bool) -> dict[str, str]:
    """The level in words; a silent station is "no signal", with the last level it reported when raised."""
    name = LEVEL_NAMES.get(level, LEVEL_NAMES[0])
    if not stale:
        return name
    if level == 0:
        return STALE_NAME
    return {lang: f"{STALE_NAME[lang]} ({'mức cuối' if lang == 'vi' else 'last'}: {name[lang]})" for lang in name}


def feature_of(row: Any, point: tuple[float, float]) -> dict[str, Any]:
    """One station as a GeoJSON Feature (RFC 7946: coordinates are longitude, latitude)."""
    kind = row.kind.value if hasattr(row.kind, "value") else str(row.kind)
    return {
        "type": "Feature",
        "id": row.id,
        "geometry": {"type": "Point", "coordinates": list(point)},
        "properties": {
            "id": row.id, "code": row.code, "name": row.name, "kind": kind, "unit_id": row.unit_id,
            "warn_units": row.warn_units or [], "synthetic": row.synthetic, "level": row.level,
            "level_name": _level_name(row.level, row.stale), "stale": row.stale,
            "kind_name": KIND_NAMES.get(kind, KIND_NAMES["river_gauge"]),
            "colour": colour_of(kind, row.level, row.stale), "value": row.last_value,
            "unit_of_measurement": row.unit_symbol, "observed_at": _iso(row.last_observed_at),
            "thresholds": [row.level_1, row.level_2, row.level_3] if row.unit_symbol else None,
            "camera_url": row.camera_url, "camera_image_at": _iso(row.camera_image_at),
            "url": f"/m/floodmap/stations/{row.id}",
        },
    }


def load_features(engine: Engine, thing_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """Features by station id (all stations when ``thing_ids`` is None)."""
    query = _station_query()
    if thing_ids is not None:
        query = query.where(FloodThing.id.in_(thing_ids))
    with Session(engine) as db:
        return {f["id"]: f for f in _features(db, query, thing_ids)}


def feature_collection(db: Session) -> dict[str, Any]:
    """Every station as one GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": _features(db, _station_query())}


@dataclass
class Layer:
    """The encoded layer: JSON bytes, the same gzipped, and an ETag."""

    body: bytes
    gzipped: bytes
    etag: str
    expires: float


class LayerCache:
    """The GeoJSON layer, built at most once per ``ttl`` seconds per host (one builder at a time).

    On a flood night every open map asks for the same layer; live changes reach open maps over the
    WebSocket, so a layer up to ``ttl`` seconds old is what a newly opened map starts from. One per host
    (``layer_cache(host)``), so two apps in one process never share a layer.
    """

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._layer: Layer | None = None
        self._lock = threading.Lock()

    def fresh(self) -> Layer | None:
        """The layer if it is still fresh, without touching the database (safe on the event loop)."""
        layer = self._layer
        return layer if layer is not None and layer.expires > time.monotonic() else None

    def get(self, engine: Engine) -> Layer:
        """The current layer, built from ``engine`` when stale (call from a worker thread: it may query)."""
        layer = self.fresh()
        if layer is not None:
            return layer
        with self._lock:
            layer = self.fresh()
            if layer is not None:
                return layer
            with Session(engine) as db:
                body = json.dumps(feature_collection(db), separators=(",", ":"), ensure_ascii=False).encode()
            layer = Layer(body=body, gzipped=gzip.compress(body, compresslevel=5),
                          etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"', expires=time.monotonic() + self.ttl)
            self._layer = layer
            return layer

    def forget(self) -> None:
        """Drop the layer: this process just changed a station."""
        self._layer = None


def layer_cache(host: Any) -> LayerCache:
    """The host's layer cache (in floodmap's state slot on the host)."""
    state = vars(host.state(MINIAPP))
    cache = state.get("layers")
    return cache if cache is not None else state.setdefault("layers", LayerCache())


@dataclass
class StationView:
    """A station page's data: the feature, its alert datastream and the readings of the chart window."""

    feature: dict[str, Any]
    stream: FloodDatastream | None
    readings: list[tuple[datetime, float]]


def station_view(db: Session, thing_id: int, *, now: datetime | None = None) -> StationView | None:
    """The station and its last 72 hours of readings; None when there is no such station."""
    now = now or datetime.now(UTC)
    found = _features(db, _station_query().where(FloodThing.id == thing_id), [thing_id])
    if not found:
        return None
    stream = db.scalars(select(FloodDatastream).where(FloodDatastream.thing_id == thing_id,
                                                      FloodDatastream.drives_alert)).first()
    readings: list[tuple[datetime, float]] = []
    if stream is not None:
        readings = [(t.astimezone(UTC), v) for t, v in db.execute(
            select(FloodObservation.phenomenon_time, FloodObservation.result)
            .where(FloodObservation.datastream_id == stream.id,
                   FloodObservation.phenomenon_time >= now - timedelta(hours=CHART_HOURS))
            .order_by(FloodObservation.phenomenon_time))]
    return StationView(feature=found[0], stream=stream, readings=readings)


def chart_svg(readings: list[tuple[datetime, float]], *, thresholds: list[float | None], unit: str,
              now: datetime, hours: int = CHART_HOURS, title: str = "", now_label: str = "now") -> str:
    """A line chart of ``readings`` over the last ``hours`` with the alarm levels as dashed lines."""
    width, height, left, right, top, bottom = 380, 220, 40, 8, 16, 24
    start = now - timedelta(hours=hours)
    values = [v for _, v in readings] + [t for t in thresholds if t is not None]
    low = min(values, default=0.0)
    high = max(values, default=1.0)
    if high - low < 1e-6:
        high = low + 1.0
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(at: datetime) -> float:
        return left + plot_w * max(0.0, min(1.0, (at - start).total_seconds() / (hours * 3600)))

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'class="floodmap-chart" aria-label="{escape(title)}">'),
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for tick in range(5):
        value = low + (high - low) * tick / 4
        parts.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">{value:.2f}</text>')
    for hours_back in range(0, hours + 1, 12):
        at = now - timedelta(hours=hours_back)
        parts.append(f'<line x1="{x(at):.1f}" y1="{top}" x2="{x(at):.1f}" y2="{top + plot_h}" stroke="#eee"/>')
        parts.append(f'<text x="{x(at):.1f}" y="{height - 8}" font-size="11" text-anchor="middle">'
                     f'{"-" + str(hours_back) + "h" if hours_back else escape(now_label)}</text>')
    for index, threshold in enumerate(thresholds, start=1):
        if threshold is None:
            continue
        parts.append(f'<line class="threshold" x1="{left}" y1="{y(threshold):.1f}" x2="{left + plot_w}" '
                     f'y2="{y(threshold):.1f}" stroke="{LEVEL_COLOURS[index]}" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{left + plot_w - 4}" y="{y(threshold) - 3:.1f}" font-size="11" text-anchor="end" '
                     f'fill="{LEVEL_COLOURS[index]}">{"I" * index if index < 3 else "III"} {threshold:g}</text>')
    if readings:
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in readings)
        parts.append(f'<polyline class="readings" fill="none" stroke="#1565c0" stroke-width="2" points="{points}"/>')
    else:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="13">'
                     f'{escape("—")}</text>')
    parts.append(f'<text x="{left}" y="{top - 4}" font-size="11">{escape(unit)}</text></svg>')
    return "".join(parts)
