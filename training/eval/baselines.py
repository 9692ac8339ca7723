"""The baselines the evaluation reports next to the model: prompted base model, always silent, mention only."""

from __future__ import annotations

import time
from collections.abc import Sequence

from model_runtime.addressing import addresses_assistant
from model_runtime.interface import Reply, Runtime, Score, Timings
from model_runtime.options import LlamaCppOptions, RuntimeOptions, TransformersOptions
from model_runtime.protocol import Turn

BASELINE_NAMES = ("prompted", "always_silent", "mention_only")


class AlwaysSilentRuntime(Runtime):
    """Never speaks, not even when forced: the floor every metric is compared with."""

    name = "always_silent"

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """p_speak is always 0."""
        return Score(0.0)

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """There is never a reply."""
        return Reply("")


class MentionOnlyRuntime(Runtime):
    """Speaks exactly when the turn addresses the assistant by name (what llmcord and baibot do)."""

    name = "mention_only"
    # What the policy would send; only whether it speaks is measured.
    REPLY = "[mention-only baseline reply]"

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """p_speak is 1 for an addressed turn, else 0."""
        start = time.perf_counter()
        p = 1.0 if addresses_assistant(window[-1].content, self.assistant_name) else 0.0
        ms = (time.perf_counter() - start) * 1000
        return Score(p, Timings(total_ms=ms, decide_ms=ms))

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """The placeholder the policy would send."""
        return Reply(self.REPLY)


def prompted_options(main: RuntimeOptions) -> RuntimeOptions:
    """The seed article's baseline for ``main``: the same base model, no adapter, system prompt plus reminder.

    A runtime without a ``prompt_style`` (rules, an OpenAI-compatible server) has no base
    model of its own to prompt, so the bundled one is used.
    """
    if isinstance(main, LlamaCppOptions):
        return main.model_copy(update={"adapter_path": None, "prompt_style": "prompted", "threshold": None})
    if isinstance(main, TransformersOptions):
        return main.model_copy(update={"adapter": None, "prompt_style": "prompted", "threshold": None})
    return LlamaCppOptions(adapter_path=None, prompt_style="prompted")
