"""200 messages in 10 s through the real service and store: every message ends once, every question is answered once.

The runtime takes 50 ms a decision, one at a time for all channels (as the model's
worker does), so it falls behind a 20-message/s stream: bursts supersede each other
while the forced questions among them wait for their own answer. Each message is
handed over in its own task, as adapters do, so stores and submissions interleave.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from bot import outcomes
from bot.config import parse_config
from bot.domain import ChannelRef, IncomingMessage
from bot.service import ConversationService
from bot.store import Store
from bot.store.migrate import upgrade
from tests.fakes import RecordingSender, ScriptedRuntime

CHANNELS = [ChannelRef("test", f"c{i}", f"room {i}") for i in range(4)]
PEOPLE = ["Alice", "Bob", "Carol", "Dan", "Erin"]
MESSAGES = 200
RATE = 20.0  # messages per second: 200 in 10 s
DECIDED = {outcomes.SILENT, outcomes.SENT, outcomes.EMPTY, outcomes.SEND_FAILED, outcomes.ERROR}


def text_of(k: int) -> tuple[str, bool]:
    """The k-th message's text (unique, so a reply names what it was written for) and whether it is forced."""
    if k % 10 == 3:
        return f"@assistant question {k}: what is {k} times 3?", True
    if k % 10 == 7:
        return f"does anyone know the capital of country {k}?", False
    return f"chit-chat line {k}", False


def p_speak(window) -> float:
    """Factual questions are worth a word; chit-chat is not."""
    return 0.9 if "capital" in window[-1].content else 0.05


async def stream(service: ConversationService) -> dict[str, IncomingMessage]:
    """Hand the messages over at RATE, each in its own task, round the channels; returns them by id."""
    sent: dict[str, IncomingMessage] = {}
    tasks = []
    start = time.monotonic()
    for k in range(MESSAGES):
        await asyncio.sleep(max(0.0, start + k / RATE - time.monotonic()))
        text, _ = text_of(k)
        name = PEOPLE[k % len(PEOPLE)]
        # Channels in an uneven pattern, so that some get bursts of several messages.
        channel = CHANNELS[(k * 7 // 5) % len(CHANNELS)]
        msg = IncomingMessage(channel=channel, message_id=f"m{k}", author_id=name.lower(), display_name=name, text=text)
        sent[msg.message_id] = msg
        tasks.append(asyncio.create_task(service.handle_message(msg)))
    assert all(await asyncio.gather(*tasks)), "every message was stored"
    return sent


@pytest.mark.timeout(90)
async def test_200_messages_in_10_s_each_end_once_and_each_question_is_answered_once(store_url: str) -> None:
    upgrade(store_url)
    # 0.1 s a score: 10 decisions a second at most, half the arrival rate, so newer
    # messages must supersede waiting ones however fast the rest of the machine is.
    runtime = ScriptedRuntime(p_speak, reply=lambda w: f"re: {w[-1].content}", delay_s=0.1)
    service = ConversationService(Store(store_url), runtime, parse_config({}))
    sender = RecordingSender()
    service.register("test", sender)
    try:
        sent = await stream(service)
        await service.drain()
        await service.finish()  # and the "superseded" outcomes still being written
        store = service.store
        stored = {}
        decided_pks: Counter[int] = Counter()
        for ref in CHANNELS:
            pk = store.channel(ref).pk
            stored.update({m.platform_message_id: m for m in store.all_messages(pk) if not m.from_assistant})
            decided_pks.update(d.message_pk for d in store.decisions(pk, limit=10 * MESSAGES))
    finally:
        await service.close()

    assert set(stored) == set(sent)
    by_outcome = Counter(m.outcome for m in stored.values())
    assert None not in by_outcome, f"messages left without an outcome: {by_outcome}"
    # Each message was decided at most once, and a decided one has its decision's outcome.
    assert max(decided_pks.values()) == 1
    for m in stored.values():
        assert (m.pk in decided_pks) == (m.outcome in DECIDED) or m.outcome == outcomes.SUPERSEDED, m
    assert by_outcome[outcomes.SUPERSEDED] > 0, "the stream was meant to outrun the runtime"

    forced = {mid for mid in sent if text_of(int(mid[1:]))[1]}
    answers = Counter(s.reply_to for s in sender.sent)
    assert {mid: answers[mid] for mid in forced} == {mid: 1 for mid in forced}
    assert all(stored[mid].outcome == outcomes.SENT for mid in forced)
    # Every reply was written for the very message it answers, in that message's channel.
    for s in sender.sent:
        question = sent[s.reply_to]
        assert s.text == f"re: {question.text}"
        assert s.channel == question.channel
    assert answers.total() == len(sender.sent) and max(answers.values()) == 1
