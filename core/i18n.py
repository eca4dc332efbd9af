"""Choosing the language of a response: the user's setting, then ``Accept-Language``, then the default."""

from __future__ import annotations

SUPPORTED = ("vi", "en")


def parse_accept_language(header: str | None) -> list[str]:
    """Primary language tags from an ``Accept-Language`` header, best first (q=0 dropped)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag.strip().split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(*, user_locale: str | None, accept_language: str | None, default: str) -> str:
    """The locale to answer in: an explicit user setting wins, then the header, then ``default``."""
    if user_locale in SUPPORTED:
        return user_locale  # type: ignore[return-value]
    for tag in parse_accept_language(accept_language):
        if tag in SUPPORTED:
            return tag
        if tag == "*":
            break
    return default
