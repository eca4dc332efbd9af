"""A resident's own account through the API, on SQLite and PostgreSQL: the web sign-in's cookie, WebView
launch codes, download my data and delete my account (core/identity/resident.py)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.app import create_app
from core.identity.models import AuditEvent, AuthSession, RefreshToken, User, utcnow
from miniapps.feedback import service as feedback
from miniapps.feedback.models import FeedbackReport as Report
from tests.conftest import base_settings
from tests.core.identity.conftest import Persona
from tests.miniapps.feedback.conftest import file_report

ORIGIN = {"Origin": "http://testserver"}  # the host's own pages (TestClient's base URL)


def _audited(api: TestClient, action: str) -> list[AuditEvent]:
    with Session(api.app.state.engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# --- Web sign-in: the cookie, never a token in script ----------------------------------------------------------


def test_dev_code_web_sign_in_sets_the_cookie_from_our_own_pages_only(api: TestClient, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="core.identity.routes")
    assert api.post("/api/auth/dev/code", json={"phone": "0905 300 400"}).status_code == 202
    code = re.findall(r"code for \+84905300400: (\d{6})", caplog.text)[-1]
    body = {"phone": "0905300400", "code": code, "web": True}
    # another site's page cannot sign this browser in (the code is not spent by the refusal)
    assert api.post("/api/auth/dev/verify", json=body, headers={"Origin": "https://evil.example"}).status_code == 403
    signed_in = api.post("/api/auth/dev/verify", json=body, headers=ORIGIN)
    assert signed_in.status_code == 204 and signed_in.content == b""  # no token for scripts to read
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith("superapp_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert api.get("/api/me").json()["phone"] == "+84905300400"  # the cookie is the session


def test_firebase_web_sign_in_sets_the_cookie(database_url: str, tmp_path: Path) -> None:
    from plugins.fakes.firebase import serve_firebase_certs

    with serve_firebase_certs() as fake:
        settings = base_settings(database_url=database_url, env="dev", firebase_project_id=fake.project_id,
                                 firebase_web_api_key="AIza-test-key", var_dir=tmp_path / "var")
        with TestClient(create_app(settings)) as client:
            token = fake.mint("fb-web-1", "+84935000011")
            page = client.get("/auth/phone?lang=en")
            assert page.status_code == 200 and "firebase-auth-compat.js" in page.text
            # the page's own policy lets Firebase's SDK and reCAPTCHA in, and only on this page
            assert "https://www.gstatic.com" in page.headers["content-security-policy"]
            assert "gstatic" not in client.get("/").headers.get("content-security-policy", "")
            assert client.post("/api/auth/firebase", json={"id_token": token, "web": True}).status_code == 403
            done = client.post("/api/auth/firebase", json={"id_token": token, "web": True}, headers=ORIGIN)
            assert done.status_code == 204 and "superapp_session=" in done.headers["set-cookie"]
            assert client.get("/api/me").json()["phone"] == "+84935000011"


# --- Launch codes: the app hands its session to a WebView ------------------------------------------------------


def test_a_launch_code_opens_a_cookie_session_once(api: TestClient, resident_a: Persona) -> None:
    issued = api.post("/api/auth/launch-code", headers=resident_a)
    assert issued.status_code == 201 and issued.json()["expires_in"] == 60
    code = issued.json()["code"]
    with Session(api.app.state.engine) as db:
        # stored as a hash, in a session of its own
        stored = db.exec(select(RefreshToken, AuthSession).join(AuthSession, AuthSession.id == RefreshToken.session_id)
                         .where(AuthSession.sign_in_method == "launch_code")).all()
        assert len(stored) == 1 and stored[0][0].token_hash != code and stored[0][1].user_id == resident_a.user_id
    webview = TestClient(api.app)
    opened = webview.post("/auth/launch", data={"code": code, "next": "/m/festival/"}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/m/festival/"
    assert opened.headers["referrer-policy"] == "no-referrer" and opened.headers["cache-control"] == "no-store"
    assert webview.get("/api/me").json()["id"] == resident_a.user_id  # by the cookie alone
    with Session(api.app.state.engine) as db:  # the code was the session's one and only refresh token
        [only] = db.exec(select(RefreshToken).where(RefreshToken.session_id == stored[0][1].id)).all()
        assert only.used_at is not None
    # once only, and never as a refresh token for bearer tokens
    again = TestClient(api.app).post("/auth/launch", data={"code": code}, follow_redirects=False)
    assert again.status_code == 401 and "superapp_session" not in again.headers.get("set-cookie", "")
    assert api.post("/api/auth/refresh", json={"refresh_token": code}).status_code == 401
    # a next address on another site is not followed
    other = api.post("/api/auth/launch-code", headers=resident_a).json()["code"]
    elsewhere = TestClient(api.app).get(f"/auth/launch?code={other}&next=//evil.example/", follow_redirects=False)
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/"
    assert [e.subject_id for e in _audited(api, "launch_code_used")] == [resident_a.user_id] * 2
    # the profile lists the two WebView sessions that were opened, not a code nobody exchanged
    api.post("/api/auth/launch-code", headers=resident_a)
    profile = api.get("/me?lang=en", headers=resident_a)
    assert profile.text.count("Page opened from the app") == 2


def test_an_expired_launch_code_opens_nothing(api: TestClient, resident_a: Persona) -> None:
    code = api.post("/api/auth/launch-code", headers=resident_a).json()["code"]
    with Session(api.app.state.engine) as db:
        for row in db.exec(select(RefreshToken)):
            row.expires_at = utcnow() - timedelta(seconds=1)
            db.add(row)
        db.commit()
    late = TestClient(api.app).post("/auth/launch", data={"code": code}, follow_redirects=False)
    assert late.status_code == 401 and "superapp_session" not in late.headers.get("set-cookie", "")


# --- My data ----------------------------------------------------------------------------------------------------


def test_download_my_data_holds_my_reports_and_no_secrets(api: TestClient, resident_a: Persona,
                                                          resident_b: Persona) -> None:
    with Session(api.app.state.engine) as db:
        feedback.load_categories(db)
    mine = file_report(api, resident_a, description="Cây đổ trên đường Lê Lợi")
    theirs = file_report(api, resident_b, description="Đèn đường hỏng")
    assert mine.status_code == 201 and theirs.status_code == 201, (mine.text, theirs.text)
    api.put("/api/me/follows/kim-long", headers=resident_a)
    data = api.get("/api/me/data", headers=resident_a)
    assert data.status_code == 200 and data.headers["content-disposition"].startswith("attachment;")
    body = data.json()
    assert body["account"]["id"] == resident_a.user_id and body["account"]["home_unit_id"] == "phu-xuan"
    reports = body["records"]["feedback_report"]
    assert [r["description"] for r in reports] == ["Cây đổ trên đường Lê Lợi"]  # a mini-app's rows, mine only
    assert "token" not in reports[0]  # the report's Open311 token stays out
    assert body["records"]["unit_follow"] == [{"user_id": resident_a.user_id, "unit_id": "kim-long",
                                               "created_at": body["records"]["unit_follow"][0]["created_at"]}]
    text = data.text
    assert "password_hash" not in text and "token_hash" not in text and "code_hash" not in text
    [event] = _audited(api, "personal_data_exported")
    assert event.subject_id == resident_a.user_id and "feedback_report" in event.details["tables"]


# --- Delete my account ------------------------------------------------------------------------------------------


def test_deleting_my_account_keeps_my_reports_without_me(api: TestClient, resident_a: Persona,
                                                         commune_px: Persona) -> None:
    with Session(api.app.state.engine) as db:
        feedback.load_categories(db)
    filed = file_report(api, resident_a, description="Rác thải ven sông")
    assert filed.status_code == 201, filed.text
    assert api.delete("/api/me", headers=commune_px).status_code == 403  # officials are closed by an admin
    gone = api.delete("/api/me", headers=resident_a)
    assert gone.status_code == 204
    assert api.get("/api/me", headers=resident_a).status_code == 401  # the session died with the account
    with Session(api.app.state.engine) as db:
        assert db.get(User, resident_a.user_id) is None
        reports = list(db.exec(select(Report)))
        assert len(reports) == 1 and reports[0].description == "Rác thải ven sông" and reports[0].reporter_id is None
        assert not list(db.exec(select(AuthSession).where(AuthSession.user_id == resident_a.user_id)))
    [deleted] = _audited(api, "account_deleted")
    assert deleted.details["user_id"] == resident_a.user_id
    assert deleted.details["kept"]["feedback_report"] == 1  # and the report's history (feedback_event)
    assert deleted.subject_id is None and deleted.address is None  # recorded without the person
