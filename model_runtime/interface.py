"""The runtime interface: what the bot core calls to score a turn and to write a reply.

Two roles, two calls. ``score`` runs on every message and says how likely the assistant
should speak; ``reply`` runs only when the service has decided to speak and writes the
text. Whether to speak (force, mute, the threshold) is the service's business alone.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from model_runtime.pool import PriorityPool
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn

T = TypeVar("T")


class RuntimeError_(Exception):
    """A runtime could not be created, could not score or could not reply (names the file or channel)."""


@dataclass(frozen=True)
class Timings:
    """Where a call's time went, in milliseconds, and how many tokens it evaluated."""

    prompt_ms: float = 0.0
    decide_ms: float = 0.0
    generate_ms: float = 0.0
    total_ms: float = 0.0
    tokens_evaluated: int = 0
    tokens_cached: int = 0
    tokens_generated: int = 0

    def __add__(self, other: Timings) -> Timings:
        """Both calls' time and tokens (a score followed by a reply)."""
        return Timings(
            prompt_ms=self.prompt_ms + other.prompt_ms,
            decide_ms=self.decide_ms + other.decide_ms,
            generate_ms=self.generate_ms + other.generate_ms,
            total_ms=self.total_ms + other.total_ms,
            tokens_evaluated=self.tokens_evaluated + other.tokens_evaluated,
            tokens_cached=self.tokens_cached + other.tokens_cached,
            tokens_generated=self.tokens_generated + other.tokens_generated,
        )


@dataclass(frozen=True)
class Score:
    """How likely the assistant should speak after the window's last turn."""

    p_speak: float
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True)
class Reply:
    """What the assistant says (cleaned of protocol markers; may be empty)."""

    text: str
    timings: Timings = field(default_factory=Timings)


class Runtime(ABC):
    """A backend that scores turns and writes replies.

    ``score`` and ``reply`` block; the core calls ``ascore`` and ``areply``, which run
    them in the runtime's worker threads so the event loop never blocks: one thread, so
    that a local model is used by one thread, unless the backend sets ``concurrency``.
    Urgent calls (a forced question's score, every reply: someone is waiting for it) run
    before the scores of other channels that are queued.
    """

    #: short backend name recorded with each decision (``llama_cpp``, ``rules``, ...)
    name: str = "runtime"
    #: how many calls may run at once in the worker threads; a local model has one, a
    #: remote server can take several (the per-channel scheduler keeps each channel in order)
    concurrency: int = 1

    def __init__(self, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        self.assistant_name = assistant_name
        self._pool: PriorityPool | None = None

    @property
    def model_id(self) -> str:
        """Identifies the base model and adapter in the decisions table."""
        return self.name

    @property
    def base_threshold(self) -> float:
        """The threshold that talkativeness 50 maps to."""
        return 0.5

    @abstractmethod
    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """P(speak) after the window's last (human) turn, reusing the channel's cached state."""

    @abstractmethod
    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """The assistant's reply to the window's last (human) turn."""

    def reply_stream(self, channel: str, window: Sequence[Turn]) -> Iterator[Reply]:
        """The reply as it is written: each item is the whole text so far, the last one the finished reply.

        Backends that cannot stream give the finished reply as the only item.
        """
        yield self.reply(channel, window)

    async def ascore(self, channel: str, window: Sequence[Turn], urgent: bool = False) -> Score:
        """``score`` in the runtime's worker thread (``urgent``: ahead of other channels' scores)."""
        return await self._in_thread(self.score, channel, list(window), urgent)

    async def areply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """``reply`` in the runtime's worker thread, ahead of queued scores."""
        return await self._in_thread(self.reply, channel, list(window), True)

    async def areply_stream(self, channel: str, window: Sequence[Turn]) -> AsyncIterator[Reply]:
        """``reply_stream`` in the runtime's worker thread, ahead of queued scores; leaving the loop early stops it."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        stop = threading.Event()

        def pump(channel: str, window: list[Turn]) -> None:
            stream = self.reply_stream(channel, window)
            try:
                for item in stream:
                    loop.call_soon_threadsafe(items.put_nowait, ("item", item))
                    if stop.is_set():
                        break
            except Exception as exc:  # noqa: BLE001 - raised in the event loop below
                loop.call_soon_threadsafe(items.put_nowait, ("error", exc))
            finally:
                getattr(stream, "close", lambda: None)()
                loop.call_soon_threadsafe(items.put_nowait, ("end", None))

        done = asyncio.ensure_future(self._in_thread(pump, channel, list(window), True))
        try:
            while True:
                kind, value = await items.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise value  # type: ignore[misc]
                yield value  # type: ignore[misc]
        finally:
            stop.set()
        await done

    async def _in_thread(self, fn: Callable[[str, list[Turn]], T], channel: str, window: list[Turn], urgent: bool) -> T:
        if self._pool is None:
            self._pool = PriorityPool(self.concurrency, f"chime-{self.name}")
        return await asyncio.wrap_future(self._pool.submit(fn, channel, window, urgent=urgent))

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt; backends with a tokenizer override this estimate."""
        return max(1, len(text) // 4 + 4)

    def forget(self, channel: str) -> None:  # noqa: B027 - a runtime without a cache has nothing to drop
        """Drop any cached state for a channel (after ``forget`` or a deletion)."""

    def close(self) -> None:
        """Release the model and the worker thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
