"""Grounded replies: the model's answer only when the passage supports it, else a faithful quote, else "can't find"."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.memory.answer import NOT_FOUND, asks, compose, key_tokens, quote, relevant, supported
from bot.memory.search import Passage, states_a_value

AT = datetime(2026, 11, 12, 18, 30, tzinfo=UTC)
QUESTION = "@assistant what was the wifi password again?"


def passage(text: str, coverage: float = 1.0, link: str | None = "https://matrix.to/#/!r:x/$e", **kw) -> Passage:
    return Passage(
        message_pk=1, message_id="$e", author="Jonas", author_id="@jonas:x", created_at=AT, text=text, link=link,
        score=1.0, coverage=coverage, matched=("wifi",), states_value=states_a_value(text), **kw,
    )  # fmt: skip


WIFI = passage("the wifi password is bluefish42")


def test_a_supported_answer_is_kept_and_names_its_source() -> None:
    reply = compose(QUESTION, [WIFI], "The wifi password is bluefish42.")
    assert reply.text == "The wifi password is bluefish42. [https://matrix.to/#/!r:x/$e]"
    assert reply.source is WIFI and not reply.quoted


def test_an_unsupported_answer_becomes_a_quote_of_the_source() -> None:
    for invented in ("The wifi password is hunter2.", "Sure! Ask Jonas.", "", None):
        reply = compose(QUESTION, [WIFI], invented)
        assert reply.quoted and reply.source is WIFI
        assert reply.text == "Jonas, 12 Nov: 'the wifi password is bluefish42' [https://matrix.to/#/!r:x/$e]"


def test_nothing_relevant_says_it_cannot_find_it() -> None:
    weak = passage("wifi is slow today", coverage=0.3)
    assert compose(QUESTION, [weak], "The password is bluefish42").text == NOT_FOUND
    assert compose(QUESTION, [], None).source is None
    # Enough of the words, but it states no value: chatter about the topic, not an answer.
    assert relevant([passage("is the wifi down for anyone else?", coverage=0.6)]) == []


def test_a_message_that_asks_answers_nothing_question_mark_or_not() -> None:
    for question in ("what do we get Maria as a present", "can we push it to half past 3", "is it 42?"):
        assert asks(question)
        assert relevant([passage(question, coverage=0.8)]) == []
    for statement in ("when we land, the code is 4821", "the code is 4821", "what a day, the code is 4821"):
        assert not asks(statement)
        assert relevant([passage(statement, coverage=0.8)]) != []


def test_console_sources_are_author_and_time_and_documents_their_name() -> None:
    console = passage("the wifi password is bluefish42", link=None)
    assert compose(QUESTION, [console], None).text.endswith("[Jonas, 12 Nov 18:30 UTC]")
    doc = passage("Guest wifi: bluefish42", link=None, document="office.md")
    assert quote(doc) == "'Guest wifi: bluefish42' [office.md]"


def test_key_tokens_ignore_filler_and_the_question() -> None:
    assert key_tokens("The wifi password is bluefish42.", QUESTION) == ["bluefish42"]
    assert supported("it is bluefish42", WIFI) and not supported("it is bluefish43", WIFI)
    assert not supported("yes", WIFI)


def test_values_are_numbers_names_and_addresses_not_sentence_starts() -> None:
    assert states_a_value("the vet we saw was Dr. Ferreira")
    assert states_a_value("Dr. Novak is the vet")
    assert states_a_value("booked at Golden Lotus") and states_a_value("mail me at x@y.org")
    assert not states_a_value("Hello there, I think so") and not states_a_value("vet bills are insane. Ugh")
