"""Evidence photos on reports: only the reporting unit adds them, through the media service; whoever
may see the report may see them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.miniapps.tasks.conftest import TASKS, assignment_id, make_report, small_jpeg


def test_evidence_photos(api: TestClient, engine, task_for_two, commune_px, commune_kl, department) -> None:
    report = make_report(engine, assignment_id(engine, task_for_two, "phu-xuan"), "phu-xuan")
    url = f"{TASKS}/reports/{report}/evidence"
    added = api.post(url, headers=commune_px, files={"photo": ("site.jpg", small_jpeg(), "image/jpeg")})
    assert added.status_code == 201, added.text
    [photo_url] = added.json()["evidence"]
    assert photo_url == f"{url}/0"
    shown = api.get(photo_url, headers=department)
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert shown.content[:2] == b"\xff\xd8"
    assert api.get(photo_url, headers=commune_kl).status_code == 404  # Kim Long cannot see Phú Xuân's report
    assert api.post(url, headers=commune_kl, files={"photo": ("x.jpg", small_jpeg(), "image/jpeg")}).status_code == 404
    assert api.post(url, headers=department, files={"photo": ("x.jpg", small_jpeg(), "image/jpeg")}).status_code == 403
    not_a_photo = api.post(url, headers=commune_px, files={"photo": ("x.jpg", b"%PDF-1.4 not an image", "image/jpeg")})
    assert not_a_photo.status_code == 415 and not_a_photo.json()["field"] == "photo"
    assert api.post(f"{TASKS}/reports/{report}/accept", headers=department).status_code == 200
    late = api.post(url, headers=commune_px, files={"photo": ("x.jpg", small_jpeg(), "image/jpeg")})
    assert late.status_code == 409  # evidence is fixed once the report is reviewed
