"""The people of the synthetic Hue: residents spread over the 40 communes and wards with a real city's
skew, their phones (``device``), the other units they follow, and the officials who serve them.

Residents get ids right after the accounts already present (the demo's), in sign-up order, so the
other parts can read them as one contiguous, time-ordered range.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from array import array
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.city.base import SYNTHETIC, City, CityError

RESIDENTS = 1_300_000
DEVICES = 900_000
SIGN_UP_YEARS = 3
TWO_DEVICE_SHARE = 0.08  # residents with a phone and a tablet (or an old phone still signed in)
FOLLOW_SHARE = 0.10  # residents who follow another unit besides their home (family, work)
ACTIVE_DEVICE_SHARE = 0.92  # the rest were pruned as unregistered by FCM
INACTIVE_ACCOUNT_SHARE = 0.005
# Every generated resident's Firebase uid starts so; it is how a second run recognises a loaded city.
FIREBASE_UID_PREFIX = "synthetic-"

# Residents per commune or ward (by official unit code) at Hue's full size. Synthetic, not census
# figures, but shaped like the city: four dense central wards just over 100,000, suburban wards of
# 22,000-70,000, mountain and lagoon communes of 8,000-20,000. They sum to RESIDENTS exactly.
RESIDENTS_BY_UNIT_CODE: Mapping[str, int] = {
    # wards
    "19753": 104_000,  # Phú Xuân
    "19789": 103_000,  # Thuận Hóa
    "19815": 101_500,  # An Cựu
    "19777": 100_800,  # Vỹ Dạ
    "19774": 70_000,  # Kim Long
    "19975": 62_000,  # Hương Thủy
    "19813": 52_500,  # Thủy Xuân
    "19960": 48_000,  # Phú Bài
    "19969": 42_000,  # Thanh Thủy
    "19804": 40_000,  # Hương An
    "19900": 38_000,  # Thuận An
    "19930": 36_000,  # Mỹ Thượng
    "19996": 34_000,  # Hương Trà
    "20014": 33_000,  # Hóa Châu
    "20017": 31_000,  # Kim Trà
    "19909": 30_000,  # Dương Nỗ
    "19819": 30_000,  # Phong Điền
    "19858": 27_000,  # Phong Thái
    "19831": 26_000,  # Phong Dinh
    "19828": 24_000,  # Phong Phú
    "19873": 22_000,  # Phong Quảng
    # communes
    "20137": 20_000,  # Chân Mây - Lăng Cô
    "19867": 19_000,  # Quảng Điền
    "20107": 18_000,  # Phú Lộc
    "19942": 17_000,  # Phú Vang
    "19885": 17_000,  # Đan Điền
    "19945": 16_000,  # Phú Vinh
    "20140": 15_000,  # Lộc An
    "20122": 15_000,  # Vinh Lộc
    "19918": 14_000,  # Phú Hồ
    "20044": 12_000,  # A Lưới 2
    "20131": 12_000,  # Hưng Lộc
    "20161": 10_000,  # Khe Tre
    "20179": 9_500,  # Nam Đông
    "20056": 9_000,  # A Lưới 1
    "20035": 9_000,  # Bình Điền
    "20071": 8_500,  # A Lưới 3
    "20050": 8_200,  # A Lưới 5
    "20101": 8_000,  # A Lưới 4
    "20182": 8_000,  # Long Quảng
}

# Officials per unit at full size; at a small scale every unit keeps at least one.
OFFICIALS_PER_COMMUNE = 5
OFFICIALS_PER_LARGE_WARD = 8  # wards over 50,000 residents
OFFICIALS_PER_DEPARTMENT = 8
OPERATORS = 6

_SURNAMES = (  # with rough shares of the Vietnamese population
    ("Nguyễn", 38), ("Trần", 11), ("Lê", 9), ("Phạm", 7), ("Hoàng", 4), ("Huỳnh", 3), ("Phan", 4),
    ("Võ", 4), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 1), ("Hồ", 2), ("Ngô", 1), ("Dương", 1),
    ("Tôn Nữ", 1), ("Lý", 1),
)
_MIDDLE = {"m": ("Văn", "Đức", "Hữu", "Minh", "Quang", "Công", "Thành"),
           "f": ("Thị", "Ngọc", "Thu", "Thanh", "Bảo", "Kim", "Diệu")}
_GIVEN = {"m": ("An", "Bảo", "Bình", "Cường", "Dũng", "Duy", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy", "Khang",
                "Khoa", "Kiên", "Long", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Sơn", "Tài",
                "Thắng", "Thịnh", "Tiến", "Toàn", "Trung", "Tuấn", "Việt", "Vinh", "Vũ"),
          "f": ("Anh", "Châu", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hoa", "Hương", "Huyền", "Lan",
                "Liên", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Nhi", "Nhung", "Oanh", "Phương",
                "Quỳnh", "Tâm", "Thảo", "Thủy", "Trang", "Trâm", "Uyên", "Vân", "Yến")}
_NAME_POOL = 20_000  # distinct names drawn once; real cities repeat names too

# notification_prefs as the profile API stores them (see core/identity/routes.py, NotificationPrefs),
# already serialised, with the share of residents holding each; the rest keep "{}".
_PREFS: Sequence[tuple[str, float]] = (
    (json.dumps({"quiet_hours": {"start": "22:00", "end": "06:00"}}), 0.06),
    (json.dumps({"quiet_hours": {"start": "23:00", "end": "06:30"}}), 0.02),
    (json.dumps({"muted": {"feedback": ["report_updates"]}}), 0.03),
    (json.dumps({"muted": {"floodmap": ["flood_updates"]}}), 0.02),
    (json.dumps({"muted": {"floodmap": ["flood_updates"]},
                 "quiet_hours": {"start": "22:00", "end": "06:00"}}), 0.01),
)
_LOCALES = (("vi", 0.88), ("en", 0.07), (None, 0.05))  # None: never chose, the app follows the phone
_APP_VERSIONS = (("3.5.0", 0.45), ("3.4.2", 0.30), ("3.3.0", 0.15), ("3.2.1", 0.10))
_IOS_SHARE = 0.27


def load(city: City) -> dict[str, int]:
    """Load residents, their devices and followed units, and the officials with their memberships."""
    units = _communes_and_wards(city)
    total = city.size(RESIDENTS)
    per_unit = apportion({unit_id: RESIDENTS_BY_UNIT_CODE[code] for unit_id, code in units.items()}, total)
    first_id = city.max_id("user_account") + 1
    joined = _sign_up_times(city, total)
    homes = _shuffled_homes(city, per_unit)
    locales = city.rng.choices([value for value, _ in _LOCALES], [share for _, share in _LOCALES], k=total)
    written = {"user_account": _load_residents(city, first_id, joined, homes, locales)}
    written["device"] = _load_devices(city, first_id, joined, locales)
    written["unit_follow"] = _load_follows(city, first_id, joined, homes, per_unit)
    officials, memberships = _load_officials(city, per_unit)
    written["user_account"] += officials
    written["membership"] = memberships
    city.reset_sequence("user_account")
    return written


def apportion(weights: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` so the parts sum to it exactly (largest remainder)."""
    whole = sum(weights.values())
    exact = {key: total * weight / whole for key, weight in weights.items()}
    shares = {key: math.floor(value) for key, value in exact.items()}
    left = total - sum(shares.values())
    for key in sorted(exact, key=lambda k: (shares[k] - exact[k], -weights[k]))[:left]:
        shares[key] += 1
    return shares


def _communes_and_wards(city: City) -> dict[str, str]:
    """Unit id -> official code of every commune and ward, refusing units the weights do not know."""
    with city.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, code FROM org_unit WHERE kind IN ('ward', 'commune') ORDER BY id")).all()
    units = {unit_id: code for unit_id, code in rows}
    unknown = sorted(unit_id for unit_id, code in units.items() if code not in RESIDENTS_BY_UNIT_CODE)
    if not units or unknown:
        raise CityError(f"the org units do not match Hue's 40 communes and wards (unknown: {unknown}); "
                        "run `superapp seed demo` on this database first")
    return units


def _sign_up_times(city: City, count: int) -> array:
    """Sign-up moments (epoch seconds), ascending, over the last SIGN_UP_YEARS; sign-ups grow with time.

    The square root turns an even spread into a density that rises linearly, as an app's adoption does.
    """
    end = city.now.timestamp()
    span = SIGN_UP_YEARS * 365 * 86_400
    start = end - span
    random = city.rng.random
    return array("d", (start + span * math.sqrt((i + random()) / count) for i in range(count)))


def _shuffled_homes(city: City, per_unit: Mapping[str, int]) -> list[str]:
    """Each resident's home unit: the units' counts, in a random order (sign-ups mix areas)."""
    homes = [unit_id for unit_id, count in per_unit.items() for _ in range(count)]
    city.rng.shuffle(homes)
    return homes


def _names(city: City, count: int) -> list[str]:
    """``count`` synthetic Vietnamese names, marked synthetic."""
    rng = city.rng
    surnames = rng.choices([name for name, _ in _SURNAMES], [share for _, share in _SURNAMES], k=count)
    pool = []
    for surname in surnames:
        sex = "f" if rng.random() < 0.51 else "m"
        pool.append(f"{SYNTHETIC} {surname} {rng.choice(_MIDDLE[sex])} {rng.choice(_GIVEN[sex])}")
    return pool


def _phones(count: int, taken: set[str]) -> Iterator[str]:
    """``count`` distinct +8490xxxxxxx numbers, scattered over the range, skipping ``taken`` ones.

    i -> (A*i + B) mod 10^7 is a permutation of the 7-digit suffixes because A is coprime to 10.
    """
    a, b, space = 7_654_321, 1_234_567, 10_000_000
    if count + len(taken) > space:
        raise CityError(f"{count} residents do not fit in the +8490 numbering plan of {space}")
    produced, i = 0, 0
    while produced < count:
        phone = f"+8490{(a * i + b) % space:07d}"
        i += 1
        if phone not in taken:
            produced += 1
            yield phone


def _load_residents(city: City, first_id: int, joined: array, homes: list[str], locales: list[Any]) -> int:
    rng = city.rng
    names = _names(city, _NAME_POOL)
    with city.engine.connect() as connection:
        # Only the demo's few accounts can be here (a loaded city is refused before this part runs).
        taken = set(connection.execute(text(
            "SELECT phone FROM user_account WHERE phone LIKE '+8490%'")).scalars())
    prefs = [value for value, _ in _PREFS] + ["{}"]
    prefs_shares = [share for _, share in _PREFS]
    prefs_shares.append(1 - sum(prefs_shares))
    dated_home = "home_unit_since" in city.columns("user_account")
    columns = ["id", "kind", "display_name", "phone", "firebase_uid", "home_unit_id", "locale",
               "notification_prefs", "is_active", "created_at"] + (["home_unit_since"] if dated_home else [])

    def rows() -> Iterator[tuple[Any, ...]]:
        # Drawn in bulk: one call for a million values costs far less than a million calls.
        count = len(joined)
        chosen = zip(joined, homes, locales, _phones(count, taken), rng.choices(prefs, prefs_shares, k=count),
                     rng.choices(names, k=count))
        for index, (moment, home, locale, phone, pref, name) in enumerate(chosen):
            created = datetime.fromtimestamp(moment, UTC)
            row = (first_id + index, "resident", name, phone, f"{FIREBASE_UID_PREFIX}{first_id + index}", home,
                   locale, pref, rng.random() >= INACTIVE_ACCOUNT_SHARE, created)
            yield (*row, created) if dated_home else row

    return city.copy("user_account", columns, rows())


def _fcm_token(rng: Any) -> str:
    """A token shaped like FCM's: a 22-character instance id, ':APA91b', then 128 more characters."""
    drawn = base64.urlsafe_b64encode(rng.randbytes(114)).decode()  # 152 characters
    return f"{drawn[:22]}:APA91b{drawn[24:]}"


def _load_devices(city: City, first_id: int, joined: array, locales: list[Any]) -> int:
    rng = city.rng
    residents = len(joined)
    total = min(city.size(DEVICES), 2 * residents)
    two = min(round(residents * TWO_DEVICE_SHARE), total // 2)
    one = min(total - 2 * two, residents - two)
    per_resident = bytearray([2]) * two + bytearray([1]) * one + bytearray(residents - two - one)
    rng.shuffle(per_resident)
    now = city.now.timestamp()
    versions = iter(rng.choices([version for version, _ in _APP_VERSIONS],
                                [share for _, share in _APP_VERSIONS], k=total))
    platforms = iter(rng.choices(("ios", "android"), (_IOS_SHARE, 1 - _IOS_SHARE), k=total))
    columns = ["user_id", "token", "platform", "app_version", "locale", "created_at", "last_seen_at",
               "active", "deactivated_reason"]

    def rows() -> Iterator[tuple[Any, ...]]:
        for index, count in enumerate(per_resident):
            for _ in range(count):
                # Installed some time after sign-up; seen lately when active, long ago when pruned.
                installed = joined[index] + rng.random() * (now - joined[index]) * 0.5
                active = rng.random() < ACTIVE_DEVICE_SHARE
                seen = now - rng.expovariate(1 / (3 * 86_400)) if active else installed + rng.random() * (
                    now - installed)
                yield (first_id + index, _fcm_token(rng), next(platforms), next(versions), locales[index] or "vi",
                       datetime.fromtimestamp(installed, UTC), datetime.fromtimestamp(max(seen, installed), UTC),
                       active, None if active else "unregistered")

    return city.copy("device", columns, rows())


def _load_follows(city: City, first_id: int, joined: array, homes: list[str], per_unit: Mapping[str, int]) -> int:
    rng = city.rng
    units = list(per_unit)
    # People follow where many people live (family, work).
    cumulative = list(itertools.accumulate(per_unit[unit] for unit in units))
    now = city.now.timestamp()

    def rows() -> Iterator[tuple[Any, ...]]:
        for index, home in enumerate(homes):
            if rng.random() >= FOLLOW_SHARE:
                continue
            wanted = 1 if rng.random() < 0.7 else 2
            followed: set[str] = set()
            while len(followed) < wanted:
                unit = rng.choices(units, cum_weights=cumulative)[0]
                if unit != home:
                    followed.add(unit)
            for unit in sorted(followed):
                since = joined[index] + rng.random() * (now - joined[index])
                yield first_id + index, unit, datetime.fromtimestamp(since, UTC)

    return city.copy("unit_follow", ["user_id", "unit_id", "created_at"], rows())


def _load_officials(city: City, per_unit: Mapping[str, int]) -> tuple[int, int]:
    """Officials after the residents: commune officials per unit, department officials, operators."""
    with city.engine.connect() as connection:
        departments = list(connection.execute(text(
            "SELECT id FROM org_unit WHERE kind = 'department' ORDER BY id")).scalars())
    seats: list[tuple[str, str]] = []  # (role, unit)
    for unit, residents in per_unit.items():
        full = OFFICIALS_PER_LARGE_WARD if residents > city.size(50_000) else OFFICIALS_PER_COMMUNE
        seats += [("commune_official", unit)] * city.size(full)
    for department in departments:
        seats += [("department_official", department)] * city.size(OFFICIALS_PER_DEPARTMENT)
    seats += [("operator", "hue")] * city.size(OPERATORS)
    first_id = city.max_id("user_account") + 1
    since = city.now - timedelta(days=SIGN_UP_YEARS * 365)
    names = _names(city, len(seats))
    accounts = city.copy(
        "user_account", ["id", "kind", "display_name", "username", "notification_prefs", "is_active", "created_at"],
        ((first_id + n, "official", names[n], f"synthetic.{unit}.{role.split('_')[0]}.{first_id + n}",
          "{}", True, since) for n, (role, unit) in enumerate(seats)))
    memberships = city.copy(
        "membership", ["user_id", "role", "unit_id", "created_at"],
        ((first_id + n, role, unit, since) for n, (role, unit) in enumerate(seats)))
    return accounts, memberships
