"""Urgent calls first: a forced question does not wait behind other channels' scores."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.domain import ChannelRef
from model_runtime.pool import PriorityPool
from tests.core.test_service import Harness
from tests.fakes import ScriptedRuntime


def test_urgent_calls_run_before_queued_ones_and_the_rest_in_order() -> None:
    pool = PriorityPool(1, "test")
    ran: list[str] = []
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    try:
        busy = pool.submit(hold)  # the one thread is taken
        assert started.wait(5)
        later = [pool.submit(ran.append, name) for name in ("a", "b")]
        urgent = pool.submit(ran.append, "urgent", urgent=True)
        assert pool.waiting() == 3
        release.set()
        for f in (busy, urgent, *later):
            f.result(timeout=5)
        assert ran == ["urgent", "a", "b"]
    finally:
        release.set()
        pool.shutdown()


def test_errors_reach_the_caller_and_a_shut_pool_runs_what_was_queued_then_refuses() -> None:
    pool = PriorityPool(2, "test")

    def boom() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        pool.submit(boom).result(timeout=5)
    queued = [pool.submit(sum, [i, 1]) for i in range(5)]
    pool.shutdown()
    assert [f.result(timeout=0) for f in queued] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(sum, [1])


async def test_a_forced_question_is_scored_and_answered_before_other_channels_waiting_scores(
    tmp_path: Path,
) -> None:
    # Each score takes 0.3 s; three busy channels queue up before the question arrives.
    runtime = ScriptedRuntime(0.1, delay_s=0.3, reply="Canberra.")
    h = Harness(tmp_path, runtime)
    chans = [ChannelRef("test", f"c{i}", f"room{i}") for i in range(4)]
    try:
        for i, ch in enumerate(chans[:3]):
            await h.say(f"chit-chat {i}", channel=ch)
        await h.say("@assistant what is the capital of Australia?", channel=chans[3])
        await h.service.drain()
        order = [(c.kind, c.channel) for c in runtime.calls]
        keys = [ch.key for ch in chans]
        # The first score was already running when the question came; the question's score
        # overtakes the two waiting ones. Its reply is asked for when that score is done,
        # while the thread may already have taken the next score, and still overtakes the last.
        assert order[:2] == [("score", keys[0]), ("score", keys[3])]
        assert order.index(("reply", keys[3])) < order.index(("score", keys[2]))
        assert sorted(order) == sorted([*(("score", k) for k in keys), ("reply", keys[3])])
        assert [s.text for s in h.sender.sent] == ["Canberra."]
    finally:
        await h.service.close()
