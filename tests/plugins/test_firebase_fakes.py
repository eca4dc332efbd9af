"""The Firebase fakes driven through the real firebase-admin SDK: ID-token checks and FCM v1 sends."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import firebase_admin
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import _token_gen, _user_mgt, auth, exceptions, messaging

from plugins.fakes.firebase import (
    DEFAULT_ACCESS_TOKEN,
    FakeCredential,
    FakeFcm,
    FakeFirebaseAuth,
    adelete_test_app,
    delete_test_app,
    initialize_test_app,
    no_retry_backoff,
    serve_fcm,
    serve_firebase_certs,
)

# Message(token=...) is deprecated in favour of fid since firebase-admin 7.x but still sent as-is;
# the app under test uses registration tokens, so the tests do too.
pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

PHONE = "+84905123456"
GOOGLE_CERT_URI = ("https://www.googleapis.com/robot/v1/metadata/x509/"
                   "securetoken@system.gserviceaccount.com")
GOOGLE_ID_TOOLKIT_URL = "https://identitytoolkit.googleapis.com/v1"
GOOGLE_FCM_URL = "https://fcm.googleapis.com/v1/projects/{0}/messages:send"


def _is_loopback(host: object) -> bool:
    """Whether ``host`` (an address or name) stays on this machine."""
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections and DNS look-ups for any non-loopback host while these tests run."""
    # Stacks on top of a session-wide watchdog if conftest has one; this one also covers DNS, so a
    # stray https://*.googleapis.com URL fails at name resolution instead of leaking a query.
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: object) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"test tried to reach {address[0]!r}")

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        if not _is_loopback(host):
            raise socket.gaierror(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fake_auth() -> Iterator[FakeFirebaseAuth]:
    """A running fake of the securetoken certificates and accounts:lookup."""
    with serve_firebase_certs() as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    """A running fake FCM that insists on the fake credential's access token."""
    with serve_fcm(access_token=DEFAULT_ACCESS_TOKEN) as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
def app(fake_auth: FakeFirebaseAuth, fcm: FakeFcm) -> Iterator[firebase_admin.App]:
    """A firebase-admin app created while both fakes are patched in, deleted afterwards."""
    test_app = initialize_test_app(fake_auth.project_id)
    yield test_app
    # A sync fixture's teardown runs after an async test's loop is closed; delete_test_app copes
    # with the SDK's httpx connections left bound to that loop (see its comments).
    delete_test_app(test_app)


def _jws_header(token: str) -> dict:
    """Decode the (unverified) header of a compact JWS."""
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


# --- Credential -----------------------------------------------------------------------------------


def test_fake_credential_gives_a_static_token_and_project() -> None:
    """The credential hands out its fixed token without any refresh round trip."""
    credential = FakeCredential("hue-project", "static-token")
    token = credential.get_access_token()  # calls refresh() first, which must stay offline
    assert token.access_token == "static-token"
    assert credential.get_credential().valid
    test_app = firebase_admin.initialize_app(credential, name="credential-only-app")
    try:
        assert test_app.project_id == "hue-project"
    finally:
        firebase_admin.delete_app(test_app)


# --- ID tokens ------------------------------------------------------------------------------------


def test_certificates_are_served_like_google(fake_auth: FakeFirebaseAuth) -> None:
    """The loopback endpoint serves {kid: PEM} with a max-age, and tokens name that kid."""
    with urllib.request.urlopen(fake_auth.cert_url, timeout=5) as response:  # noqa: S310
        document = json.load(response)
        cache_control = response.headers["Cache-Control"]
    assert "max-age=" in cache_control
    assert list(document) == [fake_auth.kid]
    certificate = x509.load_pem_x509_certificate(document[fake_auth.kid].encode())
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)
    header = _jws_header(fake_auth.mint("citizen-1", PHONE))
    assert header == {"alg": "RS256", "kid": fake_auth.kid, "typ": "JWT"}


def test_valid_phone_token_is_verified(app: firebase_admin.App,
                                       fake_auth: FakeFirebaseAuth) -> None:
    """A valid token passes the real signature check; uid and phone read back; certs are cached."""
    token = fake_auth.mint("citizen-1", PHONE)
    claims = auth.verify_id_token(token, app=app, check_revoked=False)
    assert claims["uid"] == claims["sub"] == claims["user_id"] == "citizen-1"
    assert claims["phone_number"] == PHONE
    assert claims["firebase"] == {"identities": {"phone": [PHONE]}, "sign_in_provider": "phone"}
    assert claims["iss"] == f"https://securetoken.google.com/{fake_auth.project_id}"
    auth.verify_id_token(token, app=app)
    # The SDK's cachecontrol session honoured max-age: one fetch for two verifications.
    assert fake_auth.cert_fetches == 1


def test_expired_token_is_rejected(app: firebase_admin.App, fake_auth: FakeFirebaseAuth) -> None:
    """An expired token raises ExpiredIdTokenError."""
    token = fake_auth.mint("citizen-1", PHONE, variant="expired")
    with pytest.raises(auth.ExpiredIdTokenError):
        auth.verify_id_token(token, app=app, check_revoked=False)


@pytest.mark.parametrize(("variant", "reason"), [
    ("wrong_audience", '"aud"'),
    ("wrong_issuer", '"iss"'),
    ("unsigned", "incorrect algorithm"),
    ("tampered", "Could not verify token signature"),
    ("unknown_kid", "not found"),
    ("wrong_key", "Could not verify token signature"),
])
def test_defective_tokens_are_rejected(app: firebase_admin.App, fake_auth: FakeFirebaseAuth,
                                       variant: str, reason: str) -> None:
    """Each forged or misdirected token raises InvalidIdTokenError for the expected reason."""
    token = fake_auth.mint("citizen-1", PHONE, variant=variant)
    with pytest.raises(auth.InvalidIdTokenError, match=reason) as raised:
        auth.verify_id_token(token, app=app, check_revoked=False)
    assert not isinstance(raised.value, auth.ExpiredIdTokenError)


def test_revoked_token_is_detected(app: firebase_admin.App, fake_auth: FakeFirebaseAuth) -> None:
    """check_revoked=True looks the user up on the fake and compares iat with validSince."""
    issued = int(time.time()) - 60
    token = fake_auth.mint("citizen-2", PHONE, iat=issued, auth_time=issued)
    assert auth.verify_id_token(token, app=app, check_revoked=True)["uid"] == "citizen-2"

    fake_auth.revoke("citizen-2")
    with pytest.raises(auth.RevokedIdTokenError):
        auth.verify_id_token(token, app=app, check_revoked=True)
    # A token issued after the revocation is accepted again.
    fresh = fake_auth.mint("citizen-2", PHONE)
    assert auth.verify_id_token(fresh, app=app, check_revoked=True)["uid"] == "citizen-2"

    lookup = fake_auth.lookups[0]
    assert lookup.json() == {"localId": ["citizen-2"]}
    assert lookup.headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"


def test_disabled_and_unknown_users(app: firebase_admin.App, fake_auth: FakeFirebaseAuth) -> None:
    """A disabled user raises UserDisabledError; a user the backend lacks, UserNotFoundError."""
    token = fake_auth.mint("citizen-3", PHONE)
    fake_auth.disable("citizen-3")
    with pytest.raises(auth.UserDisabledError):
        auth.verify_id_token(token, app=app, check_revoked=True)
    del fake_auth.users["citizen-3"]
    with pytest.raises(auth.UserNotFoundError):
        auth.verify_id_token(token, app=app, check_revoked=True)


def test_certificate_outage(app: firebase_admin.App, fake_auth: FakeFirebaseAuth) -> None:
    """A failing certificate endpoint surfaces as CertificateFetchError, not as a bad token."""
    fake_auth.fail_cert_fetches = True
    with pytest.raises(auth.CertificateFetchError):
        auth.verify_id_token(fake_auth.mint("citizen-1", PHONE), app=app)


def test_patched_urls_are_restored() -> None:
    """Leaving the contexts puts Google's URLs back, and they are loopback while inside."""
    with serve_firebase_certs() as fake_auth, serve_fcm() as fcm:
        assert _token_gen.ID_TOKEN_CERT_URI == fake_auth.cert_url
        assert _user_mgt.UserManager.ID_TOOLKIT_URL == fake_auth.id_toolkit_url
        assert messaging._MessagingService.FCM_URL == fcm.send_url_template  # noqa: SLF001
        assert fake_auth.base_url.startswith("http://127.0.0.1:")
    assert _token_gen.ID_TOKEN_CERT_URI == GOOGLE_CERT_URI
    assert _user_mgt.UserManager.ID_TOOLKIT_URL == GOOGLE_ID_TOOLKIT_URL
    assert messaging._MessagingService.FCM_URL == GOOGLE_FCM_URL  # noqa: SLF001
    with pytest.raises(RuntimeError, match="not running"):
        fake_auth.base_url  # noqa: B018 - the port is released once the block ends


# --- FCM ------------------------------------------------------------------------------------------


def test_topic_send_is_recorded(app: firebase_admin.App, fcm: FakeFcm) -> None:
    """messaging.send to a topic returns a message name and the fake records the wire message."""
    message = messaging.Message(
        topic="/topics/hue-news",
        data={"kind": "news", "id": "42"},
        notification=messaging.Notification(title="Huế", body="Lễ hội"),
        android=messaging.AndroidConfig(priority="high", ttl=60),
        apns=messaging.APNSConfig(headers={"apns-priority": "10"}),
    )
    name = messaging.send(message, app=app)
    assert name.startswith(f"projects/{app.project_id}/messages/")

    [received] = fcm.requests_for(topic="hue-news")
    assert received.name == name
    assert received.project == app.project_id
    assert received.data == {"kind": "news", "id": "42"}
    assert received.notification == {"title": "Huế", "body": "Lễ hội"}
    assert received.android == {"priority": "high", "ttl": "60s"}
    assert received.apns == {"headers": {"apns-priority": "10"}}
    assert received.authorization == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert received.headers["x-goog-api-format-version"] == "2"
    assert not received.validate_only
    assert fcm.delivered() == [received]


def test_dry_run_is_validate_only(app: firebase_admin.App, fcm: FakeFcm) -> None:
    """dry_run=True posts validate_only and gets FCM's placeholder id; nothing is delivered."""
    name = messaging.send(messaging.Message(token="tok-1"), dry_run=True, app=app)
    assert name == f"projects/{app.project_id}/messages/fake_message_id"
    assert fcm.requests[0].validate_only
    assert fcm.delivered() == []


async def test_send_each_async_maps_errors_per_token(app: firebase_admin.App,
                                                     fcm: FakeFcm) -> None:
    """A batch with ok, unregistered and quota-then-ok tokens yields the right per-item results."""
    fcm.script("tok-dead", ["unregistered"])
    fcm.script("tok-wrong-sender", ["sender_id_mismatch"])
    fcm.script("tok-busy", ["quota:1", "ok"])
    tokens = ["tok-ok", "tok-dead", "tok-wrong-sender", "tok-busy"]
    batch = await messaging.send_each_async(
        [messaging.Message(token=t, data={"n": "1"}) for t in tokens], app=app)

    ok, dead, wrong_sender, busy = batch.responses
    assert ok.success and ok.message_id.startswith(f"projects/{app.project_id}/messages/")
    assert isinstance(dead.exception, messaging.UnregisteredError)
    assert isinstance(wrong_sender.exception, messaging.SenderIdMismatchError)
    assert isinstance(busy.exception, messaging.QuotaExceededError)
    # The async path does not retry 429s: Retry-After is left to the caller, via the response.
    assert busy.exception.http_response.headers["Retry-After"] == "1"
    assert len(fcm.requests_for(token="tok-busy")) == 1
    assert (batch.success_count, batch.failure_count) == (1, 3)
    # httpx is created with http2=True, but HTTP/2 needs TLS ALPN; on plain http it speaks 1.1.
    assert {r.http_version for r in fcm.requests} == {"HTTP/1.1"}

    retry = await messaging.send_each_async([messaging.Message(token="tok-busy")], app=app)
    assert retry.responses[0].success
    assert [r.outcome for r in fcm.requests_for(token="tok-busy")] == ["quota", "ok"]


def test_send_each_sync_honours_retry_after(app: firebase_admin.App, fcm: FakeFcm) -> None:
    """The sync path's urllib3 Retry sleeps for Retry-After on a 429 and retries by itself."""
    fcm.script("tok-dead", ["unregistered"])
    fcm.script("tok-busy", ["quota:1", "ok"])
    started = time.monotonic()
    batch = messaging.send_each(
        [messaging.Message(token=t) for t in ("tok-ok", "tok-dead", "tok-busy")], app=app)
    elapsed = time.monotonic() - started

    ok, dead, busy = batch.responses
    assert ok.success
    assert isinstance(dead.exception, messaging.UnregisteredError)
    assert busy.success  # unlike send_each_async, where the same script gives QuotaExceededError
    assert [r.status for r in fcm.requests_for(token="tok-busy")] == [429, 200]
    assert elapsed >= 0.9


async def test_unavailable_is_retried_then_raised(fake_auth: FakeFirebaseAuth,
                                                 fcm: FakeFcm) -> None:
    """503s are retried four times on both paths; a transient one is absorbed by the SDK."""
    fcm.script("tok-flaky", ["unavailable", "ok"])
    fcm.script("tok-down", ["unavailable"])
    fcm.script_topic("down-topic", ["unavailable"])
    # The SDK's httpx retry leaves each retried response's connection open on this loop, so this
    # app is deleted inside the loop rather than by the sync ``app`` fixture after it closes.
    test_app = initialize_test_app(fake_auth.project_id)
    try:
        with no_retry_backoff():
            batch = await messaging.send_each_async(
                [messaging.Message(token="tok-flaky"), messaging.Message(token="tok-down")],
                app=test_app)
            with pytest.raises(exceptions.UnavailableError):
                messaging.send(messaging.Message(topic="down-topic"), app=test_app)
    finally:
        await adelete_test_app(test_app)

    flaky, down = batch.responses
    assert flaky.success
    assert isinstance(down.exception, exceptions.UnavailableError)
    assert len(fcm.requests_for(token="tok-flaky")) == 2
    assert len(fcm.requests_for(token="tok-down")) == 5  # 1 + 4 retries (httpx path)
    assert len(fcm.requests_for(topic="down-topic")) == 5  # 1 + 4 retries (requests path)


def test_fid_and_other_error_codes(app: firebase_admin.App, fcm: FakeFcm) -> None:
    """fid targets are scriptable too; FCM codes without a messaging class map by HTTP status."""
    fcm.script_target("fid", "fid-1", ["third_party_auth"])
    fcm.script("tok-bad", ["invalid_argument"])
    batch = messaging.send_each(
        [messaging.Message(fid="fid-1"), messaging.Message(token="tok-bad")], app=app)
    third_party, invalid = batch.responses
    assert isinstance(third_party.exception, messaging.ThirdPartyAuthError)
    # A 401 makes the SDK refresh the credential and retry, so the fid was tried more than once.
    assert len(fcm.requests_for(fid="fid-1")) > 1
    assert isinstance(invalid.exception, exceptions.InvalidArgumentError)


def test_wrong_access_token_is_unauthenticated(fake_auth: FakeFirebaseAuth) -> None:
    """The fake enforces the bearer token; the SDK retries after a (no-op) refresh, then fails."""
    with serve_fcm(access_token="another-token") as strict_fcm:
        test_app = initialize_test_app(fake_auth.project_id)
        try:
            with pytest.raises(exceptions.UnauthenticatedError):
                messaging.send(messaging.Message(token="tok-1"), app=test_app)
            credential = test_app.credential.get_credential()
            assert credential.refreshes >= 1  # refreshed offline, never via oauth2.googleapis.com
            assert {r.outcome for r in strict_fcm.requests} == {"unauthenticated"}
        finally:
            firebase_admin.delete_app(test_app)


async def test_app_deleted_inside_the_event_loop(fcm: FakeFcm) -> None:
    """adelete_test_app works where firebase_admin.delete_app would hit asyncio.run()'s guard."""
    test_app = initialize_test_app()
    try:
        batch = await messaging.send_each_async([messaging.Message(token="tok-1")], app=test_app)
        assert batch.success_count == 1
    finally:
        await adelete_test_app(test_app)
    with pytest.raises(ValueError, match="does not exist"):
        firebase_admin.get_app(test_app.name)


def test_scripts_are_validated(fcm: FakeFcm) -> None:
    """Unknown outcomes, misplaced Retry-After and empty scripts fail when scripted."""
    for bad in (["bogus"], ["ok:3"], []):
        with pytest.raises(ValueError):
            fcm.script("tok-1", bad)
