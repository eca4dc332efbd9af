"""A camera station's page: its latest image (or a link to it) with the time taken in Hue time, else "no image yet"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from miniapps.floodmap.models import FloodThing

CAMERA = "truong-tien-camera"
TAKEN = datetime(2026, 10, 28, 1, 5, tzinfo=UTC)  # 08:05 in Hue


def _set_camera(app: Any, *, url: str | None, taken: datetime | None) -> int:
    """Give the demo camera ``url`` and image time ``taken``; returns its id."""
    thing_id = app.state.test_stations[CAMERA]
    with Session(app.state.engine) as db:
        thing = db.get(FloodThing, thing_id)
        thing.camera_url, thing.camera_image_at = url, taken
        db.add(thing)
        db.commit()
    return thing_id


def test_a_camera_without_an_image_says_so_in_the_pages_language(fm_app, fm_client) -> None:
    thing_id = _set_camera(fm_app, url=None, taken=None)
    vi = fm_client.get(f"/m/floodmap/stations/{thing_id}?lang=vi")
    en = fm_client.get(f"/m/floodmap/stations/{thing_id}?lang=en")
    assert vi.status_code == 200 and "Chưa có ảnh." in vi.text and "No image yet." not in vi.text
    assert en.status_code == 200 and "No image yet." in en.text and "<img" not in en.text.split('data-testid="camera"')[1].split("</dd>")[0]


def test_a_host_served_image_is_shown_with_alt_text_and_hue_time(fm_app, fm_client) -> None:
    thing_id = _set_camera(fm_app, url="/media/floodmap/cameras/truong-tien/latest.jpg", taken=TAKEN)
    for lang, alt in (("vi", "Ảnh mới nhất từ camera"), ("en", "Latest camera image")):
        page = fm_client.get(f"/m/floodmap/stations/{thing_id}?lang={lang}")
        cell = page.text.split('data-testid="camera"')[1].split("</dd>")[0]
        assert f'<img src="/media/floodmap/cameras/truong-tien/latest.jpg" alt="{alt}"' in cell
        assert "28/10/2026 08:05" in cell and "2026-10-28T01:05" not in cell


def test_an_outside_snapshot_is_a_link_not_a_bare_address(fm_app, fm_client) -> None:
    thing_id = _set_camera(fm_app, url="https://camera.example.org/hue/truong-tien/latest.jpg", taken=TAKEN)
    page = fm_client.get(f"/m/floodmap/stations/{thing_id}?lang=vi")
    cell = page.text.split('data-testid="camera"')[1].split("</dd>")[0]
    assert '<a href="https://camera.example.org/hue/truong-tien/latest.jpg" rel="noopener">Xem ảnh mới nhất</a>' in cell
    assert "(28/10/2026 08:05)" in cell
