"""Platform-neutral domain types that adapters produce and the core consumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from model_runtime.interface import Timings

# Whether this process serves a server (a Discord guild; None: channels without one, such as
# direct messages). Several processes sharing one store each serve their own servers.
ServerFilter = Callable[[str | None], bool]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ChannelRef:
    """A channel on a platform: a Discord channel or thread, a Matrix room, the console."""

    platform: str
    channel_id: str
    name: str = ""
    # The server (Discord guild) it belongs to; None for direct messages and platforms without servers.
    server: str | None = None

    @property
    def key(self) -> str:
        """``platform:channel_id``, the channel's key in logs, the runtime cache and the CLI."""
        return f"{self.platform}:{self.channel_id}"


@dataclass(frozen=True)
class IncomingMessage:
    """A message as an adapter hands it to the core; nothing platform-specific passes."""

    channel: ChannelRef
    message_id: str
    author_id: str
    display_name: str
    text: str
    created_at: datetime = field(default_factory=utcnow)
    reply_to: str | None = None
    # Platform user ids mentioned in the message.
    mentions: tuple[str, ...] = ()
    is_bot: bool = False
    # Set by the adapter when the platform itself says the bot is addressed (a
    # mention of the bot's user id, a reply to one of its messages, a DM).
    addressed: bool = False

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError(f"message {self.message_id}: created_at must be timezone-aware (UTC)")


@dataclass(frozen=True)
class IncomingReaction:
    """A reaction put on (or taken off) a message, as an adapter hands it to the core."""

    channel: ChannelRef
    # The message reacted to.
    message_id: str
    author_id: str
    # The emoji itself (Discord's emoji name, Matrix's annotation key); custom emoji by name.
    emoji: str
    # The platform's id of the reaction itself, where it has one (a Matrix m.reaction event).
    reaction_id: str | None = None
    is_bot: bool = False


@dataclass(frozen=True)
class SentMessage:
    """What an adapter reports after sending a reply."""

    message_id: str
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Decision:
    """What the service decided on one message: p_speak, whether to speak, and the reply text."""

    p_speak: float
    speak: bool
    text: str | None = None
    forced: bool = False
    threshold: float = 0.5
    timings: Timings = field(default_factory=Timings)
    # The reply already posted (streamed into the room while it was written), if it was;
    # ``send_failed``: posting its first words failed (it is not sent again).
    sent: SentMessage | None = None
    send_failed: bool = False
    # The stored messages the reply quotes or rests on (memory): deleting one deletes the reply.
    sources: tuple[int, ...] = ()


class ReplySender(Protocol):
    """What the core needs from an adapter to speak in a channel."""

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage | None:
        """Send ``text`` in ``channel`` as a reply to ``reply_to``; None if it could not be sent."""
        ...

    def typing(self, channel: ChannelRef) -> TypingContext:
        """An async context manager shown while the reply is generated."""
        ...


class TypingContext(Protocol):
    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: object) -> bool | None: ...


@dataclass(frozen=True)
class Attachment:
    """A file (or quoted text) given with a command: ``learn`` stores it as a document."""

    name: str
    data: bytes
    # Where it came from, kept with the document ("discord attachment 123", or
    # ``message_source(...)`` for a person's message, so that deleting it deletes the document).
    source: str


def message_source(platform: str, message_id: str) -> str:
    """The ``source`` of a document taught from a person's message: deleting the message deletes it too."""
    return f"{platform} message {message_id}"


@dataclass(frozen=True)
class CommandContext:
    """Who runs an admin command, where, and whether the adapter judged them an admin."""

    channel: ChannelRef
    author_id: str
    author_name: str
    is_admin: bool
    attachment: Attachment | None = None
    # Only the console may name files on the bot's own machine (``learn PATH``).
    local_files: bool = False
