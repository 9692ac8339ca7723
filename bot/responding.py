"""Asking the responder for a reply (streamed where the room allows), saying once per outage when it fails.

A responder may be another machine (a chat endpoint) that is down, slow past its
timeout, or answering garbage. The service must go on deciding: a failed reply is
``None`` here (a forced turn then gets a short apology, an unforced one stays silent),
and the log says so when the outage starts and when it ends, not at every message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.domain import ChannelRef, IncomingMessage, ReplySender, SentMessage
from bot.streaming import ReplyStream, can_edit
from model_runtime.interface import Runtime, Timings
from model_runtime.protocol import Turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """A reply written: its text (None if the responder failed) and timings, and how it went out if streamed."""

    text: str | None
    timings: Timings
    # The message already posted, when the reply was streamed (else the caller sends it).
    sent: SentMessage | None = None
    # Streaming tried to post its first words and could not: it is not sent again.
    send_failed: bool = False
    # The stored messages a reply from memory rests on.
    sources: tuple[int, ...] = ()


@dataclass(frozen=True)
class Remembered:
    """A reply from the channel's memory and the stored messages it rests on."""

    text: str
    sources: tuple[int, ...] = ()


class Responder:
    """The responder runtime behind a guard that turns failures into ``None`` and logs outages once."""

    def __init__(self, runtime: Runtime, stream_interval_s: float = 0.0) -> None:
        self.runtime = runtime
        self.stream_interval_s = stream_interval_s
        self.failures = 0  # failed replies in the current outage
        self._down_since: float | None = None
        self._last_edit: dict[str, float] = {}  # per room: when its last streamed edit went out

    @property
    def down(self) -> bool:
        """Whether the last reply failed."""
        return self._down_since is not None

    async def reply(self, channel_key: str, window: Sequence[Turn]) -> tuple[str | None, Timings]:
        """The reply text and its timings; None for the text when the responder failed."""
        try:
            reply = await self.runtime.areply(channel_key, window)
        except Exception as e:
            self._failed(channel_key, e)
            return None, Timings()
        self._answered()
        return reply.text, reply.timings

    async def write(
        self,
        channel: ChannelRef,
        window: Sequence[Turn],
        sender: ReplySender | None,
        reply_to: IncomingMessage | None,
        may_post: Callable[[], bool],
        remember: Callable[[], Awaitable[Remembered | None]] | None = None,
    ) -> Written:
        """The reply under "typing": from ``remember`` if it has one, else the responder's, streamed if possible."""
        if sender is None or reply_to is None or not self.stream_interval_s or not can_edit(sender):
            typing = sender.typing(channel) if sender is not None else contextlib.nullcontext()
            async with typing:
                remembered = await remember() if remember is not None else None
                if remembered is not None:
                    return Written(remembered.text, Timings(), sources=remembered.sources)
                text, timings = await self.reply(channel.key, window)
            return Written(text, timings)
        stream = ReplyStream(sender, channel, reply_to, self.stream_interval_s, self._last_edit, may_post)  # type: ignore[arg-type]
        async with stream:
            remembered = await remember() if remember is not None else None
            if remembered is not None:
                return Written(remembered.text, Timings(), sources=remembered.sources)
            text, timings = await self._stream(channel.key, window, stream.show)
            sent = await stream.finish(text)
        if sent is None:
            return Written(text, timings, send_failed=stream.post_failed)
        return Written(stream.shown, timings, sent)

    async def _stream(
        self, channel_key: str, window: Sequence[Turn], show: Callable[[str], Awaitable[None]]
    ) -> tuple[str | None, Timings]:
        last = None
        try:
            async for part in self.runtime.areply_stream(channel_key, window):
                last = part
                await show(part.text)
        except Exception as e:
            self._failed(channel_key, e)
            return None, Timings()
        self._answered()
        return (last.text, last.timings) if last is not None else ("", Timings())

    def _failed(self, channel_key: str, error: Exception) -> None:
        self.failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error(
                "responder %s failed (in %s): %s; until it answers again, forced turns get a short apology "
                "and others stay silent (logged once per outage)",
                self.runtime.model_id,
                channel_key,
                error,
            )
        else:
            log.debug("responder %s still failing (in %s): %s", self.runtime.model_id, channel_key, error)

    def _answered(self) -> None:
        if self._down_since is None:
            return
        log.warning(
            "responder %s answers again after %d failed replies over %.0f s",
            self.runtime.model_id,
            self.failures,
            time.monotonic() - self._down_since,
        )
        self._down_since = None
        self.failures = 0
