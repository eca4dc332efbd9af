"""The interaction mini-app's rows of the authorisation matrix (merged by tests/core/identity/test_matrix.py).

The world holds questions of Phú Xuân ward (commune_px) in the civil-status field, which routes to the
Department of Justice (the ``department`` persona): one waiting for an answer (Kim Long may not see it:
404), one answered (every official may read it, only the two sides act on it), and one of each
persona's own for the rows that move or mark a question. Residents hold none of the permissions.
"""

from __future__ import annotations

from typing import Any

from tests.matrix import OFFICIALS, SIGN_IN, Case, World, only

API = "/api/miniapps/interaction"
PAGES = "/m/interaction"
PDF = b"%PDF-1.4\n%%EOF\n"
READERS = only(*OFFICIALS)
WAITING_READERS = only("commune_px", "department", "operator", "admin", commune_kl=404)
PAGE_READERS = {**READERS, "anonymous": SIGN_IN}


def _question(world: World, name: str, *, answered: bool = False, internal: bool = False) -> dict[str, Any]:
    """Question ``name`` of this world, asked by Phú Xuân (and answered by Justice) the first time it is needed."""
    made = world.__dict__.setdefault("interaction", {})
    if name not in made:
        asker, department = world.personas["commune_px"], world.personas["department"]
        asked = world.api.post(f"{API}/questions", headers=dict(asker), json={
            "title": f"Trích lục hộ tịch ({name})", "body": "Cấp lại bản sao trích lục khai sinh thế nào?",
            "field": "civil-status"})
        assert asked.status_code == 201, asked.text
        question = asked.json()
        if answered:
            reply = world.api.post(f"{API}/questions/{question['id']}/answers", headers=dict(department),
                                   json={"body": "Nộp tờ khai tại UBND cấp xã nơi đăng ký khai sinh."})
            assert reply.status_code == 201, reply.text
            question["answer_id"] = reply.json()["id"]
        if internal:
            assert world.api.put(f"{API}/questions/{question['id']}/visibility", headers=dict(department),
                                 json={"internal": True}).status_code == 200
        made[name] = question
    return made[name]


def _url(name: str, suffix: str = "", prefix: str = API, **kind: bool) -> Any:
    return lambda world, who: f"{prefix}/questions/{_question(world, name, **kind)['id']}{suffix}"


def _own_url(name: str, suffix: str, **kind: bool) -> Any:
    """A question of each persona's own, for rows that change it."""
    return lambda world, who: f"{API}/questions/{_question(world, f'{name} {who}', **kind)['id']}{suffix}"


def _attachment_url(world: World, who: str) -> str:
    made = world.__dict__.setdefault("interaction", {})
    if "attachment" not in made:
        question = _question(world, "waiting")
        saved = world.api.post(f"{API}/questions/{question['id']}/attachments", headers=dict(world.personas["commune_px"]),
                               files=[("files", ("don.pdf", PDF, "application/pdf"))])
        assert saved.status_code == 201, saved.text
        made["attachment"] = saved.json()[0]["id"]
    return f"{API}/attachments/{made['attachment']}"


def _article_url(prefix: str) -> Any:
    def url(world: World, who: str) -> str:
        made = world.__dict__.setdefault("interaction", {})
        if "article" not in made:
            published = world.api.post(f"{API}/articles", headers=dict(world.personas["department"]), json={
                "title": "Cấp bản sao trích lục hộ tịch", "body": "Hồ sơ và thời hạn.", "field": "civil-status"})
            assert published.status_code == 201, published.text
            made["article"] = published.json()["id"]
        return f"{prefix}/{made['article']}"

    return url


def _accept_body(world: World, who: str) -> dict[str, int]:
    return {"reply_id": _question(world, "answered", answered=True)["answer_id"]}


def _ask_body(world: World, who: str) -> dict[str, str]:
    body = {"title": f"Câu hỏi của {who} về hộ tịch", "body": "Nội dung", "field": "civil-status"}
    return {**body, "unit_id": "phu-xuan"} if who == "admin" else body


def _article_body(world: World, who: str) -> dict[str, str]:
    body = {"title": f"Cẩm nang của {who}", "body": "Nội dung", "field": "civil-status"}
    return {**body, "department_id": "so-tu-phap"} if who == "admin" else body


def _duplicate_body(world: World, who: str) -> dict[str, int]:
    return {"canonical_id": _question(world, "answered", answered=True)["id"]}


def hides_the_waiting_question(world: World, who: str, creds: Any, response: Any) -> None:
    """Kim Long never finds Phú Xuân's unanswered question in a list or a search."""
    if response.status_code != 200:
        return
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    ids = {row["id"] for row in rows if row.get("kind", "question") == "question"}
    waiting = _question(world, "waiting")["id"]
    assert (waiting in ids) == (who in ("commune_px", "department", "operator", "admin")), (who, ids)


def answer_recorded(world: World, who: str, creds: Any, response: Any) -> None:
    """An allowed answer is in the thread, spoken for the department."""
    if response.status_code == 201:
        assert response.json()["author_unit_id"] == "so-tu-phap"


def _waiting_question(world: World) -> None:
    _question(world, "waiting")


ROWS: dict[tuple[str, str], list[Case]] = {
    ("GET", f"{API}/fields"): [Case("routing table", f"{API}/fields", READERS)],
    ("PUT", f"{API}/fields/{{key}}"): [Case("edit a field's department", f"{API}/fields/civil-status", only("admin"),
                                            json={"name_vi": "Hộ tịch", "name_en": "Civil status",
                                                  "department_id": "so-tu-phap"})],
    ("GET", f"{API}/questions"): [Case("working list", f"{API}/questions?box=all", READERS,
                                       before=_waiting_question, check=hides_the_waiting_question)],
    ("POST", f"{API}/questions"): [Case("ask a department", f"{API}/questions",
                                        only("commune_px", "commune_kl", "admin"), json=_ask_body)],
    ("GET", f"{API}/questions/{{question_id}}"): [
        Case("a waiting question", _url("waiting"), WAITING_READERS),
        Case("an answered question", _url("answered", answered=True), READERS),
        Case("an internal question", _url("internal", answered=True, internal=True),
             only("commune_px", "department", "operator", "admin", commune_kl=404)),
    ],
    ("POST", f"{API}/questions/{{question_id}}/answers"): [
        Case("answer", _url("to answer", "/answers"), only("department", "admin"), json={"body": "Trả lời."},
             check=answer_recorded)],
    ("POST", f"{API}/questions/{{question_id}}/comments"): [
        Case("comment on a waiting question", _url("waiting", "/comments"), WAITING_READERS, json={"body": "Thêm."}),
        Case("comment on an answered question", _url("answered", "/comments", answered=True),
             only("commune_px", "department", "operator", "admin", commune_kl=403), json={"body": "Thêm."}),
    ],
    ("POST", f"{API}/questions/{{question_id}}/accept"): [
        Case("settle with an answer", _url("answered", "/accept", answered=True),
             only("commune_px", "admin"), json=_accept_body)],
    ("POST", f"{API}/questions/{{question_id}}/transfer"): [
        Case("move to another department", _own_url("to move", "/transfer"), only("department", "operator", "admin"),
             json={"department_id": "so-nnmt", "note": "Không thuộc lĩnh vực của sở"})],
    ("POST", f"{API}/questions/{{question_id}}/duplicate"): [
        Case("mark a duplicate", _own_url("duplicate", "/duplicate"), only("department", "operator", "admin"),
             json=_duplicate_body)],
    ("PUT", f"{API}/questions/{{question_id}}/visibility"): [
        Case("open to every commune", _url("answered", "/visibility", answered=True),
             only("department", "operator", "admin"), json={"internal": False})],
    ("POST", f"{API}/questions/{{question_id}}/attachments"): [
        # The matrix sends no file: allowed callers reach the body check (422 naming files), the rest stop before.
        Case("attach without a file", _url("waiting", "/attachments"),
             {**only(*OFFICIALS), **dict.fromkeys(OFFICIALS, 422)})],
    ("GET", f"{API}/attachments/{{attachment_id}}"): [Case("download an attachment", _attachment_url, WAITING_READERS)],
    ("GET", f"{API}/search"): [Case("knowledge base search", f"{API}/search?q=trich+luc+ho+tich", READERS,
                                    before=_waiting_question, check=hides_the_waiting_question)],
    ("GET", f"{API}/suggestions"): [Case("similar questions", f"{API}/suggestions?q=trich+luc", READERS)],
    ("GET", f"{API}/articles"): [Case("handbook", f"{API}/articles", READERS)],
    ("POST", f"{API}/articles"): [Case("publish to the handbook", f"{API}/articles", only("department", "admin"),
                                       json=_article_body)],
    ("GET", f"{API}/articles/{{article_id}}"): [Case("one article", _article_url(f"{API}/articles"), READERS)],
    ("GET", f"{API}/stats/departments"): [Case("response times", f"{API}/stats/departments", READERS)],
    # --- pages ---
    ("GET", f"{PAGES}/"): [Case("knowledge base page", f"{PAGES}/?q=ho+tich", PAGE_READERS)],
    ("GET", f"{PAGES}/ask"): [Case("ask form", f"{PAGES}/ask",
                                   only("commune_px", "commune_kl", "admin", anonymous=SIGN_IN))],
    ("POST", f"{PAGES}/ask"): [Case("ask form sent", f"{PAGES}/ask",
                                    only("commune_px", "commune_kl", anonymous=SIGN_IN, admin=422),
                                    data=lambda world, who: {"title": f"Hỏi qua trang ({who})", "body": "Nội dung",
                                                             "field": "civil-status"})],
    ("GET", f"{PAGES}/inbox"): [Case("inbox page", f"{PAGES}/inbox?box=all", PAGE_READERS)],
    ("GET", f"{PAGES}/questions/{{question_id}}"): [
        Case("thread page", _url("waiting", prefix=PAGES), {**WAITING_READERS, "anonymous": SIGN_IN})],
    ("POST", f"{PAGES}/questions/{{question_id}}/reply"): [
        Case("comment from the page", _url("waiting", "/reply", prefix=PAGES),
             {**WAITING_READERS, "anonymous": SIGN_IN}, data={"body": "Trao đổi.", "kind": "comment"})],
    ("POST", f"{PAGES}/questions/{{question_id}}/accept"): [
        Case("settle from the page", _url("answered", "/accept", prefix=PAGES, answered=True),
             only("commune_px", "admin", anonymous=SIGN_IN),
             data=lambda world, who: {"reply_id": str(_question(world, "answered", answered=True)["answer_id"])})],
    ("POST", f"{PAGES}/questions/{{question_id}}/transfer"): [
        Case("move from the page", lambda world, who: f"{PAGES}/questions/{_question(world, f'page move {who}')['id']}/transfer",
             only("department", "operator", "admin", anonymous=SIGN_IN, commune_px=403, commune_kl=404),
             data={"department_id": "so-nnmt", "note": "Thuộc lĩnh vực khác"})],
    ("GET", f"{PAGES}/handbook/new"): [Case("handbook form", f"{PAGES}/handbook/new",
                                            only("department", "admin", anonymous=SIGN_IN))],
    ("POST", f"{PAGES}/handbook/new"): [Case("handbook form sent", f"{PAGES}/handbook/new",
                                             only("department", anonymous=SIGN_IN, admin=422),
                                             data={"title": "Hướng dẫn qua trang", "body": "Nội dung",
                                                   "field": "civil-status"})],
    ("GET", f"{PAGES}/handbook/{{article_id}}"): [
        Case("article page", _article_url(f"{PAGES}/handbook"), PAGE_READERS)],
    ("GET", f"{PAGES}/admin/fields"): [Case("routing table page", f"{PAGES}/admin/fields",
                                            only("admin", anonymous=SIGN_IN))],
    ("POST", f"{PAGES}/admin/fields"): [
        Case("a field added from the page", f"{PAGES}/admin/fields", only("admin", anonymous=SIGN_IN),
             data={"key": "matrix-field", "name_vi": "Lĩnh vực thử", "name_en": "Test field",
                   "department_id": "so-tu-phap"}),
        Case("a field sent to a ward", f"{PAGES}/admin/fields", only("admin", admin=422, anonymous=SIGN_IN),
             data={"key": "matrix-field", "name_vi": "Lĩnh vực thử", "name_en": "Test field",
                   "department_id": "phu-xuan"}),
    ],
}
