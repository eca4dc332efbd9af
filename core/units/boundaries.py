"""Importing commune and ward boundaries from GeoJSON (e.g. the city's GIS layer) into ``unit_boundary``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shapely.geometry import mapping, shape
from shapely.validation import explain_validity
from sqlmodel import Session, select

from core.units.former import unit_key
from core.units.models import OrgUnit, UnitBoundary, UnitKind

# Properties that may name the unit a feature draws, tried in this order.
NAME_PROPERTIES = ("unit_id", "id", "code", "ma", "ma_xa", "name_vi", "name", "ten", "ten_xa", "NAME", "TEN")


class BoundaryError(ValueError):
    """A GeoJSON file that cannot be imported as sent; nothing of it was stored."""


def _match(units: list[OrgUnit], properties: dict[str, Any]) -> OrgUnit | None:
    by_id = {u.id: u for u in units}
    by_code = {u.code: u for u in units if u.code}
    by_key: dict[str, OrgUnit] = {}
    for u in units:
        by_key[unit_key(u.name_vi)] = u
        by_key[unit_key(u.name_vi.removeprefix("Phường ").removeprefix("Xã "))] = u
    values = [properties.get(name) for name in NAME_PROPERTIES]
    for value in (str(v).strip() for v in values if v not in (None, "")):
        unit = by_id.get(value) or by_code.get(value) or by_key.get(unit_key(value))
        if unit is not None:
            return unit
    return None


def import_boundaries(session: Session, collection: dict[str, Any], *, source: str = "",
                      now: datetime | None = None) -> list[str]:
    """Store each feature's polygon as its unit's boundary (replacing an older one); the unit ids stored.

    Every feature must be a valid Polygon or MultiPolygon naming one of the 40 communes and wards in a
    property (``unit_id``, ``code``, ``name`` ...); otherwise nothing is stored and the error names it.
    """
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise BoundaryError("the file is not a GeoJSON FeatureCollection")
    features = collection.get("features") or []
    if not features:
        raise BoundaryError("the FeatureCollection has no features")
    units = list(session.exec(select(OrgUnit).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune]))))
    problems: list[str] = []
    rows: dict[str, UnitBoundary] = {}
    now = now or datetime.now(UTC)
    for index, feature in enumerate(features):
        properties = (feature or {}).get("properties") or {}
        unit = _match(units, properties)
        if unit is None:
            problems.append(f"features[{index}]: names no commune or ward of Hue ({properties!r:.120})")
            continue
        try:
            geometry = shape((feature or {}).get("geometry") or {})
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            problems.append(f"features[{index}] ({unit.id}): unreadable geometry ({exc})")
            continue
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(f"features[{index}] ({unit.id}): a {geometry.geom_type}, not a Polygon or MultiPolygon")
            continue
        if not geometry.is_valid:
            problems.append(f"features[{index}] ({unit.id}): invalid polygon ({explain_validity(geometry)})")
            continue
        if unit.id in rows:
            problems.append(f"features[{index}] ({unit.id}): a second boundary for the same unit")
            continue
        west, south, east, north = geometry.bounds
        rows[unit.id] = UnitBoundary(unit_id=unit.id, geometry=json.dumps(mapping(geometry)), south=south,
                                     north=north, west=west, east=east, source=source[:300], imported_at=now)
    if problems:
        raise BoundaryError("; ".join(problems[:20]) + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""))
    for unit_id, row in rows.items():
        current = session.get(UnitBoundary, unit_id)
        if current is not None:
            session.delete(current)
            session.flush()
        session.add(row)
    session.commit()
    return sorted(rows)
