"""Whom a message is put to: the assistant (a reply is owed) or another person in the room (not ours).

Deterministic, shared by the bot (which forces a reply or stays out) and the evaluation
(which measures exactly what the bot does). Text inside code (``` blocks and `spans`)
never counts: a pasted command that contains a name addresses nobody.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CODE_RE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_GREETINGS = r"(?:hey|hi|hello|hiya|ok|okay|yo|so|oh|and|but|well|please|pls|thanks|thank you)"
# Words that call out to someone on their own: "hey assistant my kid asked ..." needs no comma.
_CALLS = r"(?:hey|hi|hello|hiya|yo|oi|ok|okay|thanks|thank you)"
# What follows a name that opens a request to it ("assistant can you ...", "tom did you ...").
_REQUEST = (
    r"(?:(?:can|could|would|will|do|did|are|have|were)\s+(?:you|u)\b|is\s+(?:it|that|this|there)\b"
    r"|what|what's|whats|when|where|who|why|how|which|please|pls|tell|help|remind|explain|settle|quick)"
)


def strip_code(text: str) -> str:
    """The text with code blocks and inline code blanked out."""
    return _CODE_RE.sub(" ", text)


def mentions_assistant(text: str, assistant_name: str) -> bool:
    """``@name`` written outside code (case-insensitive)."""
    name = re.escape(assistant_name)
    return re.search(rf"(?<![\w@])@{name}\b", strip_code(text), re.IGNORECASE) is not None


def _vocative(text: str, name: str) -> bool:
    """``name`` is used to address someone: opening a sentence as a call or request, or closing it."""
    n = re.escape(name)
    opening = rf"(?:^|[.!?]\s+)(?:{_GREETINGS}[\s,]+)?@?{n}(?:\s*[,:!?]|\s+{_REQUEST}\b|\s*$)"
    greeted = rf"(?:^|[.!?,]\s*){_CALLS}[\s,]+@?{n}\b(?!['’]s)"
    closing = rf",\s*@?{n}\s*[?!.]*\s*$"
    return any(re.search(p, text, re.IGNORECASE) for p in (opening, greeted, closing))


def addresses_assistant(text: str, assistant_name: str) -> bool:
    """A reply is owed: ``@name``, or the name used as an address ("hey assistant", "assistant, ...").

    Talking about the assistant ("my assistant at work", "the assistant manager") does not count.
    """
    if mentions_assistant(text, assistant_name):
        return True
    return _vocative(strip_code(text).strip(), assistant_name)


def addressee(text: str, names: Iterable[str], assistant_name: str) -> str | None:
    """The person in ``names`` (other than the assistant) that the message is put to, if any.

    "Priya, when did ...", "jacob_: what do you mean?", "@Tom can you ...", "... right, Sam?"
    """
    body = strip_code(text).strip()
    if not body:
        return None
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        if name.casefold() == assistant_name.casefold():
            continue
        n = re.escape(name)
        opening = rf"^(?:@{n}\b|@?{n}(?:\s*[,:]|\s+{_REQUEST}\b))"
        closing = rf",\s*@?{n}\s*[?!.]*\s*$"
        if re.search(opening, body, re.IGNORECASE) or re.search(closing, body, re.IGNORECASE):
            return name
    return None
