"""Pixel bombs: photos that are small on the wire and huge once decoded cost a bounded amount of memory."""

from __future__ import annotations

import functools

import httpx

from tests.security.conftest import MIB, REQUEST_BUDGET, Served, png

FEEDBACK = "/api/miniapps/feedback/reports"
FLOODMAP = "/api/miniapps/floodmap/reports"
PHU_XUAN = {"lat": "16.4780", "lon": "107.5770"}


@functools.cache
def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    return png((width, height), mode)


def _report(served: Served, who: dict[str, str], photos: list[bytes]) -> httpx.Response:
    data = {"category_id": "public-order", "description": "Rác thải ven sông Hương", **PHU_XUAN}
    files = [("photos", (f"anh-{i}.png", photo, "image/png")) for i, photo in enumerate(photos)]
    return httpx.post(served.url + FEEDBACK, headers=who, data=data, files=files, timeout=300)


def test_five_8000_square_pngs_are_refused_from_their_headers(served: Served) -> None:
    """Five 8000x8000 PNGs (1 MB in all, each under the old 64 MP limit) cost far less than they decode to."""
    who = served.resident()
    warm = _report(served, who, [_png(64, 64)])  # imports, pools and caches before measuring
    assert warm.status_code == 201, warm.text
    bombs = [_png(8000, 8000)] * 5
    assert sum(map(len, bombs)) < 2 * MIB
    response, rise = served.peak_rise(lambda: _report(served, who, bombs))
    assert rise <= REQUEST_BUDGET, f"peak RSS rose {rise / MIB:.0f} MiB"
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["field"] == "photos[0]"
    assert "8000x8000" in problem["detail"]


def test_five_large_accepted_pngs_are_processed_within_the_budget(served: Served) -> None:
    """Photos just inside the pixel limit are accepted, and five of them still fit the per-request budget."""
    from core.media.photos import MAX_DECODED_PIXELS

    side = int(MAX_DECODED_PIXELS ** 0.5)
    who = served.resident()
    warm = _report(served, who, [_png(64, 64)])
    assert warm.status_code == 201, warm.text
    photos = [_png(side, side)] * 5
    response, rise = served.peak_rise(lambda: _report(served, who, photos))
    assert response.status_code == 201, response.text
    assert len(response.json()["photos"]) == 5
    assert rise <= REQUEST_BUDGET, f"peak RSS rose {rise / MIB:.0f} MiB for five {side}x{side} PNGs"


def test_a_flood_report_photo_bomb_is_refused_cheaply(served: Served) -> None:
    """The flood map's report photo goes through the same checks."""
    who = served.resident("kim-long")
    granted = httpx.put(served.url + "/api/me/consents/floodmap/location", headers=who, timeout=60)
    assert granted.status_code < 300, granted.text
    form = {"depth_cm": "40", "lat": "16.4050", "lon": "107.5440"}

    def report(photo: bytes) -> httpx.Response:
        return httpx.post(served.url + FLOODMAP, headers=who, data=form,
                          files={"photo": ("nuoc.png", photo, "image/png")}, timeout=300)

    warm = report(_png(64, 64))
    assert warm.status_code == 201, warm.text
    response, rise = served.peak_rise(lambda: report(_png(8000, 8000, "RGBA")))
    assert rise <= REQUEST_BUDGET, f"peak RSS rose {rise / MIB:.0f} MiB"
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "body.photo"


def test_a_photo_over_the_decode_budget_is_refused_before_decoding() -> None:
    """A photo whose decode would need more than the whole budget is a 422 that says how much it needs."""
    from core.media.photos import DecodeBudget, PhotoRejected, process_photo

    budget = DecodeBudget(4 * MIB)
    try:
        process_photo(_png(1000, 1000), max_bytes=10 * MIB, budget=budget)
    except PhotoRejected as refused:
        assert refused.status == 422
        assert "MiB to decode" in refused.detail
    else:
        raise AssertionError("a 1000x1000 PNG (8 MB to decode) fit a 4 MiB budget")
    assert budget.in_use == 0


def test_a_photo_waits_for_its_share_of_the_budget_and_gives_it_back() -> None:
    """Reservations add up to at most the capacity; one that cannot be had in time is a 503 to retry."""
    from core.media.photos import DecodeBudget, PhotoRejected, process_photo

    budget = DecodeBudget(16 * MIB)
    with budget.reserve(12 * MIB):
        assert budget.in_use == 12 * MIB
        try:
            with budget.reserve(8 * MIB, timeout=0):
                raise AssertionError("two reservations of 12 and 8 MiB fit a 16 MiB budget")
        except PhotoRejected as refused:
            assert refused.status == 503
    assert budget.in_use == 0
    photo = process_photo(_png(1000, 1000), max_bytes=10 * MIB, budget=budget)  # 8 MB: fits once freed
    assert (photo.width, photo.height) == (1000, 1000)
    assert budget.in_use == 0
