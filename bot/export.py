"""Exporting a channel's stored history in the seed format, for training and evaluation."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from pathlib import Path

from bot.store import StoredMessage
from model_runtime.seed_format import Conversation, dumps_conversation

# A pause this long starts a new conversation.
DEFAULT_GAP = timedelta(hours=6)


def to_conversations(messages: list[StoredMessage], gap: timedelta = DEFAULT_GAP) -> list[Conversation]:
    """Split a channel's messages (oldest first) into seed-format conversations at long pauses.

    The assistant's replies become assistant messages right after the human message they
    follow; a reply with no human message before it in its conversation is left out, and
    so is a reply to a message that was deleted or forgotten (nothing deleted comes back).
    """
    return [conv for part in _split(_without_orphans(messages), gap) if (conv := _to_seed(part))]


def labelled_conversations(
    messages: list[StoredMessage], false_interruptions: Collection[int], gap: timedelta = DEFAULT_GAP
) -> list[Conversation]:
    """The conversations holding a labelled decision, with each falsely interrupting reply removed.

    ``false_interruptions`` are the keys of the messages whose unasked reply someone marked
    as a false interruption: the reply is dropped, so that message becomes a silent turn
    (gold silence). Conversations without a label are left out.
    """
    labelled = set(false_interruptions)
    triggers = {m.platform_message_id: m.pk for m in messages if not m.from_assistant}
    kept = [
        m
        for m in _without_orphans(messages)
        if not (m.from_assistant and m.reply_to is not None and triggers.get(m.reply_to) in labelled)
    ]
    return [
        _to_seed(part) for part in _split(kept, gap) if any(m.pk in labelled and not m.from_assistant for m in part)
    ]


def _without_orphans(messages: list[StoredMessage]) -> list[StoredMessage]:
    """Drop the bot's replies to messages no longer stored: their question was deleted or forgotten."""
    stored = {m.platform_message_id for m in messages if not m.from_assistant}
    return [m for m in messages if not (m.from_assistant and m.reply_to is not None and m.reply_to not in stored)]


def _split(messages: list[StoredMessage], gap: timedelta) -> list[list[StoredMessage]]:
    """Group messages (oldest first, blank ones dropped) into conversations at pauses longer than ``gap``."""
    parts: list[list[StoredMessage]] = []
    current: list[StoredMessage] = []
    for m in messages:
        if not m.text.strip():
            continue
        if current and m.created_at - current[-1].created_at > gap:
            parts.append(current)
            current = []
        current.append(m)
    if current:
        parts.append(current)
    return parts


def _to_seed(messages: list[StoredMessage]) -> Conversation:
    """One conversation in the seed format; a reply before any human message is left out."""
    conv: Conversation = []
    for m in messages:
        if m.from_assistant:
            if conv and conv[-1]["role"] == "user":
                conv.append({"role": "assistant", "content": m.text})
            elif conv and conv[-1]["role"] == "assistant":
                conv[-1]["content"] += "\n" + m.text
            continue
        conv.append({"role": "user", "name": m.display_name or m.author_id, "content": m.text})
    return conv


def write_jsonl(conversations: list[Conversation], out: Path) -> None:
    """Write conversations one per line."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for conv in conversations:
            f.write(dumps_conversation(conv) + "\n")
