"""Feedback fixtures: the identity personas on SQLite and PostgreSQL, categories loaded, photo makers."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from miniapps.feedback import service

# Phú Xuân (the Citadel), Kim Long, and a point well outside Hue (Hà Nội).
PHU_XUAN = (16.4780, 107.5770)
KIM_LONG = (16.4050, 107.5440)
HANOI = (21.0285, 105.8542)


@pytest.fixture(autouse=True)
def categories(request: pytest.FixtureRequest) -> None:
    """The default categories for tests on a host (PostgreSQL tests truncate the seeded rows between tests)."""
    if "api" not in request.fixturenames:
        return
    client: TestClient = request.getfixturevalue("api")
    with Session(client.app.state.engine) as db:
        service.load_categories(db)


def jpeg(size: tuple[int, int] = (640, 480), *, gps: tuple[float, float] | None = None,
         orientation: int | None = None) -> bytes:
    """A JPEG made with Pillow, with EXIF GPS, orientation and a camera model when asked."""
    image = Image.new("RGB", size, (180, 40, 40))
    exif = Image.Exif()
    exif[0x0110] = "SecretPhone 9"
    if orientation:
        exif[0x0112] = orientation
    if gps:
        def dms(value: float) -> tuple[float, float, float]:
            degrees = int(value)
            minutes = int((value - degrees) * 60)
            return (degrees, minutes, round(((value - degrees) * 60 - minutes) * 60, 4))
        exif[0x8825] = {1: "N", 2: dms(gps[0]), 3: "E", 4: dms(gps[1])}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def file_report(client: TestClient, who: dict[str, str], *, category: str = "public-order",
                point: tuple[float, float] = PHU_XUAN, photos: list[tuple[str, bytes, str]] | None = None,
                **fields: Any) -> Any:
    """POST a report as ``who``; returns the response."""
    data = {"category_id": category, "description": fields.pop("description", "Quán lấn chiếm vỉa hè"),
            "lat": str(point[0]), "lon": str(point[1]), **{k: str(v) for k, v in fields.items()}}
    files = [("photos", photo) for photo in photos or []]
    return client.post("/api/miniapps/feedback/reports", headers=who, data=data, files=files or None)


def act(client: TestClient, who: dict[str, str], report_id: int, action: str, **fields: Any) -> Any:
    """POST an action on a report as ``who``."""
    return client.post(f"/api/miniapps/feedback/reports/{report_id}/actions", headers=who,
                    data={"action": action, **{k: str(v) for k, v in fields.items()}})


@pytest.fixture
def filed(api: TestClient, resident_a: dict[str, str]) -> Callable[..., dict[str, Any]]:  # noqa: F811
    """File a report as resident_a (or another persona) and return its JSON."""
    def make(**kwargs: Any) -> dict[str, Any]:
        who = kwargs.pop("who", resident_a)
        response = file_report(api, who, **kwargs)
        assert response.status_code == 201, response.text
        return response.json()
    return make
