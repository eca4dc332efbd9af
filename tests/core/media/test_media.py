"""The shared media service with real images: types from bytes, rotation, GPS, EXIF stripped, bombs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.media import (
    LocalMediaStore,
    MediaStore,
    PhotoRejected,
    media_store,
    process_photo,
)
from tests.conftest import base_settings

LIMIT = 10 * 1024 * 1024


def _rational(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    return (degrees, minutes, round((minutes_full - minutes) * 60, 4))


def jpeg_with_exif(*, size=(400, 200), orientation: int | None = None, gps=(16.4637, 107.5909),
                   colour=(200, 30, 30)) -> bytes:
    """A JPEG whose EXIF carries an orientation, GPS and a camera model."""
    image = Image.new("RGB", size, colour)
    # Mark the left edge so rotation can be checked: the left quarter is blue.
    image.paste((0, 0, 255), (0, 0, size[0] // 4, size[1]))
    exif = Image.Exif()
    exif[0x0110] = "SecretPhone 9"  # Model
    if orientation:
        exif[0x0112] = orientation
    if gps:
        lat, lon = gps
        exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: _rational(abs(lat)),
                        3: "E" if lon >= 0 else "W", 4: _rational(abs(lon))}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def encoded(fmt: str, size=(300, 300), mode="RGB") -> bytes:
    """An image of ``fmt`` (PNG, WEBP, HEIF...) made with Pillow."""
    out = io.BytesIO()
    Image.new(mode, size, (10, 120, 40, 128) if mode == "RGBA" else (10, 120, 40)).save(out, format=fmt)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` grey pixels (zeros compress to nothing)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" * (width + 1)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_jpeg_gps_is_read_and_exif_stripped() -> None:
    photo = process_photo(jpeg_with_exif(), max_bytes=LIMIT)
    assert photo.source_type == "image/jpeg"
    assert photo.gps == pytest.approx((16.4637, 107.5909), abs=1e-4)
    for blob in (photo.display, photo.thumbnail):
        with Image.open(io.BytesIO(blob)) as out:
            assert out.format == "JPEG"
            assert len(out.getexif()) == 0
            assert "exif" not in out.info
    assert b"SecretPhone" not in photo.display and b"SecretPhone" not in photo.thumbnail
    assert len(photo.sha256) == 64


def test_southern_western_gps_is_negative() -> None:
    photo = process_photo(jpeg_with_exif(gps=(-33.8688, -70.5)), max_bytes=LIMIT)
    assert photo.gps == pytest.approx((-33.8688, -70.5), abs=1e-4)


def test_orientation_is_applied() -> None:
    # Orientation 6: the camera was turned; viewers rotate 90 degrees clockwise.
    photo = process_photo(jpeg_with_exif(orientation=6), max_bytes=LIMIT)
    assert (photo.width, photo.height) == (200, 400)
    with Image.open(io.BytesIO(photo.display)) as out:
        top = out.convert("RGB").getpixel((100, 10))
        bottom = out.convert("RGB").getpixel((100, 390))
    assert top[2] > 200 and top[0] < 60  # the blue edge is now at the top
    assert bottom[0] > 150 and bottom[2] < 80


def test_large_photo_is_resized_and_thumbnailed() -> None:
    photo = process_photo(jpeg_with_exif(size=(4000, 3000), gps=None), max_bytes=LIMIT)
    assert (photo.width, photo.height) == (1600, 1200)
    assert photo.gps is None
    with Image.open(io.BytesIO(photo.thumbnail)) as thumb:
        assert max(thumb.size) == 320


@pytest.mark.parametrize(("fmt", "mime", "mode"), [("PNG", "image/png", "RGBA"), ("WEBP", "image/webp", "RGB"),
                                                  ("HEIF", "image/heic", "RGB")])
def test_other_types_become_jpeg(fmt: str, mime: str, mode: str) -> None:
    photo = process_photo(encoded(fmt, mode=mode), max_bytes=LIMIT)
    assert photo.source_type == mime
    assert photo.display.startswith(b"\xff\xd8\xff")
    assert (photo.width, photo.height) == (300, 300)


def test_oversize_is_413() -> None:
    with pytest.raises(PhotoRejected) as caught:
        process_photo(jpeg_with_exif(), max_bytes=1024)
    assert caught.value.status == 413


def test_text_renamed_jpg_is_415() -> None:
    with pytest.raises(PhotoRejected) as caught:
        process_photo(b"hello, this is not a photo\n" * 10, max_bytes=LIMIT)
    assert caught.value.status == 415


def test_gif_is_415() -> None:
    with pytest.raises(PhotoRejected) as caught:
        process_photo(encoded("GIF"), max_bytes=LIMIT)
    assert caught.value.status == 415


def test_truncated_jpeg_is_422() -> None:
    data = jpeg_with_exif(size=(800, 600))
    with pytest.raises(PhotoRejected) as caught:
        process_photo(data[: len(data) // 2], max_bytes=LIMIT)
    assert caught.value.status == 422
    assert "corrupt" in caught.value.detail


def test_magic_without_image_is_422() -> None:
    with pytest.raises(PhotoRejected) as caught:
        process_photo(b"\xff\xd8\xff" + b"\x00" * 200, max_bytes=LIMIT)
    assert caught.value.status in (415, 422)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = png_bomb(30_000, 30_000)  # 900 MP from a few kB
    assert len(bomb) < 100_000
    with pytest.raises(PhotoRejected) as caught:
        process_photo(bomb, max_bytes=LIMIT)
    assert caught.value.status == 422
    assert "pixels" in caught.value.detail


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    assert isinstance(store, MediaStore)
    store.put("feedback/7/a.jpg", b"abc", "image/jpeg")
    assert store.get("feedback/7/a.jpg") == b"abc"
    store.put("feedback/7/a.jpg", b"xyz", "image/jpeg")
    assert store.get("feedback/7/a.jpg") == b"xyz"
    store.delete("feedback/7/a.jpg")
    store.delete("feedback/7/a.jpg")
    with pytest.raises(KeyError):
        store.get("feedback/7/a.jpg")
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".upload-")]


@pytest.mark.parametrize("key", ["../etc/passwd", "feedback/../../x", "/abs/path", "feedback", "Feedback/x",
                                 "feedback//x", "feedback/./x"])
def test_store_refuses_keys_that_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        LocalMediaStore(tmp_path).put(key, b"x", "image/jpeg")


def test_media_store_follows_settings(tmp_path: Path) -> None:
    assert media_store(base_settings(var_dir=tmp_path)).root == tmp_path / "media"  # type: ignore[attr-defined]
    assert media_store(base_settings(media_dir=tmp_path / "m")).root == tmp_path / "m"  # type: ignore[attr-defined]


def test_app_exposes_the_store(settings) -> None:
    from core.app import create_app
    app = create_app(settings)
    assert isinstance(app.state.media, MediaStore)


def test_all_or_nothing_deletes_the_files_of_a_failed_change(tmp_path) -> None:
    from core.media import LocalMediaStore, all_or_nothing

    store = LocalMediaStore(tmp_path)
    with all_or_nothing(store) as files:
        files.put("sample/kept.jpg", b"kept", "image/jpeg")
    try:
        with all_or_nothing(store) as files:
            files.put("sample/a.jpg", b"a", "image/jpeg")
            files.put("sample/b.jpg", b"b", "image/jpeg")
            raise RuntimeError("the commit failed")
    except RuntimeError:
        pass
    assert store.get("sample/kept.jpg") == b"kept"
    for key in ("sample/a.jpg", "sample/b.jpg"):
        try:
            store.get(key)
        except KeyError:
            continue
        raise AssertionError(f"{key} outlived its failed change")
