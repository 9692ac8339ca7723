"""Building a channel's window: its recent messages as protocol turns, within a token budget.

The window's start only moves in big steps: when the window outgrows its message or
token limits, the oldest messages are dropped until it fits in ``trim_to`` of them.
Between two trims each window extends the previous one, which is what lets the
runtime reuse its cached state for the channel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from bot.store import StoredMessage
from model_runtime.protocol import Turn, cap_text, sanitize_name

# How many messages' token counts are remembered (a few busy channels' windows).
TOKEN_COUNTS_KEPT = 8192


class WindowPlanner:
    """Remembers where each channel's window starts and turns stored messages into turns."""

    def __init__(
        self,
        *,
        assistant_name: str,
        token_budget: int,
        trim_to: float,
        max_message_chars: int,
        max_name_chars: int,
        count_tokens: Callable[[str], int],
    ) -> None:
        self.assistant_name = assistant_name
        self.token_budget = token_budget
        self.trim_to = trim_to
        self.max_message_chars = max_message_chars
        self.max_name_chars = max_name_chars
        # Each decision re-reads the channel's recent messages: their counts are remembered
        # (tokenizing a whole window at every message costs more than anything else here).
        self.count_tokens = functools.lru_cache(maxsize=TOKEN_COUNTS_KEPT)(count_tokens)
        # Every window's names are sanitised again at each decision: remembered too.
        self._name = functools.lru_cache(maxsize=TOKEN_COUNTS_KEPT)(
            lambda name: sanitize_name(name, assistant_name, max_name_chars)
        )
        self._start: dict[int, int] = {}

    def start_pk(self, channel_pk: int) -> int:
        """The key of the oldest message the channel's window may include."""
        return self._start.get(channel_pk, 0)

    def forget_texts(self) -> None:
        """Drop the remembered token counts and names: keyed by text, a deleted message's must not linger."""
        self.count_tokens.cache_clear()
        self._name.cache_clear()

    def reset(self, channel_pk: int) -> None:
        """Forget where a channel's window starts (after its history was cleared)."""
        self._start.pop(channel_pk, None)

    def to_turn(self, m: StoredMessage) -> Turn:
        """A stored message as a protocol turn: names sanitised, long text cut."""
        text = cap_text(m.text.strip(), self.max_message_chars)
        if m.from_assistant:
            return Turn(role="assistant", content=text)
        name = self._name(m.display_name)
        return Turn(role="user", name=name, content=text)

    def build(self, channel_pk: int, messages: list[StoredMessage], history_size: int, trigger_pk: int) -> list[Turn]:
        """Turns for a decision on ``trigger_pk`` from ``messages`` (oldest first, since the start)."""
        msgs = [m for m in messages if m.pk <= trigger_pk and m.text.strip()]
        # The window never starts with the assistant's own reply: it answers nothing there.
        while msgs and msgs[0].from_assistant:
            msgs.pop(0)
        turns = [self.to_turn(m) for m in msgs]
        costs = [self.count_tokens(t.name + ": " + t.content) + 8 for t in turns]
        if len(turns) >= history_size or sum(costs) > self.token_budget:
            keep_n = max(1, int(history_size * self.trim_to))
            keep_tokens = int(self.token_budget * self.trim_to)
            i = 0
            total = sum(costs)
            while i < len(turns) - 1 and (len(turns) - i > keep_n or total > keep_tokens):
                total -= costs[i]
                i += 1
            while i < len(turns) - 1 and turns[i].role == "assistant":
                i += 1
            # Only forward: a late answer to an older question must not pull the start back.
            self._start[channel_pk] = max(self._start.get(channel_pk, 0), msgs[i].pk)
            turns = turns[i:]
        return turns
