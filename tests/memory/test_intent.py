"""The rule for questions about the group's past."""

from __future__ import annotations

import pytest

from bot.memory.intent import GROUP, RECALL, past_question

MEMBERS = ("Jonas", "Ann")


@pytest.mark.parametrize(
    "text",
    [
        "when did we say the deadline was?",
        "what was that restaurant Jonas posted?",
        "@assistant remind me of the door code",
        "which hotel did we book",
        "what's Jonas's flight number?",
        "where is our standup now?",
    ],
)
def test_questions_about_the_group(text: str) -> None:
    assert past_question(text, MEMBERS) == GROUP


@pytest.mark.parametrize(
    "text",
    [
        "@assistant what was the wifi password again?",
        "what's the capital of australia again?",
        "can we go to the beach tomorrow?",
    ],
)
def test_questions_that_only_sound_like_recalling(text: str) -> None:
    assert past_question(text, MEMBERS) == RECALL


@pytest.mark.parametrize(
    "text",
    [
        "@assistant what is the capital of Peru?",
        "how many moons does Mars have?",
        "we booked it, thanks",  # not a question
        "lol",
        "Ann, can you send it?",  # a question to a person, nothing about the past
        "@assistant still with us?",
    ],
)
def test_other_messages(text: str) -> None:
    assert past_question(text, MEMBERS) is None
