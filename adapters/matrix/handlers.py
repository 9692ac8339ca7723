"""What the Matrix adapter does with one sync response: invites, leaves, and each room's timeline."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from nio import (
    AsyncClient,
    DownloadError,
    InviteMemberEvent,
    JoinError,
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RedactionEvent,
    RoomEncryptedMedia,
    RoomGetEventError,
    RoomGetStateError,
    RoomMemberEvent,
    RoomMessageEmote,
    RoomMessageFile,
    RoomMessageMedia,
    RoomMessageNotice,
    RoomMessagesError,
    RoomMessageText,
    StickerEvent,
    SyncResponse,
)
from nio.responses import RoomInfo

from adapters.matrix.events import PLATFORM, annotation, inviter_allowed, message_text, relation, timestamp, to_incoming
from bot.config import MatrixConfig
from bot.domain import Attachment, ChannelRef, CommandContext, IncomingMessage, IncomingReaction, message_source
from bot.service import ConversationService

log = logging.getLogger(__name__)

# Media and stickers are stored as placeholders ("[image: cat.png]"), as on Discord.
_MESSAGES = (
    RoomMessageText,
    RoomMessageNotice,
    RoomMessageEmote,
    RoomMessageFile,
    RoomMessageMedia,
    RoomEncryptedMedia,
    StickerEvent,
)
# How many pages of /messages to read back to close a gap in a room's timeline.
_MAX_BACKFILL_PAGES = 10
_UNPRIVILEGED_CREATOR_VERSIONS = {str(v) for v in range(1, 12)}

SendNotice = Callable[[MatrixRoom, str, IncomingMessage], Awaitable[None]]


class BoundedSet:
    """The last ``size`` keys seen, with an optional value each (event ids are unique; memory is not)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: OrderedDict[str, str | None] = OrderedDict()

    def add(self, key: str, value: str | None = None) -> None:
        """Remember ``key`` (and its value), forgetting the oldest beyond ``size``."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: str) -> str | None:
        """The value kept for ``key``."""
        return self._items.get(key)

    def clear(self) -> None:
        """Forget every key."""
        self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items


class SyncHandler:
    """Turns each sync response into calls on the conversation service."""

    def __init__(
        self, service: ConversationService, client: AsyncClient, cfg: MatrixConfig, send_notice: SendNotice
    ) -> None:
        self.service = service
        self.client = client
        self.cfg = cfg
        self.send_notice = send_notice
        self.seen = BoundedSet()
        # Thread root of each recent event, so a reply lands in the thread its trigger came from.
        self.threads = BoundedSet()
        self.joined: set[str] = set()
        self._warned_encrypted: set[str] = set()
        self._creators_cache: dict[str, frozenset[str]] = {}
        # Command answers on their way (the adapter waits for them briefly at close).
        self.notices: set[asyncio.Task[None]] = set()

    @property
    def user_id(self) -> str:
        """The bot's own Matrix user id."""
        return self.client.user_id

    def can_post(self, room_id: str) -> bool:
        """Whether the bot may speak in a room: joined, and not encrypted unless E2EE is on."""
        room = self.client.rooms.get(room_id)
        if room is None or room_id not in self.joined:
            return False
        if room.encrypted and self.client.olm is None:
            self._warn_encrypted(room)
            return False
        return True

    def _warn_encrypted(self, room: MatrixRoom) -> None:
        if room.room_id not in self._warned_encrypted:
            self._warned_encrypted.add(room.room_id)
            log.warning(
                "matrix: room %s is end-to-end encrypted and E2EE is off (adapters.matrix.e2ee): "
                "I read nothing there and post nothing",
                room.room_id,
            )

    async def handle(self, resp: SyncResponse, *, initial: bool) -> None:
        """Process one sync: invites, rooms left, then every joined room's timeline in order."""
        for room_id, info in resp.rooms.invite.items():
            await self._guarded(self._on_invite(room_id, info.invite_state), f"invite to {room_id}")
        for room_id, info in resp.rooms.leave.items():
            await self._guarded(self._on_leave(room_id, info), f"leaving {room_id}")
        for room_id, info in resp.rooms.join.items():
            await self._guarded(self._on_room(room_id, info, initial=initial), f"timeline of {room_id}")

    async def _guarded(self, coro: Awaitable[None], what: str) -> None:
        # One room or event failing must never stop the sync loop.
        try:
            await coro
        except Exception:
            log.exception("matrix: handling %s failed; going on", what)

    # --- membership -------------------------------------------------------------

    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        inviter = next(
            (
                e.sender
                for e in invite_state
                if isinstance(e, InviteMemberEvent) and e.state_key == self.user_id and e.membership == "invite"
            ),
            None,
        )
        if inviter and inviter_allowed(inviter, self.cfg.allowed_inviters):
            resp = await self.client.join(room_id)
            if isinstance(resp, JoinError):
                log.error("matrix: joining %s (invited by %s) failed: %s", room_id, inviter, resp)
            else:
                log.info("matrix: joined %s, invited by %s", room_id, inviter)
            return
        log.warning("matrix: declined invite to %s from %s (not in allowed_inviters)", room_id, inviter)
        await self.client.room_leave(room_id)

    async def _on_leave(self, room_id: str, info: RoomInfo) -> None:
        mine = [e for e in info.timeline.events if isinstance(e, RoomMemberEvent) and e.state_key == self.user_id]
        how = f"{mine[-1].membership} by {mine[-1].sender}" if mine else "left"
        if room_id in self.joined or room_id in self.client.rooms:
            log.warning("matrix: no longer in room %s (%s); I stop reading and posting there", room_id, how)
        self.joined.discard(room_id)
        # nio keeps left rooms in client.rooms; drop it so nothing is sent there.
        self.client.rooms.pop(room_id, None)
        self.client.invited_rooms.pop(room_id, None)

    # --- timelines --------------------------------------------------------------

    async def _on_room(self, room_id: str, info: RoomInfo, *, initial: bool) -> None:
        room = self.client.rooms.get(room_id)
        if room is None:
            return
        self.joined.add(room_id)
        events = list(info.timeline.events)
        joined_at = self._own_join_index(events)
        if initial:
            # The very first sync shows only the past: keep it as context, answer nothing.
            live_from = len(events)
        elif joined_at >= 0:
            # We joined in this batch: what came before our join is history.
            live_from = joined_at + 1
        else:
            live_from = 0
            if info.timeline.limited and info.timeline.prev_batch:
                # A gap (the bot was away, or a burst): read back to what we already have.
                events = await self._backfill(room, info.timeline.prev_batch) + events
        for i, event in enumerate(events):
            await self._guarded(self._on_event(room, event, live=i >= live_from), f"event in {room_id}")

    def _own_join_index(self, events: list[Any]) -> int:
        """Index of the bot's own latest join (not a profile change) in a timeline; -1 if absent."""
        for i in range(len(events) - 1, -1, -1):
            e = events[i]
            if (
                isinstance(e, RoomMemberEvent)
                and e.state_key == self.user_id
                and e.membership == "join"
                and e.prev_membership != "join"
            ):
                return i
        return -1

    async def _backfill(self, room: MatrixRoom, token: str) -> list[Any]:
        """Events in the gap before a limited timeline, oldest first, back to one already stored."""
        found: list[Any] = []
        for _ in range(_MAX_BACKFILL_PAGES):
            resp = await self.client.room_messages(
                room.room_id, start=token, direction=MessageDirection.back, limit=self.cfg.timeline_limit
            )
            if isinstance(resp, RoomMessagesError) or not resp.chunk:
                break
            for event in resp.chunk:
                if self._own_join_index([event]) == 0:
                    return found[::-1]
                if event.event_id in self.seen or await self._known(event.event_id):
                    log.info("matrix: closed a gap of %d events in %s", len(found), room.room_id)
                    return found[::-1]
                found.append(event)
            token = resp.end
            if not token:
                break
        log.warning("matrix: a gap in %s was read back %d events; older ones are not seen", room.room_id, len(found))
        return found[::-1]

    async def _known(self, event_id: str) -> bool:
        # Stored, or deleted (forget, forget-me, a redaction): either way it was seen before.
        return await self.service.known_message(PLATFORM, event_id)

    async def _on_event(self, room: MatrixRoom, event: Any, *, live: bool) -> None:
        """One timeline event: guard clauses, convert, one core call."""
        event_id = getattr(event, "event_id", None)
        if not event_id or event_id in self.seen:
            return
        self.seen.add(event_id)
        ref = ChannelRef(PLATFORM, room.room_id, room.display_name)
        if isinstance(event, RedactionEvent):
            await self.service.handle_delete(ref, event.redacts)
            return
        if isinstance(event, MegolmEvent) or (room.encrypted and self.client.olm is None):
            self._warn_encrypted(room)
            return
        reacted = annotation(getattr(event, "source", {}))
        if reacted is not None:
            # Past reactions too (an initial sync, a gap read back): a label is recorded once.
            if event.sender != self.user_id:
                reaction = IncomingReaction(ref, reacted[0], event.sender, reacted[1], reaction_id=event_id)
                await self.service.ops.record_feedback(reaction)
            return
        if not isinstance(event, _MESSAGES):
            log.debug("matrix: ignored %s event %s in %s", type(event).__name__, event_id, room.room_id)
            return
        if event.sender == self.user_id:
            return
        source = event.source
        rel = relation(source.get("content", {}))
        if rel.replaces:
            await self._on_edit(ref, event, rel.replaces)
            return
        msg, rel = to_incoming(
            room,
            source,
            bot_user_id=self.user_id,
            reserved=(self.service.assistant_name, room.user_name(self.user_id) or ""),
            max_name_chars=self.service.config.conversation.max_name_chars,
        )
        if rel.thread_root:
            self.threads.add(event_id, rel.thread_root)
        if self._is_command(msg.text):
            if live:
                await self._on_command(room, msg)
            return
        if live:
            await self.service.handle_message(msg)
        else:
            await self.service.store_history(msg)

    async def _on_edit(self, ref: ChannelRef, event: Any, original_id: str) -> None:
        new = event.source.get("content", {}).get("m.new_content")
        if not isinstance(new, dict):
            log.debug("matrix: edit %s without m.new_content ignored", event.event_id)
            return
        original = await self.service.ops.stored_message(PLATFORM, original_id)
        if original is None or original.author_id != event.sender:
            # Only the author may edit a message (the spec says to ignore anyone else's edit).
            log.debug("matrix: edit %s of an unknown or someone else's message ignored", event.event_id)
            return
        text = message_text(new, relation({}))
        await self.service.handle_edit(ref, original_id, text, timestamp(event.source))

    # --- commands ---------------------------------------------------------------

    def _is_command(self, text: str) -> bool:
        prefix = self.cfg.command_prefix
        stripped = text.strip()
        return stripped == prefix or stripped.startswith(prefix + " ")

    async def _on_command(self, room: MatrixRoom, msg: IncomingMessage) -> None:
        # Commands are not stored as messages; a mark in the store keeps a batch that is
        # replayed after a crash from running one (say, forget) a second time.
        mark = f"command:{msg.message_id}"
        if await self.service.ops.get_state(PLATFORM, mark) is not None:
            log.debug("matrix: command %s already run", msg.message_id)
            return
        await self.service.ops.set_state(PLATFORM, mark, "run")
        level = room.power_levels.get_user_level(msg.author_id)
        is_admin = level >= self.cfg.admin_power_level or msg.author_id in await self._creators(room.room_id)
        line = msg.text.strip()[len(self.cfg.command_prefix) :]
        # "learn" as a reply to a file or a message: that is the document (only fetched for an admin).
        given = None
        if is_admin and msg.reply_to and line.split()[:1] == ["learn"]:
            given = await self._learnable(room.room_id, msg.reply_to)
        ctx = CommandContext(
            msg.channel, author_id=msg.author_id, author_name=msg.display_name, is_admin=is_admin, attachment=given
        )
        answer = await self.service.run_command(ctx, line)
        # Sent beside the sync loop: a rate-limited answer must not hold up every room.
        task = asyncio.create_task(self.send_notice(room, answer, msg), name=f"notice:{msg.message_id}")
        self.notices.add(task)
        task.add_done_callback(self._notice_done)

    async def _learnable(self, room_id: str, event_id: str) -> Attachment | None:
        """The text of the message or the file (unencrypted) that ``event_id`` is; None for anything else."""
        resp = await self.client.room_get_event(room_id, event_id)
        if isinstance(resp, RoomGetEventError):
            log.warning("matrix: the event %s to learn cannot be read: %s", event_id, resp)
            return None
        # A person's message (text or file): their forget-me or a redaction takes the document with it.
        event, source = resp.event, message_source("matrix", event_id)
        if isinstance(event, RoomMessageText):
            return Attachment(f"message {event_id}.txt", event.body.encode("utf-8"), source)
        if isinstance(event, RoomMessageFile):
            got = await self.client.download(mxc=event.url)
            if isinstance(got, DownloadError):
                log.warning("matrix: the file %s to learn cannot be downloaded: %s", event.url, got)
                return None
            return Attachment(event.body, got.body, source)
        return None

    def _notice_done(self, task: asyncio.Task[None]) -> None:
        self.notices.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("matrix: answering a command failed: %r", task.exception())

    async def _creators(self, room_id: str) -> frozenset[str]:
        """The room's privileged creators (room version 12 on), who outrank every power level."""
        if room_id not in self._creators_cache:
            resp = await self.client.room_get_state(room_id)
            if isinstance(resp, RoomGetStateError):
                log.warning("matrix: cannot read the state of %s (%s); creators unknown", room_id, resp)
                return frozenset()
            self._creators_cache[room_id] = _privileged_creators(resp.events)
        return self._creators_cache[room_id]


def _privileged_creators(state: list[dict[str, Any]]) -> frozenset[str]:
    """From v12, a room's creators (create event sender and additional_creators) have unlimited power."""
    create = next((e for e in state if isinstance(e, dict) and e.get("type") == "m.room.create"), None)
    if create is None:
        return frozenset()
    content = create.get("content") if isinstance(create.get("content"), dict) else {}
    if str(content.get("room_version", "1")) in _UNPRIVILEGED_CREATOR_VERSIONS:
        # Older rooms list their creator in m.room.power_levels like everyone else.
        return frozenset()
    extra = content.get("additional_creators")
    extra = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
    return frozenset([str(create.get("sender", "")), *extra])
