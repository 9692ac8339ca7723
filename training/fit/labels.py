"""Completion-only labels found by rendering the chat template and aligning turn boundaries to tokens.

No token ids are hard-coded: each assistant turn's character span is found by rendering
the conversation up to the generation prompt before it and up to its end, exactly as the
runtime renders a decision prompt, and the span is mapped onto the tokens of the whole
conversation through the tokenizer's offsets. This works however the template's markers
tokenise in context (the seed article's ``<|assistant|>`` problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from model_runtime.protocol import SILENT_PREFIX, SPEAK_PREFIX

IGNORE = -100


class TemplateError(ValueError):
    """The chat template cannot be used for training (names the reason)."""


@dataclass(frozen=True)
class AssistantSpan:
    """Character offsets of one assistant turn in the rendered conversation."""

    start: int  # right after the generation prompt: where the runtime reads p_speak
    content_start: int  # where the turn's text begins (after any separator the template writes)
    content_end: int  # end of the turn's text
    end: int  # end of everything the template renders for the turn (end-of-turn marker, separators)


@dataclass
class Encoded:
    """One training sequence: token ids, labels (IGNORE where there is no loss) and alignment facts."""

    input_ids: list[int]
    labels: list[int]
    assistant_turns: int
    # Assistant turns whose first token also covers template text before the turn; such a
    # token is labelled, but its prompt is not exactly what the runtime evaluates.
    merged_boundaries: int = 0
    # True at the tokens of each turn's "(response" / "(silence" marker: the tokens whose
    # probabilities the runtime reads as p_speak (empty: none marked).
    decision: list[bool] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        """How many tokens carry a loss."""
        return sum(1 for x in self.labels if x != IGNORE)


def render(tokenizer: Any, messages: Sequence[dict[str, str]], generation_prompt: bool = False) -> str:
    """The conversation as the base model's chat template writes it, as text."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the tokenizer has no chat template; set one before training")
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, list[AssistantSpan]]:
    """Render the conversation and find each assistant turn's character span in it."""
    full = render(tokenizer, messages)
    spans: list[AssistantSpan] = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = render(tokenizer, messages[:i], generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not (full.startswith(prompt) and full.startswith(upto) and upto.startswith(prompt)):
            # Templates that rewrite earlier turns (e.g. drop reasoning) would train on text
            # the runtime never shows the model.
            raise TemplateError(f"the chat template does not render message {i + 1} as a prefix of the conversation")
        segment = upto[len(prompt) :]
        at = segment.find(msg["content"])
        if at < 0:
            raise TemplateError(f"the chat template changes the text of assistant message {i + 1}")
        start = len(prompt)
        spans.append(AssistantSpan(start, start + at, start + at + len(msg["content"]), len(upto)))
    return full, spans


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokenizer's special tokens (end-of-turn markers among them)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for tid, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(tid))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def encode_conversation(tokenizer: Any, messages: Sequence[dict[str, str]], *, completion_only: bool = True) -> Encoded:
    """Tokenise a rendered conversation; label assistant turns (with their end-of-turn token) only."""
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    if not completion_only:
        return Encoded(ids, list(ids), len(spans))
    labels = [IGNORE] * len(ids)
    decision = [False] * len(ids)
    specials = special_ids(tokenizer)
    merged = 0
    t = 0
    for span in spans:
        marker_end = span.content_start + _marker_chars(text[span.content_start : span.content_end])
        # Skip tokens that end before the turn starts.
        while t < len(ids) and _ends_before(offsets[t], span.start):
            t += 1
        if t < len(ids) and offsets[t][0] < span.start:
            merged += 1
        # The turn's text.
        while t < len(ids) and offsets[t][0] < span.content_end:
            labels[t] = ids[t]
            decision[t] = offsets[t][0] < marker_end
            t += 1
        # Then up to and including the first special token (the end-of-turn marker); without
        # one, up to the end of what the template writes for the turn.
        while t < len(ids) and offsets[t][0] < span.end:
            labels[t] = ids[t]
            t += 1
            if ids[t - 1] in specials:
                break
    return Encoded(ids, labels, len(spans), merged, decision)


def _marker_chars(content: str) -> int:
    """Length of the decision marker that opens an assistant turn's text (0 if it has none)."""
    for prefix in (SPEAK_PREFIX, SILENT_PREFIX):
        if content.startswith(prefix):
            return len(prefix)
    return 0


def _ends_before(offset: tuple[int, int], pos: int) -> bool:
    start, end = offset
    if start == end:  # a zero-width token belongs where it starts
        return start < pos
    return end <= pos
