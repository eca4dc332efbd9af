"""The units directory a mini-app gets as ``host.units``: the city, its wards and communes, and where a point lies."""

from __future__ import annotations

from sqlmodel import Session

from core.units import places
from core.units.models import OrgUnit, UnitKind
from core.units.service import CITY_ID, get_unit, list_units


class UnitsDirectory:
    """Read-only access to the org units (``OrgUnit``) and the city's geography."""

    city_id = CITY_ID

    def get(self, db: Session, unit_id: str) -> OrgUnit | None:
        """One unit by id, or None."""
        return get_unit(db, unit_id)

    def list(self, db: Session, *, kind: UnitKind | None = None) -> list[OrgUnit]:
        """Every unit, or those of one kind, by kind then name."""
        return list_units(db, kind=kind)

    def in_city(self, lat: float, lon: float) -> bool:
        """Whether the point lies within the city's bounds."""
        return places.in_hue(lat, lon)

    def nearest(self, db: Session, lat: float, lon: float) -> OrgUnit | None:
        """The ward or commune a point belongs to (its boundary, else the nearest centre)."""
        return places.nearest_unit(db, lat, lon)
