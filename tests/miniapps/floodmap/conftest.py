"""Flood map fixtures: hosts with the demo stations, sensors' pushes, signed-in residents and an operator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.app import create_app
from core.identity.service import (
    create_official,
    find_or_create_resident,
    start_session,
)
from miniapps.floodmap.demo import demo_key, load_demo_stations
from miniapps.floodmap.models import FloodThing
from tests.conftest import TEST_SECRET, base_settings
from tests.core.identity.conftest import PASSWORD

KIM_LONG = "kim-long-gauge"
INGEST = "/api/miniapps/floodmap/ingest/"


def load_stations(app: Any) -> dict[str, int]:
    """Load the demo stations into ``app``'s database; returns station ids by code."""
    list(load_demo_stations(app.state.host))
    with Session(app.state.engine) as db:
        return {code: thing_id for thing_id, code in db.exec(select(FloodThing.id, FloodThing.code))}


def readings(*values: float, start: datetime | None = None, every: timedelta = timedelta(minutes=5)) -> list[dict]:
    """Readings ``every`` apart, the last one now (or ending at ``start`` + len * every)."""
    now = datetime.now(UTC).replace(microsecond=0)
    first = start or now - every * (len(values) - 1)
    return [{"time": (first + every * i).isoformat(), "value": v} for i, v in enumerate(values)]


def push(client: Any, code: str, batch: Any, *, key: str | None = None) -> Any:
    """Push ``batch`` as sensor ``code`` with its demo key (or ``key``)."""
    return client.post(INGEST + code, headers={"X-Sensor-Key": key or demo_key(code)}, json=batch)


@dataclass
class People:
    """Residents of Kim Long and Phú Xuân, a resident of A Lưới 2 (far away), an operator: their headers."""

    kim_long: dict[str, str]
    phu_xuan: dict[str, str]
    elsewhere: dict[str, str]
    operator: dict[str, str]
    kim_long_id: int


def make_people(app: Any) -> People:
    """Create the people in ``app``'s database and sign them in."""
    headers = []
    ids = []
    with Session(app.state.engine, expire_on_commit=False) as db:
        for n, unit in ((1, "kim-long"), (2, "phu-xuan"), (3, "a-luoi-2")):
            resident = find_or_create_resident(db, firebase_uid=f"fm-{n}", phone=f"+8490588800{n}", address=None)
            resident.home_unit_id = unit
            db.add(resident)
            db.commit()
            pair = start_session(db, secret=TEST_SECRET, user=resident, method="test", client=None, address=None,
                                 web=True)
            headers.append({"Authorization": f"Bearer {pair.access_token}"})
            ids.append(resident.id)
        operator = create_official(db, username="fm.operator", display_name="Trực ban lũ", password=PASSWORD,
                                   memberships=[("operator", "hue")])
        pair = start_session(db, secret=TEST_SECRET, user=operator, method="test", client=None, address=None)
        headers.append({"Authorization": f"Bearer {pair.access_token}"})
    return People(*headers, kim_long_id=ids[0])


@pytest.fixture
def fm_app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """A host on SQLite, then on PostgreSQL, with the demo stations loaded."""
    app = create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var"))
    app.state.test_stations = load_stations(app)
    yield app


@pytest.fixture
def fm_client(fm_app: Any) -> Iterator[TestClient]:
    """A client of ``fm_app`` (lifespan included)."""
    with TestClient(fm_app) as client:
        yield client
