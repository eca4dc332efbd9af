"""Settings: defaults, environment parsing, and clear errors naming the setting."""

import pytest

from config import DEFAULT_SECRET_KEY, SettingsError, load_settings


def test_embedded_defaults(monkeypatch) -> None:
    for name in ("SUPERAPP_DATABASE_URL", "SUPERAPP_REDIS_URL", "SUPERAPP_MINIAPPS", "SUPERAPP_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.env == "production"  # fail closed: only an explicit dev accepts the placeholder secret
    assert settings.database_url == "sqlite:///./var/superapp.db"
    assert settings.redis_url is None and settings.miniapps is None and settings.locale == "vi"


def test_environment_is_read_with_prefix(monkeypatch) -> None:
    monkeypatch.setenv("SUPERAPP_MINIAPPS", "feedback, floodmap")
    monkeypatch.setenv("SUPERAPP_DATABASE_URL", "postgresql://app@db/hue")
    monkeypatch.setenv("SUPERAPP_REDIS_URL", "redis://cache:6379/0")
    settings = load_settings()
    assert settings.miniapps == ["feedback", "floodmap"]
    assert settings.sqlalchemy_url == "postgresql+psycopg://app@db/hue"
    assert settings.redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SUPERAPP_DATABASE_URL", "mysql://x/y", "SUPERAPP_DATABASE_URL"),
        ("SUPERAPP_REDIS_URL", "http://cache", "SUPERAPP_REDIS_URL"),
        ("SUPERAPP_LOCALE", "fr", "SUPERAPP_LOCALE"),
        ("SUPERAPP_ENV", "staging", "SUPERAPP_ENV"),
        ("SUPERAPP_SECRET_KEY", "short", "SUPERAPP_SECRET_KEY"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_production_refuses_the_default_secret(monkeypatch) -> None:
    monkeypatch.setenv("SUPERAPP_ENV", "production")
    monkeypatch.delenv("SUPERAPP_SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match="SUPERAPP_SECRET_KEY is the built-in default"):
        load_settings()
    monkeypatch.setenv("SUPERAPP_SECRET_KEY", "a-real-secret-" + "x" * 20)
    assert load_settings().secret_key != DEFAULT_SECRET_KEY
