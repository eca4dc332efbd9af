"""Hue's 133 wards and communes as they were before 1 July 2025, and which of the 40 new units each joined.

The data comes from the ``vietnamadminunits`` package (its geocoded centroids and bounding boxes of the
pre-2025 units, and the official old-to-new mapping). A pre-2025 ward is about a tenth of a new unit's area,
so its centre places a point far better than the 40 new centres do: the old Kim Long ward's centre lies on
Kim Long street, the new Kim Long's centre is 6 km south of it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from core.text import fold

PROVINCE_KEY = "thanhphohue"
# A geocoder that could not find a ward returned its district's or city's extent: boxes wider than
# this diagonal are such failures (Hue's largest real commune, Phong My, spans 39 km).
MAX_SANE_DIAGONAL_KM = 45.0
# Geocoding the package got wrong in a way the checks above cannot see: old Thuan Hoa ward is the heart of
# the Citadel (Ngo Mon, 23 Thang 8 street), but its centre and box were copied from Xuan Phu ward across
# the river. The centre here is the Imperial City's; its box is unknown.
CORRECTED_CENTRES = {("quanphuxuan", "phuongthuanhoa"): (16.4698, 107.5786)}


@dataclass(frozen=True)
class FormerWard:
    """A pre-2025 ward or commune of Hue: its centre (NaN when unknown), its bounding box (None when
    unknown) and its new unit's key."""

    name: str
    district: str
    lat: float
    lon: float
    box: tuple[float, float, float, float] | None  # south, west, north, east
    new_key: str

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point lies within the ward's bounding box."""
        return self.box is not None and self.box[0] <= lat <= self.box[2] and self.box[1] <= lon <= self.box[3]


def unit_key(name_vi: str) -> str:
    """The key the package gives a unit ('Phường Kim Long' -> 'phuongkimlong'), from its Vietnamese name."""
    return "".join(ch for ch in fold(name_vi) if ch.isalnum())


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    low, high = (part.split(",") for part in text.split("–"))
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


def _diagonal_km(box: tuple[float, float, float, float]) -> float:
    height = (box[2] - box[0]) * 111.32
    width = (box[3] - box[1]) * 111.32 * math.cos(math.radians((box[0] + box[2]) / 2))
    return math.hypot(height, width)


@lru_cache(maxsize=1)
def former_wards() -> tuple[FormerWard, ...]:
    """Hue's pre-2025 wards and communes, read once per process from the package's data."""
    data = resources.files("vietnamadminunits").joinpath("data")
    mapping = json.loads(data.joinpath("converter_2025.json").read_text(encoding="utf-8"))
    new_of: dict[str, str] = {}
    for new_key, old_keys in mapping["DICT_PROVINCE_WARD_NO_DIVIDED"][PROVINCE_KEY].items():
        for old_key in old_keys:
            # A few keys keep their diacritics ('phườnghươngvân'); fold them like the rest.
            new_of["_".join(unit_key(part) for part in old_key.split("_"))] = new_key
    with resources.as_file(data.joinpath("dataset.db")) as path, \
            sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT ward, district, wardLat, wardLon, wardBounds, districtLat, districtLon, districtBounds,"
            " provinceKey, districtKey, wardKey FROM admin_units_legacy WHERE provinceKey = ?", (PROVINCE_KEY,),
        ).fetchall()
    wards = []
    for ward, district, lat, lon, bounds, d_lat, d_lon, d_bounds, p_key, d_key, w_key in rows:
        new_key = new_of.get(f"{p_key}_{unit_key(d_key)}_{unit_key(w_key)}")
        if new_key is None or lat is None or lon is None:
            continue
        box = _box(bounds)
        if (lat, lon) == (d_lat, d_lon) or bounds == d_bounds or (box and _diagonal_km(box) > MAX_SANE_DIAGONAL_KM):
            # Geocoding failed for this ward: its centre and box are its district's; the new unit's centre
            # stands in (see ``nearest``), and the box is not evidence.
            lat, lon, box = math.nan, math.nan, None
        corrected = CORRECTED_CENTRES.get((unit_key(d_key), unit_key(w_key)))
        if corrected is not None:
            (lat, lon), box = corrected, None
        wards.append(FormerWard(name=ward, district=district, lat=lat, lon=lon, box=box, new_key=new_key))
    return tuple(wards)
