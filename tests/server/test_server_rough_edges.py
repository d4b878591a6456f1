"""Issue 23, part 5 for HTTP, WebSocket and Wyoming.

Clean errors, JSON bodies only, no echoed control characters, lone surrogates refused
alike everywhere, and Wyoming's sentence-end limit.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from server_support import LiveServer
from test_server_timeouts import event_line, raw, wyoming_events
from websockets.sync.client import connect

from rtvoice.errors import InputError, TextError
from rtvoice.inputs import check_text, loads_object

PYTHON_WORDS = ("NoneType", "sys.", "set_int_max_str_digits", "Traceback", "list", "dict", "Exceeds the limit",
                "RecursionError", "str'")


@pytest.mark.parametrize("body", [
    b"null", b"[1, 2]", b'"text"', b"7", b'{"input": ' + b"9" * 5000 + b"}", b"[" * 20000,
    b'{"input": NaN}', b'{"input": Infinity}', b'{"input": null}', b'{"input": ["a"]}', b'{"input": {"a": 1}}',
    b'{"input": "Hi.", "speed": "fast"}', b'{"input": "Hi.", "voice": [1]}',
    b'{"input": "Hi.", "response_format": 3}', b"{", b'{"input": "\\ud800"}',
])
def test_errors_are_one_line_without_python_internals(server: LiveServer, body: bytes) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", content=body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "\n" not in message and len(message) < 300
    assert not [word for word in PYTHON_WORDS if word in message], message


def test_json_type_names_in_messages(server: LiveServer) -> None:
    with server.client() as client:
        assert "not null" in client.post("/v1/audio/speech", content=b"null").json()["error"]["message"]
        assert "got array" in client.post("/v1/audio/speech", json={"input": ["a"]}).json()["error"]["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/json"])
def test_a_body_that_is_not_declared_json_is_415(server: LiveServer, content_type: str | None) -> None:
    """text/plain, forms and no type make a CORS simple request: a web page could send them unasked."""
    headers = {**server.headers}
    body = json.dumps({"input": "Hi.", "voice": "tiny"}).encode()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        request = client.build_request("POST", "/v1/audio/speech", content=body, headers=headers)
        if content_type is None:
            request.headers.pop("content-type", None)
        else:
            request.headers["content-type"] = content_type
        response = client.send(request)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.api+json"])
def test_json_content_types_are_accepted(server: LiveServer, content_type: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30, headers=server.headers) as client:
        response = client.post("/v1/audio/speech", content=json.dumps({"input": "Hi.", "response_format": "pcm"}),
                               headers={"content-type": content_type})
    assert response.status_code == 200


def test_the_started_event_echoes_no_control_characters(server: LiveServer) -> None:
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"type": "text", "text": "Hi\x00 \x1b[31mthere\x1b[0m\x07 \x9bnow."}))
        ws.send(json.dumps({"type": "end"}))
        started = []
        while True:
            message = ws.recv(timeout=20)
            if isinstance(message, str):
                event = json.loads(message)
                if event["type"] == "started":
                    started.append(event["text"])
                if event["type"] == "done":
                    break
    assert started == ["Hi [31mthere[0m now."]
    server.wait_idle()


def test_lone_surrogates_are_refused_alike_by_every_protocol(server: LiveServer) -> None:
    with server.client() as client:
        http = client.post("/v1/audio/speech", content=b'{"input": "Hi \\ud800 there."}')
    assert http.status_code == 400 and http.json()["error"]["param"] == "input"
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send('{"type": "text", "text": "Hi \\ud800 there."}')
        ws_event = json.loads(ws.recv(timeout=5))
    assert server.wyoming_port is not None
    with raw(server.wyoming_port) as sock:
        sock.sendall(b'{"type": "synthesize", "data": {"text": "Hi \\ud800 there."}}\n')
        sock.shutdown(socket.SHUT_WR)
        (wyoming_event,) = wyoming_events(sock, 10)
    assert (ws_event["type"], ws_event["code"]) == ("error", "invalid_text")
    assert (wyoming_event["type"], wyoming_event["code"]) == ("error", "invalid_text")
    # One wording everywhere: the shared check's.
    with pytest.raises(TextError) as caught:
        check_text("Hi \ud800 there.")
    assert str(caught.value) in http.json()["error"]["message"]
    assert ws_event["message"] == wyoming_event["text"] == str(caught.value)


def test_wyoming_speaks_a_long_chunk_full_of_sentence_ends(deadline_server: LiveServer) -> None:
    """A chunk over ``max_pending_chars`` (1000) made of whole sentences is spoken, not refused."""
    sentence = "This sentence is a fairly long one, full of words."
    text = " ".join([sentence] * 21) + " "
    assert len(text) > deadline_server.config.limits.max_pending_chars
    assert deadline_server.wyoming_port is not None
    with raw(deadline_server.wyoming_port) as sock:
        sock.sendall(event_line("synthesize-start") + event_line("synthesize-chunk", text=text)
                     + event_line("synthesize-stop"))
        sock.shutdown(socket.SHUT_WR)
        events = wyoming_events(sock, 30)
    kinds = [e["type"] for e in events]
    assert "error" not in kinds, events
    assert kinds.count("audio-start") == 21 and kinds[-1] == "synthesize-stopped"


def test_shared_json_checks() -> None:
    assert loads_object('{"a": 1}') == {"a": 1}
    for text, words in [("[1]", "not array"), ("1" * 5000, "5000 digits"), ("[" * 20000, "nested too deeply"),
                        ('{"a": NaN}', "NaN is not a JSON value"), ("{", "not valid JSON")]:
        with pytest.raises(InputError, match=words):
            loads_object(text, what="The payload")
    assert check_text("a\x00b\x1b[1mc\u200bd\n") == "ab[1mc\u200bd\n"

