"""RFC 9110 in practice: HEAD wherever GET, If-None-Match with lists, weak tags and *, an ETag per representation."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from core.http import accepts_gzip, gzip_etag, if_none_match


@pytest.mark.parametrize("path", ["/api/miniapps", "/api/units?kind=ward", "/", "/healthz",
                                  "/api/miniapps/floodmap/stations.geojson", "/open311/v2/services.json"])
def test_head_answers_as_get_without_the_body(client, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert get.status_code == 200 and head.status_code == 200, (get.status_code, head.status_code)
    assert head.content == b""
    for name in ("content-type", "etag", "content-length", "cache-control"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_head_on_a_path_without_get_is_still_refused(client) -> None:
    assert client.head("/api/auth/login").status_code == 405
    assert client.head("/api/nothing-here").status_code == 404


def test_if_none_match_takes_lists_weak_tags_and_star(client) -> None:
    first = client.get("/api/miniapps")
    etag = first.headers["etag"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        assert client.get("/api/miniapps", headers={"If-None-Match": header}).status_code == 304, header
    assert client.get("/api/miniapps", headers={"If-None-Match": '"other"'}).status_code == 200


def test_gzip_and_identity_representations_have_their_own_etags(client) -> None:
    path = "/api/miniapps/floodmap/stations.geojson"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert plain.headers.get("content-encoding") is None and zipped.headers["content-encoding"] == "gzip"
    assert plain.headers["etag"] != zipped.headers["etag"] == gzip_etag(plain.headers["etag"])
    assert "Accept-Encoding" in zipped.headers["vary"]
    # httpx decodes the gzip body: the same content either way
    assert zipped.json() == plain.json()
    # a client holding either representation has the content
    for held in (plain.headers["etag"], zipped.headers["etag"]):
        again = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": held})
        assert again.status_code == 304 and again.headers["etag"] == zipped.headers["etag"]
    assert client.get(path, headers={"Accept-Encoding": "gzip;q=0"}).headers.get("content-encoding") is None


def _request(accept_encoding: str) -> Request:
    return Request({"type": "http", "headers": [(b"accept-encoding", accept_encoding.encode())]})


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.8", True), ("gzip;q=0", False),
    ("identity", False), ("*", True), ("*;q=0", False), ("", False), ("gzip;q=oops", False),
])
def test_accept_encoding_is_read_with_its_qualities(header: str, expected: bool) -> None:
    assert accepts_gzip(_request(header)) is expected


def test_weak_comparison() -> None:
    assert if_none_match('W/"a"', '"a"') and if_none_match('"a"', 'W/"a"') and if_none_match(' "b" , "a"', '"a"')
    assert not if_none_match('"ab"', '"a"') and not if_none_match(None, '"a"') and not if_none_match("", '"a"')
    assert gzip_etag('"a"') == '"a-gzip"' and gzip_etag('W/"a"') == 'W/"a-gzip"'
