"""What an admin may change in the flood map without a release (/admin/miniapps/floodmap/settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator


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
