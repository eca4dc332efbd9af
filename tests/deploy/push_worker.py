"""`superapp push worker` whose FCM is a loopback fake: the push process of the topology test.

    python -m tests.deploy.push_worker --fcm-url http://127.0.0.1:PORT [options of `superapp push worker`]

It runs the real command (settings, engine, outbox worker, firebase-admin's async sends); only the
sender's credential (a fake that needs no network) and FCM's base URL differ from production, where
they come from SUPERAPP_FIREBASE_CREDENTIALS and Google.
"""

from __future__ import annotations

import argparse

from core import cli
from plugins.fakes.firebase import initialize_test_app, point_messaging_at
from push import outbox
from push.fcm import FcmSender


def main() -> None:
    """Parse --fcm-url, then hand the remaining arguments to `superapp push worker`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--fcm-url", required=True, help="base URL of the fake FCM (http://127.0.0.1:PORT)")
    args, rest = parser.parse_known_args()
    with point_messaging_at(args.fcm_url):
        outbox.sender_from_settings = lambda settings: FcmSender(initialize_test_app(), owns_app=True)
        cli.main(["push", "worker", *rest], prog_name="superapp")


if __name__ == "__main__":
    main()
