"""Where a passage comes from, said the way each platform links to a message."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote


def message_link(platform: str, channel_id: str, message_id: str, guild_id: str | None = None) -> str | None:
    """A link that opens the message on its platform; None where there is none (the console)."""
    if platform == "matrix":
        return f"https://matrix.to/#/{quote(channel_id, safe='!:@')}/{quote(message_id, safe='$:')}"
    if platform == "discord":
        return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"
    return None


def short_date(when: datetime) -> str:
    """A date as people write it in chat: "12 Nov" (UTC)."""
    return f"{when.day} {when.strftime('%b')}"


def cite(author: str, when: datetime | None, link: str | None, document: str | None = None) -> str:
    """How a reply names its source: the link, else the document's name, else author and time."""
    if link:
        return f"[{link}]"
    if document:
        return f"[{document}]"
    stamp = f", {when.strftime('%d %b %H:%M')} UTC" if when is not None else ""
    return f"[{author}{stamp}]"
