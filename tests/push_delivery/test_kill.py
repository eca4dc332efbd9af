"""A delivery worker killed mid-batch: every accepted notification still reaches FCM, duplicates only in flight.

The guarantee (docs/push.md): at least once. FCM has no idempotency key, so the batch a worker had
in flight when it died (FCM accepted it, the worker never recorded it) is sent again by the worker
that takes the row over once the lease expires. Only those rows are repeated; every message carries
the notification id, and the app shows each id once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from plugins.fakes.firebase import Http2Fcm
from push.fcm import FcmSender
from push.models import OutboxStatus
from push.outbox import OutboxWorker
from tests.conftest import base_settings
from tests.push_delivery.conftest import add_notification, add_rows, outbox

ROOT = Path(__file__).resolve().parents[2]
ROWS, PER_ROW, BATCH = 10, 40, 2  # 400 tokens; the worker has 2 rows (80 messages) in flight
LEASE = 1.0


async def test_killed_worker_loses_nothing_and_repeats_only_its_batch_in_flight(
        database_url: str, engine: Engine, fast_sender: FcmSender, fast_fcm: Http2Fcm, tmp_path: Path) -> None:
    """SIGKILL a worker process while FCM holds its answers; a second worker finishes the outbox."""
    fast_fcm.default_outcome = "slow:0.4"  # FCM accepts at once but answers late: a kill lands mid-batch
    note = add_notification(engine)
    tokens = [f"tok-{i:04d}" for i in range(ROWS * PER_ROW)]
    row_ids = add_rows(engine, note, tokens, per_row=PER_ROW)
    tokens_of = {row_id: tokens[i * PER_ROW:(i + 1) * PER_ROW] for i, row_id in enumerate(row_ids)}

    with open(tmp_path / "worker.log", "w") as log:
        doomed = subprocess.Popen(
            [sys.executable, "-m", "tests.push_delivery.worker_process",
             "--database", base_settings(database_url=database_url).sqlalchemy_url,
             "--fcm-url", fast_fcm.base_url, "--cert-file", fast_fcm.cert_file, "--worker-id", "doomed",
             "--lease", str(LEASE), "--batch-size", str(BATCH)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            # Wait until FCM has accepted the first two rows and the next two are in flight.
            while fast_fcm.stats()["accepted"] < BATCH * PER_ROW + 1:
                assert doomed.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker process sent nothing"
                await asyncio.sleep(0.01)
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)

    at_kill = {row.id: row for row in outbox(engine)}
    in_flight = {row_id for row_id, row in at_kill.items()
                 if row.status is OutboxStatus.pending and row.leased_by == "doomed"}
    done_before = {row_id for row_id, row in at_kill.items() if row.status is OutboxStatus.sent}
    assert in_flight, "the kill should land while a batch is in flight"
    assert len(in_flight) <= BATCH

    rescuer = OutboxWorker(engine, fast_sender, worker_id="rescuer", lease_seconds=5, batch_size=BATCH,
                           poll_seconds=0.05)
    deadline = time.monotonic() + 30
    while any(row.status is not OutboxStatus.sent for row in outbox(engine)):
        assert time.monotonic() < deadline, "the rescuer did not finish the outbox"
        await rescuer.drain()  # the dead worker's rows become claimable when its lease runs out
        await asyncio.sleep(0.05)

    accepted = fast_fcm.accepted_per_token()
    assert set(accepted) == set(tokens), "every accepted notification reached FCM"
    repeated = {token for token, count in accepted.items() if count > 1}
    in_flight_tokens = {token for row_id in in_flight for token in tokens_of[row_id]}
    assert repeated, "FCM had accepted part of the batch in flight, so part of it is sent twice"
    assert repeated <= in_flight_tokens, "only the batch in flight at the kill is sent twice"
    assert max(accepted.values()) <= 2
    assert all(accepted[token] == 1 for row_id in done_before for token in tokens_of[row_id])
    assert all(row.status is OutboxStatus.sent for row in outbox(engine))
