"""Text no database can store (a lone UTF-16 surrogate, "\\ud800", sent as a JSON escape) is a 422 naming the
field, for every route at once, instead of a 500 from the driver; valid surrogate pairs (emoji) still pass."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from miniapps.interaction.models import Question
from tests.miniapps.interaction.conftest import API, host, official, phu_vang  # noqa: F401  (fixtures)

TITLE = "Thu hồi đất nông nghiệp làm đường liên thôn"
BODY = "Xã có thẩm quyền thu hồi đất nông nghiệp để mở đường liên thôn không?"


def _post(host, who, raw: str):  # noqa: F811
    """POST a hand-written JSON body (json.dumps would refuse nothing, but this keeps the escape visible)."""
    return host.post(f"{API}/questions", headers={**who.headers, "Content-Type": "application/json"},
                     content=raw.encode())


@pytest.mark.parametrize(("raw", "field"), [
    (f'{{"title": "{TITLE} \\ud800", "body": "{BODY}", "field": "land"}}', "body.title"),
    (f'{{"title": "{TITLE}", "body": "{BODY} \\udfff tail", "field": "land"}}', "body.body"),
    (f'{{"title": "{TITLE}", "body": "{BODY}", "field": "land", "\\udc00": "x"}}', "body.\\udc00"),
])
def test_a_lone_surrogate_is_a_422_naming_the_field(host, phu_vang, raw: str, field: str) -> None:  # noqa: F811
    answer = _post(host, phu_vang, raw)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == field
    with Session(host.app.state.engine) as db:
        assert db.exec(select(func.count()).select_from(Question)).one() == 0  # nothing half-saved


def test_a_surrogate_pair_is_ordinary_text(host, phu_vang) -> None:  # noqa: F811
    answer = _post(host, phu_vang, f'{{"title": "{TITLE} \\ud83c\\udf0a", "body": "{BODY}", "field": "land"}}')
    assert answer.status_code == 201, answer.text
    assert answer.json()["title"].endswith("🌊")
