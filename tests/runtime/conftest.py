"""Fixtures for the runtime tests: the bundled GGUF loaded for real, a llama.cpp server, sample windows."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model_runtime.protocol import Turn

# The tests share two cores with each other in CI: one thread avoids OpenMP spinning.
THREADS = int(os.environ.get("CHIME_TEST_THREADS", "1"))

_CONVERSATIONS: list[list[tuple[str, str]]] = [
    [("Alice", "Hi Bob, how was the weekend?"), ("Bob", "Great, we went hiking near the lake.")],
    [("Cynthia", "I want to get Fred a book for Christmas."), ("Fred", "I heard that!")],
    [("Dana", "Who wrote The Da Vinci Code? I can't remember his name.")],
    [("Eve", "assistant, what is the capital of Australia?")],
    [("Gus", "lol"), ("Hana", "haha same"), ("Gus", "ok see you tomorrow")],
    [("Ivan", "How many moons does Mars have?"), ("Jo", "No idea, two maybe?")],
    [("Kim", "@assistant can you convert 5 miles to kilometres?")],
    [("Lee", "I feel tired today."), ("Mo", "Me too, long week.")],
    [("Ned", "When did the Berlin Wall fall?"), ("Oli", "1991 I think"), ("Ned", "Are you sure?")],
    [("Pat", "Dinner at 8?"), ("Quinn", "Sounds good, I'll book the table.")],
    [("Rae", "What's the boiling point of water in Fahrenheit?")],
    [("Sam", "Let's plan the trip."), ("Tia", "I'd like to go to Spain."), ("Sam", "Which city though?")],
]


def sample_windows() -> list[list[Turn]]:
    """A dozen short decision windows, from chit-chat to direct questions."""
    return [[Turn(role="user", name=n, content=c) for n, c in conv] for conv in _CONVERSATIONS]


def long_conversation(n_messages: int) -> list[Turn]:
    """A deterministic conversation of ``n_messages`` human turns among three people."""
    names = ["Alice", "Bob", "Carol"]
    topics = ["the train times", "a recipe for soup", "the football match", "a new phone", "the weather"]
    return [
        Turn(role="user", name=names[i % 3], content=f"Message {i}: I keep thinking about {topics[i % 5]}, honestly.")
        for i in range(n_messages)
    ]


@pytest.fixture(scope="session")
def bundled_path() -> Path:
    """The bundled SmolLM2 GGUF, found through the installed package."""
    from model_runtime.bundled import bundled_model_path

    return bundled_model_path()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``python -m model_runtime.llama_server``: its URL and the log it writes (access lines included)."""

    def __init__(self, url: str, log_path: Path) -> None:
        self.url = url
        self.log_path = log_path

    def requests(self, path: str) -> int:
        """How many requests for ``path`` the server has logged (uvicorn's access log)."""
        return sum(f'"POST {path} HTTP' in line for line in self.log_path.read_text().splitlines())


@contextlib.contextmanager
def serve_bundled(bundled_path: Path, log_path: Path) -> Iterator[Server]:
    """Start llama-cpp-python's real server on the bundled model on 127.0.0.1; stop it afterwards."""
    port = _free_port()
    cmd = [sys.executable, "-m", "model_runtime.llama_server", "--model", str(bundled_path), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--n_threads", str(THREADS), "--n_threads_batch", str(THREADS)]
    with log_path.open("w") as log:
        # Unbuffered, so that each access line is in the log as soon as the request is answered.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield Server(url, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def llama_server(bundled_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's real server (``python -m model_runtime.llama_server``, the bundled model) on 127.0.0.1."""
    with serve_bundled(bundled_path, tmp_path_factory.mktemp("server") / "server.log") as server:
        yield server.url
