"""Where a point is: Hue's bounding area, the commune or ward a point lies in, distances.

``unit_at`` is the one lookup every mini-app uses (feedback reports, flood reports). In order:
1. imported boundaries (``superapp units import-boundaries``): the unit whose polygon holds the point;
2. otherwise Hue's 133 pre-2025 wards and communes (``core.units.former``): among those whose bounding box
   holds the point, the nearest centre, else the nearest centre; then the new unit that ward joined;
3. otherwise the nearest of the 40 new units' centres.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

from shapely.geometry import Point, shape
from sqlmodel import Session, select

from core.units.former import FormerWard, former_wards, unit_key
from core.units.models import OrgUnit, UnitBoundary, UnitKind

# Thừa Thiên Huế's extent with a margin: points outside are not Hue's to handle.
HUE_BOUNDS = {"south": 15.95, "north": 16.80, "west": 107.00, "east": 108.25}
EARTH_RADIUS_M = 6_371_000.0


def in_hue(lat: float, lon: float) -> bool:
    """True when the point lies within Hue's bounding area."""
    return HUE_BOUNDS["south"] <= lat <= HUE_BOUNDS["north"] and HUE_BOUNDS["west"] <= lon <= HUE_BOUNDS["east"]


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def local_units(session: Session) -> list[OrgUnit]:
    """The 40 communes and wards (the units a point can belong to)."""
    return list(session.exec(select(OrgUnit).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune]))))


def nearest_unit(session: Session, lat: float, lon: float) -> OrgUnit | None:
    """The commune or ward whose centroid is nearest the point (the last resort of ``unit_at``)."""
    units = [u for u in local_units(session) if u.lat is not None and u.lon is not None]
    return min(units, key=lambda u: distance_m(lat, lon, u.lat, u.lon), default=None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Placement:
    """The unit a point lies in and how it was decided: 'boundary', 'former_ward' or 'nearest_centre'."""

    unit: OrgUnit
    method: str
    former_ward: str | None = None


@lru_cache(maxsize=256)
def _polygon(geometry: str):  # type: ignore[no-untyped-def]
    # Parsed once per distinct boundary text; a re-import brings new text and so a new entry.
    return shape(json.loads(geometry))


def unit_by_boundary(session: Session, lat: float, lon: float) -> OrgUnit | None:
    """The unit whose imported boundary holds the point, or None (none loaded, or the point is in none)."""
    candidates = session.exec(select(UnitBoundary).where(
        UnitBoundary.south <= lat, UnitBoundary.north >= lat, UnitBoundary.west <= lon, UnitBoundary.east >= lon,
    ).order_by(UnitBoundary.unit_id)).all()
    point = Point(lon, lat)
    for boundary in candidates:
        if _polygon(boundary.geometry).covers(point):
            return session.get(OrgUnit, boundary.unit_id)
    return None


def nearest_former_ward(lat: float, lon: float, centres: dict[str, tuple[float, float]]) -> FormerWard | None:
    """The pre-2025 ward a point most likely lay in: the nearest centre among the wards whose box holds the
    point (or whose box is unknown); the nearest overall when no known box holds it.

    ``centres`` gives each new unit's centre by key, standing in for the few wards the geocoder missed.
    """
    def centre(ward: FormerWard) -> tuple[float, float] | None:
        if not math.isnan(ward.lat):
            return ward.lat, ward.lon
        return centres.get(ward.new_key)

    placed = [(ward, c) for ward in former_wards() if (c := centre(ward)) is not None]
    # A box is a superset of its ward: a ward whose box misses the point cannot hold it (a ward whose
    # box is unknown cannot be ruled out).
    holding = [pair for pair in placed if pair[0].box is None or pair[0].contains(lat, lon)]
    if not any(pair[0].box is not None for pair in holding):
        holding = placed
    best = min(holding, key=lambda pair: distance_m(lat, lon, *pair[1]), default=None)
    return None if best is None else best[0]


def unit_at(session: Session, lat: float, lon: float) -> Placement | None:
    """The commune or ward a point in Hue lies in (see the module's docstring); None when no units are loaded."""
    unit = unit_by_boundary(session, lat, lon)
    if unit is not None:
        return Placement(unit, "boundary")
    units = local_units(session)
    by_key = {unit_key(u.name_vi): u for u in units}
    centres = {key: (u.lat, u.lon) for key, u in by_key.items() if u.lat is not None and u.lon is not None}
    ward = nearest_former_ward(lat, lon, centres)  # type: ignore[arg-type]
    if ward is not None and ward.new_key in by_key:
        return Placement(by_key[ward.new_key], "former_ward", ward.name)
    nearest = nearest_unit(session, lat, lon)
    return None if nearest is None else Placement(nearest, "nearest_centre")


def degree_box(lat: float, radius_m: float) -> tuple[float, float]:
    """Half-widths in degrees (lat, lon) of a box enclosing a circle of ``radius_m`` around ``lat``."""
    dlat = radius_m / 111_320.0
    return dlat, dlat / max(math.cos(math.radians(lat)), 0.01)
