"""Pure conversions from Matrix events to what the core needs: text, relations, mentions, names."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

from nio import MatrixRoom

from bot.domain import ChannelRef, IncomingMessage

PLATFORM = "matrix"
_MXID_RE = re.compile(r"@[^\s:]+:[^\s]+")
# The quoted message a reply carries for old clients: what it mentions is not mentioned again.
_MX_REPLY_RE = re.compile(r"<mx-reply>.*?</mx-reply>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Relation:
    """What an event's ``m.relates_to`` says: a reply target, a thread root, an edit target."""

    reply_to: str | None = None
    thread_root: str | None = None
    replaces: str | None = None


def relation(content: dict[str, Any]) -> Relation:
    """Read ``m.relates_to`` defensively; malformed relations count as none."""
    rel = content.get("m.relates_to")
    if not isinstance(rel, dict):
        return Relation()
    rel_type = rel.get("rel_type")
    target = rel.get("event_id") if isinstance(rel.get("event_id"), str) else None
    in_reply = rel.get("m.in_reply_to")
    reply_to = in_reply.get("event_id") if isinstance(in_reply, dict) else None
    reply_to = reply_to if isinstance(reply_to, str) else None
    if rel_type == "m.replace":
        return Relation(replaces=target)
    if rel_type == "m.thread":
        # In a thread, a "falling back" reply only points at the latest event for old clients.
        return Relation(reply_to=None if rel.get("is_falling_back") else reply_to, thread_root=target)
    return Relation(reply_to=reply_to)


def annotation(source: dict[str, Any]) -> tuple[str, str] | None:
    """(event reacted to, key) of an ``m.reaction`` event's ``m.annotation``; None for anything else or malformed."""
    if source.get("type") != "m.reaction":
        return None
    content = source.get("content")
    rel = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(rel, dict) or rel.get("rel_type") != "m.annotation":
        return None
    target, key = rel.get("event_id"), rel.get("key")
    if not isinstance(target, str) or not isinstance(key, str):
        return None
    return target, key


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment, dropping tags, scripts and reply fallbacks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("mx-reply", "script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("mx-reply", "script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of a formatted body (used only when the plain body is missing)."""
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted ``> <@user> ...`` lines that older clients put in front of a reply."""
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i and i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:]) if i else body


_MEDIA_KINDS = {"m.image": "image", "m.file": "file", "m.video": "video", "m.audio": "audio"}


def media_placeholder(content: dict[str, Any], event_type: str) -> str | None:
    """A stand-in for an image, file, video, audio or sticker (the model cannot see them); None for text."""
    kind = "sticker" if event_type == "m.sticker" else _MEDIA_KINDS.get(str(content.get("msgtype")))
    if kind is None:
        return None
    body = content.get("body") if isinstance(content.get("body"), str) else ""
    filename = content.get("filename") if isinstance(content.get("filename"), str) else ""
    if filename and body.strip() and body != filename:
        # Since Matrix 1.10 a media event with a filename uses its body as a caption.
        return f"{body}\n[{kind}: {filename}]"
    return f"[{kind}: {(filename or body).strip() or 'no name'}]"


def message_text(content: dict[str, Any], rel: Relation, event_type: str = "m.room.message") -> str:
    """The message's plain text: ``body``, without a reply fallback; the HTML's text if body is empty."""
    media = media_placeholder(content, event_type)
    if media is not None:
        return media
    body = content.get("body")
    body = body if isinstance(body, str) else ""
    if rel.reply_to or rel.thread_root:
        body = strip_reply_fallback(body)
    if not body.strip() and isinstance(content.get("formatted_body"), str):
        body = html_to_text(content["formatted_body"])
    return body


def mentioned_users(content: dict[str, Any]) -> tuple[str, ...]:
    """User ids listed in ``m.mentions`` (intentional mentions)."""
    mentions = content.get("m.mentions")
    ids = mentions.get("user_ids") if isinstance(mentions, dict) else None
    if not isinstance(ids, list):
        return ()
    return tuple(u for u in ids if isinstance(u, str))[:100]


def links_to(content: dict[str, Any], user_id: str) -> bool:
    """Whether the formatted body holds a pill or link to ``user_id`` (matrix.to or matrix: URI).

    The quoted ``<mx-reply>`` fallback does not count: replying to a message that
    mentioned the bot does not address the bot.
    """
    html = content.get("formatted_body")
    if not isinstance(html, str) or not user_id:
        return False
    text = unquote(_MX_REPLY_RE.sub(" ", html))
    localpart, _, server = user_id[1:].partition(":")
    return f"matrix.to/#/{user_id}" in text or f"matrix:u/{localpart}:{server}" in text


def _name_key(name: str) -> str:
    """Names that look the same to a reader map to the same key."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[^\w]", "", folded).replace("_", "")


def display_name(room: MatrixRoom, user_id: str, *, reserved: tuple[str, ...] = (), max_chars: int = 32) -> str:
    """The sender's room display name, with their user id added when it could be mistaken for someone else.

    Ambiguous: another member's name looks the same, the name looks like the bot's or the
    assistant's (``reserved``), or it contains a user id that is not the sender's own.
    """
    user = room.users.get(user_id)
    name = (user.display_name if user is not None else None) or ""
    name = " ".join(name.split())
    if not name:
        return user_id[:max_chars]
    key = _name_key(name)
    clash = any(
        other_id != user_id and other.display_name and _name_key(other.display_name) == key
        for other_id, other in room.users.items()
    )
    clash = clash or any(key == _name_key(r) for r in reserved if r)
    clash = clash or any(m != user_id for m in _MXID_RE.findall(name))
    if not clash:
        return name[:max_chars]
    # Shorten the name, not the id: the core cuts names at max_chars, and the id must survive.
    suffix = f" [{user_id}]"
    return name[: max(4, max_chars - len(suffix))] + suffix


def inviter_allowed(user_id: str, allowed: list[str]) -> bool:
    """Invites are accepted from listed user ids or from anyone on a listed server."""
    server = user_id.partition(":")[2]
    return any(a == user_id or (not a.startswith("@") and a == server) for a in allowed)


def timestamp(event_source: dict[str, Any]) -> datetime:
    """The event's origin_server_ts as aware UTC (now when it is missing or absurd)."""
    ts = event_source.get("origin_server_ts")
    try:
        return datetime.fromtimestamp(int(ts) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def to_incoming(
    room: MatrixRoom, source: dict[str, Any], *, bot_user_id: str, reserved: tuple[str, ...], max_name_chars: int
) -> tuple[IncomingMessage, Relation]:
    """Convert a room message event's source into the core's IncomingMessage."""
    content = source.get("content") if isinstance(source.get("content"), dict) else {}
    rel = relation(content)
    mentions = mentioned_users(content)
    sender = source["sender"]
    msg = IncomingMessage(
        channel=ChannelRef(PLATFORM, room.room_id, room.display_name),
        message_id=source["event_id"],
        author_id=sender,
        display_name=display_name(room, sender, reserved=reserved, max_chars=max_name_chars),
        text=message_text(content, rel, str(source.get("type", "m.room.message"))),
        created_at=timestamp(source),
        reply_to=rel.reply_to,
        mentions=mentions,
        # m.notice is what bots send by convention.
        is_bot=content.get("msgtype") == "m.notice",
        addressed=bot_user_id in mentions or links_to(content, bot_user_id),
    )
    return msg, rel
