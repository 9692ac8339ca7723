"""Grounded answers: the model's answer when a passage supports it, else a quote of the passage, else "I can't find that".

A reply always names its source: the message's link (Discord jump link, matrix.to
permalink), a document's name, or (in the console) the author and time. A quote is
always faithful, so when the generated answer states something the passage does not,
the passage is quoted instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.memory.search import DEFAULT_MIN_COVERAGE, Passage
from bot.memory.terms import STOPWORDS

NOT_FOUND = "I can't find that in this channel."
# A passage that states no value is an answer only when it holds nearly all the question's words.
SURE_COVERAGE = 0.9
# Words that name the kind of value asked for, not what it is about: a passage that shares
# only these with the question ("the plumber's number is ..." for "the tracking number of
# the chairs?") states a value of something else.
KIND_WORDS = frozenset(
    """
    number numbers no name names code codes pin password passwords pw time times date dates day days
    address addresses email emails phone link url id place price cost
    """.split()
)
# A message that asks rather than tells, "?" or not: "what do we get Maria as a present",
# "can we push it to 3" (chat often drops the question mark). "when we land, the code is
# 4821" tells: a question word opens a question only with an auxiliary after it.
_ASKS = re.compile(
    r"^(?:(?:what|when|where|who|which|why|how)\s+(?:do|does|did|is|are|was|were|should|shall|can|could|would|will)\b"
    r"|(?:can|could|should|shall|do|does|did|will|would)\s+(?:we|i|you|they|someone|anyone)\b|(?:anyone|anybody)\b)",
    re.IGNORECASE,
)
MAX_QUOTE_CHARS = 300
_TOKEN = re.compile(r"[^\W_][\w@.:/'-]*[^\W_]|[^\W_]", re.UNICODE)


@dataclass(frozen=True)
class GroundedReply:
    """The reply text, the passage it rests on (None when nothing was found) and how it was made."""

    text: str
    source: Passage | None
    quoted: bool = False

    @property
    def found(self) -> bool:
        """Whether the reply answers from a passage (False: it says it cannot find it)."""
        return self.source is not None


def relevant(passages: Sequence[Passage], min_coverage: float = DEFAULT_MIN_COVERAGE) -> list[Passage]:
    """The passages that can answer: enough of the question's words, and a stated value unless nearly all of them.

    A message that is itself a question (someone asked the same before) answers nothing, nor
    one that shares only kind words (``KIND_WORDS``) with the question.
    """
    return [
        p
        for p in passages
        if p.coverage >= min_coverage
        and not set(p.matched) <= KIND_WORDS
        and not asks(p.text)
        and (p.states_value or p.document is not None or p.coverage >= SURE_COVERAGE)
    ]


def asks(text: str) -> bool:
    """Whether a message asks rather than tells (a question mark, or a question's opening words)."""
    text = text.strip()
    return text.endswith("?") or _ASKS.match(text) is not None


def source_label(p: Passage) -> str:
    """How the reply names a passage: its link, the document's name, or its author and time."""
    if p.link:
        return p.link
    if p.document:
        return p.document
    when = f", {p.created_at.strftime('%d %b %H:%M')} UTC" if p.created_at else ""
    return f"{p.author}{when}"


def quote(p: Passage) -> str:
    """``Jonas, 12 Nov: 'the wifi password is ...' [link]`` (a document: ``'...' [name]``)."""
    text = " ".join(p.text.split())
    if len(text) > MAX_QUOTE_CHARS:
        text = text[:MAX_QUOTE_CHARS].rstrip() + " …"
    if p.document:
        return f"'{text}' [{p.document}]"
    when = f", {p.created_at.day} {p.created_at.strftime('%b')}" if p.created_at else ""
    return f"{p.author}{when}: '{text}' [{source_label(p)}]"


def key_tokens(text: str, question: str = "") -> list[str]:
    """The words of an answer that carry its facts: not filler, not taken from the question."""
    asked = {t.casefold() for t in _TOKEN.findall(question)}
    out = []
    for token in _TOKEN.findall(text):
        low = token.casefold().strip(".:'-")
        if not low or low in STOPWORDS or low in asked:
            continue
        if any(c.isdigit() for c in low) or token[0].isupper() or len(low) >= 4:
            out.append(low)
    return out


def supported(answer: str, passage: Passage, question: str = "") -> bool:
    """Whether every fact-bearing word of ``answer`` appears in the passage (and there is at least one)."""
    keys = key_tokens(answer, question)
    body = passage.text.casefold()
    return bool(keys) and all(k in body for k in keys)


def compose(question: str, passages: Sequence[Passage], generated: str | None = None, **kw: float) -> GroundedReply:
    """The reply to a question about the channel's past, from its passages and (optionally) the model's answer."""
    found = relevant(passages, kw.get("min_coverage", DEFAULT_MIN_COVERAGE))
    if not found:
        return GroundedReply(NOT_FOUND, None)
    best = found[0]
    answer = " ".join((generated or "").split())
    if answer and supported(answer, best, question):
        return GroundedReply(f"{answer} [{source_label(best)}]", best)
    return GroundedReply(quote(best), best, quoted=True)
