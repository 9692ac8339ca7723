"""Seed-format files -> protocol messages -> tokenised, labelled sequences that fit max_length."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_runtime.protocol import Turn, cap_text, sanitize_name, to_chat_messages
from model_runtime.seed_format import Conversation, SeedFormatError, read_seed_file
from training.fit.labels import Encoded, encode_conversation

Messages = list[dict[str, str]]


@dataclass
class DataStats:
    """What happened to a file on its way to training sequences."""

    path: str
    conversations: int = 0
    skipped_lines: list[str] = field(default_factory=list)
    sequences: int = 0
    split_conversations: int = 0
    # Exchanges (a human turn and its answer) longer than max_length on their own: dropped.
    dropped_exchanges: int = 0
    tokens: int = 0
    labelled_tokens: int = 0
    assistant_turns: int = 0
    merged_boundaries: int = 0

    def summary(self) -> str:
        """One line for the log."""
        s = (
            f"{self.path}: {self.conversations} conversations -> {self.sequences} sequences, "
            f"{self.tokens} tokens ({self.labelled_tokens} labelled, {self.assistant_turns} assistant turns)"
        )
        if self.split_conversations:
            s += f", {self.split_conversations} split at turn boundaries"
        if self.dropped_exchanges:
            s += f", {self.dropped_exchanges} over-long exchanges dropped"
        if self.skipped_lines:
            s += f", {len(self.skipped_lines)} bad lines skipped"
        if self.merged_boundaries:
            s += f", {self.merged_boundaries} turn starts inside a template token"
        return s


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def conversation_messages(
    conversation: Conversation, assistant_name: str = "assistant", max_chars: int = 2000, max_name_chars: int = 32
) -> Messages:
    """A seed conversation as the chat messages the runtime would render (names sanitised, text capped)."""
    turns = []
    for m in conversation:
        text = cap_text(m["content"].strip(), max_chars)
        if m["role"] == "user":
            turns.append(Turn("user", text, sanitize_name(m["name"], assistant_name, max_name_chars)))
        else:
            turns.append(Turn("assistant", text))
    return to_chat_messages(turns, for_decision=False)


def exchanges(messages: Messages) -> list[Messages]:
    """Group alternating messages into [human turn, assistant turn] pairs."""
    if len(messages) % 2 or any(m["role"] != ("user", "assistant")[i % 2] for i, m in enumerate(messages)):
        raise ValueError("expected alternating user/assistant messages starting with a user")
    return [messages[i : i + 2] for i in range(0, len(messages), 2)]


def split_to_fit(
    messages: Messages, encode: Callable[[Messages], Encoded], max_length: int
) -> tuple[list[Encoded], int]:
    """Encode a conversation, splitting it at exchange boundaries into pieces of at most max_length tokens.

    An assistant turn is never cut; an exchange that alone exceeds max_length is dropped
    (the count is returned).
    """
    whole = encode(messages)
    if len(whole.input_ids) <= max_length:
        return [whole], 0
    pieces: list[Encoded] = []
    current: Messages = []
    current_enc: Encoded | None = None
    dropped = 0
    for ex in exchanges(messages):
        trial = encode(current + ex)
        if len(trial.input_ids) <= max_length:
            current, current_enc = current + ex, trial
            continue
        if current_enc is not None:
            pieces.append(current_enc)
        alone = encode(ex)
        if len(alone.input_ids) <= max_length:
            current, current_enc = list(ex), alone
        else:
            current, current_enc = [], None
            dropped += 1
    if current_enc is not None:
        pieces.append(current_enc)
    return pieces, dropped


def load_sequences(
    path: str | Path,
    tokenizer: Any,
    *,
    max_length: int,
    completion_only: bool = True,
    skip_bad: bool = False,
    assistant_name: str = "assistant",
    max_message_chars: int = 2000,
    max_name_chars: int = 32,
) -> tuple[list[Encoded], DataStats]:
    """Read a seed-format file (file:line errors, or skip and count) and make training sequences."""
    read = read_seed_file(path, skip_bad=skip_bad)
    stats = DataStats(str(path), conversations=len(read.conversations))
    stats.skipped_lines = [str(e) for e in read.errors]

    def encode(msgs: Sequence[dict[str, str]]) -> Encoded:
        return encode_conversation(tokenizer, msgs, completion_only=completion_only)

    out: list[Encoded] = []
    for conv, line in zip(read.conversations, read.line_numbers, strict=True):
        msgs = conversation_messages(conv, assistant_name, max_message_chars, max_name_chars)
        try:
            pieces, dropped = split_to_fit(msgs, encode, max_length)
        except ValueError as e:
            raise SeedFormatError(path, line, str(e)) from e
        stats.split_conversations += len(pieces) > 1
        stats.dropped_exchanges += dropped
        for p in pieces:
            stats.tokens += len(p.input_ids)
            stats.labelled_tokens += p.labelled
            stats.assistant_turns += p.assistant_turns
            stats.merged_boundaries += p.merged_boundaries
        out.extend(pieces)
    stats.sequences = len(out)
    return out, stats
