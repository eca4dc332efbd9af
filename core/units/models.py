"""Org unit tables."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class UnitKind(StrEnum):
    """The levels of Hue's two-level government."""

    city = "city"
    department = "department"
    ward = "ward"
    commune = "commune"


class OrgUnitBase(SQLModel):
    """Fields shared by the table and the public view of an org unit."""

    id: str = Field(primary_key=True, max_length=64, description="Our slug, e.g. 'phu-xuan'.")
    kind: UnitKind = Field(index=True)
    name_vi: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    code: str | None = Field(default=None, max_length=20, description="Official code; data to verify.")
    lat: float | None = None
    lon: float | None = None
    area_km2: float | None = None
    merged_from: str | None = Field(default=None, description="Former units merged into this one.")
    fields: str | None = Field(
        default=None, description="Departments: the fields it answers for, ';'-separated."
    )


class OrgUnit(OrgUnitBase, table=True):
    """A unit of the city: the city itself, a department, a ward or a commune."""

    __tablename__ = "org_unit"
    parent_id: str | None = Field(default=None, foreign_key="org_unit.id", index=True)


class OrgUnitPublic(OrgUnitBase):
    """An org unit as the API shows it."""

    parent_id: str | None


class UnitBoundary(SQLModel, table=True):
    """A commune's or ward's boundary as imported GeoJSON, with its bounding box for a cheap first filter."""

    __tablename__ = "unit_boundary"
    unit_id: str = Field(primary_key=True, foreign_key="org_unit.id", max_length=64)
    geometry: str = Field(description="GeoJSON Polygon or MultiPolygon, WGS 84 (lon, lat).")
    south: float = Field(index=True)
    north: float
    west: float
    east: float
    source: str = Field(default="", max_length=300, description="The file the boundary came from.")
    imported_at: datetime
