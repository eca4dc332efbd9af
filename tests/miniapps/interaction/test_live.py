"""Live threads: the question's channel admits only those who may see it and carries new replies."""

from __future__ import annotations

from tests.miniapps.interaction.conftest import API, answer, ask


def _subscribe(ws, channel: str) -> list[dict]:
    ws.send_json({"type": "subscribe", "channels": [channel]})
    frames = []
    while True:
        frame = ws.receive_json()
        frames.append(frame)
        if frame["type"] == "subscribed":
            return frames


def _next(ws, kind: str) -> dict:
    """The next event of ``kind`` on the socket (status events and pings in between are skipped)."""
    while True:
        frame = ws.receive_json()
        if frame["type"] == "event" and frame["data"]["type"] == kind:
            return frame


def test_the_asker_receives_the_answer_live_and_another_commune_is_refused(host, phu_vang, nnmt, kim_long) -> None:
    question = ask(host, phu_vang)
    channel = f"miniapp:interaction:question:{question['id']}"
    with host.websocket_connect("/ws", headers=kim_long.headers) as outsider:
        frames = _subscribe(outsider, channel)
        assert {"code": "forbidden_channel", "channel": channel} in [
            {k: f.get(k) for k in ("code", "channel")} for f in frames if f["type"] == "error"]
        assert frames[-1]["channels"] == []
    with host.websocket_connect("/ws", headers=phu_vang.headers) as asker:
        assert _subscribe(asker, channel)[-1]["channels"] == [channel]
        posted = answer(host, nnmt, question["id"], "Xã được thu hồi theo Điều 79.")
        event = _next(asker, "reply")
        assert event["channel"] == channel
        assert event["data"]["reply"] == {**event["data"]["reply"], "id": posted["id"], "kind": "answer",
                                          "body": "Xã được thu hồi theo Điều 79.", "author_unit_id": "so-nnmt"}
        host.post(f"{API}/questions/{question['id']}/comments", headers=nnmt.headers, json={"body": "Bổ sung."})
        assert _next(asker, "status")["data"]["status"] == "answered"
        assert _next(asker, "reply")["data"]["reply"]["kind"] == "comment"


def test_a_bad_channel_name_is_refused(host, phu_vang) -> None:
    with host.websocket_connect("/ws", headers=phu_vang.headers) as ws:
        frames = _subscribe(ws, "miniapp:interaction:question:abc")
        assert any(f["type"] == "error" and f["code"] == "forbidden_channel" for f in frames)
