"""Every answer carries the security headers; HTTPS (from the scheme, or X-Forwarded-Proto from a trusted
proxy only) adds HSTS and makes every cookie Secure; the CSP allows the map tiles and the frame-src hook."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Response
from fastapi.testclient import TestClient

from core.app import create_app
from tests.conftest import base_settings
from tests.core.identity.conftest import api, make_persona  # noqa: F401  (fixtures)

PAGES_AND_ANSWERS = ["/", "/healthz", "/api/units", "/m/floodmap/", "/m/feedback/map", "/auth/login",
                     "/static/core/shell.css", "/no/such/page", "/openapi.json"]


def _host(database_url: str, tmp_path: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var",
                                               **overrides)))


@pytest.mark.parametrize("path", PAGES_AND_ANSWERS)
def test_every_answer_carries_the_security_headers(api: TestClient, path: str) -> None:
    answer = api.get(path, follow_redirects=False)
    policy = answer.headers.get("content-security-policy", "")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives.get("script-src") == "'self'", (path, policy)
    assert "'unsafe-inline'" not in directives.get("style-src", "")
    assert directives.get("frame-ancestors") == "'self'"
    assert directives.get("object-src") == "'none'"
    assert answer.headers.get("x-content-type-options") == "nosniff"
    assert answer.headers.get("referrer-policy") == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in answer.headers  # plain HTTP: no HSTS


def test_the_policy_allows_the_map_tiles_and_the_configured_frames(database_url: str, tmp_path: Path) -> None:
    with _host(database_url, tmp_path, map_tile_url="https://{s}.tiles.example.vn/{z}/{x}/{y}.png",
               frame_sources=["https://apps.example.vn"]) as client:
        policy = client.get("/m/floodmap/").headers["content-security-policy"]
    assert "img-src 'self' data: blob: https://*.tiles.example.vn;" in policy
    assert "frame-src 'self' https://apps.example.vn;" in policy


def test_each_page_gets_its_own_style_nonce(api: TestClient, make_persona) -> None:  # noqa: F811
    official = make_persona("operator")
    first, second = (api.get("/feed/new", headers=official) for _ in range(2))
    assert first.status_code == 200, first.text
    nonces = []
    for answer in (first, second):
        nonce = answer.headers["content-security-policy"].split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<style nonce="{nonce}">' in answer.text
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def _with_cookie_probe(client: TestClient) -> TestClient:
    """A route that sets a cookie without ``Secure``, as any page might."""

    def probe() -> Response:
        response = Response("ok")
        response.set_cookie("probe", "1", httponly=True, samesite="lax")
        return response

    client.app.add_api_route("/probe-cookie", probe, include_in_schema=False)
    return client


def test_https_adds_hsts_and_secure_cookies(database_url: str, tmp_path: Path) -> None:
    settings = base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "https")
    with _with_cookie_probe(TestClient(create_app(settings), base_url="https://testserver")) as client:
        answer = client.get("/probe-cookie")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"
    assert answer.headers["set-cookie"].lower().endswith("; secure"), answer.headers["set-cookie"]
    with _with_cookie_probe(_host(database_url, tmp_path)) as plain:
        answer = plain.get("/probe-cookie")
    assert "secure" not in answer.headers["set-cookie"].lower()  # plain HTTP (development): left alone


def test_forwarded_proto_counts_only_from_a_trusted_proxy(database_url: str, tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    with _host(database_url, tmp_path) as untrusted:
        assert "strict-transport-security" not in untrusted.get("/healthz", headers=forwarded).headers
    # The test client's address is "testclient": trust it as the proxy.
    with _host(database_url, tmp_path, trusted_proxies=["testclient"]) as trusted:
        assert trusted.get("/healthz", headers=forwarded).headers["strict-transport-security"] == "max-age=31536000"
        assert "strict-transport-security" not in trusted.get("/healthz").headers
