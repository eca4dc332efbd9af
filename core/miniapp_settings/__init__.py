"""Mini-app settings: a pydantic model per mini-app, edited by admins, secrets stored encrypted."""

from core.miniapp_settings.service import MiniAppSettingsStore, SettingsRejected

__all__ = ["MiniAppSettingsStore", "SettingsRejected"]
