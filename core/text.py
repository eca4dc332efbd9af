"""Vietnamese text helpers: folding diacritics (including đ/Đ) for slugs and search."""

from __future__ import annotations

import re
import unicodedata

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower-case ``text`` without diacritics: 'Đăng ký hộ tịch' -> 'dang ky ho tich'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def slugify(text: str) -> str:
    """A URL-safe slug: 'Xã Chân Mây - Lăng Cô' -> 'xa-chan-may-lang-co'."""
    return _NOT_SLUG.sub("-", fold(text)).strip("-")
