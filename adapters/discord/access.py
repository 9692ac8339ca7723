"""Who and where the bot listens on Discord: the config's allow and deny lists, and admin status."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import discord

from bot.config import DiscordConfig


def _passes(value: int, allowed: Collection[int], denied: Collection[int]) -> bool:
    # An empty allow list allows everything; a deny list always wins.
    return value not in denied and (not allowed or value in allowed)


@dataclass(frozen=True)
class Access:
    """The allow and deny lists of one DiscordConfig."""

    cfg: DiscordConfig

    def place_allowed(self, guild_id: int | None, channel_id: int, parent_id: int | None = None) -> bool:
        """True when the bot listens in this channel (a thread also matches by its parent channel)."""
        if guild_id is None:
            return self.cfg.respond_to_dms
        if not _passes(guild_id, self.cfg.allowed_guilds, self.cfg.denied_guilds):
            return False
        ids = {channel_id} if parent_id is None else {channel_id, parent_id}
        if ids & set(self.cfg.denied_channels):
            return False
        return not self.cfg.allowed_channels or bool(ids & set(self.cfg.allowed_channels))

    def author_allowed(self, user_id: int, role_ids: Collection[int] | None) -> bool:
        """True when the bot listens to this user; ``role_ids`` is None outside a guild (DMs have no roles)."""
        if not _passes(user_id, self.cfg.allowed_users, self.cfg.denied_users):
            return False
        if role_ids is None:
            return True
        if set(role_ids) & set(self.cfg.denied_roles):
            return False
        return not self.cfg.allowed_roles or bool(set(role_ids) & set(self.cfg.allowed_roles))

    def message_allowed(self, message: discord.Message) -> bool:
        """The place and author checks for one message."""
        channel = message.channel
        parent_id = getattr(channel, "parent_id", None)
        if not self.place_allowed(message.guild.id if message.guild else None, channel.id, parent_id):
            return False
        return self.author_allowed(message.author.id, role_ids(message.author))

    def is_admin(self, interaction: discord.Interaction) -> bool:
        """Manage Server (or Administrator), or the configured admin role; in a DM its one person."""
        if interaction.guild_id is None:
            return True
        perms = interaction.permissions
        if perms.administrator or perms.manage_guild:
            return True
        roles = role_ids(interaction.user)
        return self.cfg.admin_role is not None and roles is not None and self.cfg.admin_role in roles


def role_ids(user: discord.abc.User) -> list[int] | None:
    """The member's role ids; None for a user outside a guild."""
    if isinstance(user, discord.Member):
        return [r.id for r in user.roles]
    return None
