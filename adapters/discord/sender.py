"""Talking to Discord's REST API: replies (split at 2000 characters, typing while generating, edited while streamed) and read-backs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import discord

from adapters.discord.convert import split_message
from bot.domain import ChannelRef, IncomingMessage, SentMessage

log = logging.getLogger(__name__)

# Typing shows for 10 s after each POST; refresh before it lapses.
TYPING_REFRESH_S = 8.0
# A typing indicator is cosmetic: never hold a reply back longer than this for one.
TYPING_TIMEOUT_S = 3.0


class DiscordSender:
    """The core's ReplySender for Discord, sending through whichever client is connected now."""

    def __init__(self, client: Callable[[], discord.Client | None]) -> None:
        self._client = client
        # Channels where a send failed, so that a missing permission is logged once, not per message.
        self._unsendable: set[str] = set()

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage | None:
        """Send ``text`` as a Discord reply to ``reply_to``, split into messages of at most 2000 characters."""
        client = self._client()
        if client is None:
            log.error("discord: not connected; reply to %s in %s dropped", reply_to.message_id, channel.key)
            return None
        target = client.get_partial_messageable(int(channel.channel_id))
        reference = discord.MessageReference(
            message_id=int(reply_to.message_id), channel_id=int(channel.channel_id), fail_if_not_exists=False
        )
        # Ping the author only when they called the bot; everyone else named in the reply stays unpinged.
        mentions = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=reply_to.addressed)
        chunks = split_message(text)
        first: discord.Message | None = None
        for i, chunk in enumerate(chunks):
            # A nonce from the message answered: Discord returns the message already sent
            # instead of posting it again, should a crash come between sending and recording.
            nonce = f"{reply_to.message_id}.{i}"[-25:]
            try:
                sent = await target.send(
                    chunk, reference=reference if i == 0 else None, allowed_mentions=mentions, nonce=nonce
                )
            except discord.HTTPException as e:
                self._log_failure(channel, reply_to, e, i, len(chunks))
                break
            first = first or sent
        else:
            self._unsendable.discard(channel.channel_id)
        return SentMessage(str(first.id), first.created_at) if first is not None else None

    async def edit_reply(self, channel: ChannelRef, sent: SentMessage, text: str, reply_to: IncomingMessage) -> bool:
        """Replace the text of a reply being streamed; False when it cannot be (too long for one message, or refused)."""
        client = self._client()
        if client is None or len(split_message(text)) > 1:
            return False  # the rest of a long reply would need more messages: it stays as it was
        message = client.get_partial_messageable(int(channel.channel_id)).get_partial_message(int(sent.message_id))
        try:
            # Editing never pings anyone again.
            await message.edit(content=text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as e:
            log.warning(
                "discord: editing reply %s in %s failed (%s %s)", sent.message_id, channel.key, e.status, e.text
            )
            return False
        return True

    def _log_failure(
        self, channel: ChannelRef, reply_to: IncomingMessage, e: discord.HTTPException, part: int, parts: int
    ) -> None:
        what = f"part {part + 1} of {parts} of the reply" if parts > 1 else "the reply"
        where = f"{channel.key} ({channel.name or 'unknown channel'})"
        if isinstance(e, discord.Forbidden | discord.NotFound):
            # A missing permission or a deleted channel repeats at every reply: say it once per channel.
            level = logging.DEBUG if channel.channel_id in self._unsendable else logging.WARNING
            self._unsendable.add(channel.channel_id)
            log.log(level, "discord: %s to message %s in %s not sent (%s %s): check the bot's permissions there, "
                    "or the channel is gone", what, reply_to.message_id, where, e.status, e.text)  # fmt: skip
        else:
            log.error("discord: %s to message %s in %s not sent after retries (%s %s)",
                      what, reply_to.message_id, where, e.status, e.text)  # fmt: skip

    @contextlib.asynccontextmanager
    async def typing(self, channel: ChannelRef) -> AsyncIterator[None]:
        """Show "typing" in ``channel`` until the reply is ready; never fails the reply."""
        client = self._client()
        if client is None:
            yield
            return
        target = client.get_partial_messageable(int(channel.channel_id))
        # The first indicator is sent before generating starts, so it never races the reply.
        refresher = asyncio.create_task(_keep_typing(target, channel)) if await _type(target, channel) else None
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()


async def _keep_typing(target: discord.PartialMessageable, channel: ChannelRef) -> None:
    while True:
        await asyncio.sleep(TYPING_REFRESH_S)
        if not await _type(target, channel):
            return


async def _type(target: discord.PartialMessageable, channel: ChannelRef) -> bool:
    """Send one typing indicator; False when Discord refused it (then the reply goes on without one)."""
    try:
        await asyncio.wait_for(target.typing(), TYPING_TIMEOUT_S)
    except (TimeoutError, discord.HTTPException) as e:
        log.debug("discord: no typing indicator in %s: %s", channel.key, e)
        return False
    return True


async def messages_after(channel: discord.abc.Messageable, after_id: int, limit: int) -> list[discord.Message]:
    """The channel's messages newer than ``after_id``, oldest first: the newest ``limit`` of them at most."""
    newest_first: list[discord.Message] = []
    async for message in channel.history(limit=limit):  # pages of 100, newest first
        if message.id <= after_id:
            return newest_first[::-1]
        newest_first.append(message)
    if len(newest_first) == limit:
        log.warning("discord: read back %d messages in %s; older ones are not seen", limit, getattr(channel, "id", "?"))
    return newest_first[::-1]
