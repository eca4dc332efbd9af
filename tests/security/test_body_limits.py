"""Request bodies: a global limit enforced while the body streams in, larger ones for uploads after sign-in."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlmodel import Session

from config import load_settings
from core.app import create_app
from core.identity import service
from core.limits import FORM_ALLOWANCE
from tests.conftest import TEST_SECRET, base_settings
from tests.security.conftest import MIB, REQUEST_BUDGET, Served, drive, raw_post, zeros

RATING = "/api/miniapps/feedback/reports/1/rating"
REPORTS = "/api/miniapps/feedback/reports"
BOUNDARY = "superapp-test-boundary"


@pytest.fixture
def host(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """An app on SQLite, then on PostgreSQL, with the default body limit (lifespan run by ``hosted``)."""
    from miniapps.feedback.service import load_categories

    app = create_app(base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var"))
    with Session(app.state.engine) as db:
        load_categories(db)
    yield app


def hosted(app: Any, scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``scenario`` inside the app's lifespan on a fresh event loop."""

    async def run() -> Any:
        async with app.router.lifespan_context(app):
            return await scenario()

    return asyncio.run(run())


def resident(app: Any) -> dict[str, str]:
    """A signed-in resident of Phú Xuân: the bearer header."""
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = service.find_or_create_resident(db, firebase_uid=f"body-{os.getpid()}", phone="+84905999001",
                                               address="127.0.0.1")
        user.home_unit_id = "phu-xuan"
        db.add(user)
        db.commit()
        pair = service.start_session(db, secret=TEST_SECRET, user=user, method="test", client="pytest",
                                     address="127.0.0.1")
    return {"authorization": f"Bearer {pair.access_token}"}


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> bytes:
    """A multipart/form-data body."""
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    for name, filename, data in files:
        out.write(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


def noisy_jpeg(side: int) -> bytes:
    """A JPEG of random pixels: megabytes on the wire for a few megapixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="JPEG", quality=95)
    return out.getvalue()


def split(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """``data`` in chunks of ``size``."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_the_limit_is_a_setting_with_a_one_mebibyte_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """SUPERAPP_MAX_BODY_BYTES sets the global limit; the default is 1 MiB."""
    assert base_settings().max_body_bytes == MIB
    monkeypatch.setenv("SUPERAPP_MAX_BODY_BYTES", "4096")
    assert load_settings().max_body_bytes == 4096


def test_an_anonymous_declared_oversized_body_is_refused_unread(host: Any) -> None:
    """Content-Length over the limit: 413 problem+json before a single byte of the body is read."""
    answer = hosted(host, lambda: drive(host, RATING, chunks=zeros(50 * MIB), headers={
        "content-type": "application/json", "content-length": str(50 * MIB)}))
    assert answer.status == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 413
    assert str(MIB) in answer.json()["detail"]
    assert answer.consumed == 0


def test_an_anonymous_streamed_body_is_cut_off_at_the_limit(host: Any) -> None:
    """No Content-Length (chunked): the bytes are counted as they come, and reading stops past the limit."""
    chunk = 64 * 1024
    answer = hosted(host, lambda: drive(host, RATING, chunks=zeros(50 * MIB, chunk),
                                        headers={"content-type": "application/json"}))
    assert answer.status == 413
    assert answer.json()["status"] == 413
    assert answer.consumed <= MIB + chunk


def test_an_anonymous_multipart_upload_is_refused_at_the_global_limit(host: Any) -> None:
    """Upload routes take more only from a signed-in caller: anonymous gets 413 at 1 MiB, not a spooled file."""
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    opening = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n"
               "Content-Type: image/jpeg\r\n\r\n").encode()

    def upload() -> Iterator[bytes]:
        yield opening
        yield from zeros(300 * MIB)

    declared = hosted(host, lambda: drive(host, REPORTS, chunks=upload(),
                                          headers={**headers, "content-length": str(300 * MIB)}))
    assert (declared.status, declared.consumed) == (413, 0)
    streamed = hosted(host, lambda: drive(host, REPORTS, chunks=upload(), headers=headers))
    assert streamed.status == 413
    assert streamed.consumed <= MIB + 64 * 1024


def test_a_signed_in_resident_may_upload_photos_beyond_the_global_limit(host: Any) -> None:
    """The report route allows its photos (five of SUPERAPP_MEDIA_MAX_BYTES) once the caller is known."""
    who = resident(host)
    photo = noisy_jpeg(1100)
    assert len(photo) > MIB
    body = multipart({"category_id": "public-order", "description": "Cây đổ chắn đường", "lat": "16.4780",
                      "lon": "107.5770"}, [("photos", "cay-do.jpg", photo)])
    headers = {**who, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    streamed = hosted(host, lambda: drive(host, REPORTS, chunks=split(body), headers=headers))
    assert streamed.status == 201, streamed.body
    declared = hosted(host, lambda: drive(host, REPORTS, chunks=split(body),
                                          headers={**headers, "content-length": str(len(body))}))
    assert declared.status == 201, declared.body
    allowance = 5 * host.state.settings.media_max_bytes + FORM_ALLOWANCE
    too_big = hosted(host, lambda: drive(host, REPORTS, chunks=zeros(allowance + MIB),
                                         headers={**headers, "content-length": str(allowance + MIB)}))
    assert (too_big.status, too_big.consumed) == (413, 0)
    assert str(allowance) in too_big.json()["detail"]


def test_a_signed_in_caller_is_held_to_the_global_limit_elsewhere(host: Any) -> None:
    """Signing in raises the limit only on the routes that declare a larger one."""
    who = resident(host)
    body = json.dumps({"stars": 5, "comment": "x" * (2 * MIB)}).encode()
    answer = hosted(host, lambda: drive(host, RATING, chunks=split(body),
                                        headers={**who, "content-type": "application/json"}))
    assert answer.status == 413
    assert answer.consumed <= MIB + 64 * 1024


def test_an_anonymous_50_mib_json_body_costs_the_served_worker_little(served: Served) -> None:
    """The finding as measured on a real server: 50 MiB of JSON from nobody no longer costs a gigabyte."""
    document = b"[" + b",".join([b'{"a":0}'] * (50 * MIB // 8)) + b"]"
    assert len(document) > 49 * MIB
    headers = {"Content-Type": "application/json", "Content-Length": str(len(document))}
    answer, rise = served.peak_rise(lambda: raw_post(served.url, RATING, headers, split(document, MIB)))
    assert rise <= REQUEST_BUDGET, f"peak RSS rose {rise / MIB:.0f} MiB"
    assert answer.status == 413, answer.body
    assert json.loads(answer.body)["status"] == 413
