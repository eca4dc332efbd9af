"""A push outbox worker in a process of its own, pointed at a fake FCM: the process the kill test kills.

    python -m tests.push_delivery.worker_process --database URL --fcm-url URL --cert-file PEM \\
        --worker-id ID --lease SECONDS --batch-size N
"""

from __future__ import annotations

import argparse
import asyncio
import os

from core.db import make_engine
from plugins.fakes.firebase import initialize_test_app, point_messaging_at
from push.fcm import FcmSender
from push.outbox import OutboxWorker


def main() -> None:
    """Run one worker until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True, help="SQLAlchemy URL")
    parser.add_argument("--fcm-url", required=True)
    parser.add_argument("--cert-file", required=True, help="certificate of the HTTP/2 fake to trust")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--lease", type=float, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()
    os.environ["SSL_CERT_FILE"] = args.cert_file
    with point_messaging_at(args.fcm_url):
        sender = FcmSender(initialize_test_app())
        worker = OutboxWorker(make_engine(args.database), sender, worker_id=args.worker_id,
                              lease_seconds=args.lease, batch_size=args.batch_size, poll_seconds=0.05)
        asyncio.run(worker.run())


if __name__ == "__main__":
    main()
