"""Loopback fakes of Firebase Auth (ID-token certificates, accounts:lookup) and FCM HTTP v1.

The real firebase-admin SDK runs end to end against these fakes: only the base URLs it reads when a
service is first created for an app are pointed at servers bound to 127.0.0.1, so everything else
(JWT checks, google-auth signature verification, cache-control, retries, error mapping) is the
production code path.

Typical use::

    with serve_firebase_certs() as fake_auth, serve_fcm() as fcm:
        app = initialize_test_app(fake_auth.project_id)
        try:
            claims = auth.verify_id_token(fake_auth.mint("u1", "+84900000001"), app=app)
            fcm.script("dead-token", ["unregistered"])
            messaging.send_each([...], app=app)
        finally:
            delete_test_app(app)  # ``await adelete_test_app(app)`` inside an event loop

The SDK reads the patched URLs when it builds an app's auth client or messaging service (on the
first ``auth.*`` / ``messaging.*`` call for that app), so use the app inside the ``with`` block.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import itertools
import json
import os
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import firebase_admin
import google.auth.credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from firebase_admin import _http_client, _token_gen, _user_mgt, credentials, messaging

DEFAULT_PROJECT_ID = "superapp-test"
DEFAULT_ACCESS_TOKEN = "fake-oauth2-access-token"
# Short, so a fake that misbehaves fails a test quickly instead of stalling it for the SDK's 120 s.
DEFAULT_HTTP_TIMEOUT_SECONDS = 10

CERTS_PATH = "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
# Google answers with roughly this shape of header; the SDK's cachecontrol session relies on it.
CERTS_CACHE_CONTROL = "public, max-age=3600, must-revalidate, no-transform"
ID_TOKEN_ISSUER_PREFIX = "https://securetoken.google.com/"
ID_TOKEN_LIFETIME_SECONDS = 3600

TOKEN_VARIANTS = (
    "valid", "expired", "wrong_audience", "wrong_issuer", "unsigned", "tampered", "unknown_kid",
    "wrong_key",
)


# --- Patching --------------------------------------------------------------------------------------


@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    """Set ``owner.name`` to ``value`` for the block, restoring the original afterwards."""
    # getattr without a default: if the SDK renames the attribute we must fail loudly, not patch a
    # new attribute nobody reads and silently send traffic to Google.
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def no_retry_backoff() -> Iterator[None]:
    """Zero the SDK's exponential backoff between 500/503 retries, so exhausting them is instant."""
    # Both objects are module-level defaults shared by reference: requests' HTTPAdapter keeps the
    # urllib3 Retry and copies it per request, HttpxRetryTransport deep-copies the HttpxRetry per
    # request. Mutating them in place therefore also affects clients created earlier.
    with _patched(_http_client.DEFAULT_RETRY_CONFIG, "backoff_factor", 0), \
            _patched(_http_client.DEFAULT_HTTPX_RETRY_CONFIG, "backoff_factor", 0):
        yield


# --- Loopback HTTP plumbing -----------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as received by a loopback fake."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    http_version: str

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body or b"null")


@dataclass
class HttpResponse:
    """What a loopback fake answers: a status, a JSON-able (or bytes) body and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def google_error(code: int, status: str, message: str,
                 details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build a body in the error format shared by Google REST APIs (google.rpc.Status)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _unauthenticated() -> HttpResponse:
    """The 401 Google APIs return for a missing or bad OAuth2 bearer token."""
    return HttpResponse(
        401,
        google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                     "Expected OAuth 2 access token, login cookie or other valid authentication "
                     "credential."),
        {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def _bearer_rejected(request: HttpRequest, expected: str | None) -> HttpResponse | None:
    """Return a 401 unless the request carries a bearer token (``expected`` one, if given)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token or (expected is not None and token != expected):
        return _unauthenticated()
    return None


class _Handler(BaseHTTPRequestHandler):
    """Turns raw HTTP into ``HttpRequest`` for the owning server's route and writes its answer."""

    # Speak HTTP/1.1 like Google's front ends (each response still closes its connection).
    protocol_version = "HTTP/1.1"
    server: _LoopbackServer

    def _read_body(self) -> bytes:
        """Read the request body, whether sized by Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()  # CRLF closing the chunk (or the trailer section)
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        """Hand the request to the fake's route and write the answer, closing the connection."""
        parts = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
            http_version=self.request_version,
        )
        try:
            response = self.server.route(request)
        except Exception as exc:  # a bug in a fake must surface as a 500 and a record, not a hang
            self.server.errors.append(exc)
            response = HttpResponse(500, google_error(500, "INTERNAL", f"fake crashed: {exc!r}"))
        body = response.body
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        # No keep-alive. firebase-admin closes its httpx client at delete_app() with asyncio.run()
        # on a new loop; an idle pooled socket opened by send_each_async on the test's (by then
        # closed) loop would make that fail with "Event loop is closed". Closing after each
        # response also leaves no sockets in the SDK's never-closed requests sessions.
        self.send_header("Connection", "close")
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-request (a killed delivery worker): the request was still
            # received and recorded, exactly as FCM would have accepted it.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: pytest output is for assertions, not access logs."""


class _Server:
    """A fake's HTTP server: bound only between start() and stop(), so idle fakes hold no port."""

    def __init__(self, route: Any) -> None:
        self._route = route
        self._http: _LoopbackServer | None = None
        self.errors: list[BaseException] = []

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` while running."""
        if self._http is None:
            raise RuntimeError("the fake is not running; use it via serve_*() or call start()")
        return self._http.base_url

    def start(self) -> None:
        """Bind an ephemeral loopback port and serve in the background."""
        if self._http is not None:
            raise RuntimeError("the fake is already running")
        self._http = _LoopbackServer(self._route, self.errors)
        self._http.start()

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._http is not None:
            self._http.stop()
            self._http = None


class _LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port, run in a daemon thread."""

    # Daemon handler threads: a client stalled mid-request must not block interpreter exit.
    daemon_threads = True
    # The SDK opens up to 100 connections at once (httpx's pool); the stdlib's backlog of 5 would
    # drop SYNs under such a burst and stall the client for a one-second SYN retry.
    request_queue_size = 256

    def __init__(self, route: Any, errors: list[BaseException]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route
        self.errors = errors
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"loopback-fake-{self.server_address[1]}")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of this server."""
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Begin serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


# --- Credentials and apps -------------------------------------------------------------------------


class StaticAccessTokenCredentials(google.auth.credentials.Credentials):
    """google-auth credentials holding a fixed access token that never expires."""

    def __init__(self, token: str = DEFAULT_ACCESS_TOKEN) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # google-auth's Credentials.__init__ is unannotated
        # expiry stays None, which google-auth treats as "always fresh": before_request() just
        # applies the header and never calls refresh() on its own.
        self.token = token
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        """Count the call and keep the same token; there is no token endpoint to ask."""
        # The SDK still calls this after a 401 (AuthorizedSession / GoogleAuthCredentialFlow retry
        # with a refreshed token); going to oauth2.googleapis.com is exactly what we must not do.
        self.refreshes += 1


class FakeCredential(credentials.Base):  # type: ignore[misc]  # firebase-admin ships no type information
    """A firebase-admin credential with a static access token and a project id, needing no network."""

    def __init__(
            self, project_id: str = DEFAULT_PROJECT_ID, access_token: str = DEFAULT_ACCESS_TOKEN
    ) -> None:
        super().__init__()
        self._project_id = project_id
        self._google_credential = StaticAccessTokenCredentials(access_token)

    @property
    def project_id(self) -> str:
        """Project id, read by ``App.project_id`` when the app options do not set one."""
        return self._project_id

    def get_credential(self) -> StaticAccessTokenCredentials:
        """Return the google-auth credentials the SDK authorises its HTTP sessions with."""
        return self._google_credential


def initialize_test_app(
        project_id: str = DEFAULT_PROJECT_ID,
        *,
        name: str | None = None,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        options: dict[str, Any] | None = None,
) -> firebase_admin.App:
    """Initialise a uniquely named firebase-admin app on a ``FakeCredential``."""
    app_options = {"projectId": project_id, "httpTimeout": DEFAULT_HTTP_TIMEOUT_SECONDS}
    app_options.update(options or {})
    return firebase_admin.initialize_app(
        FakeCredential(project_id, access_token), app_options,
        name=name or f"test-{uuid.uuid4().hex}")


def _messaging_service(app: firebase_admin.App) -> Any:
    """The app's messaging service if one was created, else None (creating one would be waste)."""
    services = getattr(app, "_services", None) or {}
    return services.get(messaging._MESSAGING_ATTRIBUTE)  # noqa: SLF001 - no public accessor


class _DetachedAsyncClient:
    """Stands in for a messaging service's httpx client that must not be closed on a new loop."""

    async def aclose(self) -> None:
        """Nothing to close."""


def delete_test_app(app: firebase_admin.App) -> None:
    """Delete ``app`` from synchronous code, even after async sends on a now-closed loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop running in this thread: the usual case
    else:
        # A loop runs here (Playwright's sync API keeps one in the main thread): delete_app() calls
        # asyncio.run(), which refuses to nest, so do the deletion on a thread of its own.
        worker = threading.Thread(target=delete_test_app, args=(app,))
        worker.start()
        worker.join()
        return
    service = _messaging_service(app)
    if service is not None:
        # delete_app() -> _MessagingService.close() runs asyncio.run(httpx_client.aclose()) on a
        # new loop. The fakes close every connection after its response, but the SDK's
        # HttpxRetryTransport never reads or closes a response it retries (503/500), so such a
        # connection stays in the pool bound to the loop that opened it, and aclose() then fails
        # with "Event loop is closed". Detach the client instead; its sockets are closed when it is
        # garbage-collected. Use adelete_test_app() inside the loop to close them properly.
        service._async_client = _DetachedAsyncClient()  # noqa: SLF001 - no public accessor
    firebase_admin.delete_app(app)


async def adelete_test_app(app: firebase_admin.App) -> None:
    """Delete ``app`` from inside a running event loop (async tests and fixtures)."""
    service = _messaging_service(app)
    if service is not None:
        # Close the httpx client on the loop that owns its connections (see delete_test_app).
        await service._async_client.aclose()  # noqa: SLF001 - no public accessor
    # delete_app() -> _MessagingService.close() calls asyncio.run(), which refuses to run inside a
    # running loop; a worker thread gets a fresh one, and aclose() of a closed client is a no-op.
    await asyncio.to_thread(firebase_admin.delete_app, app)


# --- Firebase Auth: ID tokens, certificates, accounts:lookup --------------------------------------


@dataclass(frozen=True)
class _SigningKey:
    """An RSA key and the self-signed certificate that publishes its public half."""

    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str


def _new_signing_key() -> _SigningKey:
    """Generate an RSA-2048 key with a self-signed X.509 certificate, like securetoken's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         "securetoken.system.gserviceaccount.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    # Google's kids are 40 hex digits; a certificate fingerprint has that shape and is unique.
    kid = certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - an identifier, not security
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return _SigningKey(kid=kid, private_key=key, certificate_pem=pem)


def _b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(value: Any) -> str:
    """Compact JSON, base64url-encoded: one JWS segment."""
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _sign(key: _SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Return a compact RS256 JWS of ``claims`` signed with ``key``."""
    signing_input = f"{_b64json(header)}.{_b64json(claims)}"
    signature = key.private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                     hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


@dataclass
class FakeUser:
    """A user record as the fake Identity Toolkit returns it from accounts:lookup."""

    uid: str
    phone_number: str | None = None
    disabled: bool = False
    # Seconds since the epoch; ID tokens with an earlier ``iat`` count as revoked.
    valid_since: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))

    def to_json(self) -> dict[str, Any]:
        """Serialise in the Identity Toolkit v1 ``UserInfo`` shape (timestamps as strings)."""
        record: dict[str, Any] = {
            "localId": self.uid,
            "disabled": self.disabled,
            "validSince": str(self.valid_since),
            "createdAt": str(self.created_at * 1000),
            "lastLoginAt": str(self.created_at * 1000),
            "providerUserInfo": [],
        }
        if self.phone_number:
            record["phoneNumber"] = self.phone_number
            record["providerUserInfo"] = [{
                "providerId": "phone", "rawId": self.phone_number,
                "phoneNumber": self.phone_number,
            }]
        return record


class FakeFirebaseAuth:
    """Loopback stand-in for Google's ID-token certificate endpoint and Identity Toolkit lookups."""

    def __init__(self, project_id: str = DEFAULT_PROJECT_ID, *,
                 access_token: str | None = None) -> None:
        self.project_id = project_id
        # None accepts any bearer token on accounts:lookup; a string must match exactly.
        self.access_token = access_token
        self.users: dict[str, FakeUser] = {}
        self.cert_fetches = 0
        self.lookups: list[HttpRequest] = []
        # Set to make the certificate endpoint answer 503 (the SDK raises CertificateFetchError).
        self.fail_cert_fetches = False
        self._key = _new_signing_key()
        self._stranger: _SigningKey | None = None
        self._lock = threading.Lock()
        self._server = _Server(self._route)

    # -- addresses

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the fake."""
        return self._server.base_url

    def start(self) -> None:
        """Start serving on an ephemeral loopback port (without patching the SDK)."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.stop()

    @property
    def cert_url(self) -> str:
        """Loopback replacement for the securetoken x509 metadata URL."""
        return self.base_url + CERTS_PATH

    @property
    def id_toolkit_url(self) -> str:
        """Loopback replacement for ``https://identitytoolkit.googleapis.com/v1``."""
        return self.base_url + "/v1"

    @property
    def kid(self) -> str:
        """Key id of the certificate the fake serves and signs valid tokens with."""
        return self._key.kid

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the fake's request handling (should stay empty)."""
        return self._server.errors

    def certificates(self) -> dict[str, str]:
        """The certificate document, ``{kid: PEM certificate}``, exactly as served."""
        return {self._key.kid: self._key.certificate_pem}

    # -- tokens

    def claims(self, uid: str, phone: str, *, issued_at: int | None = None) -> dict[str, Any]:
        """The claims Firebase Auth puts in an ID token after a phone-number sign-in."""
        iat = int(time.time()) if issued_at is None else int(issued_at)
        return {
            "iss": ID_TOKEN_ISSUER_PREFIX + self.project_id,
            "aud": self.project_id,
            "auth_time": iat,
            "user_id": uid,
            "sub": uid,
            "iat": iat,
            "exp": iat + ID_TOKEN_LIFETIME_SECONDS,
            "phone_number": phone,
            "firebase": {"identities": {"phone": [phone]}, "sign_in_provider": "phone"},
        }

    def mint(self, uid: str, phone: str, *, variant: str = "valid", **overrides: Any) -> str:
        """Mint an ID token for ``uid``/``phone``; ``variant`` picks a defect, ``overrides`` set claims.

        Variants: ``valid``; ``expired`` (issued two hours ago); ``wrong_audience`` and
        ``wrong_issuer`` (another project's); ``unsigned`` (``alg: none``, empty signature);
        ``tampered`` (validly signed, then ``exp`` pushed a day later without re-signing);
        ``unknown_kid`` (signed by a key whose certificate is not served); ``wrong_key`` (signed
        by a stranger's key but claiming the served kid). An override of ``None`` removes a claim.
        The user is also registered for accounts:lookup if unknown.
        """
        if variant not in TOKEN_VARIANTS:
            raise ValueError(f"unknown token variant {variant!r}; choose from {TOKEN_VARIANTS}")
        issued_at = None
        if variant == "expired":
            issued_at = int(time.time()) - 2 * ID_TOKEN_LIFETIME_SECONDS
        claims = self.claims(uid, phone, issued_at=issued_at)
        if variant == "wrong_audience":
            claims["aud"] = f"{self.project_id}-elsewhere"
        elif variant == "wrong_issuer":
            claims["iss"] = f"{ID_TOKEN_ISSUER_PREFIX}{self.project_id}-elsewhere"
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value

        with self._lock:
            self.users.setdefault(uid, FakeUser(uid=uid, phone_number=phone))

        header = {"alg": "RS256", "kid": self._key.kid, "typ": "JWT"}
        if variant == "unsigned":
            # The kid is kept so the token fails on its algorithm, as a forged copy of a real
            # token would, rather than on the missing-kid check.
            return f"{_b64json({**header, 'alg': 'none'})}.{_b64json(claims)}."
        if variant == "tampered":
            signed = _sign(self._key, header, claims)
            head, _, signature = signed.split(".")
            forged = {**claims, "exp": int(claims.get("exp", time.time())) + 86400}
            return f"{head}.{_b64json(forged)}.{signature}"
        if variant == "unknown_kid":
            stranger = self._stranger_key()
            return _sign(stranger, {**header, "kid": stranger.kid}, claims)
        if variant == "wrong_key":
            return _sign(self._stranger_key(), header, claims)
        return _sign(self._key, header, claims)

    def _stranger_key(self) -> _SigningKey:
        """A second key whose certificate is never served (generated on first use: it is slow)."""
        with self._lock:
            if self._stranger is None:
                self._stranger = _new_signing_key()
            return self._stranger

    # -- users

    def add_user(self, uid: str, phone: str | None = None, *, disabled: bool = False,
                 valid_since: int = 0) -> FakeUser:
        """Create or replace the record accounts:lookup returns for ``uid``."""
        user = FakeUser(uid=uid, phone_number=phone, disabled=disabled, valid_since=valid_since)
        with self._lock:
            self.users[uid] = user
        return user

    def revoke(self, uid: str, at: float | None = None) -> int:
        """Revoke ``uid``'s tokens issued before ``at`` (default now), as revoke_refresh_tokens does."""
        valid_since = int(time.time() if at is None else at)
        with self._lock:
            self.users.setdefault(uid, FakeUser(uid=uid)).valid_since = valid_since
        return valid_since

    def disable(self, uid: str, disabled: bool = True) -> None:
        """Mark ``uid`` disabled (verify_id_token(check_revoked=True) then raises UserDisabledError)."""
        with self._lock:
            self.users.setdefault(uid, FakeUser(uid=uid)).disabled = disabled

    # -- HTTP

    def _route(self, request: HttpRequest) -> HttpResponse:
        """Answer the certificate document and accounts:lookup; 404 for anything else."""
        if request.method == "GET" and request.path == CERTS_PATH:
            with self._lock:
                self.cert_fetches += 1
            if self.fail_cert_fetches:
                return HttpResponse(503, google_error(503, "UNAVAILABLE", "certificates offline"))
            return HttpResponse(200, self.certificates(), {"Cache-Control": CERTS_CACHE_CONTROL})
        match = re.fullmatch(r"/v1/projects/([^/]+)/accounts:lookup", request.path)
        if match and request.method == "POST":
            return self._lookup(match.group(1), request)
        return HttpResponse(404, google_error(
            404, "NOT_FOUND", f"fake Firebase Auth has no route {request.method} {request.path}"))

    def _lookup(self, project: str, request: HttpRequest) -> HttpResponse:
        """accounts:lookup by localId or phoneNumber, in the Identity Toolkit v1 format."""
        with self._lock:
            self.lookups.append(request)
        rejected = _bearer_rejected(request, self.access_token)
        if rejected:
            return rejected
        if project != self.project_id:
            return HttpResponse(400, google_error(400, "INVALID_ARGUMENT", "PROJECT_NOT_FOUND"))
        query = request.json() or {}
        uids = set(query.get("localId", []))
        phones = set(query.get("phoneNumber", []))
        with self._lock:
            found = [user.to_json() for user in self.users.values()
                     if user.uid in uids or (user.phone_number and user.phone_number in phones)]
        body: dict[str, Any] = {"kind": "identitytoolkit#GetAccountInfoResponse"}
        if found:  # the real API omits "users" entirely when nothing matches
            body["users"] = found
        return HttpResponse(200, body)


@contextmanager
def serve_firebase_certs(
        project_id: str = DEFAULT_PROJECT_ID, *, access_token: str | None = None,
) -> Iterator[FakeFirebaseAuth]:
    """Run a ``FakeFirebaseAuth`` and point firebase-admin's auth URLs at it for the block."""
    fake = FakeFirebaseAuth(project_id, access_token=access_token)
    fake.start()
    # Two attributes are patched, both read when an app's auth Client is built (its first auth.*
    # call), so apps must start using auth inside this block:
    # - firebase_admin._token_gen.ID_TOKEN_CERT_URI, the module global TokenVerifier.__init__
    #   passes to google.oauth2.id_token.verify_token(certs_url=...). That is the only change
    #   needed to verify real RS256 signatures against our certificate. The emulator switch
    #   (FIREBASE_AUTH_EMULATOR_HOST) is deliberately not used: it skips signature checks.
    # - firebase_admin._user_mgt.UserManager.ID_TOOLKIT_URL, the class attribute the user manager
    #   prefixes to /projects/<id>/accounts:lookup, which verify_id_token(check_revoked=True)
    #   calls through get_user().
    try:
        with _patched(_token_gen, "ID_TOKEN_CERT_URI", fake.cert_url), \
                _patched(_user_mgt.UserManager, "ID_TOOLKIT_URL", fake.id_toolkit_url):
            yield fake
    finally:
        fake.stop()


# --- FCM HTTP v1 ----------------------------------------------------------------------------------

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

# outcome -> (HTTP status, google.rpc status, FCM errorCode, message), as FCM v1 answers them.
_FCM_ERRORS: dict[str, tuple[int, str, str, str]] = {
    "unregistered": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "sender_id_mismatch": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "quota": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED",
              "Quota exceeded for quota metric 'Messages' of service fcm.googleapis.com."),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "invalid_argument": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                         "The registration token is not a valid FCM registration token"),
    "third_party_auth": (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR",
                         "Auth error from APNS or Web Push Service"),
}
FCM_OUTCOMES = ("ok", "slow", *_FCM_ERRORS)
# Only these carry a Retry-After header when scripted as "<outcome>:<seconds>".
_RETRY_AFTER_OUTCOMES = ("quota", "unavailable")
# "slow[:seconds]" accepts the message like "ok", after holding the answer back (default 1 s).
SLOW_DEFAULT_SECONDS = 1.0
_TARGET_FIELDS = ("token", "topic", "condition", "fid")


def _parse_outcome(spec: str) -> tuple[str, float | None]:
    """Split ``"quota:2"`` into ``("quota", 2)``; validate the name so typos fail at script time."""
    name, _, seconds = spec.partition(":")
    if name not in FCM_OUTCOMES:
        raise ValueError(f"unknown FCM outcome {spec!r}; choose from {FCM_OUTCOMES}")
    if name == "slow":
        delay = float(seconds) if seconds else SLOW_DEFAULT_SECONDS
        if delay < 0:
            raise ValueError(f"a slow answer cannot take negative time, got {spec!r}")
        return name, delay
    if seconds and name not in _RETRY_AFTER_OUTCOMES:
        raise ValueError(f"only {_RETRY_AFTER_OUTCOMES} take a Retry-After, got {spec!r}")
    return name, int(seconds) if seconds else None


@dataclass(frozen=True)
class FcmRequest:
    """One messages:send request received by the fake FCM, with the answer it was given."""

    project: str
    message: dict[str, Any]
    validate_only: bool
    headers: dict[str, str]
    http_version: str
    status: int
    outcome: str
    name: str | None  # message name answered on success

    @property
    def ok(self) -> bool:
        """Whether FCM accepted the message."""
        return self.status == 200

    @property
    def token(self) -> str | None:
        """Registration token targeted, if any."""
        return self.message.get("token")

    @property
    def topic(self) -> str | None:
        """Topic targeted (without ``/topics/``), if any."""
        return self.message.get("topic")

    @property
    def condition(self) -> str | None:
        """Topic condition targeted, if any."""
        return self.message.get("condition")

    @property
    def fid(self) -> str | None:
        """Firebase installation id targeted, if any."""
        return self.message.get("fid")

    @property
    def data(self) -> dict[str, str]:
        """The message's data payload."""
        data: dict[str, str] = self.message.get("data", {})
        return data

    @property
    def notification(self) -> dict[str, Any] | None:
        """The message's cross-platform notification block."""
        return self.message.get("notification")

    @property
    def android(self) -> dict[str, Any] | None:
        """The message's AndroidConfig as encoded on the wire."""
        return self.message.get("android")

    @property
    def apns(self) -> dict[str, Any] | None:
        """The message's ApnsConfig as encoded on the wire."""
        return self.message.get("apns")

    @property
    def webpush(self) -> dict[str, Any] | None:
        """The message's WebpushConfig as encoded on the wire."""
        return self.message.get("webpush")

    @property
    def authorization(self) -> str | None:
        """The Authorization header the SDK sent."""
        return self.headers.get("authorization")


@dataclass(frozen=True)
class TopicRequest:
    """One topic-management request received by the fake (v1 registrations or legacy IID)."""

    api: str  # "v1" (per-token registrations/.../topicSubscriptions) or "iid" (batchAdd/Remove)
    subscribe: bool
    topic: str
    tokens: tuple[str, ...]
    status: int
    outcome: str


class FakeFcm:
    """Loopback FCM HTTP v1 ``messages:send`` with per-token/topic scripted outcomes.

    It also answers the topic-management calls firebase-admin 7.x makes (``subscribe_to_topic``
    and ``unsubscribe_from_topic``: one ``POST``/``DELETE .../registrations/{token}/
    topicSubscriptions`` per token; the deprecated ``*_legacy`` IID ``batchAdd``/``batchRemove``)
    and keeps the resulting subscriptions in ``subscriptions``.
    """

    def __init__(self, *, access_token: str | None = None) -> None:
        # None accepts any bearer token; a string must match exactly (else 401 UNAUTHENTICATED).
        self.access_token = access_token
        # Outcome for targets without a script.
        self.default_outcome = "ok"
        self.requests: list[FcmRequest] = []
        self.topic_requests: list[TopicRequest] = []
        # topic name (without /topics/) -> registration tokens subscribed to it
        self.subscriptions: dict[str, set[str]] = {}
        self._scripts: dict[tuple[str, str], list[str]] = {}
        self._message_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = _Server(self._route)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the fake."""
        return self._server.base_url

    def start(self) -> None:
        """Start serving on an ephemeral loopback port (without patching the SDK)."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.stop()

    @property
    def send_url_template(self) -> str:
        """Loopback replacement for ``_MessagingService.FCM_URL`` (``{0}`` is the project id)."""
        return self.base_url + "/v1/projects/{0}/messages:send"

    @property
    def registrations_url_template(self) -> str:
        """Loopback replacement for the v1 topic-management base (``{0}`` is the project id)."""
        return self.base_url + "/v1/projects/{0}/registrations"

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the fake's request handling (should stay empty)."""
        return self._server.errors

    # -- scripting

    def script(self, token: str, outcomes: Iterable[str]) -> None:
        """Script the answers for a registration token; see ``FakeFcm.script_target``."""
        self.script_target("token", token, outcomes)

    def script_topic(self, topic: str, outcomes: Iterable[str]) -> None:
        """Script the answers for a topic (name without ``/topics/``)."""
        self.script_target("topic", topic.removeprefix("/topics/"), outcomes)

    def script_subscription(self, token: str, outcomes: Iterable[str]) -> None:
        """Script the answers to v1 topic (un)subscription requests for a registration token."""
        self.script_target("subscription", token, outcomes)

    def script_target(self, kind: str, target: str, outcomes: Iterable[str]) -> None:
        """Script answers: each HTTP request consumes the next outcome and the last one repeats.

        Outcomes are ``ok``, ``slow[:seconds]`` (accepted after a delay, default 1 s; for
        killing a client mid-batch), ``unregistered``, ``sender_id_mismatch``,
        ``quota[:seconds]``, ``unavailable[:seconds]``, ``internal``, ``invalid_argument``,
        ``third_party_auth``; the optional seconds of quota/unavailable become a Retry-After
        header. Retries made inside the SDK are requests too, so ``["unavailable"]`` exhausts
        them and ``["unavailable", "ok"]`` is absorbed. ``default_outcome`` (for targets without
        a script) takes the same specs, e.g. ``"slow:0.2"``.
        """
        if kind not in (*_TARGET_FIELDS, "subscription"):
            raise ValueError(f"unknown target kind {kind!r}; choose from {_TARGET_FIELDS}")
        plan = list(outcomes)
        if not plan:
            raise ValueError("a script needs at least one outcome")
        for spec in plan:
            _parse_outcome(spec)
        with self._lock:
            self._scripts[(kind, target)] = plan

    def _next_outcome(self, kind: str, target: str) -> str:
        """Consume the next scripted outcome for a target (the last one sticks)."""
        with self._lock:
            plan = self._scripts.get((kind, target))
            if not plan:
                return self.default_outcome
            return plan.pop(0) if len(plan) > 1 else plan[0]

    # -- inspection

    def requests_for(self, *, token: str | None = None, topic: str | None = None,
                     condition: str | None = None, fid: str | None = None) -> list[FcmRequest]:
        """Every request (retries included) aimed at the given target."""
        wanted = {"token": token, "topic": topic, "condition": condition, "fid": fid}
        with self._lock:
            received = list(self.requests)
        return [r for r in received
                if all(value is None or r.message.get(kind) == value
                       for kind, value in wanted.items())]

    def delivered(self) -> list[FcmRequest]:
        """Requests FCM accepted for delivery (excluding validate_only dry runs)."""
        with self._lock:
            return [r for r in self.requests if r.ok and not r.validate_only]

    def accepted_per_token(self) -> dict[str, int]:
        """How many messages FCM accepted for each registration token (duplicates show as > 1)."""
        counts: dict[str, int] = {}
        for request in self.delivered():
            if request.token is not None:
                counts[request.token] = counts.get(request.token, 0) + 1
        return counts

    def reset(self) -> None:
        """Forget scripts, recorded requests and subscriptions."""
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.topic_requests.clear()
            self.subscriptions.clear()

    # -- HTTP

    def _route(self, request: HttpRequest) -> HttpResponse:
        """Implement ``messages:send`` and the topic-management calls; 404 for anything else."""
        match = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", request.path)
        if match and request.method == "POST":
            return self._send(match.group(1), request)
        match = re.fullmatch(
            r"/v1/projects/([^/]+)/registrations/([^/]+)/topicSubscriptions(?:/([^/]+))?",
            request.path)
        if match:
            return self._subscription_v1(request, token=unquote(match.group(2)),
                                         topic=unquote(match.group(3)) if match.group(3) else None)
        if request.method == "POST" and request.path in ("/iid/v1:batchAdd", "/iid/v1:batchRemove"):
            return self._subscription_iid(request, subscribe=request.path.endswith("batchAdd"))
        return HttpResponse(404, google_error(
            404, "NOT_FOUND", f"fake FCM has no route {request.method} {request.path}"))

    def _subscription_v1(self, request: HttpRequest, *, token: str,
                         topic: str | None) -> HttpResponse:
        """``POST .../topicSubscriptions?topic_name=T`` and ``DELETE .../topicSubscriptions/T``."""
        subscribe = request.method == "POST" and topic is None
        if subscribe:
            topic = (request.query.get("topic_name") or [""])[0]
        elif request.method != "DELETE" or topic is None:
            return HttpResponse(404, google_error(
                404, "NOT_FOUND", f"fake FCM has no route {request.method} {request.path}"))
        rejected = _bearer_rejected(request, self.access_token)
        if rejected:
            response, outcome = rejected, "unauthenticated"
        else:
            spec = self._next_outcome("subscription", token)
            outcome, value = _parse_outcome(spec)
            if outcome == "slow":
                time.sleep(value or 0)
            if outcome in ("ok", "slow"):
                response = HttpResponse(200, {})
                with self._lock:
                    members = self.subscriptions.setdefault(topic, set())
                    (members.add if subscribe else members.discard)(token)
            else:
                response = self._error(outcome, value)
        with self._lock:
            self.topic_requests.append(TopicRequest(
                api="v1", subscribe=subscribe, topic=topic, tokens=(token,),
                status=response.status, outcome=outcome))
        return response

    def _subscription_iid(self, request: HttpRequest, *, subscribe: bool) -> HttpResponse:
        """The legacy Instance ID ``batchAdd``/``batchRemove`` (always succeeds per token)."""
        rejected = _bearer_rejected(request, self.access_token)
        body = request.json() or {}
        topic = str(body.get("to", "")).removeprefix("/topics/")
        tokens = tuple(body.get("registration_tokens") or ())
        if rejected:
            response, outcome = rejected, "unauthenticated"
        else:
            with self._lock:
                members = self.subscriptions.setdefault(topic, set())
                for token in tokens:
                    (members.add if subscribe else members.discard)(token)
            response, outcome = HttpResponse(200, {"results": [{} for _ in tokens]}), "ok"
        with self._lock:
            self.topic_requests.append(TopicRequest(
                api="iid", subscribe=subscribe, topic=topic, tokens=tokens,
                status=response.status, outcome=outcome))
        return response

    def _send(self, project: str, request: HttpRequest) -> HttpResponse:
        """Implement ``POST /v1/projects/{project}/messages:send``."""
        try:
            body = request.json()
        except ValueError:
            body = None
        message: dict[str, Any] = body.get("message") or {} if isinstance(body, dict) else {}
        if not isinstance(message, dict):
            message = {}
        targets = [(f, message[f]) for f in _TARGET_FIELDS if message.get(f)]
        if len(targets) != 1:
            return HttpResponse(400, google_error(
                400, "INVALID_ARGUMENT", "Request contains an invalid argument."))
        validate_only = bool(body.get("validate_only", False))

        rejected = _bearer_rejected(request, self.access_token)
        if rejected:
            response, outcome, name = rejected, "unauthenticated", None
        else:
            spec = self._next_outcome(*targets[0])
            outcome, retry_after = _parse_outcome(spec)
            response, name = self._answer(project, outcome, retry_after, validate_only)

        with self._lock:
            self.requests.append(FcmRequest(
                project=project, message=message, validate_only=validate_only,
                headers=request.headers, http_version=request.http_version,
                status=response.status, outcome=outcome, name=name))
        return response

    def _answer(self, project: str, outcome: str, retry_after: float | None,
                validate_only: bool) -> tuple[HttpResponse, str | None]:
        """Build FCM's answer for one outcome."""
        if outcome == "slow":
            time.sleep(retry_after or 0)  # for "slow" the number is the delay, not a Retry-After
            outcome = "ok"
        if outcome == "ok":
            # FCM answers dry runs with this literal id rather than a real one.
            message_id = "fake_message_id" if validate_only else f"0:{next(self._message_ids)}"
            name = f"projects/{project}/messages/{message_id}"
            return HttpResponse(200, {"name": name}), name
        return self._error(outcome, retry_after), None

    @staticmethod
    def _error(outcome: str, retry_after: float | None) -> HttpResponse:
        """FCM's error answer for a scripted failure, with Retry-After when one was scripted."""
        code, status, error_code, text = _FCM_ERRORS[outcome]
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
        return HttpResponse(code, google_error(code, status, text, details), headers)


@contextmanager
def point_messaging_at(base_url: str) -> Iterator[None]:
    """Point firebase-admin's messaging (sends and topic management) at ``base_url`` for the block.

    For a fake FCM that runs elsewhere (another process); ``serve_fcm`` uses it for its own fake.
    """
    service_class = messaging._MessagingService  # noqa: SLF001 - the SDK offers no endpoint option
    original_init = service_class.__init__

    def init(self: Any, app: firebase_admin.App) -> None:
        original_init(self, app)
        # The v1 topic-management base is an f-string built in __init__ from the project id, not
        # a class constant; rewrite it on each new service. Check it first so a renamed attribute
        # fails loudly instead of silently sending subscriptions to Google.
        if not hasattr(self, "_fcm_topic_url"):
            raise RuntimeError("firebase_admin's messaging service has no _fcm_topic_url any more; update the fake")
        self._fcm_topic_url = f"{base_url}/v1/projects/{self._project_id}/registrations"

    # FCM_URL is the class attribute __init__ formats with the project id into the URL that
    # send(), send_each() (requests) and send_each_async() (httpx) all post to; IID_URL is the
    # base of the deprecated *_legacy topic calls. All are read when an app's messaging service is
    # created (its first messaging.* call).
    with _patched(service_class, "FCM_URL", base_url + "/v1/projects/{0}/messages:send"), \
            _patched(service_class, "IID_URL", base_url), \
            _patched(service_class, "__init__", init):
        yield


@contextmanager
def serve_fcm(*, access_token: str | None = None) -> Iterator[FakeFcm]:
    """Run a ``FakeFcm`` and point firebase-admin's messaging at it for the block."""
    fake = FakeFcm(access_token=access_token)
    fake.start()
    try:
        with point_messaging_at(fake.base_url):
            yield fake
    finally:
        fake.stop()


# --- FCM over HTTP/2 and TLS, as Google serves it (the fast fake) ------------------------------------


def _loopback_tls_certificate(directory: Any) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1 and its key; returns (cert path, key path)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fcm.loopback.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "fcm-loopback.pem", directory / "fcm-loopback.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class Http2Fcm:
    """FCM v1 ``messages:send`` over HTTP/2 and TLS on loopback, served by asyncio: the fast fake.

    Google serves FCM over HTTP/2, and firebase-admin's async client (httpx, ``http2=True``)
    multiplexes a whole ``send_each_async`` batch on one connection. Over the plain-HTTP/1.1
    ``FakeFcm`` the same batch queues in httpcore's pool of 100 connections, whose bookkeeping is
    quadratic in the queue (a batch of 500 costs seconds of client CPU), so throughput there says
    nothing about production. This fake speaks the production protocol (TLS with ALPN ``h2``,
    at most 100 concurrent streams like Google), answers in its own thread's event loop without a
    thread per request, and keeps only counters: accepted messages per token/topic. Outcomes can be
    scripted per token like ``FakeFcm`` (``ok``, ``slow[:s]``, the error names, ``quota:N``...).

    The client must trust its certificate: ``serve_fcm_http2`` sets ``SSL_CERT_FILE``, which httpx
    honours. Only ``send_each_async`` (httpx) is meant to use it; the sync path (requests) ignores
    that variable.
    """

    MAX_CONCURRENT_STREAMS = 100

    def __init__(self, tls_dir: Any, *, access_token: str | None = None) -> None:
        self.cert_file, self._key_file = _loopback_tls_certificate(tls_dir)
        self.access_token = access_token
        self.default_outcome = "ok"
        self.accepted: dict[str, int] = {}  # "token:<t>" / "topic:<t>" -> accepted messages
        # topic -> tokens subscribed through the v1 registrations API
        self.subscriptions: dict[str, set[str]] = {}
        self.requests = 0
        self.errors: list[BaseException] = []
        self._scripts: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:<port>`` while running."""
        if self.port is None:
            raise RuntimeError("the fake is not running")
        return f"https://127.0.0.1:{self.port}"

    def script(self, token: str, outcomes: Iterable[str]) -> None:
        """Script the answers for a token (each request takes the next; the last one repeats)."""
        plan = list(outcomes)
        for spec in plan:
            _parse_outcome(spec)
        with self._lock:
            self._scripts[f"token:{token}"] = plan

    def accepted_per_token(self) -> dict[str, int]:
        """Accepted messages per registration token."""
        with self._lock:
            return {k[6:]: v for k, v in self.accepted.items() if k.startswith("token:")}

    def stats(self) -> dict[str, int]:
        """Requests received, messages accepted, distinct targets, and targets accepted more than once."""
        with self._lock:
            counts = list(self.accepted.values())
            return {"requests": self.requests, "accepted": sum(counts), "targets": len(counts),
                    "duplicated_targets": sum(1 for c in counts if c > 1)}

    def reset(self) -> None:
        """Forget counters, subscriptions and scripts."""
        with self._lock:
            self.accepted.clear()
            self.subscriptions.clear()
            self._scripts.clear()
            self.requests = 0

    def _next_outcome(self, target: str) -> str:
        with self._lock:
            plan = self._scripts.get(target)
            if not plan:
                return self.default_outcome
            return plan.pop(0) if len(plan) > 1 else plan[0]

    # -- lifecycle

    def start(self, port: int = 0) -> None:
        """Serve in a daemon thread with its own event loop."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self._key_file)
        context.set_alpn_protocols(["h2"])
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(loop.create_server(
                lambda: _Http2FcmProtocol(self), "127.0.0.1", port, ssl=context, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name="fcm-http2-fake")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the HTTP/2 fake FCM did not start")

    def run_forever(self, port: int = 0) -> None:
        """Serve in the calling thread (for a fake in a process of its own)."""
        self.start(port)
        assert self._thread is not None
        self._thread.join()

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop = self._thread = None
        self.port = None

    # -- answering (called in the fake's loop)

    def answer(self, path: str, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes, dict[str, str], float]:
        """Status, JSON body, extra headers and delay for one request."""
        scheme, _, token = headers.get(b"authorization", b"").decode().partition(" ")
        if scheme.lower() != "bearer" or not token or (self.access_token and token != self.access_token):
            response = _unauthenticated()
            return response.status, json.dumps(response.body).encode(), response.headers, 0.0
        route, _, query = path.partition("?")
        registration = re.fullmatch(
            r"/v1/projects/[^/]+/registrations/([^/]+)/topicSubscriptions(?:/([^/]+))?", route)
        if registration:
            return self._subscription(headers.get(b":method", b"").decode(), unquote(registration.group(1)),
                                      unquote(registration.group(2) or ""), parse_qs(query))
        match = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", route)
        if not match:
            return 404, json.dumps(google_error(404, "NOT_FOUND", f"no route {path}")).encode(), {}, 0.0
        try:
            message = json.loads(body)["message"]
        except (ValueError, KeyError, TypeError):
            return 400, json.dumps(google_error(400, "INVALID_ARGUMENT", "bad request")).encode(), {}, 0.0
        target = next((f"{f}:{message[f]}" for f in _TARGET_FIELDS if message.get(f)), "none:")
        outcome, value = _parse_outcome(self._next_outcome(target))
        with self._lock:
            self.requests += 1
        delay = 0.0
        if outcome == "slow":
            outcome, delay = "ok", value or 0.0
        if outcome == "ok":
            with self._lock:
                self.accepted[target] = self.accepted.get(target, 0) + 1
            name = f"projects/{match.group(1)}/messages/0:{next(self._ids)}"
            return 200, json.dumps({"name": name}).encode(), {}, delay
        error = FakeFcm._error(outcome, value)
        return error.status, json.dumps(error.body).encode(), error.headers, 0.0

    def _subscription(self, method: str, token: str, topic: str,
                      query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str], float]:
        """v1 ``POST .../topicSubscriptions?topic_name=T`` and ``DELETE .../topicSubscriptions/T``."""
        subscribe = method == "POST" and not topic
        topic = (query.get("topic_name") or [""])[0] if subscribe else topic
        with self._lock:
            self.requests += 1
            members = self.subscriptions.setdefault(topic, set())
            (members.add if subscribe else members.discard)(token)
        return 200, b"{}", {}, 0.0


class _Http2FcmProtocol(asyncio.Protocol):
    """One HTTP/2 connection of the fast fake (h2 state machine, flow control, streams)."""

    def __init__(self, fake: Http2Fcm) -> None:
        import h2.config
        import h2.connection

        self.fake = fake
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.streams: dict[int, tuple[dict[bytes, bytes], bytearray]] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send our SETTINGS (100 concurrent streams, like Google) and open the receive window."""
        import h2.settings

        self.transport = transport  # type: ignore[assignment]
        self.conn.initiate_connection()
        self.conn.update_settings({
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: Http2Fcm.MAX_CONCURRENT_STREAMS,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
        })
        self.conn.increment_flow_control_window(1 << 24)
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Feed the h2 state machine and answer every request whose stream ended."""
        import h2.events
        import h2.exceptions

        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.fake.errors.append(exc)
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.streams[event.stream_id] = (dict(event.headers), bytearray())
            elif isinstance(event, h2.events.DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream[1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._respond(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.streams.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._flush()
                if self.transport is not None:
                    self.transport.close()
                return
        self._flush()

    def _respond(self, stream_id: int) -> None:
        headers, body = self.streams.pop(stream_id, ({}, bytearray()))
        path = headers.get(b":path", b"").decode()
        try:
            status, payload, extra, delay = self.fake.answer(path, headers, bytes(body))
        except Exception as exc:  # a bug in the fake must surface as a 500 and a record, not a hang
            self.fake.errors.append(exc)
            status, payload, extra, delay = 500, b'{"error": {"code": 500}}', {}, 0.0

        def send() -> None:
            import h2.exceptions

            try:
                self.conn.send_headers(stream_id, [
                    (b":status", str(status).encode()), (b"content-type", b"application/json; charset=UTF-8"),
                    (b"content-length", str(len(payload)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in extra.items())])
                self.conn.send_data(stream_id, payload, end_stream=True)
            except h2.exceptions.H2Error:  # the client reset the stream or went away meanwhile
                return
            self._flush()

        if delay:
            asyncio.get_running_loop().call_later(delay, send)
        else:
            send()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection's streams."""
        self.streams.clear()
        self.transport = None


@contextmanager
def trust_loopback_certificate(cert_file: str) -> Iterator[None]:
    """Make httpx (and so firebase-admin's async client) trust ``cert_file`` for the block."""
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = cert_file
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = previous


@contextmanager
def serve_fcm_http2(tls_dir: Any, *, access_token: str | None = None) -> Iterator[Http2Fcm]:
    """Run an ``Http2Fcm`` and point firebase-admin's messaging at it (trusting its certificate)."""
    fake = Http2Fcm(tls_dir, access_token=access_token)
    fake.start()
    try:
        with trust_loopback_certificate(fake.cert_file), point_messaging_at(fake.base_url):
            yield fake
    finally:
        fake.stop()
