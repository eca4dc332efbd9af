"""Loading and reading org units; the data ships with the product in ``core/units/data``."""

from __future__ import annotations

import csv
from importlib import resources

from sqlmodel import Session, select

from core.text import fold, slugify
from core.units.models import OrgUnit, UnitKind

CITY_ID = "hue"
_PREFIXES = {UnitKind.ward: ("Phường ", "Ward"), UnitKind.commune: ("Xã ", "Commune")}


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("core.units").joinpath("data", name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def reference_units() -> list[OrgUnit]:
    """The city, its departments and its 40 communes and wards, as shipped with the product."""
    units = [
        OrgUnit(id=CITY_ID, kind=UnitKind.city, name_vi="Thành phố Huế", name_en="Hue City",
                lat=16.4637, lon=107.5909)
    ]
    for row in _rows("departments.csv"):
        units.append(
            OrgUnit(id=row["code"], kind=UnitKind.department, name_vi=row["name_vi"],
                    name_en=row["name_en"], fields=row["fields"], parent_id=CITY_ID)
        )
    for row in _rows("hue_units.csv"):
        kind = UnitKind(row["kind"])
        prefix, english = _PREFIXES[kind]
        bare = row["name"].removeprefix(prefix)
        units.append(
            OrgUnit(
                id=slugify(bare), kind=kind, name_vi=row["name"], name_en=f"{english} {_ascii(bare)}",
                code=row["code"], lat=float(row["lat"]), lon=float(row["lon"]),
                area_km2=float(row["area_km2"]), merged_from=row["merged_from"], parent_id=CITY_ID,
            )
        )
    return units


def _ascii(name: str) -> str:
    return " ".join(word.capitalize() for word in fold(name).split())


def load_reference_units(session: Session) -> int:
    """Insert or update the reference units; returns how many were new. Idempotent."""
    existing = {unit.id: unit for unit in session.exec(select(OrgUnit))}
    added = 0
    for unit in reference_units():
        current = existing.get(unit.id)
        if current is None:
            session.add(unit)
            added += 1
        else:
            for key, value in unit.model_dump().items():
                setattr(current, key, value)
        if unit.kind is UnitKind.city:
            session.flush()  # the city first: everything else points at it
    session.commit()
    return added


def list_units(session: Session, *, kind: UnitKind | None = None) -> list[OrgUnit]:
    """All org units, optionally of one kind, by kind then name."""
    query = select(OrgUnit)
    if kind is not None:
        query = query.where(OrgUnit.kind == kind)
    return list(session.exec(query.order_by(OrgUnit.kind, OrgUnit.name_vi)))


def get_unit(session: Session, unit_id: str) -> OrgUnit | None:
    """One org unit by id."""
    return session.get(OrgUnit, unit_id)
