"""The permissions feedback checks and the roles granted them by default."""

from __future__ import annotations

from plugins import Authorizer
from plugins.manifest import LocalizedText
from plugins.registry import Permission

# name -> (vi, en, roles). Admins hold every permission; "resident" lets residents act for themselves.
PERMISSIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "reports.file": ("Gửi phản ánh", "File field reports", ("resident",)),
    "reports.handle": ("Xử lý phản ánh của đơn vị", "Handle the unit's field reports",
                       ("commune_official", "department_official", "operator")),
    "reports.route": ("Điều phối phản ánh, xem người gửi", "Route field reports and see who filed them",
                      ("operator",)),
    "dashboard.read": ("Xem bảng tổng hợp phản ánh", "Read the field reports dashboard", ("operator",)),
    "api_keys.manage": ("Cấp khóa API Open311", "Issue Open311 API keys", ()),
    "categories.manage": ("Quản lý loại phản ánh và đơn vị xử lý", "Manage report categories and their routing", ()),
}


def feedback_authorizer() -> Authorizer:
    """An authorizer that knows feedback's permissions, for code running outside a request (search)."""
    holder = type("FeedbackPermissions", (), {})()
    holder.permissions = [Permission(f"feedback.{name}", LocalizedText(vi=vi, en=en), roles, "feedback")
                          for name, (vi, en, roles) in PERMISSIONS.items()]
    return Authorizer([holder])  # type: ignore[list-item]
