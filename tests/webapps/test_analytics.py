"""Web mini-app analytics: opens, unique residents and errors per day, JSON, CSV, the backend's own view and
the operators' dashboard, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from config import SettingsError, load_settings
from core import retention
from core.webapps.analytics import today
from core.webapps.models import WebAppUsage
from tests.webapps.helpers import publish, registration
from tests.webapps.test_launch_s2s import s2s_token


def test_opens_residents_and_errors_per_day(api, operator, resident_a, resident_b):
    secret = publish(api, operator, registration())["client_secret"]
    for who in (resident_a, resident_a, resident_b):
        assert api.post("/api/webapps/youth_union/launch", headers=who).status_code == 200
    assert api.post("/api/webapps/youth_union/errors", headers=resident_b).status_code == 204
    answer = api.get("/api/webapps/youth_union/analytics", headers=operator).json()
    assert len(answer["days"]) == 90
    assert answer["days"][-1] == {"day": today().isoformat(), "opens": 3, "residents": 2, "errors": 1}
    assert sum(d["opens"] for d in answer["days"][:-1]) == 0
    csv = api.get("/api/webapps/youth_union/analytics?format=csv&days=2", headers=operator)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "day,opens,residents,errors"
    assert csv.text.splitlines()[-1] == f"{today().isoformat()},3,2,1"
    assert api.get("/api/webapps/youth_union/analytics", headers=resident_a).status_code == 403
    own = api.get("/api/s2s/analytics?days=1", headers={"Authorization": f"Bearer {s2s_token(api, secret, 'analytics.read')}"})
    assert own.status_code == 200 and own.json()["days"][0]["residents"] == 2
    page = api.get("/admin/webapps/youth_union/analytics", headers=operator)
    assert page.status_code == 200 and 'data-testid="total-opens">3<' in page.text


def test_retention_keeps_90_days_of_usage(api, operator):
    """The retention job deletes usage rows older than SUPERAPP_RETENTION_WEBAPP_USAGE_DAYS (90)."""
    publish(api, operator, registration())
    ages = (400, 91, 89, 0)
    with Session(api.app.state.engine) as db:
        for age in ages:
            db.add(WebAppUsage(webapp_id="youth_union", day=today() - timedelta(days=age), pairwise_id=f"p{age}",
                               opens=1))
        db.commit()
    settings = api.app.state.settings
    assert settings.retention_webapp_usage_days == 90
    (outcome,) = retention.purge(api.app.state.engine, settings, only={"web mini-app usage"})
    assert outcome.rows == 2
    with Session(api.app.state.engine) as db:
        kept = sorted((today() - row.day).days for row in db.exec(select(WebAppUsage)))
    assert kept == [0, 89]
    assert sum(d["opens"] for d in api.get("/api/webapps/youth_union/analytics", headers=operator).json()["days"]) == 2


@pytest.mark.parametrize("value", ["30", "4000", "many"])
def test_usage_retention_out_of_range_is_refused_in_one_line(monkeypatch, value):
    monkeypatch.setenv("SUPERAPP_RETENTION_WEBAPP_USAGE_DAYS", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "SUPERAPP_RETENTION_WEBAPP_USAGE_DAYS" in str(refused.value) and "\n" not in str(refused.value)
