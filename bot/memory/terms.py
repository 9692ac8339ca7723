"""A question's search terms: its words less the ones that carry no fact (stopwords, chat filler)."""

from __future__ import annotations

import re

# Words that every question about the past shares, so they find nothing: English
# function words, question words and the verbs people use to ask about what was said.
STOPWORDS = frozenset(
    """
    a about above after again against ago all also am an and any anyone anybody are aren as at
    be because been before being below between both but by can cannot could couldn did didn do does
    doesn doing don down during each else ever few for from further get got had hadn has hasn have
    haven having he her here hers herself him himself his how i if in into is isn it its itself just
    know let like ll me mention mentioned more most mustn my myself no nor not now of off on once one only
    or other ought our ours ourselves out over own please posted re remember reminded remind
    said same say says shan she should shouldn so some somebody someone such t tell than that the their
    theirs them themselves then there these they this those through to told too under until up us
    ve very was wasn we were weren what whats when whens where wheres which while who whos whom why
    will with won would wouldn you your yours yourself yourselves again earlier back recall
    guys hey hi hmm ok okay oh um uh quick question wait sorry thanks thank pls plz
    assistant bot
    """.split()
)

# A word: a run of letters and digits.
WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Mentions of someone (@name, <@123>) name who is asked, not what is asked about.
_MENTION = re.compile(r"<@!?&?\d+>|@\S+")
MAX_TERMS = 12


def query_terms(question: str, assistant_name: str = "assistant") -> list[str]:
    """The distinct lower-case words of ``question`` worth searching for, in order (at most MAX_TERMS)."""
    skip = STOPWORDS | {w.casefold() for w in WORD.findall(assistant_name)}
    seen: list[str] = []
    for word in WORD.findall(_MENTION.sub(" ", question).casefold()):
        if word in skip or word in seen or (len(word) == 1 and not word.isdigit()):
            continue
        seen.append(word)
    return seen[:MAX_TERMS]
