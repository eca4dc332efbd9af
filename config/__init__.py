"""Settings and logging set-up for the super-app host."""

from config.settings import DEFAULT_SECRET_KEY, Settings, SettingsError, load_settings

__all__ = ["DEFAULT_SECRET_KEY", "Settings", "SettingsError", "load_settings"]
