"""Review findings: each test demonstrates a bug in the interaction mini-app (expected to fail until fixed)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.miniapps.interaction.conftest import API, answer, ask

SECRET_TITLE = "Xử lý kỷ luật cán bộ địa chính xã Phú Vang"


def _plain(host: TestClient) -> TestClient:
    """The same app, answering 500 instead of raising, so the status can be asserted."""
    return TestClient(host.app, raise_server_exceptions=False)


def test_duplicate_link_leaks_an_internal_questions_title_to_another_commune(host, phu_vang, kim_long, nnmt) -> None:
    # Phu Vang's question is internal: no other commune may see it, not even its title.
    secret = ask(host, phu_vang, title=SECRET_TITLE)
    answer(host, nnmt, secret["id"])
    internal = host.put(f"{API}/questions/{secret['id']}/visibility", headers=nnmt.headers, json={"internal": True})
    assert internal.status_code == 200
    assert host.get(f"{API}/questions/{secret['id']}", headers=kim_long.headers).status_code == 404
    # Kim Long asks something; the department points it to the internal question as a duplicate.
    theirs = ask(host, kim_long, title="Hỏi về thu hồi đất nông nghiệp")
    marked = host.post(f"{API}/questions/{theirs['id']}/duplicate", headers=nnmt.headers,
                       json={"canonical_id": secret["id"]})
    # Either the link is refused (the asker may not see the canonical question) ...
    if marked.status_code == 200:
        # ... or Kim Long's thread page must not show the internal question's title.
        page = host.get(f"/m/interaction/questions/{theirs['id']}", headers=kim_long.headers)
        assert page.status_code == 200
        assert SECRET_TITLE not in page.text


def test_nul_byte_in_a_question_is_a_problem_not_a_500(host, phu_vang) -> None:
    response = _plain(host).post(f"{API}/questions", headers=phu_vang.headers,
                                 json={"title": "Thu hồi đất\x00 nông nghiệp", "body": "Nội dung", "field": "land"})
    assert response.status_code < 500, response.text  # 500 on PostgreSQL (text cannot hold NUL)


def test_an_out_of_range_question_id_is_a_404_not_a_500(host, phu_vang) -> None:
    response = _plain(host).get(f"{API}/questions/{2**63}", headers=phu_vang.headers)
    assert response.status_code in (404, 422), response.text


def test_an_out_of_range_reply_id_is_a_problem_not_a_500(host, phu_vang, nnmt) -> None:
    question = ask(host, phu_vang)
    answer(host, nnmt, question["id"])
    response = _plain(host).post(f"{API}/questions/{question['id']}/accept", headers=phu_vang.headers,
                                 json={"reply_id": 2**63})
    assert response.status_code == 422, response.text
