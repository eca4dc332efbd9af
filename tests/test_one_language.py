"""One language per page: rendered Vietnamese pages carry none of the English catalogue's strings (the
``{"vi": ..., "en": ...}`` texts of the templates, pages and scripts) nor developer words. Every page type,
as a visitor, a resident, a ward official and an operator. (English pages are not scanned the other way:
Hue's own data, station names and questions, is Vietnamese on every page.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.app import create_app, discover
from core.db import make_engine
from core.identity import service as identity
from core.seed import DEMO_PASSWORD, seed_demo
from tests.conftest import base_settings

ROOT = Path(__file__).resolve().parent.parent
PAIR = re.compile(r"""(["'])vi\1:\s*(["'])((?:(?!\2)[^\\]|\\.)*)\2,\s*(["'])en\4:\s*(["'])((?:(?!\5)[^\\]|\\.)*)\5""")
# Words a page must never show: enum values, rule ids, developer placeholders.
DEVELOPER_WORDS = ["rate_of_rise", "[object Object]", "None", "urgent", "stale", "now",
                   "public-order", "roads", "trash", "lighting"]  # (the last: feedback category ids)
PAGES = ["/", "/feed", "/warnings", "/search?q=ho+tich", "/no-such-page", "/m/no-such-app/",
         "/m/feedback/", "/m/feedback/map", "/m/feedback/new", "/m/feedback/mine", "/m/feedback/dashboard",
         "/m/feedback/queue", "/m/feedback/reports/1", "/m/floodmap/", "/m/floodmap/stations/1",
         "/m/floodmap/stations/2", "/m/floodmap/dashboard", "/m/floodmap/warnings/1", "/m/interaction/",
         "/m/interaction/inbox", "/m/interaction/ask", "/m/interaction/questions/1", "/m/tasks/",
         "/m/tasks/procedures", "/m/tasks/rankings", "/m/tasks/tasks/1", "/m/tasks/assignments/1", "/me",
         "/inbox", "/feed/new", "/auth/login", "/auth/phone", "/admin", "/admin/officials", "/admin/officials/1",
         "/admin/audit", "/m/feedback/admin/categories", "/m/interaction/admin/fields"]


def catalogue() -> dict[str, set[str]]:
    """Every text the product has in both languages, by language (texts with placeholders left out)."""
    texts: dict[str, set[str]] = {"vi": set(), "en": set()}
    for folder in ("core", "miniapps", "push"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".html", ".py", ".js"):
                continue
            for match in PAIR.finditer(path.read_text(encoding="utf-8", errors="ignore")):
                vi, en = match.group(3), match.group(6)
                if vi != en and not {"{", "%", "\\"} & set(vi + en):
                    texts["vi"].add(vi)
                    texts["en"].add(en)
    texts["en"] -= texts["vi"]  # words both languages use (names, "Camera", "CAP") are no evidence
    texts["vi"] -= texts["en"]
    return texts


class _Visible(HTMLParser):
    """The text a reader sees: element text and the attributes read aloud or shown (not scripts)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self.hidden += 1
        self.parts += [v for k, v in attrs if k in ("aria-label", "alt", "placeholder", "title") and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def found(text: str, phrases: set[str] | list[str]) -> list[str]:
    return sorted(p for p in phrases if re.search(r"(?<![\w_-])" + re.escape(p) + r"(?![\w_-])", text))


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    """A host with every mini-app's demo content, and the phone of a resident with a session."""
    from tests.conftest import _migrate_and_load

    folder = tmp_path_factory.mktemp("one-language")
    url = f"sqlite:///{folder / 'city.db'}"
    _migrate_and_load(url)
    settings = base_settings(database_url=url, var_dir=folder / "var", env="dev", map_tile_url="")
    engine = make_engine(url)
    for _line in seed_demo(engine, discover(settings)):
        pass
    with Session(engine, expire_on_commit=False) as db:
        resident = identity.find_or_create_resident(db, firebase_uid="lang-1", phone="+84905777001", address=None)
        resident.home_unit_id = "kim-long"
        db.add(resident)
        db.commit()
        token = identity.start_session(db, secret=settings.secret_key, user=resident, method="firebase",
                                       client="web", address="127.0.0.1", web=True).access_token
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        yield client, token


@pytest.mark.parametrize("who", ["visitor", "resident", "kimlong.demo", "operator.demo", "admin.demo"])
def test_vietnamese_pages_show_no_english(city, who: str) -> None:
    lang = "vi"
    client, token = city
    client.cookies.clear()
    if who == "resident":
        client.cookies.set("superapp_session", token)
    elif who != "visitor":
        signed = client.post("/auth/login", data={"username": who, "password": DEMO_PASSWORD}, follow_redirects=False)
        assert signed.status_code == 303
    other = catalogue()["en"]
    assert len(other) > 300  # the catalogue was read
    mixed = {}
    for path in PAGES:
        answer = client.get(path, params={"lang": lang} if "?" not in path else None)
        if "?" in path:
            answer = client.get(f"{path}&lang={lang}")
        assert "text/html" in answer.headers["content-type"], (path, answer.status_code)
        text = visible(answer.text)
        assert answer.headers["content-language"] == lang, path
        wrong = found(text, other) + found(text, DEVELOPER_WORDS)
        if wrong:
            mixed[path] = wrong
    assert mixed == {}
