"""FCM delivery through firebase-admin: data messages carrying only ids, urgency from severity.

Every message is a *data* message: ``{"notification_id": "<id>", "kind": "notification"}`` and
nothing else, so no title, body, name or phone number ever passes through Google or Apple. The app
fetches the content from ``/api/notifications/<id>`` and deduplicates by that id (delivery is at
least once, see ``push.outbox``).

Severity sets how urgently the platforms deliver:

============  ================  ========  ==============================  ====
severity      Android priority  TTL       APNs                            Web
============  ================  ========  ==============================  ====
critical      high              1 hour    priority 10, alert (see below)  high
warning       high              6 hours   priority 10, alert              high
info          normal            24 hours  priority 5, background          normal
============  ================  ========  ==============================  ====

APNs refuses priority 10 for a push that only carries ``content-available`` (a background push),
and iOS throttles background pushes and drops them for an app the user swiped away, so warnings
and critical ones go as an *alert* push with ``mutable-content``: the alert is a fixed
localisation key (``ALERT_LOC_KEY``, no personal data) that the app's notification service
extension replaces with the fetched content. Info pushes are background pushes (priority 5).

Outcomes are classified per token: ``ok``, ``unregistered`` and ``sender_mismatch`` (the device
row is deactivated), ``retry`` (429, 5xx, timeouts; with FCM's Retry-After when it sent one) and
``invalid`` (rejected for good; the device is kept, the message is not retried).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import firebase_admin
from firebase_admin import credentials, exceptions, messaging

from config import SettingsError
from core.feed.models import Severity

log = logging.getLogger(__name__)

MAX_BATCH = 500  # the most messages send_each_async takes in one call
MAX_TOPIC_BATCH = 1000  # the most tokens subscribe_to_topic takes in one call
ALERT_LOC_KEY = "notification_new"  # the app's own localised "new notification" text
# FCM topic names: what firebase-admin itself accepts (after an optional /topics/ prefix).
TOPIC_NAME = re.compile(r"^[a-zA-Z0-9\-_.~%]+$")

Outcome = Literal["ok", "unregistered", "sender_mismatch", "retry", "invalid"]
# Topic-management reasons (the FCM error codes firebase-admin reports per token).
_TOPIC_REASONS: dict[str, Outcome] = {
    "UNREGISTERED": "unregistered", "NOT_FOUND": "unregistered",
    "REGISTRATION_TOKEN_NOT_REGISTERED": "unregistered", "SENDER_ID_MISMATCH": "sender_mismatch",
    "QUOTA_EXCEEDED": "retry", "RESOURCE_EXHAUSTED": "retry", "UNAVAILABLE": "retry",
    "INTERNAL": "retry", "DEADLINE_EXCEEDED": "retry", "UNKNOWN_ERROR": "retry",
    "UNAUTHENTICATED": "retry", "ABORTED": "retry",
}


@dataclass(frozen=True, slots=True)
class TokenResult:
    """What FCM answered for one registration token (or for one topic message)."""

    token: str
    outcome: Outcome
    retry_after: float | None = None  # seconds, from FCM's Retry-After header
    error: str | None = None  # e.g. "QuotaExceededError: Quota exceeded ..."

    @property
    def ok(self) -> bool:
        """Whether FCM accepted the message."""
        return self.outcome == "ok"


@dataclass(frozen=True, slots=True)
class Urgency:
    """How urgently one severity is delivered on each platform."""

    android_priority: Literal["high", "normal"]
    ttl: timedelta
    apns_priority: Literal["10", "5"]
    alert: bool  # an APNs alert push (with mutable-content) rather than a background push
    web_urgency: Literal["high", "normal"]


URGENCY: dict[Severity, Urgency] = {
    Severity.critical: Urgency("high", timedelta(hours=1), "10", True, "high"),
    Severity.warning: Urgency("high", timedelta(hours=6), "10", True, "high"),
    Severity.info: Urgency("normal", timedelta(hours=24), "5", False, "normal"),
}


class Sender(Protocol):
    """What the outbox worker needs from a delivery channel."""

    async def send_to_tokens(self, tokens: Sequence[str], *, notification_id: int, severity: Severity | str,
                             kind: str = "notification", collapse_key: str | None = None) -> list[TokenResult]:
        """Send one data message to each token."""

    async def send_to_topic(self, topic: str, *, notification_id: int, severity: Severity | str,
                            kind: str = "notification", collapse_key: str | None = None) -> TokenResult:
        """Send one data message to an FCM topic."""

    async def subscribe(self, tokens: Sequence[str], topic: str) -> list[TokenResult]:
        """Subscribe tokens to a topic."""

    async def unsubscribe(self, tokens: Sequence[str], topic: str) -> list[TokenResult]:
        """Unsubscribe tokens from a topic."""

    async def aclose(self) -> None:
        """Release what the sender holds."""


def check_topic(topic: str) -> str:
    """The topic name without ``/topics/``; ValueError when FCM would refuse it."""
    name = topic.removeprefix("/topics/")
    if not TOPIC_NAME.match(name):
        raise ValueError(f"malformed FCM topic name {topic!r} (allowed: letters, digits and -_.~%)")
    return name


def build_template(*, notification_id: int, severity: Severity | str, kind: str = "notification",
                   collapse_key: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The keyword arguments of ``messaging.Message`` shared by every target of one notification."""
    urgency = URGENCY[Severity(severity)]
    now = now or datetime.now(UTC)
    ttl_seconds = int(urgency.ttl.total_seconds())
    apns_headers = {
        "apns-priority": urgency.apns_priority,
        "apns-expiration": str(int(now.timestamp()) + ttl_seconds),
        "apns-push-type": "alert" if urgency.alert else "background",
    }
    if collapse_key:
        apns_headers["apns-collapse-id"] = collapse_key[:64]
    if urgency.alert:
        aps = messaging.Aps(alert=messaging.ApsAlert(loc_key=ALERT_LOC_KEY), sound="default",
                            content_available=True, mutable_content=True)
    else:
        aps = messaging.Aps(content_available=True)
    return {
        "data": {"notification_id": str(notification_id), "kind": kind},
        "android": messaging.AndroidConfig(priority=urgency.android_priority, ttl=urgency.ttl,
                                           collapse_key=collapse_key),
        "apns": messaging.APNSConfig(headers=apns_headers, payload=messaging.APNSPayload(aps=aps)),
        "webpush": messaging.WebpushConfig(headers={"Urgency": urgency.web_urgency, "TTL": str(ttl_seconds)}),
    }


def token_messages(tokens: Sequence[str], template: dict[str, Any]) -> list[messaging.Message]:
    """One message per registration token, all sharing ``template``."""
    # Message(token=...) warns that ``token`` is deprecated in favour of ``fid`` (Firebase
    # installation ids) since firebase-admin 7; devices register FCM *registration tokens*, which
    # the v1 API still takes as ``token``. The SDK silences the same warning this way itself
    # (messaging._get_messages_from_multicast); doing it once per batch keeps 500 warnings cheap.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [messaging.Message(token=token, **template) for token in tokens]


def retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds from the Retry-After header of the HTTP response behind a firebase-admin error."""
    response = getattr(exc, "http_response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def classify(target: str, exc: BaseException) -> TokenResult:
    """Turn the exception firebase-admin reported for one message into a ``TokenResult``."""
    error = _describe(exc)
    if isinstance(exc, messaging.UnregisteredError):
        return TokenResult(target, "unregistered", error=error)
    if isinstance(exc, messaging.SenderIdMismatchError):
        return TokenResult(target, "sender_mismatch", error=error)
    if isinstance(exc, messaging.ThirdPartyAuthError):
        # Our APNs/web-push credentials were refused for this message: not the device's fault and
        # not fixed by retrying soon; logged so an operator fixes the project configuration.
        log.error("FCM could not authenticate with APNs or web push: %s", error)
        return TokenResult(target, "invalid", error=error)
    retryable = (exceptions.ResourceExhaustedError, exceptions.UnavailableError, exceptions.InternalError,
                 exceptions.DeadlineExceededError, exceptions.UnknownError, exceptions.AbortedError,
                 exceptions.UnauthenticatedError, exceptions.CancelledError)
    status = getattr(getattr(exc, "http_response", None), "status_code", None)
    if isinstance(exc, retryable) or (isinstance(status, int) and (status == 429 or status >= 500)):
        return TokenResult(target, "retry", retry_after=retry_after_seconds(exc), error=error)
    return TokenResult(target, "invalid", error=error)


class FcmSender:
    """Sends through one named firebase-admin app with the SDK's async batch API."""

    def __init__(self, app: firebase_admin.App, *, owns_app: bool = False) -> None:
        self.app = app
        self._owns_app = owns_app
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Any) -> FcmSender:
        """An app of its own for ``SUPERAPP_FIREBASE_PROJECT_ID`` with the service account credentials."""
        try:
            credential = credentials.Certificate(str(settings.firebase_credentials))
        except (ValueError, OSError) as exc:
            raise SettingsError(
                f"SUPERAPP_FIREBASE_CREDENTIALS: cannot use {settings.firebase_credentials} as a "
                f"service account for FCM ({exc})") from None
        app = firebase_admin.initialize_app(
            credential, {"projectId": settings.firebase_project_id}, name=f"superapp-push-{uuid.uuid4().hex}")
        return cls(app, owns_app=True)

    async def send_to_tokens(self, tokens: Sequence[str], *, notification_id: int, severity: Severity | str,
                             kind: str = "notification", collapse_key: str | None = None) -> list[TokenResult]:
        """Send the data message to each token with ``send_each_async``, 500 at a time, in order."""
        template = build_template(notification_id=notification_id, severity=severity, kind=kind,
                                  collapse_key=collapse_key)
        results: list[TokenResult] = []
        for start in range(0, len(tokens), MAX_BATCH):
            chunk = list(tokens[start:start + MAX_BATCH])
            results.extend(await self._send_batch(chunk, token_messages(chunk, template)))
        return results

    async def send_to_topic(self, topic: str, *, notification_id: int, severity: Severity | str,
                            kind: str = "notification", collapse_key: str | None = None) -> TokenResult:
        """Send the data message to an FCM topic (e.g. ``unit_phu-xuan`` for a unit's residents)."""
        name = check_topic(topic)
        template = build_template(notification_id=notification_id, severity=severity, kind=kind,
                                  collapse_key=collapse_key)
        [result] = await self._send_batch([name], [messaging.Message(topic=name, **template)])
        return result if result.outcome != "unregistered" else TokenResult(name, "invalid", error=result.error)

    async def _send_batch(self, targets: list[str], messages: list[messaging.Message]) -> list[TokenResult]:
        try:
            batch = await messaging.send_each_async(messages, app=self.app)
        except exceptions.FirebaseError as exc:  # the whole batch failed (e.g. a broken connection pool)
            log.warning("FCM batch of %d failed: %s", len(messages), _describe(exc))
            return [classify(target, exc) for target in targets]
        return [TokenResult(target, "ok") if response.success else classify(target, response.exception)
                for target, response in zip(targets, batch.responses, strict=True)]

    async def subscribe(self, tokens: Sequence[str], topic: str) -> list[TokenResult]:
        """Subscribe tokens to a topic with ``subscribe_to_topic_async``, 1000 at a time."""
        return await self._manage(tokens, topic, messaging.subscribe_to_topic_async)

    async def unsubscribe(self, tokens: Sequence[str], topic: str) -> list[TokenResult]:
        """Unsubscribe tokens from a topic with ``unsubscribe_from_topic_async``, 1000 at a time."""
        return await self._manage(tokens, topic, messaging.unsubscribe_from_topic_async)

    async def _manage(self, tokens: Sequence[str], topic: str, call: Any) -> list[TokenResult]:
        name = check_topic(topic)
        results: list[TokenResult] = []
        for start in range(0, len(tokens), MAX_TOPIC_BATCH):
            chunk = list(tokens[start:start + MAX_TOPIC_BATCH])
            try:
                response = await call(chunk, name, app=self.app)
            except exceptions.FirebaseError as exc:
                results.extend(classify(token, exc) for token in chunk)
                continue
            failed = {error.index: str(error.reason) for error in response.errors}
            for index, token in enumerate(chunk):
                reason = failed.get(index)
                if reason is None:
                    results.append(TokenResult(token, "ok"))
                else:
                    outcome = _TOPIC_REASONS.get(reason.upper().replace("-", "_"), "invalid")
                    results.append(TokenResult(token, outcome, error=reason))
        return results

    async def aclose(self) -> None:
        """Delete the firebase-admin app if this sender created it (safe inside a running loop)."""
        if self._closed or not self._owns_app:
            return
        self._closed = True
        # firebase-admin 7.7's delete_app() closes the messaging service's httpx client with
        # asyncio.run(), which raises inside a running loop, and the client's pooled connections
        # belong to *this* loop. So close the client here first, then delete the app in a thread,
        # where asyncio.run() gets a loop of its own and finds the client already closed.
        service = (getattr(self.app, "_services", None) or {}).get(getattr(messaging, "_MESSAGING_ATTRIBUTE", ""))
        client = getattr(service, "_async_client", None)
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # closing is best effort; the app is deleted either way
                log.warning("could not close the FCM HTTP client cleanly", exc_info=True)
        await asyncio.to_thread(firebase_admin.delete_app, self.app)


class LogSender:
    """The embedded default without an FCM project: logs each push and reports it delivered."""

    def __init__(self, reason: str = "no FCM project configured") -> None:
        self.reason = reason
        self.sent: list[dict[str, Any]] = []  # the last pushes, for the demo and tests (bounded)

    def _record(self, entry: dict[str, Any]) -> None:
        log.info("push logged (%s): %s", self.reason, entry)
        self.sent.append(entry)
        del self.sent[:-1000]

    async def send_to_tokens(self, tokens: Sequence[str], *, notification_id: int, severity: Severity | str,
                             kind: str = "notification", collapse_key: str | None = None) -> list[TokenResult]:
        """Log one line for the batch; every token counts as delivered."""
        self._record({"notification_id": notification_id, "kind": kind, "severity": str(Severity(severity)),
                      "tokens": len(tokens)})
        return [TokenResult(token, "ok") for token in tokens]

    async def send_to_topic(self, topic: str, *, notification_id: int, severity: Severity | str,
                            kind: str = "notification", collapse_key: str | None = None) -> TokenResult:
        """Log the topic message; it counts as delivered."""
        name = check_topic(topic)
        self._record({"notification_id": notification_id, "kind": kind, "severity": str(Severity(severity)),
                      "topic": name})
        return TokenResult(name, "ok")

    async def subscribe(self, tokens: Sequence[str], topic: str) -> list[TokenResult]:
        """Log the subscription."""
        self._record({"subscribe": check_topic(topic), "tokens": len(tokens)})
        return [TokenResult(token, "ok") for token in tokens]

    async def unsubscribe(self, tokens: Sequence[str], topic: str) -> list[TokenResult]:
        """Log the unsubscription."""
        self._record({"unsubscribe": check_topic(topic), "tokens": len(tokens)})
        return [TokenResult(token, "ok") for token in tokens]

    async def aclose(self) -> None:
        """Nothing to release."""


def sender_from_settings(settings: Any) -> FcmSender | LogSender:
    """FCM when both the project id and service-account credentials are set; else the logging sender."""
    if settings.firebase_project_id and settings.firebase_credentials:
        return FcmSender.from_settings(settings)
    if settings.firebase_project_id:
        return LogSender("SUPERAPP_FIREBASE_CREDENTIALS is not set, which FCM needs")
    return LogSender()
