"""Real headless Chromium for page tests, and a live server for it to load."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from push.wsprotocol import UVICORN_OPTIONS, uvicorn_cli_options
from tests.conftest import require

CHROMIUM = os.environ.get("SUPERAPP_TEST_CHROMIUM", "/usr/bin/chromium")
# Without these flags Chromium tries Google's hosts at start-up, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_available() -> bool:
    """True when the Chromium binary and Playwright's Python package are both here."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return bool(shutil.which(CHROMIUM) or os.path.exists(CHROMIUM))


@contextmanager
def launch_chromium() -> Iterator[object]:
    """A headless Chromium driven by Playwright; skips (or fails under CI) when it is not installed."""
    require(chromium_available(), f"Chromium at {CHROMIUM} with Python Playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Served as `superapp serve` serves it (the lean WebSocket protocol, no permessage-deflate).
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **UVICORN_OPTIONS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_in_processes(factory: str, env: dict[str, str], log_dir: Path, count: int = 2) -> Iterator[list[str]]:
    """``count`` uvicorn processes serving the app factory ``factory`` with ``env``; yields their URLs.

    Each waits for ``/readyz``; a process that dies or does not get ready raises with its log.
    """
    import subprocess
    import sys

    import httpx

    root = Path(__file__).resolve().parent.parent
    processes, urls, logs = [], [], []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log_path = log_dir / f"server-{port}.log"
        with open(log_path, "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
                 *uvicorn_cli_options(), "--no-access-log"],
                env={"PYTHONPATH": str(root), **env}, cwd=root, stdout=log, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
        logs.append(log_path)
    try:
        for url, process, log_path in zip(urls, processes, logs):
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(log_path.read_text())
                time.sleep(0.05)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
