"""A small OpenAI-compatible server that answers ``/v1/completions`` like vLLM, after a set delay.

It stands in for an inference engine when measuring chime rather than a model: every
request is held ``--delay-ms`` (each on its own thread, so any number run at once, as on
an engine with free capacity), then answered with a greedy completion of ``max_tokens`` tokens and each one's
top log-probabilities, which make every turn a clear silence (or with "ok" when no
log-probabilities are asked for). It records how many requests it held at once, and for each
message it saw (a prompt whose last ``[N]`` marker names message N), the time from the
first request about it arriving to the last one answered: the server's own share of
that message's decision time.

    python benchmarks/fake_openai_server.py --delay-ms 100      # prints "port N" once listening
    curl -s 127.0.0.1:N/stats    # {"requests", "max_in_flight", "spans_ms", "spans_at": seconds since start}
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The top log-probabilities after the text so far, by how it ends: a tiny model that
# opens its turn with "(" and goes on "(silence)", speaking at about 5%, well under any
# threshold, so each decision is exactly its scoring request.
NEXT = [
    ("(sil", {"ence": -0.01, "ent": -5.0, " ": -6.0}),
    ("(silence", {")": -0.01, " ": -5.0, "\n": -6.0}),
    ("(", {"sil": -0.05, "response": -3.0, " ": -6.0, "\n": -7.0}),
    ("", {"(": -0.01, " ": -6.0, "\n": -7.0}),
]
MARKER = re.compile(r"\[(\d+)\]")


class Stats:
    """What the server saw, shared by its request threads."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        # message number -> [first arrival, last answer] (perf_counter seconds)
        self.spans: dict[str, list[float]] = {}

    def begin(self, key: str | None) -> float:
        now = time.perf_counter()
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if key is not None:
                self.spans.setdefault(key, [now, now])
        return now

    def end(self, key: str | None) -> None:
        now = time.perf_counter()
        with self.lock:
            self.in_flight -= 1
            if key is not None:
                self.spans[key][1] = now

    def report(self) -> dict:
        with self.lock:
            spans = {k: round((b - a) * 1000, 3) for k, (a, b) in self.spans.items()}
            at = {k: [round(a - self.started, 6), round(b - self.started, 6)] for k, (a, b) in self.spans.items()}
            return {"requests": self.requests, "max_in_flight": self.max_in_flight, "spans_ms": spans, "spans_at": at}


def make_handler(delay_s: float, stats: Stats) -> type[BaseHTTPRequestHandler]:
    """The request handler: completions after ``delay_s``, /v1/models, /stats."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms on Linux), which no real server adds.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _send(self, payload: dict, status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/stats":
                self._send(stats.report())
            elif self.path == "/v1/models":
                self._send({"object": "list", "data": [{"id": "chime", "object": "model"}]})
            else:
                self._send({"error": {"message": f"no route {self.path}"}}, 404)

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path != "/v1/completions":
                self._send({"error": {"message": f"no route {self.path}"}}, 404)
                return
            markers = MARKER.findall(body.get("prompt", ""))
            key = markers[-1] if markers else None
            stats.begin(key)
            time.sleep(delay_s)
            self._send(completion(body))
            stats.end(key)

    return Handler


def completion(body: dict) -> dict:
    """vLLM's answer: one choice; with ``logprobs``, ``max_tokens`` greedy tokens and each one's top log-probabilities."""
    scoring = body.get("logprobs") is not None
    choice: dict = {"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}
    if scoring:
        k, text = int(body["logprobs"]), body.get("prompt", "")
        tokens, tops = [], []
        for _ in range(int(body.get("max_tokens") or 1)):
            table = next(top for end, top in NEXT if text.endswith(end))
            top = dict(sorted(table.items(), key=lambda kv: -kv[1])[:k])
            token = max(top, key=top.__getitem__)
            tokens.append(token)
            tops.append(top)
            text += token
        choice["text"], choice["finish_reason"] = "".join(tokens), "length"
        choice["logprobs"] = {
            "tokens": tokens,
            "token_logprobs": [top[t] for t, top in zip(tokens, tops, strict=True)],
            "top_logprobs": tops,
            "text_offset": [0] * len(tokens),
        }
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model", "chime"),
        "choices": [choice],
        "usage": {"prompt_tokens": 0, "completion_tokens": len(choice["logprobs"]["tokens"]) if scoring else 1},
    }


class Server(ThreadingHTTPServer):
    """A thread per connection; a deep accept queue for many clients connecting at once."""

    daemon_threads = True
    request_queue_size = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay-ms", type=float, default=100.0, help="how long each request is held")
    ap.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), make_handler(args.delay_ms / 1000, Stats()))
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
