"""Test doubles that record what happened (no assertions on mock calls)."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from bot.domain import ChannelRef, IncomingMessage, SentMessage
from model_runtime.interface import Reply, Runtime, Score, Timings
from model_runtime.protocol import Turn


@dataclass
class Call:
    """One score() or reply() call as the runtime saw it."""

    kind: str  # "score" or "reply"
    channel: str
    window: list[Turn]


class ScriptedRuntime(Runtime):
    """A runtime whose p_speak comes from a function of the window; it records every call.

    ``delay_s`` makes each score take that long (to test bursts and shutdown);
    ``fail_on`` raises inside score and reply when the last human turn contains that text;
    ``reply`` may be a function of the window (to tell which message a reply was written for);
    ``word_delay_s`` streams the reply a word at a time, that long apart (``fail_after``
    words, then a failure, when set).
    """

    name = "scripted"

    def __init__(
        self,
        p_speak: Callable[[Sequence[Turn]], float] | float = 0.1,
        *,
        reply: str | Callable[[Sequence[Turn]], str] = "scripted reply",
        delay_s: float = 0.0,
        fail_on: str | None = None,
        word_delay_s: float = 0.0,
        fail_after: int | None = None,
    ) -> None:
        super().__init__()
        self.word_delay_s = word_delay_s
        self.fail_after = fail_after
        self._p = p_speak
        self.reply_text = reply
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.calls: list[Call] = []
        self.forgotten: list[str] = []
        self._lock = threading.Lock()

    @property
    def scored(self) -> list[Call]:
        """The score calls, in order."""
        return [c for c in self.calls if c.kind == "score"]

    @property
    def replies(self) -> list[Call]:
        """The reply calls, in order."""
        return [c for c in self.calls if c.kind == "reply"]

    def _record(self, kind: str, channel: str, window: Sequence[Turn]) -> None:
        with self._lock:
            self.calls.append(Call(kind, channel, list(window)))
        if self.fail_on and self.fail_on in window[-1].content:
            raise RuntimeError(f"scripted failure on {window[-1].content!r}")

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        self._record("score", channel, window)
        if self.delay_s:
            time.sleep(self.delay_s)
        p = self._p(window) if callable(self._p) else float(self._p)
        return Score(p, Timings(total_ms=self.delay_s * 1000))

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        self._record("reply", channel, window)
        return Reply(self.reply_text(window) if callable(self.reply_text) else self.reply_text)

    def reply_stream(self, channel: str, window: Sequence[Turn]) -> Iterator[Reply]:
        text = self.reply(channel, window).text
        if not self.word_delay_s:
            yield Reply(text)
            return
        words = text.split(" ")
        for n in range(1, len(words) + 1):
            time.sleep(self.word_delay_s)
            if self.fail_after is not None and n > self.fail_after:
                raise RuntimeError("scripted failure in the middle of a reply")
            yield Reply(" ".join(words[:n]))

    def forget(self, channel: str) -> None:
        self.forgotten.append(channel)


@dataclass
class Sent:
    channel: ChannelRef
    text: str
    reply_to: str


@dataclass
class RecordingSender:
    """A ReplySender that records replies and typing; ``fail`` makes sends fail."""

    sent: list[Sent] = field(default_factory=list)
    typing_channels: list[str] = field(default_factory=list)
    fail: bool = False
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage | None:
        if self.fail:
            return None
        self.sent.append(Sent(channel, text, reply_to.message_id))
        return SentMessage(message_id=f"bot-{next(self._ids)}")

    @contextlib.asynccontextmanager
    async def typing(self, channel: ChannelRef):
        self.typing_channels.append(channel.key)
        yield


@dataclass
class Edit:
    message_id: str
    text: str
    at: float  # time.monotonic() when it was made


@dataclass
class EditingSender(RecordingSender):
    """A RecordingSender that can edit its replies (as Discord and Matrix can); it records when things happened."""

    edits: list[Edit] = field(default_factory=list)
    posted_at: list[float] = field(default_factory=list)
    typing_ended_at: list[float] = field(default_factory=list)

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage | None:
        self.posted_at.append(time.monotonic())
        return await super().send_reply(channel, text, reply_to)

    async def edit_reply(self, channel: ChannelRef, sent: SentMessage, text: str, reply_to: IncomingMessage) -> bool:
        self.edits.append(Edit(sent.message_id, text, time.monotonic()))
        return True

    @contextlib.asynccontextmanager
    async def typing(self, channel: ChannelRef):
        self.typing_channels.append(channel.key)
        try:
            yield
        finally:
            self.typing_ended_at.append(time.monotonic())
