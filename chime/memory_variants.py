"""Dense and hybrid retrieval for ``chime eval --answers --retrieval``: measured against the shipped BM25.

Dense: every message of the channel and the question are embedded (all-MiniLM-L6-v2,
model_runtime/embeddings.py); passages are ranked by cosine similarity, which also
serves as their ``coverage`` (the relevance the answer composer tests). Hybrid: the
union of BM25's and dense's top 20, ranked by reciprocal rank fusion, with the mean of
the lexical coverage and the cosine as relevance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from bot.memory import Memory, Passage
from bot.memory.search import states_a_value

Retrieve = Callable[[str, str, int], list[Passage]]
POOL = 20
RRF_K = 60
_START = datetime(2026, 1, 1, tzinfo=UTC)


class DenseChannels:
    """The embedded messages of one line's channels."""

    def __init__(self, model: object, channels: dict[str, list[dict]]) -> None:
        self.model = model
        self.channels = channels
        self.vectors = {
            name: model.embed([m.get("content", "") for m in msgs]) if msgs else np.zeros((0, 384), np.float32)
            for name, msgs in channels.items()
        }

    def passage(self, channel: str, i: int, coverage: float, score: float) -> Passage:
        """A passage for message ``i`` of ``channel``."""
        m = self.channels[channel][i]
        stamp = m.get("time")
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else _START + timedelta(minutes=i)
        return Passage(
            message_pk=None, message_id=f"{channel}#{i}", author=str(m.get("name", "assistant")), author_id="",
            created_at=at, text=m.get("content", ""), link=None, score=round(score, 4), coverage=round(coverage, 4),
            matched=(), states_value=states_a_value(m.get("content", "")),
        )  # fmt: skip

    def ranked(self, channel: str, question: str) -> tuple[np.ndarray, np.ndarray]:
        """Message indices of the channel by cosine similarity to the question, and the similarities."""
        q = self.model.embed([question])[0]
        sims = self.vectors[channel] @ q
        order = np.argsort(-sims)
        return order, sims


def dense(d: DenseChannels) -> Retrieve:
    """Cosine similarity alone."""

    def retrieve(channel: str, question: str, k: int) -> list[Passage]:
        order, sims = d.ranked(channel, question)
        return [d.passage(channel, int(i), float(sims[i]), float(sims[i])) for i in order[:k]]

    return retrieve


def hybrid(d: DenseChannels, memory: Memory, keys: dict[str, int]) -> Retrieve:
    """BM25 and dense fused by reciprocal rank; relevance is the mean of lexical coverage and cosine."""

    def retrieve(channel: str, question: str, k: int) -> list[Passage]:
        lexical = memory.search(keys[channel], question, POOL)
        order, sims = d.ranked(channel, question)
        fused: dict[int, float] = {}
        by_index: dict[int, Passage] = {}
        for r, p in enumerate(lexical):
            i = int(p.message_id.rsplit("#", 1)[1])
            fused[i] = fused.get(i, 0.0) + 1 / (RRF_K + r)
            by_index[i] = p
        for r, i in enumerate(order[:POOL]):
            fused[int(i)] = fused.get(int(i), 0.0) + 1 / (RRF_K + r)
        best = sorted(fused, key=lambda i: -fused[i])[:k]
        out = []
        for i in best:
            lex = by_index[i].coverage if i in by_index else 0.0
            base = by_index.get(i) or d.passage(channel, i, 0.0, 0.0)
            out.append(replace(base, coverage=round((lex + float(sims[i])) / 2, 4), score=round(fused[i], 5)))
        return out

    return retrieve
