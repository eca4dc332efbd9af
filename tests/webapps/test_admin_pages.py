"""Operators' review pages for web mini-apps, on both databases: the list of versions waiting, approve and
reject with a reason, publish, widen, roll back, each audited like the API; refusals shown in words (vi/en);
cookie-authenticated forms from another site refused; others get 403."""

from __future__ import annotations

from sqlmodel import Session, select

from core.identity.models import AuditEvent
from tests.webapps.helpers import registration

OWN = "http://testserver"


def form(api, operator, path: str, data: dict, *, lang: str = "vi"):
    """Post an admin form as the operator's browser would: the session cookie and this site's Origin."""
    api.cookies.set("superapp_session", operator.access_token)
    try:
        return api.post(f"{path}?lang={lang}", data=data, headers={"Origin": OWN}, follow_redirects=False)
    finally:
        api.cookies.clear()


def actions(api) -> list[str]:
    """Every audited web mini-app action, oldest first."""
    with Session(api.app.state.engine) as db:
        return [e.action for e in db.exec(select(AuditEvent).where(AuditEvent.action.like("webapp_%"))
                                          .order_by(AuditEvent.id))]


def test_review_publish_widen_and_roll_back_from_the_pages(api, operator, resident_a):
    assert api.post("/api/webapps", json=registration(), headers=operator).status_code == 201
    menu = api.get("/admin?lang=en", headers=operator)
    assert 'data-testid="admin-webapps"' in menu.text
    listing = api.get("/admin/webapps?lang=en", headers=operator)
    assert listing.status_code == 200 and 'data-webapp="youth_union" data-version="1"' in listing.text
    page = api.get("/admin/webapps/youth_union?lang=vi", headers=operator)
    assert "Tìm điểm tình nguyện gần bạn" in page.text and 'data-testid="review-form"' in page.text
    # Rejecting without a reason is refused in the page's language; with one, the version is rejected.
    refused = form(api, operator, "/admin/webapps/youth_union/versions/1/review", {"decision": "reject"})
    assert refused.status_code == 422 and "Từ chối cần nêu lý do" in refused.text
    rejected = form(api, operator, "/admin/webapps/youth_union/versions/1/review",
                    {"decision": "reject", "reason": "Icon is missing"}, lang="en")
    assert rejected.status_code == 303 and "done=rejected" in rejected.headers["location"]
    assert "Reason: Icon is missing" in api.get("/admin/webapps/youth_union?lang=en", headers=operator).text
    body = registration()
    body.pop("id")
    assert api.post("/api/webapps/youth_union/versions", json=body, headers=operator).status_code == 201
    assert form(api, operator, "/admin/webapps/youth_union/versions/2/review",
                {"decision": "approve"}).status_code == 303
    assert form(api, operator, "/admin/webapps/youth_union/versions/2/publish",
                {"rollout_percent": "100"}).status_code == 303
    tiles = api.get("/api/miniapps", headers=resident_a).json()["miniapps"]
    assert "youth_union" in [t["id"] for t in tiles]
    # The rollout only grows: asking for less is refused with the reason.
    narrowed = form(api, operator, "/admin/webapps/youth_union/rollout", {"rollout_percent": "50"}, lang="en")
    assert narrowed.status_code == 422 and "only grows" in narrowed.text
    # A third version published, then rolled back to the second from the page.
    assert api.post("/api/webapps/youth_union/versions", json=body, headers=operator).status_code == 201
    for step in ("review", "publish"):
        data = {"decision": "approve"} if step == "review" else {"rollout_percent": "100"}
        assert form(api, operator, f"/admin/webapps/youth_union/versions/3/{step}", data).status_code == 303
    page = api.get("/admin/webapps/youth_union?lang=en", headers=operator).text
    assert 'data-testid="rollback-form"' in page and '<option value="2">2</option>' in page
    assert form(api, operator, "/admin/webapps/youth_union/rollback", {"version": "2"}).status_code == 303
    assert api.get("/api/webapps/youth_union", headers=operator).json()["live_version"] == 2
    bad = form(api, operator, "/admin/webapps/youth_union/rollback", {"version": "1"}, lang="en")
    assert bad.status_code == 422 and "last five published" in bad.text
    assert actions(api) == [
        "webapp_registered", "webapp_version_submitted", "webapp_version_rejected", "webapp_version_submitted",
        "webapp_version_approved", "webapp_version_published", "webapp_version_submitted", "webapp_version_approved",
        "webapp_version_published", "webapp_rolled_back"]


def test_review_pages_refuse_other_sites_and_other_people(api, operator, resident_a, commune_px):
    assert api.post("/api/webapps", json=registration(), headers=operator).status_code == 201
    # A form posted from another site with the operator's cookie: refused before anything changes.
    api.cookies.set("superapp_session", operator.access_token)
    forged = api.post("/admin/webapps/youth_union/versions/1/review", data={"decision": "approve"},
                      headers={"Origin": "https://evil.example"}, follow_redirects=False)
    api.cookies.clear()
    assert forged.status_code == 403
    assert api.get("/api/webapps/youth_union", headers=operator).json()["versions"][0]["status"] == "submitted"
    for who in (resident_a, commune_px):
        assert api.get("/admin/webapps", headers=who).status_code == 403
        assert api.post("/admin/webapps/youth_union/versions/1/review", data={"decision": "approve"},
                        headers=who).status_code == 403
    assert api.get("/admin/webapps", follow_redirects=False).status_code == 303
    assert "webapp_version_approved" not in actions(api)
