"""Whom a message is put to: the assistant (a reply is owed) or another person in the room (not ours).

Deterministic, shared by the bot (which forces a reply or stays out) and the evaluation
(which measures exactly what the bot does). Text inside code (``` blocks and `spans`)
never counts: a pasted command that contains a name addresses nobody.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from model_runtime.protocol import Turn

_CODE_RE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_GREETINGS = r"(?:hey|hi|hello|hiya|ok|okay|yo|so|oh|and|but|well|please|pls|thanks|thank you)"
# Words that call out to someone on their own: "hey assistant my kid asked ..." needs no comma.
_CALLS = r"(?:hey|hi|hello|hiya|yo|oi|ok|okay|thanks|thank you)"
# What follows a name that opens a request to it ("assistant can you ...", "tom did you ...").
_REQUEST = (
    r"(?:(?:can|could|would|will|do|did|are|have|were)\s+(?:you|u)\b|is\s+(?:it|that|this|there)\b"
    r"|what|what's|whats|when|where|who|why|how|which|please|pls|tell|help|remind|explain|settle|quick)"
)


# Words that open a line followed by a comma or colon without naming anyone: discourse
# words, greetings, groups, labels and interjections ("So, ...", "Guys, ...", "Update: ...").
_NOT_NAMES = frozenset(
    """
    so ok okay oh and but well please pls thanks hey hi hello hiya yo also anyway anyways right sorry wait hmm hm
    ugh btw question quick honestly seriously actually alright lol yes no yeah yep nope guys folks everyone everybody
    all team friends people y'all yall anyone anybody someone somebody mods admins bot random update note edit fyi psa
    psst look listen see now then plus oops ah aha wow damn dang whoa true fair same sure cool nice great perfect fine
    good bad huh um uh er ooh ha haha omg gosh jeez man dude mate bro ps srsly tbh imo idk meanwhile besides still
    otherwise like basically apparently speaking unrelated morning evening afternoon night gm congrats weird strange
    interesting funny crazy context background problem issue error warning step tip idea poll vote survey reminder plan
    """.split()
)
# "Priya, when did ...", "jojo_: what's the flag ...": a word (a name, or a nick before a colon)
# opening the line, then a comma or colon, then the rest.
_OPENING_NAME = re.compile(r"^@?([A-Z][\w'\-]*|[\w\-\[\]`^{}|]+(?=\s*:))\s*[,:]\s*(.+)$", re.DOTALL)


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


def addressee(text: str, names: Iterable[str], assistant_name: str, closing: bool = True) -> str | None:
    """The person in ``names`` (other than the assistant) that the message is put to, if any.

    "Priya, when did ...", "jacob_: what do you mean?", "@Tom can you ...", "... right, Sam?"
    (the last only with ``closing``).
    """
    body = strip_code(text).strip()
    if not body:
        return None
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        if name.casefold() == assistant_name.casefold():
            continue
        n = re.escape(name)
        opening = rf"^(?:@{n}\b|@?{n}(?:\s*[,:]|\s+{_REQUEST}\b))"
        if re.search(opening, body, re.IGNORECASE):
            return name
        if closing and re.search(rf",\s*@?{n}\s*[?!.]*\s*$", body, re.IGNORECASE):
            return name
    return None


def named_opening(text: str, assistant_name: str) -> str | None:
    """The name a question or request opens with ("Priya, when did ...?", "jojo_: what's ..."), whoever it is.

    People read a channel without writing in it: a question put to a name by the asker is
    theirs to answer even when that person has not spoken in the window. Not the
    assistant's name (that forces a reply), nor a word that names no one ("So, ...",
    "Guys, ...", "Update: ..."), nor an adverb ("Honestly, ...").
    """
    match = _OPENING_NAME.match(strip_code(text).strip())
    if match is None:
        return None
    name, rest = match.group(1), match.group(2)
    word = name.casefold()
    if len(name) < 2 or word in _NOT_NAMES or word.endswith("ly") or word == assistant_name.casefold():
        return None
    return name if "?" in rest or re.match(rf"{_REQUEST}\b", rest, re.IGNORECASE) else None


def put_to_other(text: str, others: Iterable[str], assistant_name: str) -> str | None:
    """Whom the message is put to, other than the assistant: a person present (``addressee``) or a name it opens with."""
    return addressee(text, others, assistant_name) or named_opening(text, assistant_name)


def others_in(window: Sequence[Turn]) -> set[str]:
    """The people in the window other than the one who wrote its last turn."""
    last = window[-1]
    return {t.name for t in window if t.role == "user" and t.name != last.name}


def last_put_to_other(window: Sequence[Turn], assistant_name: str) -> bool:
    """The window's last turn is put to another person: one present in the window, or a name it opens with."""
    return put_to_other(window[-1].content, others_in(window), assistant_name) is not None
