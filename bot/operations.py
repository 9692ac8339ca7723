"""The service's named operations: what admin commands and adapters may do, and nothing more.

Commands and adapters call these instead of reaching into the store, the window planner
or the runtimes, so that each change of state keeps its side effects together (a new
history size also resets the planner and drops the cached model state, for example).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.config import Config
from bot.domain import ChannelRef, IncomingReaction
from bot.feedback import NOTHING_TO_REMOVE, REMOVED, is_thumbs_down
from bot.memory.knowledge import learn_text
from bot.store import ChannelSettings, Store, StoredMessage, StoreError
from bot.store.documents import DocumentInfo
from bot.store.feedback import LoggedDecision
from bot.window import WindowPlanner
from model_runtime.interface import Runtime
from model_runtime.protocol import threshold_for

log = logging.getLogger(__name__)
# How long a channel's settings are reused without reading the store. Every message reads
# them; a change made here replaces them at once, one made by another process on the same
# store (nothing in chime does that today) is seen within this time.
SETTINGS_TTL_S = 10.0

# Runs a store call on the store's thread (``ConversationService.db``).
StoreRunner = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ChannelStatus:
    """What ``status`` reports about a channel."""

    settings: ChannelSettings
    threshold: float
    messages: int
    decisions: int
    last_p_speak: float | None
    last_outcome: str | None
    runtime: str  # the decider's model id, and the responder's when it is another


class Operations:
    """Named operations on channels, people and adapter state, for commands and adapters."""

    def __init__(
        self,
        store: Store,
        db: StoreRunner,
        planner: WindowPlanner,
        decider: Runtime,
        responder: Runtime,
        config: Config,
    ) -> None:
        self._store = store
        self._db = db
        self._planner = planner
        self._decider = decider
        self._responder = responder
        self._config = config
        self.assistant_name = config.assistant.name
        # channel key -> (when read, the name and server it was read under, the settings)
        self._settings: dict[str, tuple[float, tuple[str, str | None], ChannelSettings]] = {}
        # Settings changes so far: a read that a change overtook is not kept.
        self._changes = 0

    # --- channels ---------------------------------------------------------------

    async def channel_settings(self, channel: ChannelRef) -> ChannelSettings:
        """The channel's settings, creating it with the configured defaults (read again after ``SETTINGS_TTL_S``)."""
        now = time.monotonic()
        seen_as = (channel.name, channel.server)
        cached = self._settings.get(channel.key)
        # A new name or server is written by the store's read: that one goes to the store.
        if cached is not None and now - cached[0] < SETTINGS_TTL_S and cached[1] == seen_as:
            return cached[2]
        conv = self._config.conversation
        changes = self._changes
        settings = await self._db(
            self._store.channel, channel, talkativeness=conv.talkativeness, history_size=conv.history_messages
        )
        if changes == self._changes:
            self._settings[channel.key] = (now, seen_as, settings)
        return settings

    def threshold(self, talkativeness: int) -> float:
        """The p_speak threshold a talkativeness maps to, for the decider in use."""
        return threshold_for(talkativeness, self._decider.base_threshold)

    @property
    def runtime_id(self) -> str:
        """The decider's model id, and the responder's when it is another runtime."""
        if self._responder is self._decider:
            return self._decider.model_id
        return f"{self._decider.model_id} (replies: {self._responder.model_id})"

    async def status(self, channel: ChannelRef) -> ChannelStatus:
        """The channel's settings, what is stored of it, and its last decision."""
        s = await self.channel_settings(channel)
        messages, decisions = await self._db(self._store.counts, s.pk)
        recent = await self._db(self._store.decisions, s.pk, 1)
        last = recent[0] if recent else None
        return ChannelStatus(
            settings=s,
            threshold=self.threshold(s.talkativeness),
            messages=messages,
            decisions=decisions,
            last_p_speak=last.p_speak if last else None,
            last_outcome=last.outcome if last else None,
            runtime=self.runtime_id,
        )

    async def set_muted(self, channel: ChannelRef, muted: bool) -> None:
        """Mute or unmute the channel."""
        await self._update(channel, muted=muted)

    async def set_talkativeness(self, channel: ChannelRef, talkativeness: int) -> float:
        """Set how readily the bot speaks (0-100); returns the threshold it maps to."""
        await self._update(channel, talkativeness=talkativeness)
        return self.threshold(talkativeness)

    async def set_history(self, channel: ChannelRef, messages: int) -> None:
        """Set how many recent messages a decision reads; the window starts afresh."""
        s = await self._update(channel, history_size=messages)
        self._planner.reset(s.pk)
        self.drop_model_state(channel.key)

    async def forget_channel(self, channel: ChannelRef) -> int:
        """Delete the channel's stored history; returns how many messages went."""
        s = await self.channel_settings(channel)
        n = await self._db(self._store.clear_channel, s.pk)
        self._planner.reset(s.pk)
        self.drop_model_state(channel.key)
        return n

    async def _update(self, channel: ChannelRef, **fields: object) -> ChannelSettings:
        await self.channel_settings(channel)  # created with the defaults first
        try:
            return await self._db(self._store.update_channel, channel, **fields)
        finally:
            # Read afresh, written or not: the next message sees the change, and a read that
            # began before it (still old) is not kept.
            self._changes += 1
            self._settings.pop(channel.key, None)

    # --- people -----------------------------------------------------------------

    async def forget_author(self, channel: ChannelRef, author_id: str) -> int:
        """Delete every message stored from ``author_id`` on the channel's platform; returns how many."""
        keys = await self._db(self._store.author_channel_keys, channel.platform, author_id)
        n = await self._db(self._store.forget_author, channel.platform, author_id)
        # Cached model states hold the deleted text too: drop those of every channel it was in.
        for key in sorted({channel.key, *keys}):
            self.drop_model_state(key)
        return n

    def drop_model_state(self, channel_key: str) -> None:
        """Drop the channel's cached model state in the decider and the responder (and the texts' token counts)."""
        self._planner.forget_texts()
        self._decider.forget(channel_key)
        if self._responder is not self._decider:
            self._responder.forget(channel_key)

    # --- feedback from the room -------------------------------------------------

    async def recent_decisions(self, channel: ChannelRef, limit: int = 10) -> list[LoggedDecision]:
        """The channel's last ``limit`` decisions, newest first, with their labels and the messages decided on."""
        s = await self.channel_settings(channel)
        return await self._db(self._store.decision_log, s.pk, limit)

    async def record_feedback(self, reaction: IncomingReaction, *, removed: bool = False) -> str | None:
        """A 👎 on the bot's unasked reply labels that decision a false interruption; taking it off unlabels it.

        Returns what was done (bot/store/feedback.py says why a label is refused; REMOVED
        or NOTHING_TO_REMOVE for a removal), None when the reaction says nothing about a
        decision or the store is unavailable.
        """
        if reaction.is_bot or not is_thumbs_down(reaction.emoji):
            return None
        platform, who = reaction.channel.platform, reaction.author_id
        try:
            if removed:
                done = await self._db(self._store.unlabel_reply, platform, reaction.message_id, who)
                result = REMOVED if done else NOTHING_TO_REMOVE
            else:
                source = reaction.reaction_id
                result = await self._db(self._store.label_reply, platform, reaction.message_id, who, source_id=source)
        except StoreError as e:
            log.error("👎 on %s in %s not recorded: %s", reaction.message_id, reaction.channel.key, e)
            return None
        log.info(
            "false interruption label on %s in %s by %s: %s", reaction.message_id, reaction.channel.key, who, result
        )
        return result

    # --- memory ---------------------------------------------------------------------

    async def learn(self, channel: ChannelRef, name: str, text: str, *, source: str, added_by: str) -> int:
        """Store a document for a channel's memory (replacing one of the same name); returns its passages."""
        return await self._db(learn_text, self._store, channel, name, text, source=source, added_by=added_by)

    async def documents(self, channel: ChannelRef) -> list[DocumentInfo]:
        """The channel's documents."""
        settings = await self.channel_settings(channel)
        return await self._db(self._store.documents, settings.pk)

    async def unlearn(self, channel: ChannelRef, name: str) -> bool:
        """Delete one of the channel's documents; False when there is none by that name."""
        settings = await self.channel_settings(channel)
        return await self._db(self._store.delete_document, settings.pk, name)

    # --- messages and adapter state ---------------------------------------------

    async def stored_message(self, platform: str, message_id: str) -> StoredMessage | None:
        """A stored message by its platform id (None if unknown or deleted)."""
        return await self._db(self._store.get_message, platform, message_id)

    async def get_state(self, platform: str, key: str) -> str | None:
        """An adapter's saved value (a sync token, a name), None if never set."""
        return await self._db(self._store.get_state, platform, key)

    async def set_state(self, platform: str, key: str, value: str) -> None:
        """Save an adapter's value under ``key``."""
        await self._db(self._store.set_state, platform, key, value)
