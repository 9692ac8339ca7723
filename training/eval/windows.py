"""Replay windows: the window ending at each human turn, and the bot's rules for that turn."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from model_runtime.addressing import addressee, addresses_assistant, last_put_to_other, others_in
from model_runtime.protocol import Turn

# Like the core's window planner: past HISTORY messages the window start jumps forward to
# keep TRIM_TO of them, so the start stays put (and cached) between jumps.
DEFAULT_HISTORY = 40
TRIM_TO = 0.6


def human_windows(turns: Sequence[Turn], history: int = DEFAULT_HISTORY) -> Iterator[tuple[int, list[Turn]]]:
    """(index, window ending at that human turn) for every human turn, oldest first."""
    start = 0
    for k, turn in enumerate(turns):
        if turn.role != "user":
            continue
        if k + 1 - start > history:
            start = k + 1 - max(1, int(history * TRIM_TO))
            while turns[start].role == "assistant":
                start += 1
        yield k, list(turns[start : k + 1])


def turn_rules(window: Sequence[Turn], assistant_name: str) -> tuple[bool, bool]:
    """(forced, put to another person) for the window's last turn, as the bot's service decides them."""
    last = window[-1]
    forced = addresses_assistant(last.content, assistant_name)
    return forced, not forced and last_put_to_other(window, assistant_name)


def addresses_present(window: Sequence[Turn], assistant_name: str) -> bool:
    """The window's last turn opens by addressing another person present in the window (IRC's gold mark).

    Opening only, as the mark is defined ("nick: ...", "nick, ..."): a name at the end of
    a line ("..., Sam?") still keeps the bot quiet at run time, but is not part of the mark.
    """
    return addressee(window[-1].content, others_in(window), assistant_name, closing=False) is not None
