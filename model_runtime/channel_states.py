"""An LRU of per-channel model states (KV-cache snapshots and their tokens) within a byte budget."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sized
from dataclasses import dataclass
from typing import Generic, TypeVar

Blob = TypeVar("Blob", bound=Sized)


@dataclass
class SavedState(Generic[Blob]):
    """The tokens a channel's state holds and the backend's opaque snapshot of it."""

    tokens: list[int]
    blob: Blob

    @property
    def size(self) -> int:
        """Bytes the snapshot takes."""
        return len(self.blob)


class ChannelStates(Generic[Blob]):
    """Channel -> saved state, least recently used evicted first once over ``budget_bytes``."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[str, SavedState[Blob]] = OrderedDict()
        self._bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, channel: object) -> bool:
        return channel in self._states

    @property
    def size_bytes(self) -> int:
        """Bytes held by all saved states."""
        return self._bytes

    def put(self, channel: str, state: SavedState[Blob]) -> bool:
        """Keep a channel's state, evicting the oldest ones to stay in budget; False if it alone is too big."""
        self.drop(channel)
        if state.size > self.budget_bytes:
            return False
        while self._states and self._bytes + state.size > self.budget_bytes:
            _, old = self._states.popitem(last=False)
            self._bytes -= old.size
            self.evictions += 1
        self._states[channel] = state
        self._bytes += state.size
        return True

    def pop(self, channel: str) -> SavedState[Blob] | None:
        """Take a channel's state out (it is about to become the live one)."""
        state = self._states.pop(channel, None)
        if state is not None:
            self._bytes -= state.size
        return state

    def drop(self, channel: str) -> None:
        """Forget a channel's state, if any."""
        self.pop(channel)
