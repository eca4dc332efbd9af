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


def _has_the_headers(answer) -> bool:
    policy = answer.headers.get("content-security-policy", "")
    return ("frame-ancestors 'self'" in policy and answer.headers.get("x-content-type-options") == "nosniff"
            and answer.headers.get("x-frame-options") == "SAMEORIGIN")


def test_answers_made_by_outer_layers_carry_the_headers_too(database_url: str, tmp_path: Path) -> None:
    """A 413 from the body limit, a 400 from the host check and a 500 that Starlette's outermost error
    layer answers all carry the headers (they are made outside the host's other middleware)."""
    app = create_app(base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var",
                                   allowed_hosts=["testserver"]))

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/test-broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        too_large = client.post("/api/units", content=b"x" * 10, headers={"Content-Length": str(50 * 2**20)})
        assert too_large.status_code == 413
        assert _has_the_headers(too_large)
        wrong_host = client.get("/healthz", headers={"Host": "evil.example"})
        assert wrong_host.status_code == 400
        assert _has_the_headers(wrong_host)
        crashed = client.get("/api/test-broken")
        assert crashed.status_code == 500
        assert crashed.headers["content-type"] == "application/problem+json"
        assert _has_the_headers(crashed)
