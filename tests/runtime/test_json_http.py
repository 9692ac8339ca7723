"""JsonHttp against a real HTTP server on 127.0.0.1: keep-alive per thread, a closed connection, a timeout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from model_runtime.json_http import JsonHttp


class Recorder:
    """What the server saw: the client ports (one per connection) and the bodies."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.close_after_answer = False
        self.delay_s = 0.0


def make_server(rec: Recorder) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with rec.lock:
                rec.ports.append(self.client_address[1])
                rec.bodies.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            time.sleep(rec.delay_s)
            payload = json.dumps({"echo": body}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            if rec.close_after_answer:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            if rec.close_after_answer:
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


@pytest.fixture
def served() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    server = make_server(rec)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/base", rec
    finally:
        server.shutdown()
        server.server_close()


def test_posts_json_with_headers_and_keeps_one_connection_per_thread(served: tuple[str, Recorder]) -> None:
    url, rec = served
    http = JsonHttp(url, {"Authorization": "Bearer k"}, timeout_s=5)
    try:
        answers = [http.post("/v1/x", {"n": n}) for n in range(3)]

        def other() -> None:
            answers.append(http.post("/v1/x", {"n": 3}))

        t = threading.Thread(target=other)
        t.start()
        t.join()
    finally:
        http.close()
    assert [json.loads(body)["echo"]["n"] for _, body in answers] == [0, 1, 2, 3]
    assert {status for status, _ in answers} == {200}
    assert rec.bodies[0] == {"path": "/base/v1/x", "auth": "Bearer k", "n": 0}
    # The first three on one connection (this thread's), the fourth on the other thread's.
    assert len(set(rec.ports[:3])) == 1 and rec.ports[3] != rec.ports[0]


def test_a_connection_the_server_closed_is_replaced(served: tuple[str, Recorder]) -> None:
    url, rec = served
    rec.close_after_answer = True
    http = JsonHttp(url, {}, timeout_s=5)
    try:
        statuses = [http.post("/v1/x", {"n": n})[0] for n in range(3)]
    finally:
        http.close()
    assert statuses == [200, 200, 200]
    assert len(set(rec.ports)) == 3  # a new connection each time, none of them failed


def test_a_server_too_slow_raises_a_timeout_and_the_next_call_works(served: tuple[str, Recorder]) -> None:
    url, rec = served
    rec.delay_s = 1.0
    http = JsonHttp(url, {}, timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError):
            http.post("/v1/x", {"n": 0})
        rec.delay_s = 0.0
        assert http.post("/v1/x", {"n": 1})[0] == 200
    finally:
        http.close()


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        JsonHttp("ftp://example.org", {}, timeout_s=1)
