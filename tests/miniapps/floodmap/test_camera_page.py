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


def _jpeg_with_gps(width: int = 640, height: int = 360) -> bytes:
    """A camera snapshot carrying EXIF GPS, which the served copy must not keep."""
    import io

    from PIL import Image

    image = Image.new("RGB", (width, height), (40, 90, 160))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (16.0, 27.0, 0.0), 3: "E", 4: (107.0, 35.0, 0.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _post_image(client, code: str, data: bytes, *, key: str | None = None, kind: str = "image/jpeg"):
    from miniapps.floodmap.demo import demo_key

    return client.post(f"/api/miniapps/floodmap/ingest/{code}/image", content=data,
                       headers={"X-Sensor-Key": key or demo_key(code), "Content-Type": kind})


def test_a_camera_pushes_a_snapshot_that_the_page_and_map_then_show(fm_app, fm_client) -> None:
    import io

    from PIL import Image

    thing_id = fm_app.state.test_stations[CAMERA]
    pushed = _post_image(fm_client, CAMERA, _jpeg_with_gps())
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["station"] == thing_id and (body["width"], body["height"]) == (640, 360)
    assert body["url"].startswith(f"/api/miniapps/floodmap/stations/{thing_id}/camera.jpg?at=")
    served = fm_client.get(body["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert "public" in served.headers["cache-control"]
    assert Image.open(io.BytesIO(served.content)).size == (640, 360)
    assert 0x8825 not in Image.open(io.BytesIO(served.content)).getexif()  # no GPS in what the public gets
    page = fm_client.get(f"/m/floodmap/stations/{thing_id}?lang=en")
    cell = page.text.split('data-testid="camera"')[1].split("</dd>")[0]
    assert f'<img src="{body["url"]}"' in cell
    layer = fm_client.get("/api/miniapps/floodmap/stations.geojson").json()
    camera = next(f for f in layer["features"] if f["properties"]["code"] == CAMERA)
    assert camera["properties"]["camera_url"] == body["url"]
    # A newer snapshot replaces it, at a new address.
    again = _post_image(fm_client, CAMERA, _jpeg_with_gps(320, 240))
    assert again.status_code == 201
    assert Image.open(io.BytesIO(fm_client.get(again.json()["url"]).content)).size == (320, 240)


def test_camera_images_are_refused_clearly_and_nothing_changes(fm_app, fm_client) -> None:
    from tests.miniapps.floodmap.conftest import KIM_LONG

    thing_id = _set_camera(fm_app, url=None, taken=None)
    wrong_key = _post_image(fm_client, CAMERA, _jpeg_with_gps(), key="not-the-key")
    assert wrong_key.status_code == 401 and wrong_key.headers["content-type"] == "application/problem+json"
    not_an_image = _post_image(fm_client, CAMERA, b"GIF89a not really", kind="image/gif")
    assert not_an_image.status_code == 415 and not_an_image.json()["field"] == "body"
    gauge = _post_image(fm_client, KIM_LONG, _jpeg_with_gps())
    assert gauge.status_code == 409 and gauge.json()["field"] == "path.sensor_code"
    too_big = _post_image(fm_client, CAMERA, b"\xff\xd8" + b"0" * (1024 * 1024 + 10))
    assert too_big.status_code == 413
    assert fm_client.get(f"/api/miniapps/floodmap/stations/{thing_id}/camera.jpg").status_code == 404
    assert "No image yet." in fm_client.get(f"/m/floodmap/stations/{thing_id}?lang=en").text
