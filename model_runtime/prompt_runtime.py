"""PromptRuntime: the skeleton every model backend shares; each writes only how it scores and generates.

The skeleton renders the window with the protocol's template (``PromptBuilder``), holds
the backend's lock, times the call, cleans the reply of protocol markers and forged
speaker lines, and turns any failure into a ``RuntimeError_`` naming the channel.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from model_runtime.interface import Reply, Runtime, RuntimeError_, Score, Timings
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn, clean_reply
from model_runtime.template import Prompt, PromptBuilder

log = logging.getLogger(__name__)
T = TypeVar("T")


class PromptRuntime(Runtime):
    """A model backend: the subclass sets ``_builder`` and writes ``_p_speak`` and ``_generate``."""

    _builder: PromptBuilder

    def __init__(self, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        super().__init__(assistant_name)
        self._lock = threading.Lock()

    @abstractmethod
    def _p_speak(self, channel: str, prompt: Prompt) -> tuple[float, Timings]:
        """P("(response") against P("(silence") after the prompt, and the tokens it cost."""

    @abstractmethod
    def _generate(self, channel: str, prompt: Prompt) -> tuple[str, Timings]:
        """The raw reply after the prompt prefilled with "(response) ", and the tokens it cost."""

    def _drop_state(self, channel: str) -> None:  # noqa: B027 - a backend without per-channel state
        """Drop per-channel model state beyond the builder's anchor (called under the lock)."""

    def _after_failure(self) -> None:  # noqa: B027 - a backend whose state a failure cannot corrupt
        """Make the backend usable again after a failed call (called under the lock)."""

    def _exclusive(self) -> contextlib.AbstractContextManager[object]:
        """Held around each call: a local model serves one call at a time (a remote backend holds nothing)."""
        return self._lock

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """p_speak for the window's last turn, from the model's log-probabilities."""
        return self._guarded("scoring", channel, lambda: self._timed_score(channel, window))

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """The model's reply to the window's last turn, cleaned for sending."""
        return self._guarded("reply", channel, lambda: self._timed_reply(channel, window))

    def forget(self, channel: str) -> None:
        """Drop the channel's trimming anchor and any cached model state."""
        with self._lock:
            self._builder.forget(channel)
            self._drop_state(channel)

    def _guarded(self, what: str, channel: str, fn: Callable[[], T]) -> T:
        with self._exclusive():
            try:
                return fn()
            except Exception as exc:
                log.exception("%s failed in channel %s", what, channel)
                self._after_failure()
                raise RuntimeError_(f"{what} failed in channel {channel!r}: {exc}") from exc

    def _timed_score(self, channel: str, window: Sequence[Turn]) -> Score:
        t0 = time.perf_counter()
        prompt = self._builder.build(channel, window)
        t1 = time.perf_counter()
        p_speak, counts = self._p_speak(channel, prompt)
        t2 = time.perf_counter()
        timings = replace(counts, prompt_ms=(t1 - t0) * 1000, decide_ms=(t2 - t1) * 1000, total_ms=(t2 - t0) * 1000)
        return Score(p_speak, timings)

    def _timed_reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        t0 = time.perf_counter()
        prompt = self._builder.build(channel, window)
        t1 = time.perf_counter()
        raw, counts = self._generate(channel, prompt)
        names = [t.name for t in prompt.turns if t.role == "user"]
        text = clean_reply(raw, names, self.assistant_name)
        t2 = time.perf_counter()
        timings = replace(counts, prompt_ms=(t1 - t0) * 1000, generate_ms=(t2 - t1) * 1000, total_ms=(t2 - t0) * 1000)
        return Reply(text, timings)
