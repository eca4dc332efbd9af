"""The worker inside the host (lifespan, wake, shutdown) and on its own (`superapp push worker`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import firebase_admin
import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from plugins.fakes.firebase import FakeFcm, initialize_test_app
from push import outbox as outbox_module
from push.fcm import FcmSender, LogSender
from push.models import OutboxStatus
from push.outbox import OutboxWorker
from tests.conftest import TEST_SECRET, base_settings
from tests.push_delivery.conftest import add_notification, add_rows, engine_for, outbox

SUPERAPP = Path(sys.executable).with_name("superapp")


def _wait_until_sent(engine, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(row.status is not OutboxStatus.sent for row in outbox(engine)):
        assert time.monotonic() < deadline, [(r.status, r.last_error) for r in outbox(engine)]
        time.sleep(0.02)


def test_install_attaches_sender_and_worker(sqlite_url: str) -> None:
    """By default the host logs pushes and runs a worker configured by the SUPERAPP_PUSH_* settings."""
    app = create_app(base_settings(database_url=sqlite_url, push_lease_seconds=12, push_batch_size=3))
    assert isinstance(app.state.fcm, LogSender)
    worker = app.state.outbox_worker
    assert isinstance(worker, OutboxWorker) and worker.sender is app.state.fcm
    assert (worker.lease.total_seconds(), worker.batch_size, worker.max_attempts) == (12, 3, 10)

    off = create_app(base_settings(database_url=sqlite_url, push_worker_enabled=False))
    assert isinstance(off.state.fcm, LogSender)
    assert getattr(off.state, "outbox_worker", None) is None


def test_host_delivers_when_woken(sqlite_url: str) -> None:
    """A row committed while the host serves is sent at once when the worker is woken (from any thread)."""
    app = create_app(base_settings(database_url=sqlite_url, push_poll_seconds=30))
    with TestClient(app):
        engine = app.state.engine
        time.sleep(0.1)
        note = add_notification(engine)
        add_rows(engine, note, ["tok-1", "tok-2"])
        app.state.outbox_worker.wake()  # this thread is not the app's event loop thread
        _wait_until_sent(engine, timeout=5)
        assert app.state.fcm.sent[-1] == {"notification_id": note, "kind": "notification", "severity": "info",
                                         "tokens": 2}


def test_host_sends_through_firebase_and_closes_the_app_at_shutdown(
        sqlite_url: str, fcm: FakeFcm, monkeypatch: pytest.MonkeyPatch) -> None:
    """With FCM configured, the host's worker sends through firebase-admin; shutdown deletes the SDK app."""
    firebase = initialize_test_app()
    monkeypatch.setattr(outbox_module, "sender_from_settings", lambda settings: FcmSender(firebase, owns_app=True))
    app = create_app(base_settings(database_url=sqlite_url))
    with TestClient(app):
        note = add_notification(app.state.engine)
        add_rows(app.state.engine, note, ["tok-1"])
        app.state.outbox_worker.wake()
        _wait_until_sent(app.state.engine)
    [request] = fcm.requests_for(token="tok-1")
    assert request.data == {"notification_id": str(note), "kind": "notification"}
    # Deleted inside the server's running loop, where a bare delete_app() raises.
    with pytest.raises(ValueError, match="does not exist"):
        firebase_admin.get_app(firebase.name)


def _cli_env(sqlite_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
    return {**env, "SUPERAPP_DATABASE_URL": sqlite_url, "SUPERAPP_ENV": "test", "SUPERAPP_LOG_JSON": "false",
            "SUPERAPP_SECRET_KEY": TEST_SECRET}


def test_cli_worker_once_and_until_sigterm(sqlite_url: str) -> None:
    """`superapp push worker --once` drains and exits; without it the worker runs until SIGTERM."""
    engine = engine_for(sqlite_url)
    try:
        note = add_notification(engine)
        add_rows(engine, note, ["tok-1"])
        once = subprocess.run([str(SUPERAPP), "push", "worker", "--once"], env=_cli_env(sqlite_url),
                              capture_output=True, text=True, timeout=60)
        assert once.returncode == 0, once.stderr
        assert "processed 1 outbox row(s)" in once.stdout
        assert "sending to the log (no FCM configured)" in once.stderr
        assert outbox(engine)[0].status is OutboxStatus.sent

        add_rows(engine, note, ["tok-2"])
        running = subprocess.Popen([str(SUPERAPP), "push", "worker", "--lease", "5"], env=_cli_env(sqlite_url),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_until_sent(engine, timeout=30)
        finally:
            running.send_signal(signal.SIGTERM)
            out, err = running.communicate(timeout=30)
        assert running.returncode == 0, err
    finally:
        engine.dispose()
