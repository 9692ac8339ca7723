"""The service answers questions about the channel's past from memory, naming the source; others go to the model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, IncomingMessage
from bot.service import ConversationService
from bot.store import Store
from bot.store.migrate import upgrade
from tests.fakes import RecordingSender, ScriptedRuntime

CH = ChannelRef("matrix", "!general:example.org", "general")
OTHER = ChannelRef("matrix", "!random:example.org", "random")


@pytest.fixture
async def run(store_url: str) -> AsyncIterator:
    upgrade(store_url)
    services: list[ConversationService] = []

    async def start(runtime: ScriptedRuntime, **config: object):  # noqa: ANN202
        service = ConversationService(Store(store_url), runtime, parse_config(config))
        sender = RecordingSender()
        service.register("matrix", sender)
        services.append(service)
        return service, sender

    yield start
    for service in services:
        await service.close()


async def say(service: ConversationService, mid: str, text: str, name: str, channel: ChannelRef = CH) -> None:
    at = datetime.now(UTC) - timedelta(minutes=10) if mid.startswith("old") else datetime.now(UTC)
    await service.handle_message(
        IncomingMessage(channel=channel, message_id=mid, author_id=name.lower(), display_name=name, text=text,
                        created_at=at)
    )  # fmt: skip
    await service.drain()


async def test_a_question_about_the_past_gets_the_source(run) -> None:  # noqa: ANN001
    # The model invents a password: the reply quotes the message instead.
    service, sender = await run(ScriptedRuntime(0.0, reply="The wifi password is hunter2."))
    await say(service, "old1", "the wifi password is bluefish42", "Jonas")
    await say(service, "old2", "thanks!", "Ann")
    await say(service, "$q", "@assistant what was the wifi password again?", "Ann")
    [sent] = sender.sent
    assert "bluefish42" in sent.text and "hunter2" not in sent.text
    assert sent.text.startswith("Jonas, ") and sent.text.endswith("[https://matrix.to/#/!general:example.org/old1]")
    assert sent.reply_to == "$q"


async def test_a_supported_model_answer_is_sent_with_its_link(run) -> None:  # noqa: ANN001
    service, sender = await run(ScriptedRuntime(0.0, reply="It is bluefish42."))
    await say(service, "old1", "the wifi password is bluefish42", "Jonas")
    await say(service, "$q", "@assistant which password did Jonas give for the wifi?", "Ann")
    assert sender.sent[0].text == "It is bluefish42. [https://matrix.to/#/!general:example.org/old1]"


async def test_nothing_found_says_so_and_never_reads_another_channel(run) -> None:  # noqa: ANN001
    service, sender = await run(ScriptedRuntime(0.0, reply="The gate code is 4471."))
    await say(service, "old1", "gate code for the garage is 4471", "Ben", OTHER)
    await say(service, "old2", "the garage door is stuck again", "Jonas")
    await say(service, "$q", "@assistant what was the gate code we got?", "Ann")
    assert [s.text for s in sender.sent] == ["I can't find that in this channel."]


async def test_other_questions_go_to_the_model(run) -> None:  # noqa: ANN001
    service, sender = await run(ScriptedRuntime(0.0, reply="Lima."))
    await say(service, "old1", "the capital trip is on friday, 8 of us", "Jonas")
    await say(service, "$q", "@assistant what is the capital of Peru?", "Ann")
    assert [s.text for s in sender.sent] == ["Lima."]


async def test_memory_can_be_turned_off(run) -> None:  # noqa: ANN001
    service, sender = await run(ScriptedRuntime(0.0, reply="No idea."), memory={"enabled": False})
    await say(service, "old1", "the wifi password is bluefish42", "Jonas")
    await say(service, "$q", "@assistant what was the wifi password again?", "Ann")
    assert [s.text for s in sender.sent] == ["No idea."]


async def test_a_quote_goes_with_the_message_it_quotes(run) -> None:  # noqa: ANN001
    service, sender = await run(ScriptedRuntime(0.0, reply="The wifi password is hunter2."))
    await say(service, "old1", "the wifi password is bluefish42", "Jonas")
    await say(service, "$q", "@assistant what was the wifi password again?", "Ann")
    [sent] = sender.sent
    assert "bluefish42" in sent.text
    store = service.store
    pk = store.channel(CH).pk

    def texts() -> list[str]:
        return [m.text for m in store.all_messages(pk)]

    assert any("bluefish42" in t for t in texts())  # the reply, as the store keeps it
    # Jonas asks to be forgotten: his words must not stay behind in the assistant's quote.
    assert store.forget_author("matrix", "jonas") == 1
    assert not any("bluefish42" in t for t in texts())
    assert texts() == ["@assistant what was the wifi password again?"]
    assert store.is_known("matrix", "bot-1")  # tombstoned: a read-back never stores it again
