"""Posting a reply while it is written: the first words early, then edits in place, throttled per room.

Only where the platform can edit a message (the adapter's sender has ``edit_reply``).
"Typing" shows until the first words are posted; after that the post itself shows that
the reply is coming. Edits in a room are at most one per ``interval_s``, so a slow,
long reply does not flood the room (or the platform's rate limits) with edits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bot.domain import ChannelRef, IncomingMessage, ReplySender, SentMessage

log = logging.getLogger(__name__)


class EditingSender(ReplySender, Protocol):
    """A sender that can also replace the text of a reply it sent."""

    async def edit_reply(self, channel: ChannelRef, sent: SentMessage, text: str, reply_to: IncomingMessage) -> bool:
        """Replace the text of ``sent``; False when it could not be edited."""
        ...


def can_edit(sender: ReplySender | None) -> bool:
    """Whether replies can be streamed through ``sender`` (it edits messages)."""
    return callable(getattr(sender, "edit_reply", None))


class ReplyStream:
    """One reply streamed into a room: typing until its first words, then the post, then edits."""

    def __init__(
        self,
        sender: EditingSender,
        channel: ChannelRef,
        reply_to: IncomingMessage,
        interval_s: float,
        last_edit: dict[str, float],
        may_post: Callable[[], bool],
    ) -> None:
        self.sender, self.channel, self.reply_to = sender, channel, reply_to
        self.interval_s = interval_s
        # Per room, when its last edit (or post) went out: shared by every reply in the room.
        self._last_edit = last_edit
        self._may_post = may_post
        self.sent: SentMessage | None = None
        self.shown = ""  # the text the room sees now
        self.edits = 0
        self.post_failed = False
        self._typing = contextlib.AsyncExitStack()

    async def __aenter__(self) -> ReplyStream:
        await self._typing.enter_async_context(self.sender.typing(self.channel))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._typing.aclose()

    async def show(self, text: str) -> None:
        """The reply so far: the first words are posted, later text edits the post (throttled)."""
        text = text.strip()
        if not text or text == self.shown or self.post_failed:
            return
        if self.sent is None:
            if not self._may_post():
                return  # newer messages arrived: the service drops this reply
            await self._typing.aclose()  # the post shows from now on that a reply is coming
            self.sent = await self._post(text)
            if self.sent is None:
                self.post_failed = True  # recorded as a failed send; it is not tried again
                return
            self.shown = text
            self._last_edit[self.channel.key] = time.monotonic()
        elif self._wait() <= 0:
            await self._edit(text)

    async def finish(self, text: str | None) -> SentMessage | None:
        """Put the finished text in place (after the interval); the post, or None if nothing was posted."""
        if self.sent is None:
            return None
        final = (text or "").strip()
        if final and final != self.shown:
            wait = self._wait()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._edit(final)
        return self.sent

    def _wait(self) -> float:
        """Seconds before the room may see another edit."""
        return self._last_edit.get(self.channel.key, float("-inf")) + self.interval_s - time.monotonic()

    async def _post(self, text: str) -> SentMessage | None:
        try:
            return await self.sender.send_reply(self.channel, text, self.reply_to)
        except Exception:
            log.exception("posting the start of a reply in %s failed", self.channel.key)
            return None

    async def _edit(self, text: str) -> None:
        assert self.sent is not None
        try:
            ok = await self.sender.edit_reply(self.channel, self.sent, text, self.reply_to)
        except Exception:
            log.exception("editing the reply in %s failed", self.channel.key)
            ok = False
        self._last_edit[self.channel.key] = time.monotonic()
        if ok:
            self.shown = text
            self.edits += 1
