"""Asking the responder with the passages in front of it, then grounding what it says (bot/memory/answer.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.memory.answer import GroundedReply, compose, relevant
from bot.memory.search import DEFAULT_MIN_COVERAGE, Passage
from model_runtime.interface import Runtime
from model_runtime.protocol import Turn, memory_turn

log = logging.getLogger(__name__)
PASSAGES_SHOWN = 3


def prompt_turns(window: Sequence[Turn], passages: Sequence[Passage]) -> list[Turn]:
    """The window with the passages shown just before its last (the asking) turn."""
    shown = []
    for p in passages[:PASSAGES_SHOWN]:
        who = p.document or p.author
        shown.append((f"{who}, {p.created_at:%d %b}" if p.created_at else who, p.text))
    return [*window[:-1], memory_turn(shown), window[-1]]


def answer(
    runtime: Runtime | None,
    channel_key: str,
    window: Sequence[Turn],
    passages: Sequence[Passage],
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> GroundedReply:
    """The grounded reply to the window's last turn; the model is asked only when a passage can answer."""
    question = window[-1].content
    found = relevant(passages, min_coverage)
    generated = None
    if found and runtime is not None:
        try:
            generated = runtime.reply(channel_key, prompt_turns(window, found)).text
        except Exception as e:  # the quote needs no model: a failed generation still answers
            log.warning("memory: the responder failed in %s (%s); quoting the source", channel_key, e)
    return compose(question, passages, generated, min_coverage=min_coverage)


async def aanswer(
    runtime: Runtime,
    channel_key: str,
    window: Sequence[Turn],
    passages: Sequence[Passage],
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> GroundedReply:
    """``answer`` with the model run in the runtime's own thread (the service's event loop never blocks)."""
    question = window[-1].content
    found = relevant(passages, min_coverage)
    generated = None
    if found:
        try:
            generated = (await runtime.areply(channel_key, prompt_turns(window, found))).text
        except Exception as e:
            log.warning("memory: the responder failed in %s (%s); quoting the source", channel_key, e)
    return compose(question, passages, generated, min_coverage=min_coverage)
