"""The chime prompt protocol, shared by every runtime backend and by training.

A human turn is the chat template's user turn with content ``"{name}: {content}"``.
An assistant turn is ``(silence)`` or ``(response) {text}``. Every human turn the
assistant did not answer is followed by a ``(silence)`` assistant turn, so a rendered
conversation always alternates user/assistant, which every chat template accepts.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

SILENCE = "(silence)"
RESPONSE = "(response)"
# The two continuations whose probabilities make the decision, read after the
# assistant header (without the closing parenthesis so that the tokens that follow do
# not matter).
SPEAK_PREFIX = "(response"
SILENT_PREFIX = "(silence"
# What is put after the assistant header when the assistant is going to speak.
RESPONSE_PREFILL = RESPONSE + " "

DEFAULT_ASSISTANT_NAME = "assistant"
MAX_NAME_CHARS = 32
_FALLBACK_NAME = "someone"

Role = Literal["user", "assistant"]

# Used only by the prompt-only baseline (a base model with no adapter): fine-tuned
# adapters get no system prompt, the behaviour is learnt. Wording is ours.
BASELINE_SYSTEM_PROMPT = (
    "You take part in a group chat among several people as the assistant. Most messages are "
    "people talking to each other, not to you. Speak only when someone addresses you or when "
    "you can supply a fact they clearly lack. Otherwise answer exactly (silence). When you do "
    "speak, start with (response) and keep it short."
)
BASELINE_REMINDER = (
    "Reminder: the people are probably talking to each other. If you have nothing important to add, answer (silence)."
)


@dataclass(frozen=True)
class Turn:
    """One message in a window: a named human turn or an assistant turn."""

    role: Role
    content: str
    name: str = ""


def sanitize_name(name: str, assistant_name: str = DEFAULT_ASSISTANT_NAME, max_chars: int = MAX_NAME_CHARS) -> str:
    """Return a display name that cannot forge another speaker or the assistant."""
    text = unicodedata.normalize("NFKC", name or "")
    # Newlines, colons and control or format characters could start a forged turn.
    cleaned = "".join(
        " " if (ch in ":\n\r\t" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")) else ch for ch in text
    )
    cleaned = cleaned.replace("(", "").replace(")", "")
    cleaned = " ".join(cleaned.split())[:max_chars].strip()
    if not cleaned:
        return _FALLBACK_NAME
    if _same_name(cleaned, assistant_name):
        # Someone calling themselves "assistant" stays a human in the prompt.
        return f"{cleaned} [human]"
    return cleaned


def _same_name(a: str, b: str) -> bool:
    def key(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.casefold().lstrip("@"))

    return bool(key(a)) and key(a) == key(b)


def cap_text(text: str, max_chars: int) -> str:
    """Cut a message to ``max_chars`` for the prompt, marking the cut."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rstrip() + " […]"


def human_content(name: str, content: str) -> str:
    """The user-turn content for a human message."""
    return f"{name}: {content}"


def assistant_content(text: str | None) -> str:
    """The assistant-turn content: ``(silence)`` or ``(response) text``."""
    if text is None:
        return SILENCE
    return f"{RESPONSE} {text}".rstrip()


def to_chat_messages(
    turns: Sequence[Turn], *, for_decision: bool = True, prompted: bool = False
) -> list[dict[str, str]]:
    """Render turns as alternating chat messages with the protocol's markers.

    With ``for_decision`` the conversation must end on a human turn, which is left
    unanswered so that the template's generation prompt follows it. ``prompted`` adds
    the baseline's system prompt and a reminder inside every human turn.
    """
    messages: list[dict[str, str]] = []
    suffix = "\n\n" + BASELINE_REMINDER if prompted else ""
    for turn in turns:
        if turn.role == "user":
            if messages and messages[-1]["role"] == "user":
                messages.append({"role": "assistant", "content": SILENCE})
            messages.append({"role": "user", "content": human_content(turn.name, turn.content) + suffix})
        else:
            if not messages or messages[-1]["role"] != "user":
                # An assistant message with no human turn before it (e.g. the window
                # starts with it) carries no decision: leave it out.
                continue
            messages.append({"role": "assistant", "content": assistant_content(turn.content)})
    if not for_decision and messages and messages[-1]["role"] == "user":
        messages.append({"role": "assistant", "content": SILENCE})
    if for_decision and (not messages or messages[-1]["role"] != "user"):
        raise ValueError("a decision window must end with a human turn")
    if prompted:
        messages.insert(0, {"role": "system", "content": BASELINE_SYSTEM_PROMPT})
    return messages


def turns_from_seed(conversation: Iterable[dict]) -> list[Turn]:
    """Turns from one seed-format conversation (already validated)."""
    return [
        Turn(role="user", name=m["name"], content=m["content"])
        if m["role"] == "user"
        else Turn(role="assistant", content=m["content"])
        for m in conversation
    ]


def turns_to_seed(turns: Iterable[Turn]) -> list[dict[str, str]]:
    """One seed-format conversation from turns."""
    out: list[dict[str, str]] = []
    for t in turns:
        if t.role == "user":
            out.append({"role": "user", "name": t.name, "content": t.content})
        else:
            out.append({"role": "assistant", "content": t.content})
    return out


# The speaker of the turn that carries retrieved passages, just before the question.
MEMORY_SPEAKER = "memory"


def memory_turn(passages: Sequence[tuple[str, str]]) -> Turn:
    """The turn that shows the responder what the channel said: ``(who and when, text)`` pairs, best first."""
    lines = "\n".join(f"- {who}: {text}" for who, text in passages)
    return Turn(role="user", name=MEMORY_SPEAKER, content=f"Found in this channel's history:\n{lines}")


def p_speak_from_logprobs(logprob_speak: float, logprob_silent: float) -> float:
    """P(speak) = P(speak prefix) / (P(speak prefix) + P(silent prefix)), stably."""
    m = max(logprob_speak, logprob_silent)
    a = math.exp(logprob_speak - m)
    b = math.exp(logprob_silent - m)
    return a / (a + b)


_MARKER_RE = re.compile(r"\((?:response|silence)\)\s*", re.IGNORECASE)


def clean_reply(text: str, speaker_names: Iterable[str] = (), assistant_name: str = DEFAULT_ASSISTANT_NAME) -> str:
    """Make generated text safe to send: no protocol markers, no forged speaker lines.

    Generation stops at the first line that looks like another turn ("Name: ...") of a
    known speaker or of the assistant, since the model is then writing the next turn.
    """
    names = {n.casefold() for n in speaker_names if n} | {assistant_name.casefold()}
    kept: list[str] = []
    for line in text.splitlines():
        head, sep, _ = line.partition(":")
        if sep and head.strip().casefold().lstrip("@") in names:
            break
        kept.append(line)
    cleaned = _MARKER_RE.sub("", "\n".join(kept))
    return cleaned.strip()


def threshold_for(talkativeness: int, base_threshold: float = 0.5) -> float:
    """Map talkativeness 0-100 to a speak threshold; 50 gives the runtime's base threshold.

    0 never speaks unprompted (threshold above 1), 100 speaks at every turn.
    """
    t = min(100, max(0, int(talkativeness)))
    if t <= 50:
        return 1.0 + 1e-9 - (1.0 + 1e-9 - base_threshold) * (t / 50)
    return base_threshold * (1 - (t - 50) / 50)
