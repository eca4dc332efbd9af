"""Photos of public reports are reached by random opaque ids, not by counting: the ids in answers are 128-bit
URL-safe tokens, an old sequential URL is a 404, and the Open311 media_url carries the same token."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from miniapps.feedback.models import FeedbackPhoto
from tests.core.identity.conftest import Persona, api, make_persona, resident_a  # noqa: F401  (fixtures)
from tests.miniapps.feedback.conftest import categories, file_report, jpeg  # noqa: F401  (autouse fixture)

API = "/api/miniapps/feedback"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def test_photo_urls_hold_unguessable_ids(api: TestClient, resident_a: Persona) -> None:  # noqa: F811
    photos = [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg(), "image/jpeg")]
    filed = file_report(api, resident_a, photos=photos)
    assert filed.status_code == 201, filed.text
    report = filed.json()
    ids = [p["id"] for p in report["photos"]]
    assert len(ids) == 2 and all(isinstance(i, str) and TOKEN.match(i) for i in ids), ids
    for photo in report["photos"]:
        assert photo["url"] == f"{API}/photos/{photo['id']}"
        answer = api.get(photo["url"])  # a public report's photo: anyone with the link
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    with Session(api.app.state.engine) as db:
        row_ids = db.exec(select(FeedbackPhoto.id).order_by(FeedbackPhoto.id)).all()
    for row_id in row_ids:  # counting through row ids finds nothing
        assert api.get(f"{API}/photos/{row_id}").status_code in (404, 422)
    listed = {r["service_request_id"]: r for r in api.get("/open311/v2/requests.json").json()}
    assert listed[str(report["id"])]["media_url"].endswith(f"/photos/{ids[0]}")


@pytest.mark.parametrize("photo_id", ["1", "A" * 22, "../../etc/passwd"])
def test_unknown_or_malformed_ids_are_refused(api: TestClient, photo_id: str) -> None:
    assert api.get(f"{API}/photos/{photo_id}").status_code in (404, 422)
