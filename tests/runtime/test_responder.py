"""A local decider with a separate chat responder: a real llama.cpp server serving the bundled model over /v1/chat/completions."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, CommandContext, IncomingMessage
from bot.service import UNAVAILABLE_FALLBACK, ConversationService, DecisionEvent
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from chime.app import build_responder, build_runtime
from model_runtime import ChatOptions, LlamaCppOptions, Runtime, create_runtime
from model_runtime.chat_prompt import GROUP_CHAT_PROMPT, clean_chat_reply, group_chat_messages
from model_runtime.protocol import Turn
from tests.fakes import EditingSender, RecordingSender

from .conftest import THREADS, Server, _free_port, serve_bundled

CH = ChannelRef("test", "room", "general")
ADMIN = CommandContext(CH, "ann", "Ann", is_admin=True)
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def chat_server(bundled_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_bundled(bundled_path, tmp_path_factory.mktemp("chat") / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def decider() -> Iterator[Runtime]:
    rt = create_runtime(LlamaCppOptions(n_threads=THREADS, isolate=False))
    yield rt
    rt.close()


class Room:
    """A service on SQLite with a local decider and the given responder; it records what was said."""

    def __init__(self, tmp_path: Path, decider: Runtime, responder: Runtime, sender: RecordingSender) -> None:
        url = sqlite_url(tmp_path / "chime.db")
        upgrade(url)
        config = parse_config({"conversation": {"stream_interval_s": 0.3}})
        self.service = ConversationService(Store(url), decider, config, responder)
        self.sender = sender
        self.service.register("test", self.sender)
        self.events: list[DecisionEvent] = []
        self.service.add_listener(self.events.append)
        self._n = 0

    async def say(self, name: str, text: str) -> None:
        self._n += 1
        msg = IncomingMessage(CH, f"m{self._n}", name.lower(), name, text)
        await self.service.handle_message(msg)
        await self.service.drain()  # one at a time: no message supersedes another


@pytest.fixture
async def room(tmp_path: Path, decider: Runtime) -> Iterator:
    made: list[tuple[Room, Runtime]] = []

    def make(responder: Runtime, sender: RecordingSender | None = None) -> Room:
        r = Room(tmp_path, decider, responder, sender or RecordingSender())
        made.append((r, responder))
        return r

    yield make
    for r, responder in made:
        await r.service.close()
        responder.close()


CONVERSATION = [
    ("Ann", "morning all"),
    ("Ben", "morning! did anyone watch the match last night?"),
    ("Ann", "@assistant how many players are on a football team?"),
    ("Cat", "lol we were just talking about that"),
    ("Ben", "I'll bring snacks on friday"),
    ("Cat", "who wrote The Da Vinci Code? I can't remember his name"),
    ("Ann", "@assistant what is the capital of Australia?"),
    ("Ben", "ok see you all tomorrow"),
]


async def test_the_responder_is_asked_only_for_the_turns_that_speak(room, chat_server: Server) -> None:
    chat = create_runtime(ChatOptions(base_url=chat_server.url + "/v1", model="smollm2", max_tokens=48))
    r = room(chat)
    for name, text in CONVERSATION:
        await r.say(name, text)
    # Every message was scored, locally: the server never saw a scoring request.
    assert len(r.events) == len(CONVERSATION)
    assert all(0.0 < e.decision.p_speak < 1.0 for e in r.events)
    assert chat_server.requests("/v1/completions") == 0
    speaking = [e for e in r.events if e.decision.speak]
    assert sum(e.decision.forced for e in speaking) == 2
    # One chat request per turn that speaks, and none for the others.
    assert chat_server.requests(CHAT) == len(speaking) == chat.requests
    assert [e.outcome for e in speaking] == ["sent"] * len(speaking)
    assert [s.reply_to for s in r.sender.sent] == [e.trigger.message_id for e in speaking]
    assert UNAVAILABLE_FALLBACK not in [s.text for s in r.sender.sent]


async def test_a_streamed_reply_ends_as_one_message_with_the_full_text(room, chat_server: Server) -> None:
    options = ChatOptions(base_url=chat_server.url, model="smollm2", max_tokens=64, temperature=0.0)
    chat = create_runtime(options)
    window = [Turn("user", "@assistant tell me about the moon", "Ann")]
    # The server reuses the longest cached prompt prefix, and a prompt evaluated in other batch sizes can
    # round differently and flip a near tie in greedy decoding. A first plain request puts the whole prompt in
    # the cache, so the streamed request and the plain one compared with it both start from the same state.
    chat.reply("c", window)
    parts = list(chat.reply_stream("c", window))
    # Whole words as they come, then the finished reply: the same text a plain request gets.
    assert len(parts) >= 3 and parts[-1].text == chat.reply("c", window).text
    assert all(parts[-1].text.startswith(p.text.rstrip(" .,!?")) for p in parts[:-1])
    sender = EditingSender()
    r = room(chat, sender)
    await r.say("Ann", "@assistant tell me about the moon")
    assert len(sender.sent) == 1 and sender.edits and {e.message_id for e in sender.edits} == {"bot-1"}
    final = r.events[-1].reply_text
    assert final == sender.edits[-1].text and len(final) > len(sender.sent[0].text)
    assert sender.typing_ended_at[0] <= sender.posted_at[0]  # typing until the first words


async def _failing_room(r: Room) -> None:
    """Two forced questions and an unforced one that speaks (talkativeness 100) while the responder fails."""
    await r.service.run_command(ADMIN, "talkativeness 100")
    await r.say("Ann", "@assistant what is 12 times 12?")
    await r.say("Ben", "what's the boiling point of water in Fahrenheit?")
    await r.say("Cat", "@assistant are you there?")


def _assert_failed_quietly(r: Room, caplog: pytest.LogCaptureFixture) -> None:
    # Forced turns get the short apology; the unforced one stays silent; the decider kept deciding.
    assert [s.text for s in r.sender.sent] == [UNAVAILABLE_FALLBACK, UNAVAILABLE_FALLBACK]
    assert [e.outcome for e in r.events] == ["sent", "error", "sent"]
    assert all(0.0 < e.decision.p_speak < 1.0 for e in r.events)
    outage = [rec for rec in caplog.records if rec.name == "bot.responding" and rec.levelno >= logging.ERROR]
    assert len(outage) == 1, "one line per outage, not one per message"


async def test_a_responder_slower_than_its_timeout(room, chat_server: Server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.responding")
    slow = create_runtime(ChatOptions(base_url=chat_server.url, model="smollm2", max_tokens=400, timeout_s=0.05))
    r = room(slow)
    await _failing_room(r)
    _assert_failed_quietly(r, caplog)
    assert "gave no reply within 0.05 s (runtime.responder.timeout_s)" in caplog.text


async def test_a_responder_that_is_down(room, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.responding")
    down = create_runtime(ChatOptions(base_url=f"http://127.0.0.1:{_free_port()}", model="x", timeout_s=5))
    r = room(down)
    await _failing_room(r)
    _assert_failed_quietly(r, caplog)
    assert "cannot be reached" in caplog.text


class _Endpoint(BaseHTTPRequestHandler):
    """A chat endpoint whose answers the test chooses: garbage first, then a proper completion."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        answer = self.server.answers.pop(0)  # type: ignore[attr-defined]
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    server.bodies, server.answers = [], []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_garbage_is_an_outage_and_a_good_answer_ends_it(room, endpoint, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.responding")
    endpoint.answers += [
        "<html>502 Bad Gateway</html>",
        {"choices": []},
        {
            "id": "x",
            "choices": [{"message": {"role": "assistant", "content": "assistant: Eleven, in association football."}}],
        },
    ]
    host, port = endpoint.server_address
    r = room(create_runtime(ChatOptions(base_url=f"http://{host}:{port}", model="x")))
    await r.say("Ann", "@assistant what is 2 and 2?")
    await r.say("Ben", "@assistant are you there?")
    await r.say("Ann", "@assistant how many players are on a football team?")
    assert [s.text for s in r.sender.sent] == [
        UNAVAILABLE_FALLBACK,
        UNAVAILABLE_FALLBACK,
        "Eleven, in association football.",
    ]
    assert [rec.levelname for rec in caplog.records if rec.name == "bot.responding"] == ["ERROR", "DEBUG", "WARNING"]
    assert "not JSON" in caplog.records[0].getMessage() and "after 2 failed replies" in caplog.text
    # The endpoint got the group-chat prompt: who it is, the people by name, the last question.
    messages = endpoint.bodies[-1]["messages"]
    assert messages[0]["role"] == "system" and "group chat" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "Ann: @assistant how many players are on a football team?"}


def test_the_group_chat_prompt() -> None:
    window = [
        Turn("user", "@assistant what's the capital of Peru?", "Ann"),
        Turn("assistant", "Lima."),
        Turn("user", "thanks!", "Ann"),
        Turn("user", "and of Chile?", "Ben"),
    ]
    messages = group_chat_messages(window, "chime")
    assert messages == [
        {"role": "system", "content": GROUP_CHAT_PROMPT.replace("{name}", "chime")},
        {"role": "user", "content": "Ann: @assistant what's the capital of Peru?"},
        {"role": "assistant", "content": "Lima."},
        {"role": "user", "content": "Ann: thanks!\nBen: and of Chile?"},
    ]
    assert "You are chime" in messages[0]["content"] and "several people" in messages[0]["content"]
    assert group_chat_messages(window, "chime", "Be {name}.")[0]["content"] == "Be chime."
    with pytest.raises(ValueError, match="end with a human turn"):
        group_chat_messages(window[:2], "chime")


def test_a_chat_reply_loses_its_name_and_any_forged_turn() -> None:
    assert clean_chat_reply("chime: Santiago.", ["Ann", "Ben"], "chime") == "Santiago."
    assert clean_chat_reply("Santiago.\nBen: thanks!", ["Ann", "Ben"], "chime") == "Santiago."


def test_by_default_one_runtime_decides_and_replies() -> None:
    for runtime in ({"kind": "rules"}, {"decider": {"kind": "rules"}, "responder": {"kind": "rules"}}):
        config = parse_config({"runtime": runtime})
        decider = build_runtime(config)
        assert build_responder(config, decider) is decider
    chat = {"kind": "chat", "base_url": "http://127.0.0.1:1", "model": "x"}
    config = parse_config({"runtime": {"decider": {"kind": "rules"}, "responder": chat}})
    decider = build_runtime(config)
    responder = build_responder(config, decider)
    assert responder is not decider and responder.name == "chat"
    responder.close()
