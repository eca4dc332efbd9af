"""Read and change mini-app settings: validation by the mini-app's model, secrets encrypted at rest.

Secrets (``SecretStr`` fields) are encrypted with Fernet under a key derived (HKDF-SHA256) from
``SUPERAPP_SECRET_KEY``, so a database dump alone does not reveal them; changing the secret key makes
stored secrets unreadable (they fall back to their defaults and are logged), so re-enter them after a
rotation. Each worker caches what it read for ``cache_seconds``; its own writes apply at once.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.identity import service as identity
from core.identity.models import utcnow
from core.miniapp_settings.models import MiniAppSettingsRow
from plugins.registry import MiniApp

log = logging.getLogger(__name__)


class SettingsRejected(ValueError):
    """A change the mini-app's model refuses; ``errors`` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def settings_cipher(secret_key: str) -> Fernet:
    """The Fernet cipher for settings secrets, derived from the host's secret key."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"superapp mini-app settings v1").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def secret_fields(model: type[BaseModel]) -> set[str]:
    """The fields of ``model`` that hold secrets."""
    return {name for name, info in model.model_fields.items() if info.annotation is SecretStr}


class MiniAppSettingsStore:
    """The settings of every loaded mini-app that declares a settings model."""

    def __init__(self, *, engine: Engine, secret_key: str, miniapps: list[MiniApp], cache_seconds: float = 5.0) -> None:
        self._engine = engine
        self._cipher = settings_cipher(secret_key)
        self._models = {m.id: m.settings_model for m in miniapps if m.settings_model is not None}
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, BaseModel]] = {}

    def model_of(self, miniapp: str) -> type[BaseModel]:
        """The settings model of ``miniapp``; KeyError when it declares none."""
        return self._models[miniapp]

    def configurable(self) -> list[str]:
        """Ids of the mini-apps that declare settings."""
        return sorted(self._models)

    def get(self, miniapp: str) -> BaseModel:
        """The current settings of ``miniapp`` (secrets decrypted into ``SecretStr``)."""
        cached = self._cache.get(miniapp)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        with Session(self._engine) as db:
            row = db.get(MiniAppSettingsRow, miniapp)
        current = self._build(miniapp, row)
        self._cache[miniapp] = (time.monotonic(), current)
        return current

    def describe(self, miniapp: str) -> dict[str, Any]:
        """What an admin sees: the schema, the values (secrets only as set or not) and who saved last."""
        model = self.model_of(miniapp)
        with Session(self._engine) as db:
            row = db.get(MiniAppSettingsRow, miniapp)
        current = self._build(miniapp, row)
        secrets = secret_fields(model)
        values = {k: v for k, v in current.model_dump(mode="json").items() if k not in secrets}
        return {
            "miniapp": miniapp,
            "schema": model.model_json_schema(),
            "values": values,
            "secrets": {name: bool(row and name in row.secrets) for name in sorted(secrets)},
            "updated_at": row.updated_at if row else None,
            "updated_by": row.updated_by if row else None,
        }

    def update(self, miniapp: str, changes: dict[str, Any], *, actor_id: int | None,
               address: str | None = None) -> BaseModel:
        """Apply ``changes`` (``None`` resets a field to its default); all or nothing, audited."""
        model = self.model_of(miniapp)
        unknown = sorted(set(changes) - set(model.model_fields))
        if unknown:
            raise SettingsRejected({name: "no such setting" for name in unknown})
        secrets = secret_fields(model)
        with Session(self._engine) as db:
            row = db.get(MiniAppSettingsRow, miniapp) or MiniAppSettingsRow(miniapp=miniapp)
            values, tokens = dict(row.values), dict(row.secrets)
            plain = {**values, **{k: self._decrypt(miniapp, k, t) for k, t in tokens.items()}}
            for name, value in changes.items():
                if value is None:
                    plain.pop(name, None)
                else:
                    plain[name] = value
            try:
                checked = model.model_validate(plain)
            except ValidationError as exc:
                raise SettingsRejected({".".join(map(str, e["loc"])) or "settings": e["msg"]
                                        for e in exc.errors()}) from None
            dumped = checked.model_dump(mode="json")
            row.values = {k: dumped[k] for k in plain if k not in secrets}
            row.secrets = {
                k: self._cipher.encrypt(getattr(checked, k).get_secret_value().encode()).decode()
                for k in plain if k in secrets
            }
            row.updated_at, row.updated_by = utcnow(), actor_id
            db.add(row)
            identity.audit(db, "miniapp_settings_changed", actor_id=actor_id, address=address, miniapp=miniapp,
                           fields=sorted(changes))
            db.commit()
        self._cache[miniapp] = (time.monotonic(), checked)
        return checked

    def _decrypt(self, miniapp: str, name: str, token: str) -> str | None:
        try:
            return self._cipher.decrypt(token.encode()).decode()
        except InvalidToken:
            log.warning("setting %s.%s cannot be decrypted (secret key changed?): using its default", miniapp, name)
            return None

    def _build(self, miniapp: str, row: MiniAppSettingsRow | None) -> BaseModel:
        """The model from the stored row; a stored value the model no longer accepts falls back to its default."""
        model = self.model_of(miniapp)
        stored: dict[str, Any] = {}
        if row is not None:
            stored.update({k: v for k, v in row.values.items() if k in model.model_fields})
            for name, token in row.secrets.items():
                text = self._decrypt(miniapp, name, token)
                if text is not None and name in model.model_fields:
                    stored[name] = text
        try:
            return model.model_validate(stored)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            log.warning("stored settings of %s no longer valid for %s: using defaults", miniapp, sorted(bad))
            return model.model_validate({k: v for k, v in stored.items() if k not in bad})
