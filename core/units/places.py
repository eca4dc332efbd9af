"""Where a point is: Hue's bounding area, the commune or ward with the nearest centroid, distances."""

from __future__ import annotations

import math

from sqlmodel import Session, select

from core.units.models import OrgUnit, UnitKind

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
    """The commune or ward whose centroid is nearest the point (no boundaries are shipped)."""
    units = [u for u in local_units(session) if u.lat is not None and u.lon is not None]
    return min(units, key=lambda u: distance_m(lat, lon, u.lat, u.lon), default=None)  # type: ignore[arg-type]


def degree_box(lat: float, radius_m: float) -> tuple[float, float]:
    """Half-widths in degrees (lat, lon) of a box enclosing a circle of ``radius_m`` around ``lat``."""
    dlat = radius_m / 111_320.0
    return dlat, dlat / max(math.cos(math.radians(lat)), 0.01)
