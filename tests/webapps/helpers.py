"""Shared pieces of the web mini-app tests: a valid registration and the lifecycle to publication."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def registration(webapp_id: str = "youth_union", origin: str = "https://youth.example.vn", **overrides: Any) -> dict[str, Any]:
    """A registration that passes review rules; ``overrides`` replace fields."""
    body: dict[str, Any] = {
        "id": webapp_id,
        "name": {"vi": "Đoàn Thanh niên", "en": "Youth Union"},
        "description": {"vi": "Hoạt động tình nguyện", "en": "Volunteering"},
        "icon": "🤝",
        "entry_url": f"{origin}/app",
        "allowed_origins": [origin],
        "audiences": ["resident"],
        "scopes": [
            {"scope": "location", "reason": {"vi": "Tìm điểm tình nguyện gần bạn", "en": "Find volunteering near you"}},
            {"scope": "notifications", "reason": {"vi": "Báo lịch hoạt động", "en": "Tell you about activities"}},
            {"scope": "phone", "reason": {"vi": "Liên hệ khi bạn đăng ký", "en": "Call you about your sign-up"}},
        ],
        "notification_topics": [{"id": "activities", "name": {"vi": "Hoạt động", "en": "Activities"}}],
        "webhook_url": f"{origin}/hooks/superapp",
        "contact": {"name": "Ban Tin học", "email": "it@youth.example.vn"},
    }
    body.update(overrides)
    return body


def publish(api: TestClient, operator: dict[str, str], body: dict[str, Any], percent: int = 100) -> dict[str, Any]:
    """Register, approve and publish version 1; returns the registration answer (with the client secret)."""
    created = api.post("/api/webapps", json=body, headers=operator)
    assert created.status_code == 201, created.text
    webapp_id = body["id"]
    approved = api.post(f"/api/webapps/{webapp_id}/versions/1/review", json={"decision": "approve"}, headers=operator)
    assert approved.status_code == 200, approved.text
    published = api.post(f"/api/webapps/{webapp_id}/versions/1/publish", json={"rollout_percent": percent},
                         headers=operator)
    assert published.status_code == 200, published.text
    return created.json()
