"""The pages' own behaviour: the ask form keeps what was typed and marks the field at fault, saving nothing."""

from __future__ import annotations

from sqlmodel import Session, select

from miniapps.interaction.models import Question
from tests.miniapps.interaction.conftest import answer, ask


def test_the_ask_form_refuses_a_disguised_file_and_keeps_the_text(host, phu_vang) -> None:
    response = host.post("/m/interaction/ask", headers=phu_vang.headers,
                         data={"title": "Hỏi về tách thửa", "body": "Nội dung câu hỏi", "field": "land"},
                         files=[("files", ("bao-cao.pdf", b"MZ\x90\x00 not a pdf", "application/pdf"))],
                         follow_redirects=False)
    assert response.status_code == 415
    assert 'data-testid="error-files"' in response.text and "Hỏi về tách thửa" in response.text
    with Session(host.app.state.engine) as db:
        assert db.exec(select(Question)).all() == []


def test_the_ask_form_creates_the_question_and_opens_its_thread(host, phu_vang) -> None:
    response = host.post("/m/interaction/ask?lang=en", headers=phu_vang.headers,
                         data={"title": "Hỏi về tách thửa đất", "body": "Nội dung", "field": "land"},
                         follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/m/interaction/questions/")
    thread = host.get(response.headers["location"], headers=phu_vang.headers)
    assert thread.status_code == 200 and 'lang="en"' in thread.text and "Department of Agriculture" in thread.text


def test_an_empty_title_is_marked_in_vietnamese(host, phu_vang) -> None:
    response = host.post("/m/interaction/ask?lang=vi", headers=phu_vang.headers,
                         data={"title": "", "body": "Nội dung", "field": "land"}, follow_redirects=False)
    assert response.status_code == 422 and 'data-testid="error-title"' in response.text
    assert "Nhập tiêu đề" in response.text


def test_the_knowledge_page_finds_answers_without_diacritics(host, phu_vang, kim_long, nnmt) -> None:
    question = ask(host, phu_vang, title="Chuyển mục đích sử dụng đất vườn sang đất ở")
    answer(host, nnmt, question["id"], "Hộ gia đình nộp hồ sơ tại UBND cấp xã.")
    page = host.get("/m/interaction/", params={"q": "chuyen muc dich su dung dat"}, headers=kim_long.headers)
    assert page.status_code == 200 and "Chuyển mục đích sử dụng đất vườn sang đất ở" in page.text
    assert "Hộ gia đình nộp hồ sơ tại UBND cấp xã." in page.text  # the answer is the snippet
    resident_page = host.get("/m/interaction/", params={"q": "dat"}, follow_redirects=False)
    assert resident_page.status_code == 303 and resident_page.headers["location"].startswith("/auth/phone")


def test_an_admin_chooses_the_asking_unit(host, admin) -> None:
    form = host.get("/m/interaction/ask", headers=admin.headers)
    assert form.status_code == 200 and 'data-testid="ask-unit"' in form.text
    data = {"title": "Hỏi thay phường Kim Long", "body": "Nội dung", "field": "land"}
    missing = host.post("/m/interaction/ask", headers=admin.headers, data=data, follow_redirects=False)
    assert missing.status_code == 422 and 'data-testid="error-unit_id"' in missing.text
    chosen = host.post("/m/interaction/ask", headers=admin.headers, data={**data, "unit_id": "kim-long"},
                       follow_redirects=False)
    assert chosen.status_code == 303
    with Session(host.app.state.engine) as db:
        assert db.exec(select(Question.asker_unit_id)).all() == ["kim-long"]
