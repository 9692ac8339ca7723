"""Whom a message is put to: the assistant by name (forced) or another person in the room."""

from __future__ import annotations

import pytest

from model_runtime.addressing import (
    addressee,
    addresses_assistant,
    last_put_to_other,
    mentions_assistant,
    named_opening,
    others_in,
    put_to_other,
)
from model_runtime.protocol import Turn

NAMES = ["Priya", "jacob_", "Tom", "Sam", "Ann 4821", "kev|work"]


@pytest.mark.parametrize(
    "text",
    [
        "@assistant what is 12 times 12?",
        "hey assistant, my kid asked why the sky is blue. simple explanation?",
        "hey assistant my kid asked why the sky is blue",
        "assistant, is a tomato a fruit",
        "Assistant: how long do I boil an egg?",
        "assistant can you settle this",
        "assistant what's the capital of peru",
        "ok assistant settle this for us",
        "what's 7 times 8, assistant?",
        "thanks assistant!",
        "found it. Assistant, how long do I boil it?",
    ],
)
def test_address_by_name_forces_a_reply(text: str) -> None:
    assert addresses_assistant(text, "assistant")


@pytest.mark.parametrize(
    "text",
    [
        "my assistant at work booked the wrong room",
        "the assistant manager said no",
        "Assistant managers earn less than you'd think",
        "so assistant managers earn less?",
        "Assistant's answer was wrong yesterday",
        "run `@assistant --help` to see",
        "```\n@assistant ping\n```",
        "what year did the berlin wall fall?",
    ],
)
def test_talking_about_the_assistant_does_not(text: str) -> None:
    assert not addresses_assistant(text, "assistant")


def test_the_configured_name_is_the_one_that_counts() -> None:
    assert addresses_assistant("hey chime, what's the time in tokyo", "chime")
    assert not addresses_assistant("hey assistant, what's the time in tokyo", "chime")
    assert mentions_assistant("@Chime hi", "chime") and not mentions_assistant("chime, hi", "chime")


@pytest.mark.parametrize(
    ("text", "who"),
    [
        ("Priya, when did the Titanic sink?", "Priya"),
        ("jacob_: what do you mean?", "jacob_"),
        ("@Tom can you add the numbers to the slides?", "Tom"),
        ("tom can you add the numbers", "Tom"),
        ("is that right, Sam?", "Sam"),
        ("Ann 4821: did you book it?", "Ann 4821"),
        ("kev|work: try `sudo apt update` first", "kev|work"),
        ("when did the titanic sink?", None),
        ("Tomorrow we go to the lake", None),
        ("Sam said it was 5 km", None),
        ("`Tom: x` is the format", None),
        ("assistant, when did the titanic sink?", None),
    ],
)
def test_a_question_put_to_another_person(text: str, who: str | None) -> None:
    assert addressee(text, NAMES + ["assistant"], "assistant") == who


def test_a_closing_name_counts_only_when_asked_for() -> None:
    assert addressee("did you try the loop option, Sam?", NAMES, "assistant") == "Sam"
    assert addressee("did you try the loop option, Sam?", NAMES, "assistant", closing=False) is None
    assert addressee("Sam, did you try the loop option?", NAMES, "assistant", closing=False) == "Sam"


def test_only_people_present_count() -> None:
    assert addressee("Maria, when did the Titanic sink?", NAMES, "assistant") is None
    assert addressee("Maria, when did the Titanic sink?", ["Maria"], "assistant") == "Maria"


@pytest.mark.parametrize(
    ("text", "who"),
    [
        ("Maria, when did the Titanic sink?", "Maria"),
        ("Jana, how many people are coming Saturday in the end?", "Jana"),
        ("jojo_: what's the flag for the port with scp again", "jojo_"),
        ("kilo: did you rebase feature/login on main yet", "kilo"),
        ("Maria, nice one", None),  # no question or request
        ("So, when did it sink?", None),
        ("Guys, pizza or tacos?", None),
        ("Honestly, why is every game night a negotiation", None),
        ("Update: does anyone know if the vpn is down?", None),
        ("E: Could not get lock /var/lib/dpkg/lock-frontend?", None),
        ("Unrelated, but my carbon monoxide alarm keeps beeping. Battery?", None),
        ("Assistant, what year did the wall fall?", None),  # the assistant: forced, not another person
        ("when did the Titanic sink? Maria says 1915", None),
        ("`x: y?` is the syntax", None),
    ],
)
def test_a_question_opened_with_a_name_is_put_to_that_person(text: str, who: str | None) -> None:
    assert named_opening(text, "assistant") == who


def test_put_to_other_takes_people_present_first_then_an_opening_name() -> None:
    assert put_to_other("is that right, Sam?", ["Sam"], "assistant") == "Sam"
    assert put_to_other("Maria, when did the Titanic sink?", [], "assistant") == "Maria"
    assert put_to_other("when did the Titanic sink?", ["Sam"], "assistant") is None


def test_a_window_s_last_turn_put_to_another_person() -> None:
    window = [
        Turn(role="user", name="Sam", content="anyone know when the Titanic sank?"),
        Turn(role="assistant", name="assistant", content="In April 1912."),
        Turn(role="user", name="Priya", content="thanks"),
        Turn(role="user", name="Sam", content="Priya, did you book the museum?"),
    ]
    # The writer and the assistant are not "others"; a present person and an opening name are.
    assert others_in(window) == {"Priya"}
    assert last_put_to_other(window, "assistant")
    assert last_put_to_other(
        [*window[:3], Turn(role="user", name="Sam", content="Maria, what year was it?")], "assistant"
    )
    assert not last_put_to_other([*window[:3], Turn(role="user", name="Sam", content="what year was it?")], "assistant")
