"""Org units API: public reference data the app uses to pick a home unit."""

from __future__ import annotations

from fastapi import APIRouter

from core.db import SessionDep
from core.errors import Problem
from core.units import service
from core.units.models import OrgUnitPublic, UnitKind

router = APIRouter(prefix="/api/units", tags=["org units"])


@router.get("", operation_id="list_units", response_model=list[OrgUnitPublic])
def list_units(session: SessionDep, kind: UnitKind | None = None) -> list[OrgUnitPublic]:
    """The city, its departments and its communes and wards, optionally of one kind."""
    return [OrgUnitPublic.model_validate(u) for u in service.list_units(session, kind=kind)]


@router.get("/{unit_id}", operation_id="get_unit", response_model=OrgUnitPublic)
def get_unit(unit_id: str, session: SessionDep) -> OrgUnitPublic:
    """One org unit."""
    unit = service.get_unit(session, unit_id)
    if unit is None:
        raise Problem(404, f"no org unit with id {unit_id!r}", field="path.unit_id")
    return OrgUnitPublic.model_validate(unit)
