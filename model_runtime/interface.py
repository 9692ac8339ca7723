"""The runtime interface: what the bot core calls to decide and to reply."""

from __future__ import annotations

import asyncio
import concurrent.futures
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn


class RuntimeError_(Exception):
    """A runtime could not be created or could not decide (names the file or channel)."""


@dataclass
class Timings:
    """Where a decision's time went, in milliseconds, and how many tokens were evaluated."""

    prompt_ms: float = 0.0
    decide_ms: float = 0.0
    generate_ms: float = 0.0
    total_ms: float = 0.0
    tokens_evaluated: int = 0
    tokens_cached: int = 0
    tokens_generated: int = 0


@dataclass
class Decision:
    """The outcome of one decision: p_speak, whether to speak, and the reply text."""

    p_speak: float
    speak: bool
    text: str | None = None
    forced: bool = False
    threshold: float = 0.5
    timings: Timings = field(default_factory=Timings)


class Runtime(ABC):
    """A backend that decides whether to speak and writes the reply.

    ``decide`` blocks; the core calls ``adecide``, which runs it in the runtime's one
    worker thread so the event loop never blocks and the model is used by one thread.
    """

    #: short backend name recorded with each decision (``llama_cpp``, ``rules``, ...)
    name: str = "runtime"

    def __init__(self, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        self.assistant_name = assistant_name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def model_id(self) -> str:
        """Identifies the base model and adapter in the decisions table."""
        return self.name

    @property
    def base_threshold(self) -> float:
        """The threshold that talkativeness 50 maps to."""
        return 0.5

    @abstractmethod
    def decide(self, channel: str, window: Sequence[Turn], force: bool, threshold: float = 0.5) -> Decision:
        """Decide on the window's last (human) turn; generate the reply if speaking."""

    async def adecide(self, channel: str, window: Sequence[Turn], force: bool, threshold: float = 0.5) -> Decision:
        """``decide`` in the runtime's worker thread."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"chime-{self.name}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.decide, channel, list(window), force, threshold)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt; backends with a tokenizer override this estimate."""
        return max(1, len(text) // 4 + 4)

    def forget(self, channel: str) -> None:  # noqa: B027 - a runtime without a cache has nothing to drop
        """Drop any cached state for a channel (after ``forget`` or a deletion)."""

    def close(self) -> None:
        """Release the model and the worker thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
