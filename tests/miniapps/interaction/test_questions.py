"""Asking, routing, answering, settling, moving and curating questions, with the refusals the issue lists."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

from sqlmodel import Session, select

from miniapps.interaction.models import Attachment, Question
from tests.miniapps.interaction.conftest import API, answer, ask


def _docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def test_a_land_question_reaches_agriculture_and_environment_with_a_deadline(host, phu_vang, nnmt, tu_phap) -> None:
    question = ask(host, phu_vang)
    assert (question["department_id"], question["asker_unit_id"], question["status"]) == ("so-nnmt", "phu-vang", "new")
    asked, due = datetime.fromisoformat(question["created_at"]), datetime.fromisoformat(question["due_at"])
    assert 3 <= (due - asked).days <= 5  # three working days, weekends skipped
    inbox = host.get(f"{API}/questions", params={"box": "new"}, headers=nnmt.headers).json()
    assert [q["id"] for q in inbox] == [question["id"]]
    assert host.get(f"{API}/questions", params={"box": "new"}, headers=tu_phap.headers).json() == []


def test_the_answer_reaches_the_asker_and_settles_the_question(host, phu_vang, nnmt) -> None:
    question = ask(host, phu_vang)
    posted = answer(host, nnmt, question["id"], "Được, theo Điều 79 Luật Đất đai 2024.")
    host.post(f"{API}/questions/{question['id']}/comments", headers=phu_vang.headers, json={"body": "Cảm ơn sở."})
    thread = host.get(f"{API}/questions/{question['id']}", headers=phu_vang.headers).json()
    assert thread["status"] == "answered" and thread["first_answered_at"] is not None
    assert [(r["kind"], r["author_unit_id"]) for r in thread["thread"]] == [("answer", "so-nnmt"), ("comment", "phu-vang")]
    settled = host.post(f"{API}/questions/{question['id']}/accept", headers=phu_vang.headers,
                        json={"reply_id": posted["id"]}).json()
    assert settled["status"] == "settled" and settled["answers"][0]["accepted"] is True
    inbox = host.get("/api/inbox", headers=phu_vang.headers).json()["items"]
    assert any("trả lời" in item["title"] for item in inbox), inbox  # notified through the notifier


def test_answering_another_departments_question_is_refused(host, phu_vang, nnmt, tu_phap, kim_long) -> None:
    question = ask(host, phu_vang)
    refused = host.post(f"{API}/questions/{question['id']}/answers", headers=tu_phap.headers, json={"body": "Không."})
    assert refused.status_code == 404  # an unanswered question of another department is not even visible
    answer(host, nnmt, question["id"])
    refused = host.post(f"{API}/questions/{question['id']}/answers", headers=tu_phap.headers, json={"body": "Không."})
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert host.post(f"{API}/questions/{question['id']}/answers", headers=kim_long.headers,
                     json={"body": "x"}).status_code == 403  # communes hold no answering permission
    assert len(host.get(f"{API}/questions/{question['id']}", headers=phu_vang.headers).json()["answers"]) == 1


def test_another_commune_sees_a_question_only_once_answered_and_never_an_internal_one(host, phu_vang, nnmt, kim_long) -> None:
    question = ask(host, phu_vang)
    url = f"{API}/questions/{question['id']}"
    assert host.get(url, headers=kim_long.headers).status_code == 404
    answer(host, nnmt, question["id"])
    assert host.get(url, headers=kim_long.headers).status_code == 200
    internal = host.put(f"{url}/visibility", headers=nnmt.headers, json={"internal": True})
    assert internal.status_code == 200 and internal.json()["internal"] is True
    refused = host.get(url, headers=kim_long.headers)
    assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
    assert host.get(url, headers=phu_vang.headers).status_code == 200
    # the comment route is for the thread's participants only
    assert host.put(f"{url}/visibility", headers=kim_long.headers, json={"internal": False}).status_code == 403


def test_bad_questions_name_the_field_and_save_nothing(host, phu_vang) -> None:
    cases = [
        ({"title": "", "body": "Nội dung", "field": "land"}, "title"),
        ({"title": "Đủ dài rồi", "body": "   ", "field": "land"}, "body"),
        ({"title": "Đủ dài rồi", "body": "x" * 5001, "field": "land"}, "body"),
        ({"title": "T" * 201, "body": "Nội dung", "field": "land"}, "title"),
        ({"title": "Đủ dài rồi", "body": "Nội dung", "field": "astrology"}, "field"),
    ]
    for body, field in cases:
        response = host.post(f"{API}/questions", headers=phu_vang.headers, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field and response.headers["content-type"] == "application/problem+json"
    with Session(host.app.state.engine) as db:
        assert db.exec(select(Question)).all() == []


def test_attachments_are_checked_from_their_bytes(host, phu_vang, nnmt, kim_long) -> None:
    question = ask(host, phu_vang)
    url = f"{API}/questions/{question['id']}/attachments"
    saved = host.post(url, headers=phu_vang.headers, files=[
        ("files", ("to-trinh.pdf", PDF, "application/pdf")),
        ("files", ("bien ban.docx", _docx(), "application/octet-stream")),
    ])
    assert saved.status_code == 201, saved.text
    assert [(a["filename"], a["content_type"]) for a in saved.json()] == [
        ("to-trinh.pdf", "application/pdf"),
        ("bien ban.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")]
    fetched = host.get(saved.json()[0]["url"], headers=nnmt.headers)
    assert fetched.status_code == 200 and fetched.content == PDF
    assert fetched.headers["x-content-type-options"] == "nosniff"
    assert host.get(saved.json()[0]["url"], headers=kim_long.headers).status_code == 404  # not answered yet

    # a script renamed .pdf is refused with the file named, and the good file beside it is not kept
    refused = host.post(url, headers=phu_vang.headers, files=[
        ("files", ("ok.pdf", PDF, "application/pdf")),
        ("files", ("hoa-don.pdf", b"#!/bin/sh\nrm -rf /\n", "application/pdf")),
    ])
    assert refused.status_code == 415 and refused.json()["field"] == "files.1"
    too_big = host.post(url, headers=phu_vang.headers,
                        files=[("files", ("lon.pdf", PDF + b"0" * (10 * 1024 * 1024), "application/pdf"))])
    assert too_big.status_code == 413 and too_big.json()["field"] == "files.0"
    with Session(host.app.state.engine) as db:
        assert len(db.exec(select(Attachment)).all()) == 2
    stored = list((host.app.state.settings.var_dir / "media" / "interaction").rglob("*.*"))
    assert len(stored) == 2


def test_a_department_transfers_with_a_note_and_an_operator_reroutes(host, phu_vang, nnmt, tu_phap, operator) -> None:
    question = ask(host, phu_vang, title="Xác nhận tình trạng hôn nhân cho người đã ly hôn",
                   body="Hỏi về hộ tịch nhưng chọn nhầm lĩnh vực đất đai.")
    url = f"{API}/questions/{question['id']}/transfer"
    no_note = host.post(url, headers=nnmt.headers, json={"department_id": "so-tu-phap", "note": " "})
    assert no_note.status_code == 422 and no_note.json()["field"] == "note"
    not_a_department = host.post(url, headers=nnmt.headers, json={"department_id": "kim-long", "note": "x"})
    assert not_a_department.status_code == 422 and not_a_department.json()["field"] == "department_id"
    moved = host.post(url, headers=nnmt.headers, json={"department_id": "so-tu-phap", "note": "Thuộc lĩnh vực hộ tịch"})
    assert moved.status_code == 200 and moved.json()["department_id"] == "so-tu-phap"
    assert moved.json()["transfers"][0]["note"] == "Thuộc lĩnh vực hộ tịch"
    assert host.post(url, headers=nnmt.headers, json={"department_id": "so-xay-dung", "note": "x"}).status_code == 404
    assert [q["id"] for q in host.get(f"{API}/questions", headers=tu_phap.headers).json()] == [question["id"]]
    rerouted = host.post(url, headers=operator.headers, json={"department_id": "so-nnmt", "note": "Điều phối lại"})
    assert rerouted.status_code == 200 and rerouted.json()["department_id"] == "so-nnmt"


def test_a_duplicate_points_to_the_earlier_answer(host, phu_vang, kim_long, nnmt) -> None:
    earlier = ask(host, kim_long)
    answer(host, nnmt, earlier["id"])
    again = ask(host, phu_vang)
    unanswered = ask(host, phu_vang, title="Câu hỏi khác chưa trả lời")
    url = f"{API}/questions/{again['id']}/duplicate"
    bad = host.post(url, headers=nnmt.headers, json={"canonical_id": unanswered["id"]})
    assert bad.status_code == 422 and bad.json()["field"] == "canonical_id"
    assert host.post(url, headers=phu_vang.headers, json={"canonical_id": earlier["id"]}).status_code == 403
    marked = host.post(url, headers=nnmt.headers, json={"canonical_id": earlier["id"]})
    assert marked.status_code == 200
    assert (marked.json()["status"], marked.json()["duplicate_of_id"]) == ("duplicate", earlier["id"])
    assert marked.json()["first_answered_at"] is not None


def test_response_time_figures_per_department(host, phu_vang, nnmt) -> None:
    first = ask(host, phu_vang)
    ask(host, phu_vang, title="Một câu hỏi chưa được trả lời")
    answer(host, nnmt, first["id"])
    figures = {f["department_id"]: f for f in host.get(f"{API}/stats/departments", headers=phu_vang.headers).json()}
    assert len(figures) == 10
    assert (figures["so-nnmt"]["asked"], figures["so-nnmt"]["answered"], figures["so-nnmt"]["on_time_rate"]) == (2, 1, 1.0)
    assert figures["so-nnmt"]["median_hours"] is not None and figures["so-tu-phap"]["asked"] == 0


def test_admins_edit_the_routing_table(host, admin, nnmt, phu_vang) -> None:
    fields = {f["key"]: f["department_id"] for f in host.get(f"{API}/fields", headers=phu_vang.headers).json()}
    assert fields["land"] == "so-nnmt" and fields["civil-status"] == "so-tu-phap"
    body = {"name_vi": "Đất đai", "name_en": "Land", "department_id": "so-xay-dung"}
    assert host.put(f"{API}/fields/land", headers=nnmt.headers, json=body).status_code == 403
    bad = host.put(f"{API}/fields/land", headers=admin.headers, json={**body, "department_id": "phu-vang"})
    assert bad.status_code == 422 and bad.json()["field"] == "department_id"
    assert host.put(f"{API}/fields/land", headers=admin.headers, json=body).status_code == 200
    assert ask(host, phu_vang)["department_id"] == "so-xay-dung"
