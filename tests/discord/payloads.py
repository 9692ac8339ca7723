"""Discord API objects (v10) as the fake Discord sends them: users, roles, channels, messages, guilds."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
ADMINISTRATOR, MANAGE_GUILD, SEND_MESSAGES = 1 << 3, 1 << 5, 1 << 11
_ids = itertools.count(1)

Json = dict[str, Any]


def snowflake() -> int:
    """A new Discord id (time-ordered like real snowflakes)."""
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_ids) % 4096)


def snowflake_on_shard(shard_id: int, shard_count: int) -> int:
    """A new id that Discord routes to shard ``shard_id`` of ``shard_count``: ``(id >> 22) % shard_count``."""
    new = snowflake()
    ms = new >> 22
    return ((ms - ms % shard_count + shard_id) << 22) | (new & ((1 << 22) - 1))


def iso(ts: datetime | None = None) -> str:
    """Discord's ISO 8601 timestamps."""
    return (ts or datetime.now(UTC)).isoformat()


@dataclass
class Person:
    """A Discord user, and their membership of the test guild."""

    id: int
    username: str
    global_name: str | None = None
    nick: str | None = None
    roles: list[int] = field(default_factory=list)
    bot: bool = False

    def user(self) -> Json:
        """The user object."""
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
        }

    def member(self, with_user: bool = False) -> Json:
        """The guild member object (with the user inside only where Discord puts it there)."""
        m: Json = {
            "nick": self.nick,
            "roles": [str(r) for r in self.roles],
            "joined_at": iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "avatar": None,
        }
        if with_user:
            m["user"] = self.user()
        return m


def role(role_id: int, name: str, permissions: int, position: int, bot_id: int | None = None) -> Json:
    """A guild role; ``bot_id`` makes it that bot's managed role."""
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": bot_id is not None,
        "mentionable": True,
        "flags": 0,
        "tags": {"bot_id": str(bot_id)} if bot_id is not None else {},
    }


def guild_channel(
    channel_id: int, guild_id: int, name: str, position: int, owner_id: int, parent_id: int | None
) -> Json:
    """A guild text channel, or a public thread when ``parent_id`` is given."""
    ch: Json = {
        "id": str(channel_id),
        "name": name,
        "guild_id": str(guild_id),
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "type": 0,
    }
    if parent_id is not None:
        ch |= {
            "type": 11,
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": iso(),
                "locked": False,
            },
        }
    return ch


def message(channel_id: int, author: Person, content: str, mentions: tuple[Person, ...] = ()) -> Json:
    """A default message (without the gateway's guild_id and member)."""
    return {
        "id": str(snowflake()),
        "channel_id": str(channel_id),
        "author": author.user(),
        "content": content,
        "timestamp": iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [p.user() for p in mentions],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
    }


def reply_fields(target: Json | None, target_id: int, channel_id: int, guild_id: int | None) -> Json:
    """What makes a message a reply (type 19) to ``target``."""
    ref = {"type": 0, "message_id": str(target_id), "channel_id": str(channel_id)}
    if guild_id is not None:
        ref["guild_id"] = str(guild_id)
    return {"type": 19, "message_reference": ref, "referenced_message": target}


def guild(
    guild_id: int, roles: list[Json], channels: list[Json], bot: Person, member_count: int, name: str = "Test Guild"
) -> Json:
    """The GUILD_CREATE payload of an available guild."""
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "owner_id": str(snowflake()),
        "roles": roles,
        "emojis": [],
        "stickers": [],
        "features": [],
        "member_count": member_count,
        "members": [bot.member(with_user=True)],
        "channels": [c for c in channels if c.get("type") == 0],
        "threads": [c for c in channels if c.get("type") == 11],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "unavailable": False,
        "large": False,
        "joined_at": iso(),
        "premium_tier": 0,
        "system_channel_flags": 0,
        "verification_level": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "default_message_notifications": 0,
        "nsfw_level": 0,
        "preferred_locale": "en-US",
        "afk_timeout": 300,
        "nsfw": False,
        "premium_progress_bar_enabled": False,
    }


def slash_command(
    app_id: int,
    command_id: str,
    channel: Json,
    subcommand: str,
    options: dict[str, int | str],
    files: dict | None = None,
) -> Json:
    """An INTERACTION_CREATE for ``/assistant subcommand`` (the caller adds member or user).

    ``files``: option name -> attachment object (``resolved`` carries it, the option its id).
    """
    opts = [{"name": k, "type": 4 if isinstance(v, int) else 3, "value": v} for k, v in options.items()]
    opts += [{"name": k, "type": 11, "value": a["id"]} for k, a in (files or {}).items()]
    data = {
        "id": str(snowflake()),
        "application_id": str(app_id),
        "type": 2,
        "token": f"itoken-{snowflake()}",
        "version": 1,
        "channel_id": channel["id"],
        "channel": channel,
        "locale": "en-US",
        "app_permissions": str(SEND_MESSAGES),
        "entitlements": [],
        "attachment_size_limit": 10485760,
        "authorizing_integration_owners": {},
        "data": {
            "id": command_id,
            "name": "assistant",
            "type": 1,
            "options": [{"name": subcommand, "type": 1, "options": opts}],
        },
    }
    if files:
        data["data"]["resolved"] = {"attachments": {a["id"]: a for a in files.values()}}
    return data


def rate_limited(retry_after: float) -> tuple[Json, dict[str, str]]:
    """A 429's body and headers; discord.py treats a 429 without Via as a Cloudflare ban."""
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False, "code": 0}
    return body, {"Via": "1.1 google", "Retry-After": str(retry_after), "X-RateLimit-Scope": "user"}
