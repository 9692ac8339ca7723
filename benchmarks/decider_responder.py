"""A cheap local decider with a separate responder, against one runtime doing both, on the dev split.

Replays the dev conversations (training/data/dev.jsonl, or the first ``--conversations``)
message by message, as the bot decides: p_speak at every human turn, then a reply only
for the turns that speak (forced by "@assistant" or the name, or p_speak at the
threshold and not put to another person). Three designs, each timed on the same turns:

  single          today's default: the bundled model (with chime's adapter) in process
                  scores every message and writes the replies
  split           the same local decider; the replies come from a chat endpoint
                  (``runtime.responder.kind: chat``)
  one_big_model   the server does everything: it scores every message through
                  /v1/completions log-probabilities (``runtime.kind: openai``) and writes
                  the replies; it runs chime's adapter too, so it decides as the local model

The server is ``python -m model_runtime.llama_server`` serving the bundled GGUF on
127.0.0.1, one thread (a stand-in for a bigger model on another machine: the request and
token counts are what each design costs, whatever the model). Single and split are
replayed conversation by conversation in turn, so that load from elsewhere hits both. Requests and prompt tokens are counted by a small
proxy in front of it that reads each answer's ``usage``. Prints one JSON object:

  decisions, speaking_turns        human turns replayed, and those the bot spoke at
  <design>.decisions_per_s         human turns / wall time of the replay (replies included)
  <design>.scoring_per_s           human turns / time spent scoring them
  <design>.server_requests_per_100_messages, server_prompt_tokens (per path)
  split.responder_requests == speaking_turns is the target

    .venv/bin/python benchmarks/decider_responder.py --conversations 8    # ~5 min on 2 busy cores
    .venv/bin/python benchmarks/decider_responder.py                      # the whole dev split
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model_runtime import ChatOptions, LlamaCppOptions, OpenAICompatOptions, Runtime, create_runtime  # noqa: E402
from model_runtime.addressing import addressee, addresses_assistant  # noqa: E402
from model_runtime.bundled import DEFAULT_ADAPTER_DIR, bundled_model_path  # noqa: E402
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn, cap_text, sanitize_name, threshold_for  # noqa: E402
from model_runtime.seed_format import read_seed_file  # noqa: E402

NAME = DEFAULT_ASSISTANT_NAME
DEFAULT_ADAPTER = DEFAULT_ADAPTER_DIR / "adapter.gguf"
HISTORY = 40  # conversation.history_messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(threads: int, log_path: Path, lora: Path | None = None) -> Iterator[str]:
    """The bundled GGUF (with ``lora`` applied) behind llama-cpp-python's server; yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "model_runtime.llama_server", "--model", str(bundled_model_path())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    cmd += ["--lora_path", str(lora)] if lora else []
    cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the llama.cpp server did not start: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def counting(upstream: str) -> Iterator[Counting]:
    """A counting proxy in front of ``upstream``, serving in a thread."""
    proxy = Counting(upstream)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


class Counting(ThreadingHTTPServer):
    """A proxy that forwards POSTs to ``upstream`` and counts requests and prompt tokens per path."""

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = httpx.Client(base_url=upstream, timeout=600)
        self.requests: Counter[str] = Counter()
        self.prompt_tokens: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: Counting

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = self.server.upstream.post(self.path, content=body, headers={"Content-Type": "application/json"})
        usage = (answer.json().get("usage") or {}) if answer.status_code == 200 else {}
        with self.server.lock:
            self.server.requests[self.path] += 1
            self.server.prompt_tokens[self.path] += int(usage.get("prompt_tokens") or 0)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: object) -> None:
        pass


def windows(conversation: list[dict]) -> Iterator[list[Turn]]:
    """The window at each human turn: the conversation up to it (gold replies included), at most HISTORY turns."""
    turns: list[Turn] = []
    for m in conversation:
        content = cap_text(m["content"].strip(), 2000)
        if m["role"] == "user":
            turns.append(Turn("user", content, sanitize_name(m["name"], NAME)))
            yield turns[-HISTORY:]
        else:
            turns.append(Turn("assistant", content))


def speaks(window: list[Turn], p_speak: float, threshold: float) -> bool:
    """The service's rule: forced by the name, else p_speak at the threshold unless put to another person."""
    last = window[-1]
    if addresses_assistant(last.content, NAME):
        return True
    others = {t.name for t in window if t.role == "user" and t.name != last.name}
    return p_speak >= threshold and addressee(last.content, others, NAME) is None


class Replay:
    """One design's figures, accumulated conversation by conversation."""

    def __init__(self, decider: Runtime, responder: Runtime, threshold: float) -> None:
        self.decider, self.responder, self.threshold = decider, responder, threshold
        self.decisions = self.spoke = 0
        self.scoring_s = self.reply_s = self.wall_s = 0.0

    def conversation(self, channel: str, conversation: list[dict]) -> None:
        """Decide every human turn and ask for the replies the decisions call for; times both."""
        started = time.perf_counter()
        for window in windows(conversation):
            t0 = time.perf_counter()
            p = self.decider.score(channel, window).p_speak
            t1 = time.perf_counter()
            self.decisions += 1
            self.scoring_s += t1 - t0
            if speaks(window, p, self.threshold):
                self.spoke += 1
                self.responder.reply(channel, window)
                self.reply_s += time.perf_counter() - t1
        self.decider.forget(channel)
        self.responder.forget(channel)
        self.wall_s += time.perf_counter() - started

    def figures(self) -> dict:
        return {
            "decisions": self.decisions,
            "speaking_turns": self.spoke,
            "decisions_per_s": round(self.decisions / self.wall_s, 2),
            "scoring_per_s": round(self.decisions / self.scoring_s, 2),
            "wall_s": round(self.wall_s, 1),
            "reply_s": round(self.reply_s, 1),
        }


def server_figures(proxy: Counting, decisions: int) -> dict:
    with proxy.lock:
        return {
            "server_requests": dict(proxy.requests),
            "server_requests_per_100_messages": round(100 * sum(proxy.requests.values()) / decisions, 1),
            "server_prompt_tokens": dict(proxy.prompt_tokens),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "training" / "data" / "dev.jsonl")
    ap.add_argument("--conversations", type=int, help="the first N conversations (default: all)")
    ap.add_argument("--threads", type=int, default=1, help="threads for the local model and for the server each")
    ap.add_argument("--max-tokens", type=int, default=48, help="reply length cap, the same in every design")
    args = ap.parse_args()
    conversations = read_seed_file(args.data).conversations[: args.conversations]
    local = create_runtime(LlamaCppOptions(n_threads=args.threads, isolate=False, max_tokens=args.max_tokens))
    threshold = threshold_for(50, local.base_threshold)
    out: dict = {"data": str(args.data), "conversations": len(conversations), "threshold": round(threshold, 3)}
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    with llama_server(args.threads, log_dir / "chime-bench-chat.log") as url, counting(url) as proxy:
        chat = create_runtime(
            ChatOptions(base_url=proxy.url, model="bundled", max_tokens=args.max_tokens, timeout_s=300)
        )
        single, split = Replay(local, local, threshold), Replay(local, chat, threshold)
        # Conversation by conversation, one design after the other: load from elsewhere hits both alike.
        for ci, conversation in enumerate(conversations):
            single.conversation(f"single-{ci}", conversation)
            split.conversation(f"split-{ci}", conversation)
        out["single"] = single.figures()
        out["split"] = split.figures() | server_figures(proxy, split.decisions)
        out["split"]["responder_requests"] = proxy.requests["/v1/chat/completions"]
        chat.close()
    # The server runs chime's adapter too, so that it decides as the local model does.
    with llama_server(args.threads, log_dir / "chime-bench-big.log", DEFAULT_ADAPTER) as url, counting(url) as proxy:
        remote = create_runtime(
            OpenAICompatOptions(base_url=proxy.url, model="bundled", max_tokens=args.max_tokens, timeout_s=300)
        )
        big = Replay(remote, remote, threshold)
        for ci, conversation in enumerate(conversations):
            big.conversation(f"big-{ci}", conversation)
        out["one_big_model"] = big.figures() | server_figures(proxy, big.decisions)
        remote.close()
    local.close()
    split = out["split"]
    out["targets"] = {
        "responder_requests_equal_speaking_turns": split["responder_requests"] == split["speaking_turns"],
        "scoring_per_s_vs_single": round(split["scoring_per_s"] / out["single"]["scoring_per_s"], 3),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
