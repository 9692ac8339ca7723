"""RuleBasedRuntime: a model-free stand-in, for when no model is installed or wanted."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from model_runtime.interface import Reply, Runtime, Score, Timings
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn

_QUESTION_WORDS = re.compile(r"^(who|what|when|where|which|how many|how much|how long|what year)\b", re.I)


class RuleBasedRuntime(Runtime):
    """Speaks only when addressed by name or forced; says plainly that no model is loaded."""

    name = "rules"

    def __init__(self, assistant_name: str = DEFAULT_ASSISTANT_NAME, delay_s: float = 0.0) -> None:
        super().__init__(assistant_name)
        self.delay_s = delay_s

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """Estimate p_speak from surface cues of the last human turn."""
        start = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)  # stands in for a model's time
        text = window[-1].content.strip()
        addressed = re.search(rf"(^|\W)@?{re.escape(self.assistant_name)}\b", text, re.I) is not None
        if addressed:
            p = 0.9
        elif text.endswith("?") and _QUESTION_WORDS.search(text):
            p = 0.3
        else:
            p = 0.05
        total = (time.perf_counter() - start) * 1000
        return Score(p, Timings(total_ms=total, decide_ms=total))

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """Say plainly that no model is loaded."""
        name = window[-1].name
        return Reply(f"I'm running without a language model (rule-based runtime), so I can't answer that, {name}.")
