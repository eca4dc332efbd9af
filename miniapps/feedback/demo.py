"""Demo data: categories, an environment department official, and reports in several states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select

from miniapps.feedback import apikeys, handling, service
from miniapps.feedback.models import FeedbackApiKey, FeedbackReport
from miniapps.feedback.permissions import feedback_authorizer
from plugins import Membership, Principal, User, create_official

DEMO_OFFICIAL = ("moitruong.demo", "Chuyên viên Sở Nông nghiệp và Môi trường (demo)", "department_official", "so-nnmt")
DEMO_PASSWORD = "hue-demo-2025"
# (category, description, lat, lon, actions taken by the handling unit, days ago)
DEMO_REPORTS: tuple[tuple[str, str, float, float, tuple[str, ...], int], ...] = (
    ("public-order", "Quán nước lấn chiếm vỉa hè đường Đinh Tiên Hoàng, người đi bộ phải xuống lòng đường.",
     16.4772, 107.5776, (), 0),
    ("trash", "Rác thải tồn đọng nhiều ngày ở góc đường Mai Thúc Loan, bốc mùi.", 16.4760, 107.5800, ("accept",), 1),
    ("roads", "Ổ gà lớn giữa đường Lê Duẩn gần cầu Phú Xuân, xe máy dễ ngã.", 16.4700, 107.5790,
     ("accept", "start"), 3),
    ("lighting", "Đèn đường tắt cả dãy trên đường Kim Long từ số 100 đến 150.", 16.4540, 107.5560,
     ("accept", "start", "resolve"), 6),
    ("trees", "Cây phượng nghiêng sắp đổ trước trường tiểu học.", 16.4050, 107.5440, ("accept", "resolve"), 9),
)


def load_demo(host: Any) -> Iterator[str]:
    """Load the demo once (idempotent); yields progress lines."""
    with host.session() as session:
        added = service.load_categories(session)
        yield f"categories: {added} added"
        username, name, role, unit = DEMO_OFFICIAL
        if session.exec(select(User).where(User.username == username)).first() is None:
            create_official(session, username=username, display_name=name, password=DEMO_PASSWORD,
                            memberships=[(role, unit)])
            yield f"demo official {username} added (password '{DEMO_PASSWORD}')"
        if session.exec(select(FeedbackReport).limit(1)).first() is not None:
            yield "reports already loaded"
            return
        resident = session.exec(select(User).where(User.phone == "+84905000001")).first()
        operator = session.exec(select(User).where(User.username == "operator.demo")).first()
        if resident is None or operator is None:
            yield "demo resident or operator missing: no demo reports"
            return
        acting = Principal(user_id=operator.id, kind="official", display_name=operator.display_name,
                           memberships=(Membership("operator", "hue"),))
        store = _NoPhotos()
        now = datetime.now(UTC)
        for category, text, lat, lon, actions, days in DEMO_REPORTS:
            report = service.file_report(session, store=store, reporter_id=resident.id, category_id=category,
                                            description=text, lat=lat, lon=lon, now=now - timedelta(days=days))
            for step, action in enumerate(actions, start=1):
                handling.act(session, store=store, principal=acting, authorizer=feedback_authorizer(),
                            report_id=report.id or 0, action=action, response="Đã xử lý xong, cảm ơn bạn.",
                            now=now - timedelta(days=days) + timedelta(hours=4 * step))
        yield f"{len(DEMO_REPORTS)} reports added (resident {resident.phone})"
        if session.exec(select(FeedbackApiKey).limit(1)).first() is None:
            _row, key = apikeys.issue(session, name="Demo Open311 client", created_by=operator.id)
            yield f"Open311 api_key for the demo (shown once): {key}"


class _NoPhotos:
    """Demo reports carry no photos (seeding has no settings, hence no media store)."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Never called: demo reports have no photos."""
        raise RuntimeError("demo reports have no photos")

    def get(self, key: str) -> bytes:
        """Never called."""
        raise KeyError(key)

    def delete(self, key: str) -> None:
        """Nothing stored, nothing to delete."""
