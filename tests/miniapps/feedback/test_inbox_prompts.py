"""A resident's resolved report: the inbox links its notice to the rating form and prompts "rate it" until
it is rated (issue 16), in Vietnamese and English; nobody else is prompted."""

from __future__ import annotations

import logging
import re

from fastapi.testclient import TestClient

from plugins import InboxPrompt
from push import pages
from tests.core.identity.conftest import Persona
from tests.miniapps.feedback.conftest import act


def _prompts(api: TestClient, who: Persona, lang: str) -> list[tuple[str, str]]:
    html = api.get(f"/inbox?lang={lang}", headers=who).text
    return re.findall(r'<li data-testid="prompt"[^>]*>\s*<span>([^<]*)</span>\s*<a class="button" href="([^"]*)"', html)


def test_resolved_report_is_prompted_until_rated(api: TestClient, filed, resident_a: Persona, resident_b: Persona,
                                                  commune_px: Persona) -> None:
    report = filed()
    rid = report["id"]
    act(api, commune_px, rid, "accept")
    assert _prompts(api, resident_a, "vi") == []  # not resolved yet
    act(api, commune_px, rid, "resolve", response="Đã dọn vỉa hè")

    assert _prompts(api, resident_a, "vi") == [
        (f"Phản ánh #{rid} đã được giải quyết: bạn thấy thế nào?", f"/m/feedback/reports/{rid}#rate")]
    assert _prompts(api, resident_a, "en") == [
        (f"Report #{rid} is resolved: how was it handled?", f"/m/feedback/reports/{rid}#rate")]
    html = api.get("/inbox?lang=en", headers=resident_a).text
    # the newest notice about the report (the resolution) carries the action; older ones about it do not
    assert html.count('data-testid="item-prompt"') == 1 and ">Rate it</a>" in html
    opened = api.get(re.search(r'href="(/inbox/\d+/open)"', html).group(1), headers=resident_a,
                     follow_redirects=False)
    assert opened.headers["location"] == f"/m/feedback/reports/{rid}#rate"
    assert _prompts(api, resident_b, "vi") == [] and _prompts(api, commune_px, "vi") == []

    rated = api.post(f"/api/miniapps/feedback/reports/{rid}/rating", headers=resident_a, json={"stars": 4})
    assert rated.status_code == 200
    assert _prompts(api, resident_a, "vi") == []
    assert 'data-testid="item-prompt"' not in api.get("/inbox", headers=resident_a).text


def test_a_failing_provider_leaves_the_inbox_standing(api: TestClient, resident_a: Persona, monkeypatch,
                                                      caplog) -> None:
    feedback = next(m for m in api.app.state.miniapps if m.id == "feedback")

    def broken(context):
        raise RuntimeError("database away")

    def wrong(context):
        return [{"key": "x", "title": "t", "action": "a", "url": "https://elsewhere.example/"}]

    monkeypatch.setattr(feedback, "inbox_prompts", [type(feedback.inbox_prompts[0])(broken, "feedback"),
                                                    type(feedback.inbox_prompts[0])(wrong, "feedback")])
    caplog.set_level(logging.WARNING, logger=pages.__name__)
    response = api.get("/inbox", headers=resident_a)
    assert response.status_code == 200 and 'data-testid="prompts"' not in response.text
    assert "failed" in caplog.text and "not a list of InboxPrompt" in caplog.text
    assert InboxPrompt(key="k", title="t", action="a", url="/m/x/").url == "/m/x/"
