"""What an admin may change in the flood map without a release (/admin/miniapps/floodmap/settings), and
what the operator deploys it with (``SUPERAPP_FLOODMAP_*`` environment variables, read at start-up)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from plugins import ContractError


class FloodmapSettings(BaseModel):
    """Limits of the ingest, the life of a warning, and how long readings are kept at which detail."""

    ingest_batches_per_minute: int = Field(60, ge=1, le=6000, title="Batches a minute per sensor",
                                           description="More from one sensor are refused with 429 and Retry-After.",
                                           json_schema_extra={"title_vi": "Số lô dữ liệu mỗi phút của một cảm biến",
                                                              "description_vi": "Vượt quá thì bị từ chối (429) kèm thời gian chờ."})
    warning_hours: int = Field(12, ge=1, le=72, title="Warning lifetime (hours)",
                               description="How long a warning stays active on the feed and in its CAP expires.",
                               json_schema_extra={"title_vi": "Thời gian hiệu lực của cảnh báo (giờ)",
                                                  "description_vi": "Cảnh báo còn hiệu lực trên bảng tin và trong CAP bao lâu."})
    raw_readings_days: int = Field(
        90, ge=7, le=3650, title="Keep every reading (days)",
        description="Readings older than this are folded into hourly lowest/mean/highest and deleted. At least "
                    "7 days, so the station page's 72-hour chart and the alert checks always see every reading.",
        json_schema_extra={"title_vi": "Giữ mọi số đo (ngày)",
                           "description_vi": "Số đo cũ hơn được gộp thành thấp nhất/trung bình/cao nhất theo giờ rồi "
                                             "xoá. Ít nhất 7 ngày, để biểu đồ 72 giờ và việc kiểm tra báo động luôn "
                                             "thấy đủ số đo."})
    hourly_readings_days: int = Field(
        0, ge=0, le=36500, title="Keep hourly summaries (days, 0 = for ever)",
        description="Hourly summaries older than this are deleted; 0 keeps them for ever (about 0.5 MB a "
                    "station a year), so history charts reach back to the first reading.",
        json_schema_extra={"title_vi": "Giữ số liệu tổng hợp theo giờ (ngày, 0 = mãi mãi)",
                           "description_vi": "Số liệu theo giờ cũ hơn bị xoá; 0 là giữ mãi (khoảng 0,5 MB mỗi trạm "
                                             "mỗi năm), để biểu đồ lịch sử về tới số đo đầu tiên."})

    @field_validator("hourly_readings_days")
    @classmethod
    def _longer_than_raw(cls, value: int, info: ValidationInfo) -> int:
        raw = info.data.get("raw_readings_days")
        if value and raw is not None and value < raw:
            raise ValueError(f"keep hourly summaries at least as long as every reading ({raw} days), or 0 for ever")
        return value


ENV_PREFIX = "SUPERAPP_FLOODMAP_"
MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}


class FloodmapDeployment(BaseSettings):
    """Deploy-time settings of the flood map, from the environment (or ``.env``) like the host's own: the
    MQTT broker the SensorThings updates are published to. Not admin-editable: a broker's address and
    credentials belong to the deployment, and a bad one must stop start-up, not a request."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    # mqtt://[user:password@]host[:port] or mqtts://...; unset = no MQTT (the HTTP API alone).
    mqtt_url: str | None = None
    # What clients are told to subscribe at (serverSettings endpoints), comma-separated; default: the
    # broker URL without its credentials. Set it when clients reach the broker by another address
    # (wss://, a public name) than the server does.
    mqtt_public_urls: str | None = None
    # Changes waiting for the broker (one a commit: a batch of readings, a write); past it the oldest are
    # dropped and counted. At ~60 stations every 10 s, 10,000 is half an hour of broker outage.
    mqtt_queue_size: int = Field(10_000, ge=10, le=1_000_000)

    @field_validator("mqtt_url")
    @classmethod
    def _a_broker(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in MQTT_SCHEMES or not parts.hostname or port == -1 or parts.path not in ("", "/") \
                or parts.query or parts.fragment:
            # the value is not echoed: it may hold the broker password
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port], optionally with user:password@")
        return value

    @property
    def endpoints(self) -> list[str]:
        """The broker addresses clients subscribe at (never with the server's credentials)."""
        if self.mqtt_public_urls:
            return [u.strip() for u in self.mqtt_public_urls.split(",") if u.strip()]
        if not self.mqtt_url:
            return []
        parts = urlsplit(self.mqtt_url)
        return [f"{parts.scheme}://{parts.hostname}:{parts.port or MQTT_SCHEMES[parts.scheme]}"]


def read_deployment() -> FloodmapDeployment:
    """The deploy-time settings; a bad one raises ContractError naming the variable, in one line."""
    try:
        return FloodmapDeployment()
    except ValidationError as exc:
        problems = "; ".join(f"{ENV_PREFIX}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                             for e in exc.errors())
        raise ContractError(f"mini-app 'floodmap': {problems}") from None
