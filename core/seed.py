"""Demo data: Hue's org units plus demo content; every step is idempotent."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.units.service import load_reference_units
from plugins.registry import MiniApp


def seed_demo(engine: Engine, miniapps: list[MiniApp]) -> Iterator[str]:
    """Load the demo data, yielding a progress line per step."""
    with Session(engine) as session:
        added = load_reference_units(session)
    yield f"org units: {added} added (city, 10 departments, 40 communes and wards)"
