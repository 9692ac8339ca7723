"""When a message asks about the group's own past, so that memory answers it (or says it cannot find it).

The rule, kept simple so that people can predict it. The message must be a question (a
question mark, or it opens with a question word or "remind me"). Then:

- ``GROUP``: it points at what this group said or did: "our", a verb of saying or
  deciding ("said", "posted", "mentioned", "sent", "shared", "told", "decided",
  "agreed", "booked", "picked", "chose", "named", "remind"), "did we", "we" with a past
  verb ("we got", "we booked"), or someone of the channel by name ("Jonas's", "Jonas
  posted"). Memory answers, or says "I can't find that in this channel".
- ``RECALL``: it only sounds like recalling ("again", "did", "we", "remember", "earlier",
  "last time", "yesterday"): memory answers when it finds a passage, else the model alone
  answers, since "what's the capital of Peru again?" is not about the group.
- None: any other message; the model alone answers.
"""

from __future__ import annotations

import re

GROUP = "group"
RECALL = "recall"

_QUESTION_START = re.compile(
    r"^\W*(?:@\S+\s*,?\s*)?(?:hey\s+\S+\s*,?\s*)?(?:quick one:\s*)?"
    r"(?:what|when|where|which|who|whom|whose|how|did|does|do|was|were|is|are|can|could|remind)\b",
    re.I,
)
_GROUP = re.compile(
    r"\b(?:our|ours|said|say|posted|mentioned|sent|shared|told|decided|agreed|booked|picked|chose|chosen|named"
    r"|settled|remind|(?:did|were|had) we|we\s+(?:\w+ed|got|had|paid|made|took|set|put|went|bought|found))\b",
    re.I,
)
_RECALL = re.compile(r"\b(?:again|did|we|remember|recall|earlier|last time|yesterday|the other day|last week)\b", re.I)


def past_question(text: str, member_names: tuple[str, ...] = ()) -> str | None:
    """``GROUP``, ``RECALL`` or None for ``text`` (see the module's rule)."""
    if "?" not in text and not _QUESTION_START.search(text):
        return None
    if _GROUP.search(text):
        return GROUP
    if any(re.search(rf"\b{re.escape(n)}(?:'s|\s+\w+ed)\b", text, re.I) for n in member_names if n):
        return GROUP
    return RECALL if _RECALL.search(text) else None


def asks_about_past(text: str, member_names: tuple[str, ...] = ()) -> bool:
    """Whether ``text`` is a question that memory should try (``GROUP`` or ``RECALL``)."""
    return past_question(text, member_names) is not None
