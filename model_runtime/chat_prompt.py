"""The group-chat prompt a general chat model gets when it writes chime's replies.

Unlike the fine-tuned protocol (no system prompt, ``(silence)``/``(response)`` markers),
a general chat model is told the situation in words: who it is, that several people
talk, that each message starts with its speaker's name, and that answers are short.
Human turns in a row are merged into one user message, since some chat templates
require the roles to alternate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from model_runtime.protocol import Turn, clean_reply, human_content

GROUP_CHAT_PROMPT = (
    "You are {name}, an assistant taking part in a group chat with several people. "
    'Each message from a person starts with their name and a colon ("Alice: ..."); your own '
    "earlier messages are shown as yours. Reply to the last message as a chat message of your own: "
    "one to three short sentences, plain text, no name in front. If you do not know, say so briefly."
)


def group_chat_messages(
    window: Sequence[Turn], assistant_name: str, system_prompt: str | None = None
) -> list[dict[str, str]]:
    """The window as chat messages: the system prompt, people's lines merged per run, the assistant's own."""
    system = (system_prompt or GROUP_CHAT_PROMPT).replace("{name}", assistant_name)
    messages: list[dict[str, str]] = [{"role": "system", "content": system}]
    for turn in window:
        if turn.role == "user":
            line = human_content(turn.name, turn.content)
            if messages[-1]["role"] == "user":
                messages[-1]["content"] += "\n" + line
            else:
                messages.append({"role": "user", "content": line})
        elif messages[-1]["role"] == "user":
            # An assistant message before any person spoke carries nothing to answer.
            messages.append({"role": "assistant", "content": turn.content})
    if messages[-1]["role"] != "user":
        raise ValueError("a reply window must end with a human turn")
    return messages


def clean_chat_reply(text: str, speaker_names: Iterable[str], assistant_name: str) -> str:
    """A chat model's answer made safe to send: its own name in front dropped, forged turns cut."""
    own = re.compile(rf"^\s*@?{re.escape(assistant_name)}\s*:\s*", re.IGNORECASE)
    return clean_reply(own.sub("", text, count=1), speaker_names, assistant_name)
