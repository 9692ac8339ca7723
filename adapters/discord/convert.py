"""Discord message -> chime text: mentions rendered as names, placeholders, reply splitting."""

from __future__ import annotations

import re

import discord

from adapters.discord.names import name_key

# Discord refuses message content longer than this.
MAX_MESSAGE_CHARS = 2000
# A Discord message is at most 4000 characters; anything longer came from elsewhere
# (embeds, a misbehaving client) and is cut so that one message cannot flood the store.
MAX_INCOMING_CHARS = 8000

_CODE_RE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION_RE = re.compile(r"<#(\d+)>")
_EMOJI_RE = re.compile(r"<a?:(\w+):\d+>")
_SENTENCE_END_RE = re.compile(r"[.!?…](?=\s)")


def outside_code(text: str) -> str:
    """``text`` with code blocks and inline code blanked out (a mention written as code addresses nobody)."""
    return _CODE_RE.sub(" ", text)


def mentions_outside_code(text: str, user_id: int, role_id: int | None) -> bool:
    """True when ``text`` mentions the user (or their managed role) outside code."""
    prose = outside_code(text)
    if any(int(m) == user_id for m in _USER_MENTION_RE.findall(prose)):
        return True
    return role_id is not None and any(int(m) == role_id for m in _ROLE_MENTION_RE.findall(prose))


def render_text(message: discord.Message, bot_user_id: int, assistant_name: str) -> str:
    """The text the model reads: mentions as ``@name``, attachments and stickers as placeholders."""
    users = {u.id: u.display_name for u in message.mentions}
    roles = {r.id: r.name for r in message.role_mentions}
    guild = message.guild

    def user(m: re.Match[str]) -> str:
        uid = int(m.group(1))
        if uid == bot_user_id:
            return f"@{assistant_name}"
        name = users.get(uid, "someone")
        if name_key(name.lstrip("@")) == name_key(assistant_name):
            # A member nicknamed like the bot: "@Assistant" would address the bot. The "_"
            # keeps the tag inside the word, so the core's "@name" check does not match it.
            return f"@{name.lstrip('@')}_{str(uid)[-4:]}"
        return f"@{name}"

    def role(m: re.Match[str]) -> str:
        rid = int(m.group(1))
        if rid not in roles and guild is not None and (r := guild.get_role(rid)) is not None:
            return f"@{r.name}"
        return f"@{roles.get(rid, 'role')}"

    def channel(m: re.Match[str]) -> str:
        ch = guild.get_channel_or_thread(int(m.group(1))) if guild is not None else None
        return f"#{ch.name}" if ch is not None else "#channel"

    text = _USER_MENTION_RE.sub(user, message.content or "")
    text = _ROLE_MENTION_RE.sub(role, text)
    text = _CHANNEL_MENTION_RE.sub(channel, text)
    text = _EMOJI_RE.sub(r":\1:", text)
    extras = _placeholders(message, has_text=bool(text.strip()))
    text = "\n".join([text, *extras]) if text.strip() else "\n".join(extras)
    return text[:MAX_INCOMING_CHARS]


def _placeholders(message: discord.Message, *, has_text: bool) -> list[str]:
    """Stand-ins for what the model cannot see, so that such a message is stored and readable."""
    out = [f"[{_kind(a)}: {a.filename}]" for a in message.attachments]
    out += [f"[sticker: {s.name}]" for s in message.stickers]
    if message.poll is not None:
        out.append(f"[poll: {message.poll.question}]")
    if not has_text:
        # Link previews repeat the text; only a message made of embeds alone needs them.
        for e in message.embeds:
            out.append(f"[embed: {e.title or e.description or e.url or 'no title'}]"[:300])
    return out


def _kind(attachment: discord.Attachment) -> str:
    ctype = (attachment.content_type or "").split("/")[0]
    return ctype if ctype in ("image", "video", "audio") else "file"


def split_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters at line, sentence or word boundaries.

    A chunk that ends inside a ``` code block closes it, and the next one reopens it.
    """
    chunks: list[str] = []
    rest = text.strip()
    fence = ""
    while rest:
        if fence:
            rest = f"{fence}\n{rest}"
        budget = limit - 4  # room to close a code block left open
        if len(rest) <= limit:
            chunks.append(rest)
            break
        cut = _cut_point(rest, budget)
        chunk, rest = rest[:cut].rstrip(), rest[cut:].strip()
        fence = _open_fence(chunk)
        if fence:
            chunk += "\n```"
        chunks.append(chunk)
    return [c for c in chunks if c.strip()]


def _cut_point(text: str, budget: int) -> int:
    """Where to cut ``text`` so that the first part fits in ``budget``: the latest good boundary."""
    window = text[:budget]
    floor = budget // 3  # never cut so early that chunks become tiny
    for boundary in ("\n\n", "\n"):
        i = window.rfind(boundary)
        if i > floor:
            return i + len(boundary)
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(window)]
    if ends and ends[-1] > floor:
        return ends[-1]
    i = window.rfind(" ")
    return i + 1 if i > floor else budget


def _open_fence(chunk: str) -> str:
    """The opening fence (with its language) if ``chunk`` ends inside a ``` block, else ""."""
    fences = re.findall(r"```(\w*)", chunk)
    return f"```{fences[-1]}" if len(fences) % 2 == 1 else ""
