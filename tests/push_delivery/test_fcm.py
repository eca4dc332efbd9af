"""The FCM sender through the real firebase-admin SDK against the loopback fake FCM."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import firebase_admin
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import messaging

from config import SettingsError
from core.feed.models import Severity
from plugins.fakes.firebase import FakeFcm, Http2Fcm, delete_test_app, initialize_test_app
from push.fcm import ALERT_LOC_KEY, FcmSender, LogSender, check_topic, retry_after_seconds, sender_from_settings
from tests.conftest import base_settings


async def test_tokens_go_in_batches_of_at_most_500(fast_sender: FcmSender, fast_fcm: Http2Fcm,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """1,200 tokens: three send_each_async calls (500, 500, 200), one request per token (over HTTP/2)."""
    batches: list[int] = []
    real = messaging.send_each_async

    async def spy(messages, dry_run=False, app=None):
        batches.append(len(messages))
        return await real(messages, dry_run=dry_run, app=app)

    monkeypatch.setattr(messaging, "send_each_async", spy)
    tokens = [f"tok-{i:04d}" for i in range(1200)]
    results = await fast_sender.send_to_tokens(tokens, notification_id=7, severity=Severity.info)

    assert batches == [500, 500, 200]
    assert [r.token for r in results] == tokens and all(r.ok for r in results)
    assert fast_fcm.stats()["requests"] == 1200
    assert fast_fcm.accepted_per_token() == {token: 1 for token in tokens}


async def test_message_carries_only_the_notification_id(sender: FcmSender, fcm: FakeFcm) -> None:
    """A data message: the id and the kind, no notification block, no title, body or phone."""
    await sender.send_to_tokens(["tok-1"], notification_id=42, severity=Severity.critical)
    [request] = fcm.requests
    assert request.data == {"notification_id": "42", "kind": "notification"}
    assert request.notification is None
    assert set(request.message) == {"token", "data", "android", "apns", "webpush"}
    wire = json.dumps(request.message, ensure_ascii=False)
    for private in ("title", "body", "Flood", "Cảnh báo", "+84", "phone"):
        assert private not in wire
    # The APNs alert is a fixed localisation key the app fills with what it fetches by id.
    assert request.apns["payload"]["aps"]["alert"] == {"loc-key": ALERT_LOC_KEY}


@pytest.mark.parametrize(("severity", "android_priority", "ttl", "apns_priority", "push_type", "urgency"), [
    (Severity.critical, "high", 3600, "10", "alert", "high"),
    (Severity.warning, "high", 6 * 3600, "10", "alert", "high"),
    (Severity.info, "normal", 24 * 3600, "5", "background", "normal"),
])
async def test_priority_and_ttl_follow_severity(sender: FcmSender, fcm: FakeFcm, severity: Severity,
                                                android_priority: str, ttl: int, apns_priority: str,
                                                push_type: str, urgency: str) -> None:
    """Android priority and TTL, APNs priority, expiration and push type, web push urgency."""
    before = int(time.time())
    await sender.send_to_tokens(["tok-1"], notification_id=1, severity=severity, collapse_key="flood-hue")
    after = int(time.time())
    [request] = fcm.requests
    assert request.android == {"priority": android_priority, "ttl": f"{ttl}s", "collapse_key": "flood-hue"}
    headers = request.apns["headers"]
    assert headers["apns-priority"] == apns_priority
    assert headers["apns-push-type"] == push_type
    assert headers["apns-collapse-id"] == "flood-hue"
    assert before + ttl <= int(headers["apns-expiration"]) <= after + ttl
    aps = request.apns["payload"]["aps"]
    assert aps["content-available"] == 1
    if push_type == "alert":
        assert aps["mutable-content"] == 1 and aps["sound"] == "default"
    else:
        # APNs refuses priority 10 for a background-only push; info goes at priority 5 without alert.
        assert set(aps) == {"content-available"}
    assert request.webpush == {"headers": {"Urgency": urgency, "TTL": str(ttl)}}


async def test_each_token_is_classified(sender: FcmSender, fcm: FakeFcm) -> None:
    """ok, unregistered, sender mismatch, 429 with Retry-After, 500 after the SDK's retries, permanent errors."""
    fcm.script("tok-dead", ["unregistered"])
    fcm.script("tok-foreign", ["sender_id_mismatch"])
    fcm.script("tok-busy", ["quota:2", "ok"])
    fcm.script("tok-broken", ["internal"])
    fcm.script("tok-bad", ["invalid_argument"])
    fcm.script("tok-apns", ["third_party_auth"])
    tokens = ["tok-ok", "tok-dead", "tok-foreign", "tok-busy", "tok-broken", "tok-bad", "tok-apns"]
    results = {r.token: r for r in await sender.send_to_tokens(tokens, notification_id=1, severity="warning")}

    assert {t: r.outcome for t, r in results.items()} == {
        "tok-ok": "ok", "tok-dead": "unregistered", "tok-foreign": "sender_mismatch", "tok-busy": "retry",
        "tok-broken": "retry", "tok-bad": "invalid", "tok-apns": "invalid",
    }
    assert results["tok-busy"].retry_after == 2.0
    assert results["tok-busy"].error.startswith("QuotaExceededError")
    assert results["tok-broken"].retry_after is None
    # The async path does not retry a 429 itself (the outbox does, after Retry-After) ...
    assert len(fcm.requests_for(token="tok-busy")) == 1
    # ... but does retry a 500 four times before reporting it.
    assert len(fcm.requests_for(token="tok-broken")) == 5


async def test_transient_unavailable_is_absorbed_by_the_sdk(sender: FcmSender, fcm: FakeFcm) -> None:
    """503 then ok: the SDK's own retry delivers it, and the sender reports success."""
    fcm.script("tok-flaky", ["unavailable", "ok"])
    [result] = await sender.send_to_tokens(["tok-flaky"], notification_id=1, severity="info")
    assert result.ok
    assert [r.outcome for r in fcm.requests_for(token="tok-flaky")] == ["unavailable", "ok"]


async def test_unavailable_with_retry_after_is_reported(sender: FcmSender, fcm: FakeFcm) -> None:
    """A 503 that outlasts the SDK's retries comes back as retry with FCM's Retry-After."""
    fcm.script("tok-down", ["unavailable:30"])
    [result] = await sender.send_to_tokens(["tok-down"], notification_id=1, severity="info")
    assert (result.outcome, result.retry_after) == ("retry", 30.0)


async def test_topic_message_for_a_unit(sender: FcmSender, fcm: FakeFcm) -> None:
    """An area-wide warning goes to the unit's topic as one data message."""
    result = await sender.send_to_topic("unit_phu-xuan", notification_id=9, severity=Severity.critical)
    assert result.ok and result.token == "unit_phu-xuan"
    [request] = fcm.requests_for(topic="unit_phu-xuan")
    assert request.data == {"notification_id": "9", "kind": "notification"}
    assert request.android["priority"] == "high"
    fcm.script_topic("unit_busy", ["quota:5"])
    busy = await sender.send_to_topic("/topics/unit_busy", notification_id=9, severity=Severity.critical)
    assert (busy.outcome, busy.retry_after) == ("retry", 5.0)
    with pytest.raises(ValueError, match="malformed FCM topic"):
        await sender.send_to_topic("unit phú xuân", notification_id=9, severity="info")
    assert check_topic("/topics/unit_a.b~c%20") == "unit_a.b~c%20"


async def test_topic_subscriptions(sender: FcmSender, fcm: FakeFcm) -> None:
    """subscribe_to_topic_async / unsubscribe_from_topic_async reach the fake; failures are classified."""
    fcm.script_subscription("tok-dead", ["unregistered"])
    fcm.script_subscription("tok-busy", ["quota"])
    results = await sender.subscribe(["tok-1", "tok-2", "tok-dead", "tok-busy"], "unit_kim-long")
    assert [r.outcome for r in results] == ["ok", "ok", "unregistered", "retry"]
    assert fcm.subscriptions["unit_kim-long"] == {"tok-1", "tok-2"}
    assert {(r.api, r.subscribe) for r in fcm.topic_requests} == {("v1", True)}

    results = await sender.unsubscribe(["tok-1"], "unit_kim-long")
    assert [r.outcome for r in results] == ["ok"]
    assert fcm.subscriptions["unit_kim-long"] == {"tok-2"}


async def test_subscriptions_go_1000_at_a_time(fast_sender: FcmSender, fast_fcm: Http2Fcm,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """subscribe_to_topic takes at most 1,000 tokens a call."""
    calls: list[int] = []
    real = messaging.subscribe_to_topic_async

    async def spy(tokens, topic, app=None):
        calls.append(len(tokens))
        return await real(tokens, topic, app=app)

    monkeypatch.setattr(messaging, "subscribe_to_topic_async", spy)
    tokens = [f"tok-{i:04d}" for i in range(1001)]
    results = await fast_sender.subscribe(tokens, "unit_hue")
    assert calls == [1000, 1]
    assert all(r.ok for r in results) and len(fast_fcm.subscriptions["unit_hue"]) == 1001


async def test_log_sender_logs_and_reports_success(caplog: pytest.LogCaptureFixture) -> None:
    """Without an FCM project, pushes are logged (one line a batch) and count as delivered."""
    sender = LogSender()
    with caplog.at_level(logging.INFO, logger="push.fcm"):
        results = await sender.send_to_tokens(["a", "b"], notification_id=3, severity="critical")
        topic = await sender.send_to_topic("unit_hue", notification_id=3, severity="critical")
    assert all(r.ok for r in results) and topic.ok
    assert "push logged (no FCM project configured)" in caplog.text and "'notification_id': 3" in caplog.text
    assert sender.sent[0] == {"notification_id": 3, "kind": "notification", "severity": "critical", "tokens": 2}


def test_retry_after_as_seconds_or_http_date() -> None:
    """Retry-After may be delay-seconds or an HTTP date (RFC 9110)."""

    class Response:
        def __init__(self, value: str) -> None:
            self.headers = {"Retry-After": value}

    class Error(Exception):
        def __init__(self, value: str) -> None:
            self.http_response = Response(value)

    assert retry_after_seconds(Error("7")) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 115 <= retry_after_seconds(Error(later)) <= 120
    assert retry_after_seconds(Error("soon")) is None
    assert retry_after_seconds(ValueError("no response")) is None


def _service_account(path: Path, project_id: str) -> Path:
    """A syntactically valid service account file (its key is never used to reach Google here)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project_id, "private_key_id": "test", "private_key": pem,
        "client_email": f"push@{project_id}.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return path


async def test_sender_from_settings(tmp_path: Path) -> None:
    """FCM needs a project and credentials; otherwise pushes are logged, saying why."""
    assert sender_from_settings(base_settings()).reason == "no FCM project configured"
    only_project = sender_from_settings(base_settings(firebase_project_id="hue-s"))
    assert isinstance(only_project, LogSender) and "SUPERAPP_FIREBASE_CREDENTIALS" in only_project.reason

    account = _service_account(tmp_path / "sa.json", "hue-s")
    sender = sender_from_settings(base_settings(firebase_project_id="hue-s", firebase_credentials=account))
    assert isinstance(sender, FcmSender) and sender.app.project_id == "hue-s"
    name = sender.app.name
    await sender.aclose()  # inside the running loop, where delete_app() alone would fail
    with pytest.raises(ValueError, match="does not exist"):
        firebase_admin.get_app(name)

    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(SettingsError, match="SUPERAPP_FIREBASE_CREDENTIALS"):
        sender_from_settings(base_settings(firebase_project_id="hue-s", firebase_credentials=tmp_path / "broken.json"))


def test_fake_keeps_every_topic_call_on_loopback(fcm: FakeFcm) -> None:
    """The fakes also answer the deprecated IID calls, and restore the SDK's URLs afterwards."""
    app = initialize_test_app()
    try:
        with pytest.warns(DeprecationWarning):
            response = messaging.subscribe_to_topic_legacy(["tok-1", "tok-2"], "unit_hue", app=app)
        assert response.success_count == 2
        assert fcm.subscriptions["unit_hue"] == {"tok-1", "tok-2"}
        assert [(r.api, r.tokens) for r in fcm.topic_requests] == [("iid", ("tok-1", "tok-2"))]
    finally:
        delete_test_app(app)


def test_messaging_urls_are_restored() -> None:
    """Outside the fakes the SDK talks to Google again (nothing patched leaks between tests)."""
    service = messaging._MessagingService  # noqa: SLF001
    assert service.FCM_URL == "https://fcm.googleapis.com/v1/projects/{0}/messages:send"
    assert service.IID_URL == "https://iid.googleapis.com"
    assert service.__init__.__module__ == "firebase_admin.messaging"
