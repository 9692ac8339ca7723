"""The Discord adapter: discord.py events in, replies and slash-command answers out.

Handlers stay thin (guard clauses, convert the discord.py object, call one core
function); the conversation logic lives in ``bot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.access import Access, role_ids
from adapters.discord.commands import GROUP_NAME, build_group
from adapters.discord.convert import mentions_outside_code, render_text
from adapters.discord.names import NameRegistry
from adapters.discord.sender import DiscordSender, messages_after
from bot.config import DiscordConfig, secret_from_env
from bot.domain import Attachment, ChannelRef, CommandContext, IncomingMessage, IncomingReaction, ServerFilter
from bot.memory.documents import MAX_BYTES as MAX_DOCUMENT_BYTES
from bot.service import ConversationService

log = logging.getLogger(__name__)

PLATFORM = "discord"
# What the bot writes never pings anyone: not @everyone, not roles, not users named in the text.
NO_PINGS = discord.AllowedMentions.none()
# How long to wait before connecting again after the client stopped (doubles up to the cap).
RETRY_FIRST_S, RETRY_MAX_S = 5.0, 300.0
_READABLE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
# At most this many of a channel's newest messages are read back after a start or an
# unresumable session (pages of 100); an older part of a longer gap is not seen.
READBACK_LIMIT = 500


def check_config(cfg: DiscordConfig) -> str:
    """The bot token from the environment; a ConfigError naming the key when it is missing (``config check`` too)."""
    return secret_from_env(cfg.token_env, "adapters.discord.token_env")


def create_adapter(service: ConversationService, cfg: DiscordConfig) -> DiscordAdapter:
    """The adapter ``chime run`` starts; the token is read from the environment here so a missing one fails early."""
    return DiscordAdapter(service, cfg, check_config(cfg))


def intents() -> discord.Intents:
    """Guilds, guild and DM messages and reactions, and message content (a privileged intent to enable in the portal)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    # A 👎 on an unasked reply tells the bot it spoke out of turn (bot/feedback.py).
    wanted.guild_reactions = True
    wanted.dm_reactions = True
    return wanted


def channel_ref(channel: discord.abc.Messageable | discord.abc.GuildChannel) -> ChannelRef:
    """The core's reference to a text channel, thread or DM."""
    guild = getattr(channel, "guild", None)
    if isinstance(channel, discord.DMChannel):
        name = f"DM {channel.recipient.name}" if channel.recipient else "DM"
    elif isinstance(channel, discord.Thread) and channel.parent is not None:
        name = f"{guild.name} #{channel.parent.name} > {channel.name}"
    else:
        name = f"{guild.name} #{getattr(channel, 'name', None) or channel.id}" if guild else str(channel.id)
    return ChannelRef(PLATFORM, str(channel.id), name[:200], str(guild.id) if guild else None)


class _Events:
    """The events chime handles, shared by the plain and the sharded client."""

    adapter: DiscordAdapter
    tree: app_commands.CommandTree

    def _set_up(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)  # type: ignore[arg-type]
        self.tree.add_command(build_group(adapter.run_command))

    async def setup_hook(self) -> None:
        await self.adapter.sync_commands(self.tree)

    async def on_ready(self) -> None:
        client = self.adapter.client
        assert client is not None and client.user is not None
        log.info("discord: connected as %s (%s) in %d guilds", client.user, client.user.id, len(client.guilds))
        if not isinstance(client, discord.AutoShardedClient):
            await self.adapter.catch_up()

    async def on_resumed(self) -> None:
        log.info("discord: gateway session resumed")

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_edit(payload.message)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.adapter.on_delete(payload.channel_id, [payload.message_id])

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.adapter.on_delete(payload.channel_id, sorted(payload.message_ids))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self.adapter.on_reaction(payload, removed=False)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self.adapter.on_reaction(payload, removed=True)


class _Client(_Events, discord.Client):
    """discord.py's client (one connection) whose events go to the adapter."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        # chime never joins voice: skip discord.py's warnings about missing voice libraries.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(intents=intents(), allowed_mentions=NO_PINGS)
        self._set_up(adapter)


class _ShardedClient(_Events, discord.AutoShardedClient):
    """discord.py's sharded client: the shards in ``shard_ids`` of ``shard_count``, over one connection each."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        cfg = adapter.cfg
        super().__init__(
            intents=intents(), allowed_mentions=NO_PINGS, shard_count=cfg.shard_count, shard_ids=cfg.shard_ids
        )
        self._set_up(adapter)

    async def on_shard_ready(self, shard_id: int) -> None:
        # Each shard with a new session (at the start, or after one that could not be
        # resumed) reads back its own guilds; on_ready comes only once all shards are ready.
        log.info("discord: shard %d of %d ready", shard_id, self.shard_count)
        await self.adapter.catch_up(shard_id)


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events to; direct messages arrive on shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


class DiscordAdapter:
    """Connects chime's core to Discord through discord.py."""

    def __init__(self, service: ConversationService, cfg: DiscordConfig, token: str) -> None:
        self.service = service
        self.cfg = cfg
        self.access = Access(cfg)
        self.names = NameRegistry(
            service.ops.get_state,
            service.ops.set_state,
            service.config.conversation.max_name_chars,
        )
        self.client: _Client | _ShardedClient | None = None
        self.sender = DiscordSender(lambda: self.client)
        self._token = token
        self._closing = asyncio.Event()
        # discord.py runs every event in a task of its own; this lock (FIFO, taken before any
        # await) hands them to the core in gateway order, so that a message whose author's
        # name needs a store lookup is not overtaken by the next one. Decisions run elsewhere.
        self._in_order = asyncio.Lock()
        self._original_endpoints = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        service.register(PLATFORM, self.sender)

    # --- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        """Connect and stay connected until ``close``; discord.py resumes dropped sessions itself."""
        delay = RETRY_FIRST_S
        while not self._closing.is_set():
            started = time.monotonic()
            if not await self._run_client():
                return
            if time.monotonic() - started > RETRY_MAX_S:
                delay = RETRY_FIRST_S  # it was up for a while: this is a new outage
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _run_client(self) -> bool:
        """One client from login to its end; False when connecting again cannot help."""
        self.client = client = _ShardedClient(self) if self.cfg.shard_count is not None else _Client(self)
        try:
            await self._connect(client)
        except (discord.LoginFailure, discord.PrivilegedIntentsRequired) as e:
            log.error("discord: cannot connect, fix the configuration and restart: %s", e)
            return False
        except (TimeoutError, OSError, discord.DiscordException) as e:
            if not self._closing.is_set():
                log.warning("discord: connection lost (%s: %s); connecting again soon", type(e).__name__, e)
        except Exception:
            # A bug, or an event discord.py could not parse: log it, back off, connect afresh.
            log.exception("discord: client stopped unexpectedly; connecting again soon")
        finally:
            await _close(client)
        return True

    async def _connect(self, client: discord.Client) -> None:
        if self.cfg.api_base_url:
            Route.BASE = self.cfg.api_base_url.rstrip("/")
        await client.login(self._token)
        if self.cfg.api_base_url:
            # A plain discord.Client dials Discord's well-known gateway; a loopback API
            # must also say where its gateway is, which GET /gateway/bot answers.
            _, url, _ = await client.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await client.connect(reconnect=True)

    async def close(self) -> None:
        """Disconnect from the gateway and stop ``run``."""
        self._closing.set()
        if self.client is not None:
            await _close(self.client)
        if self.cfg.api_base_url:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._original_endpoints

    async def sync_commands(self, tree: app_commands.CommandTree) -> None:
        """Register the slash commands with Discord (global commands, once per start; with shards, by shard 0's process)."""
        if self.cfg.shard_ids is not None and 0 not in self.cfg.shard_ids:
            return  # global commands: one process syncs them, the others would only repeat it
        try:
            synced = await tree.sync()
        except discord.HTTPException as e:
            log.warning("discord: slash commands not synced (%s); messages still work", e)
            return
        log.info("discord: synced slash commands: %s", ", ".join(c.name for c in synced))

    # --- reading back --------------------------------------------------------------

    def served(self, shard_id: int | None = None) -> ServerFilter | None:
        """The guilds of ``shard_id`` (default: of this process's shards; None: all guilds), DMs with shard 0."""
        count = self.cfg.shard_count
        if count is None or (shard_id is None and self.cfg.shard_ids is None):
            return None
        shards = {shard_id} if shard_id is not None else set(self.cfg.shard_ids or ())
        return lambda server: shard_of(int(server) if server is not None else None, count) in shards

    async def catch_up(self, shard_id: int | None = None) -> None:
        """After a new session (a start, or one that could not be resumed): read back, then decide what is owed.

        With shards, each reads back and resumes only the channels of its own guilds: other
        processes sharing the store serve the others.
        """
        servers = self.served(shard_id)
        last = await self.service.last_message_ids(PLATFORM, servers)
        for channel_id, last_id in last.items():
            if self._closing.is_set():
                return
            try:
                await self._read_back(int(channel_id), int(last_id))
            except (ValueError, discord.DiscordException, OSError) as e:
                log.warning("discord: channel %s not read back: %s: %s", channel_id, type(e).__name__, e)
        await self.service.resume_pending(PLATFORM, servers)

    async def _read_back(self, channel_id: int, after_id: int) -> None:
        """Hand the core a channel's messages newer than ``after_id``, oldest first (at most READBACK_LIMIT)."""
        client = self.client
        if client is None:
            return
        channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        # Held throughout, so that live messages are stored after the older ones read back.
        async with self._in_order:
            missed = await messages_after(channel, after_id, READBACK_LIMIT)
            for message in missed:
                if self._should_read(message):
                    await self.service.handle_message(await self._incoming(message))
        if missed:
            log.info("discord: read back %d messages in %s", len(missed), channel_id)

    # --- events ----------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """A new message: guard, convert, hand it to the core."""
        if not self._should_read(message):
            return
        async with self._in_order:
            await self.service.handle_message(await self._incoming(message))

    async def on_edit(self, message: discord.Message) -> None:
        """An edited message: the store keeps the new text (no new decision)."""
        if message.edited_at is None or not self._should_read(message):
            return  # link previews arriving also send MESSAGE_UPDATE, without an edit time
        text = render_text(message, self._me().id, self.service.assistant_name)
        async with self._in_order:
            await self.service.handle_edit(channel_ref(message.channel), str(message.id), text, message.edited_at)

    async def on_delete(self, channel_id: int, message_ids: list[int]) -> None:
        """Deleted messages are deleted from the store too."""
        ref = ChannelRef(PLATFORM, str(channel_id))
        async with self._in_order:
            for message_id in message_ids:
                await self.service.handle_delete(ref, str(message_id))

    async def on_reaction(self, payload: discord.RawReactionActionEvent, *, removed: bool) -> None:
        """A reaction put on or taken off a message: guard, convert, hand it to the core."""
        if payload.user_id == self._me().id or payload.emoji.id is not None:
            return  # its own reactions; custom emoji (a 👎 is a unicode emoji)
        channel = self.client.get_channel(payload.channel_id) if self.client is not None else None
        parent_id = getattr(channel, "parent_id", None)
        if not self.access.place_allowed(payload.guild_id, payload.channel_id, parent_id):
            return
        member = payload.member  # only on additions in a guild
        if not self.access.author_allowed(payload.user_id, role_ids(member) if member is not None else None):
            return
        reaction = IncomingReaction(
            channel=channel_ref(channel)
            if channel is not None
            else _uncached_ref(payload.channel_id, payload.guild_id),
            message_id=str(payload.message_id),
            author_id=str(payload.user_id),
            emoji=payload.emoji.name or "",
            is_bot=bool(member is not None and member.bot),
        )
        async with self._in_order:
            await self.service.ops.record_feedback(reaction, removed=removed)

    def _me(self) -> discord.ClientUser:
        assert self.client is not None and self.client.user is not None, "events arrive only once logged in"
        return self.client.user

    def _should_read(self, message: discord.Message) -> bool:
        if message.author.id == self._me().id:
            return False  # the core stores its own replies when it sends them
        if message.type not in _READABLE_TYPES:
            return False  # joins, pins, thread starters and other system messages
        if _is_bot(message) and not self.cfg.read_other_bots:
            return False
        return self.access.message_allowed(message)

    async def _incoming(self, message: discord.Message) -> IncomingMessage:
        me = self._me()
        ref = message.reference
        return IncomingMessage(
            channel=channel_ref(message.channel),
            message_id=str(message.id),
            author_id=str(message.author.id),
            display_name=await self._display_name(message),
            text=render_text(message, me.id, self.service.assistant_name),
            created_at=message.created_at,
            reply_to=str(ref.message_id) if message.type is discord.MessageType.reply and ref else None,
            mentions=tuple(str(uid) for uid in message.raw_mentions),
            is_bot=_is_bot(message),
            addressed=self._addressed(message),
        )

    def _addressed(self, message: discord.Message) -> bool:
        """A DM, a mention of the bot (or its role) outside code, or a reply to one of its messages."""
        if message.guild is None:
            return True
        me = self._me()
        own_role = message.guild.self_role
        if mentions_outside_code(message.content, me.id, own_role.id if own_role else None):
            return True
        resolved = message.reference.resolved if message.reference else None
        return isinstance(resolved, discord.Message) and resolved.author.id == me.id

    async def _display_name(self, message: discord.Message) -> str:
        me = self._me()
        scope = str(message.guild.id) if message.guild else f"dm{message.channel.id}"
        # The bot's own names belong to the bot: a member who takes one gets a tag.
        member = message.guild.me if message.guild is not None else None
        own_names = {me.name, me.display_name, self.service.assistant_name, member.display_name if member else ""}
        for own in own_names:
            self.names.reserve(scope, own, str(me.id))
        return await self.names.display_name(scope, str(message.author.id), message.author.display_name)

    # --- slash commands ------------------------------------------------------------

    async def run_command(
        self, interaction: discord.Interaction, line: str, file: discord.Attachment | None = None
    ) -> None:
        """Run a core command for a slash-command interaction (``file``: what ``learn`` was given); the answer is ephemeral."""
        channel = interaction.channel
        ref = channel_ref(channel) if channel is not None else ChannelRef(PLATFORM, str(interaction.channel_id))
        parent_id = getattr(channel, "parent_id", None)
        if line != "forget-me" and not self.access.place_allowed(interaction.guild_id, int(ref.channel_id), parent_id):
            await self._answer(interaction, "I'm not active in this channel.", followup=False)
            return
        ctx = CommandContext(
            channel=ref,
            author_id=str(interaction.user.id),
            author_name=interaction.user.display_name,
            is_admin=self.access.is_admin(interaction),
        )
        # Deferring first gives the command the 15 minutes of a followup instead of 3 seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        if file is not None and ctx.is_admin:  # only an admin's file is fetched
            if file.size > MAX_DOCUMENT_BYTES:
                text = f"{file.filename}: {file.size:,} bytes, more than the {MAX_DOCUMENT_BYTES:,} a document may have"
                await self._answer(interaction, text, followup=True)
                return
            data = await file.read()
            ctx = replace(ctx, attachment=Attachment(file.filename, data, f"discord attachment {file.id}"))
        await self._answer(interaction, await self.service.run_command(ctx, line), followup=True)

    @staticmethod
    async def _answer(interaction: discord.Interaction, text: str, *, followup: bool) -> None:
        text = text[:2000]
        try:
            if followup:
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
        except discord.HTTPException as e:
            log.warning("discord: answer to /%s in %s not sent: %s", GROUP_NAME, interaction.channel_id, e)


async def _close(client: discord.Client) -> None:
    # discord.py's READY timer (guild_ready_timeout) outlives close() and then fails on the
    # closed client; cancel it so that a shutdown right after connecting logs no spurious error.
    ready_timer = getattr(client._connection, "_ready_task", None)
    if ready_timer is not None:
        ready_timer.cancel()
    await client.close()


def _uncached_ref(channel_id: int, guild_id: int | None) -> ChannelRef:
    """The core's reference to a channel the client has not cached (its name unknown)."""
    return ChannelRef(PLATFORM, str(channel_id), server=str(guild_id) if guild_id else None)


def _is_bot(message: discord.Message) -> bool:
    return message.author.bot or message.webhook_id is not None
