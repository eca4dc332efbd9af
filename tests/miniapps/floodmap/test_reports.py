"""Residents report the water depth where they stand, with an optional photo through the shared media
service; only the reporter, the unit's officials and operators see it; SQLite and PostgreSQL."""

from __future__ import annotations

from sqlmodel import Session, func, select

from core.identity.service import create_official, start_session
from miniapps.floodmap.models import FloodReport
from tests.conftest import TEST_SECRET
from tests.core.identity.conftest import PASSWORD
from tests.miniapps.floodmap.conftest import make_people
from tests.miniapps.floodmap.matrix_rows import jpeg

REPORTS = "/api/miniapps/floodmap/reports"


def _official(app, unit: str) -> dict[str, str]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = create_official(db, username=f"fm.{unit}", display_name=f"Cán bộ {unit}", password=PASSWORD,
                               memberships=[("commune_official", unit)])
        pair = start_session(db, secret=TEST_SECRET, user=user, method="test", client=None, address=None)
    return {"Authorization": f"Bearer {pair.access_token}"}


def _reports(app) -> int:
    with Session(app.state.engine) as db:
        return db.exec(select(func.count()).select_from(FloodReport)).one()


def test_a_resident_reports_depth_with_a_photo_and_only_the_right_people_see_it(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    assert fm_client.put("/api/me/consents/floodmap/location", headers=people.phu_xuan).status_code < 300
    filed = fm_client.post(REPORTS, headers=people.phu_xuan, data={"depth_cm": "35", "lat": "16.4717", "lon": "107.5884",
                                                                    "note": "Nước ngập quá đầu gối"},
                           files={"photo": ("flood.jpg", jpeg(), "image/jpeg")})
    assert filed.status_code == 201, filed.text
    report = filed.json()
    assert report["unit_id"] == "phu-xuan" and report["depth_cm"] == 35 and report["photo"]
    photo = fm_client.get(report["photo"], headers=people.phu_xuan)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content[:2] == b"\xff\xd8"
    assert fm_client.get(report["thumbnail"], headers=people.phu_xuan).status_code == 200
    assert fm_client.get(report["photo"], headers=people.kim_long).status_code == 404
    assert fm_client.get(report["photo"], headers=_official(fm_app, "kim-long")).status_code == 404
    assert fm_client.get(report["photo"], headers=_official(fm_app, "phu-xuan")).status_code == 200
    assert fm_client.get(report["photo"], headers=people.operator).status_code == 200
    assert [r["id"] for r in fm_client.get(REPORTS, headers=people.kim_long).json()["reports"]] == []
    assert [r["id"] for r in fm_client.get(REPORTS, headers=people.operator).json()["reports"]] == [report["id"]]


def test_a_report_needs_the_location_scope_and_a_place_in_hue(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    refused = fm_client.post(REPORTS, headers=people.kim_long, data={"depth_cm": "10", "lat": "16.45", "lon": "107.55"})
    assert refused.status_code == 403 and refused.json()["scope"] == "location"
    fm_client.put("/api/me/consents/floodmap/location", headers=people.kim_long)
    far = fm_client.post(REPORTS, headers=people.kim_long, data={"depth_cm": "10", "lat": "21.0", "lon": "105.8"})
    assert far.status_code == 422 and far.json()["field"] == "body.lat"
    nowhere = fm_client.post(REPORTS, headers=people.kim_long, data={"depth_cm": "10"})
    assert nowhere.status_code == 422 and nowhere.json()["field"] == "body.lat"
    deep = fm_client.post(REPORTS, headers=people.kim_long, data={"depth_cm": "900", "lat": "16.45", "lon": "107.55"})
    assert deep.status_code == 422 and deep.json()["field"] == "body.depth_cm"
    assert fm_client.post(REPORTS, headers=people.operator,
                          data={"depth_cm": "10", "lat": "16.45", "lon": "107.55"}).status_code == 403
    assert _reports(fm_app) == 0


def test_a_file_that_is_no_photo_is_refused_and_nothing_is_kept(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    fm_client.put("/api/me/consents/floodmap/location", headers=people.kim_long)
    answer = fm_client.post(REPORTS, headers=people.kim_long, data={"depth_cm": "10", "lat": "16.45", "lon": "107.55"},
                            files={"photo": ("flood.jpg", b"<html>not a photo</html>", "image/jpeg")})
    assert answer.status_code in (415, 422) and answer.json()["field"] == "body.photo"
    assert _reports(fm_app) == 0
