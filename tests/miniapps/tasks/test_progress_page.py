"""The assignment page tells the truth about progress: a report of 60% shows as reported and awaiting
review (not 0%), and a percent outside 0-100 is refused with a message in the page's language."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from miniapps.tasks import service
from tests.core.identity.conftest import Persona
from tests.miniapps.tasks.conftest import assignment_id


def test_reported_progress_shows_and_out_of_range_is_refused(api: TestClient, engine: Any, task_for_two: int,
                                                             commune_kl: Persona) -> None:
    assignment = assignment_id(engine, task_for_two, "kim-long")
    page = f"/m/tasks/assignments/{assignment}"
    sent = api.post(f"{page}/reports", data={"percent": "60", "note": "Đã rà soát 60%"}, headers=commune_kl,
                    follow_redirects=False)
    assert sent.status_code == 303
    shown = api.get(page, params={"lang": "vi"}, headers=commune_kl).text
    assert 'data-testid="assignment-progress">0%<' in shown  # counted once accepted ...
    assert "đã báo cáo 60%, chờ duyệt" in shown  # ... and said as it is meanwhile
    for bad in ("150", "-5"):
        refused = api.post(f"{page}/reports", data={"percent": bad}, headers=commune_kl, follow_redirects=False)
        assert refused.status_code == 303 and refused.headers["location"].endswith("?error=body.percent")
        for lang, words in (("vi", "Tiến độ phải từ 0 đến 100%"), ("en", "Progress must be from 0 to 100%")):
            text = api.get(f"{refused.headers['location']}&lang={lang}", headers=commune_kl).text
            assert words in text and 'data-field="body.percent"' in text
    api_refused = api.post(f"/api/miniapps/tasks/assignments/{assignment}/reports", json={"percent": 150},
                           headers=commune_kl)
    assert api_refused.status_code == 422 and api_refused.json()["field"] == "body.percent"
    with Session(engine) as db:  # nothing refused was stored
        assert [r.percent for r in service.reports_of(db, assignment)] == [60]
