"""Exporting a channel's stored history in the seed format, for training and evaluation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.store import StoredMessage
from model_runtime.seed_format import Conversation, dumps_conversation


def to_conversations(messages: list[StoredMessage], gap: timedelta = timedelta(hours=6)) -> list[Conversation]:
    """Split a channel's messages (oldest first) into seed-format conversations at long pauses.

    The assistant's replies become assistant messages right after the human message they
    follow; a reply with no human message before it in its conversation is left out.
    """
    conversations: list[Conversation] = []
    current: Conversation = []
    last_time = None
    for m in messages:
        if not m.text.strip():
            continue
        if last_time is not None and m.created_at - last_time > gap and current:
            conversations.append(current)
            current = []
        last_time = m.created_at
        if m.from_assistant:
            if current and current[-1]["role"] == "user":
                current.append({"role": "assistant", "content": m.text})
            elif current and current[-1]["role"] == "assistant":
                current[-1]["content"] += "\n" + m.text
            continue
        current.append({"role": "user", "name": m.display_name or m.author_id, "content": m.text})
    if current:
        conversations.append(current)
    return conversations


def write_jsonl(conversations: list[Conversation], out: Path) -> None:
    """Write conversations one per line."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for conv in conversations:
            f.write(dumps_conversation(conv) + "\n")
