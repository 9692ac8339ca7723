"""Render chime prompts with the model's own chat template, and the token logic of a decision.

Shared by every backend (and importable by training) so that llama.cpp, transformers and
a server all see the same prompt text and score the same continuation tokens. Imports
nothing heavy: the tokenizer is passed in as a function.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from model_runtime.gguf_meta import special_token_texts, token_text
from model_runtime.interface import RuntimeError_
from model_runtime.protocol import RESPONSE, SILENT_PREFIX, SPEAK_PREFIX, Turn, cap_text, to_chat_messages

log = logging.getLogger(__name__)

Tokenize = Callable[[str], list[int]]

# Put after the assistant header before generating. Without the protocol's trailing
# space: in "(response) Hello" the space belongs to the token " Hello", so prefilling a
# lone " " token would show the model a tokenisation it never saw in training.
GENERATION_PREFILL = RESPONSE
# Characters of the prompt's end re-tokenised with each continuation (BPE merges are local).
_TAIL_CHARS = 64


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


class ChatTemplate:
    """A Jinja chat template (from GGUF metadata or a tokenizer) rendered as transformers does."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "", special_tokens: Sequence[str] = ()):
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now(UTC).strftime(fmt)
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise RuntimeError_(f"chat template does not compile: {exc}") from exc
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Longest first, so that "<|im_end|>" is not half-escaped by a shorter token.
        self.special_tokens = sorted({t for t in special_tokens if len(t) > 1}, key=len, reverse=True)

    @classmethod
    def from_gguf_metadata(cls, meta: dict[str, Any], origin: str) -> ChatTemplate:
        """The template stored in a GGUF file's metadata; RuntimeError_ naming ``origin`` if there is none."""
        source = meta.get("tokenizer.chat_template")
        if not source:
            raise RuntimeError_(f"no chat template (tokenizer.chat_template) in {origin}")
        return cls(
            source,
            bos_token=token_text(meta, "tokenizer.ggml.bos_token_id"),
            eos_token=token_text(meta, "tokenizer.ggml.eos_token_id"),
            special_tokens=special_token_texts(meta),
        )

    def escape(self, text: str) -> str:
        """Break up special-token text (``<|im_end|>``) inside a message so it cannot end the turn."""
        for tok in self.special_tokens:
            if tok in text:
                text = text.replace(tok, tok[0] + " " + tok[1:])
        return text

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt text for chat messages whose contents are already escaped."""
        return self._template.render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )

    def render_turns(self, turns: Sequence[Turn], *, prompted: bool = False, for_decision: bool = True) -> str:
        """Protocol messages for ``turns``, escaped and rendered (a decision prompt ends on the assistant header)."""
        messages = to_chat_messages(turns, for_decision=for_decision, prompted=prompted)
        escaped = [{"role": m["role"], "content": self.escape(m["content"])} for m in messages]
        return self.render(escaped, add_generation_prompt=for_decision)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def continuation_tokens(tokenize: Tokenize, prompt_text: str, suffix: str) -> tuple[int, list[int]]:
    """(prompt tokens to drop, tokens that follow) when ``suffix`` is appended to ``prompt_text``.

    Usually (0, tokens of the suffix in context); a BPE merge across the boundary makes the
    first number positive.
    """
    tail = prompt_text[-_TAIL_CHARS:]
    before = tokenize(tail)
    after = tokenize(tail + suffix)
    n = common_prefix(before, after)
    return len(before) - n, after[n:]


@dataclass(frozen=True)
class DecisionTokens:
    """The prompt's tokens and the two continuations whose probabilities make the decision."""

    prompt: tuple[int, ...]
    speak: tuple[int, ...]
    silent: tuple[int, ...]
    # Prompt tokens that merged with the continuations (BPE across the boundary); usually 0.
    merged: int = 0

    @property
    def shared(self) -> int:
        """How many leading tokens the two continuations share (they cancel out of p_speak)."""
        return common_prefix(self.speak, self.silent)

    def queries(self) -> list[tuple[int, ...]]:
        """Continuation prefixes after which the next token's log-probability is needed."""
        out: list[tuple[int, ...]] = []
        for seq in (self.speak, self.silent):
            for i in range(self.shared, len(seq)):
                if seq[:i] not in out:
                    out.append(seq[:i])
        return out

    def plan(self) -> list[tuple[tuple[int, ...], int, int]]:
        """Evaluations that answer every query: (branch, first, last) means evaluate prompt + branch[:last]
        and read the logits after branch[:first] ... branch[:last].

        The silent branch comes first: it usually answers every query in one pass (its
        prefixes include the shared head), and a cache left on it matches the next window,
        which most often continues with "(silence)".
        """
        queries = self.queries()
        done: set[tuple[int, ...]] = set()
        plan: list[tuple[tuple[int, ...], int, int]] = []
        for branch in (self.silent, self.speak):
            need = [len(q) for q in queries if branch[: len(q)] == q and q not in done]
            if need:
                first, last = min(need), max(need)
                plan.append((branch, first, last))
                done.update(branch[:k] for k in range(first, last + 1))
        return plan

    def logprobs(self, lookup: Callable[[tuple[int, ...], int], float]) -> tuple[float, float]:
        """(log P(speak), log P(silent)) up to the shared head, from ``lookup(prefix, token)``."""
        speak = sum(lookup(self.speak[:i], self.speak[i]) for i in range(self.shared, len(self.speak)))
        silent = sum(lookup(self.silent[:i], self.silent[i]) for i in range(self.shared, len(self.silent)))
        return speak, silent


def decision_tokens(tokenize: Tokenize, prompt_text: str, prompt_tokens: Sequence[int]) -> DecisionTokens:
    """Split prompt + "(response" / prompt + "(silence" into a shared prompt and two continuations."""
    drop_a, speak = continuation_tokens(tokenize, prompt_text, SPEAK_PREFIX)
    drop_b, silent = continuation_tokens(tokenize, prompt_text, SILENT_PREFIX)
    drop = max(drop_a, drop_b)
    if drop:
        # The boundary merged: score the merged tokens as part of both continuations.
        head = list(prompt_tokens[len(prompt_tokens) - drop :])
        speak = head[: drop - drop_a] + speak
        silent = head[: drop - drop_b] + silent
    if not speak or not silent or speak == silent:
        raise RuntimeError_("the tokenizer does not tell '(response' from '(silence'")
    return DecisionTokens(tuple(prompt_tokens[: len(prompt_tokens) - drop]), tuple(speak), tuple(silent), drop)


@dataclass(frozen=True)
class Prompt:
    """A decision prompt: the turns kept, the text, its tokens, and the decision's continuations."""

    turns: tuple[Turn, ...]
    text: str
    all_tokens: tuple[int, ...]  # the tokens of ``text`` (with BOS if the model wants one)
    decision: DecisionTokens

    @property
    def tokens(self) -> tuple[int, ...]:
        """The tokens to evaluate before scoring the continuations."""
        return self.decision.prompt


class PieceTokenizer:
    """Tokenizes a rendered prompt piece by piece between special tokens, remembering each piece's tokens.

    A prompt is rendered and tokenized at every message, and from one message to the next
    it differs only at its end. Tokenizers cut the text at special tokens before anything
    else (llama.cpp and Hugging Face alike), so the pieces between them tokenize on their
    own to the same tokens. The first ``checks`` prompts are also tokenized whole and
    compared: a tokenizer that does not cut so (one adding a space after each special
    token) turns the cache off.
    """

    def __init__(self, tokenize: Tokenize, special_tokens: Sequence[str], size: int = 8192, checks: int = 16):
        self._tokenize = tokenize
        ordered = sorted({t for t in special_tokens if t}, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, ordered)) + ")") if ordered else None
        self._pieces: OrderedDict[str, list[int]] = OrderedDict()
        self._size = size
        self._checks = checks
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[int]:
        """The tokens of ``text`` (special tokens parsed, no BOS added)."""
        if self._split is None or self._checks < 0:
            return self._tokenize(text)
        tokens: list[int] = []
        for piece in self._split.split(text):
            if piece:
                tokens += self._piece(piece)
        if self._checks > 0:
            whole = self._tokenize(text)
            with self._lock:
                self._checks = self._checks - 1 if whole == tokens else -1
            if whole != tokens:
                log.info("the tokenizer joins text across special tokens: prompts are tokenized whole")
                self.clear()
                return whole
        return tokens

    def clear(self) -> None:
        """Forget every remembered piece (after a deletion: the text must not stay in memory)."""
        with self._lock:
            self._pieces.clear()

    def _piece(self, piece: str) -> list[int]:
        with self._lock:
            known = self._pieces.get(piece)
            if known is not None:
                self._pieces.move_to_end(piece)
                return known
        tokens = self._tokenize(piece)
        with self._lock:
            self._pieces[piece] = tokens
            if len(self._pieces) > self._size:
                self._pieces.popitem(last=False)
        return tokens


class PromptBuilder:
    """Renders a window, trimming it oldest-first to a token budget, with a start that stays put."""

    def __init__(
        self,
        template: ChatTemplate,
        tokenize: Tokenize,
        budget: int,
        prompted: bool = False,
        bos_id: int | None = None,
    ) -> None:
        self.template = template
        self.tokenize = tokenize  # text -> tokens, special tokens parsed, no BOS added
        self._prompt_tokens = PieceTokenizer(tokenize, template.special_tokens)
        self.budget = budget
        self.prompted = prompted
        # Prepended when the model wants a BOS and the template did not write one.
        self.bos_id = bos_id
        # Per channel, the first turn kept by the last trim: reusing it keeps the prompt's
        # start (and so the cached state) stable until it no longer fits.
        self._anchors: dict[str, Turn] = {}

    def forget(self, channel: str) -> None:
        """Drop the channel's trimming anchor, and the remembered tokens of every prompt piece."""
        self._anchors.pop(channel, None)
        self._prompt_tokens.clear()

    def build(self, channel: str, window: Sequence[Turn]) -> Prompt:
        """The decision prompt for ``window`` within the budget; never fails on length."""
        turns = list(window)
        if not turns or turns[-1].role != "user":
            raise ValueError("a decision window must end with a human turn")
        text, tokens = self._encode(turns)
        if len(tokens) > self.budget:
            turns = self._trim(channel, turns)
            text, tokens = self._encode(turns)
        return Prompt(tuple(turns), text, tuple(tokens), decision_tokens(self.tokenize, text, tokens))

    def _encode(self, turns: Sequence[Turn]) -> tuple[str, list[int]]:
        text = self.template.render_turns(turns, prompted=self.prompted)
        tokens = self._prompt_tokens(text)
        if self.bos_id is not None and tokens[:1] != [self.bos_id]:
            tokens.insert(0, self.bos_id)
        return text, tokens

    def _fits(self, turns: Sequence[Turn], budget: int) -> bool:
        return len(self._encode(turns)[1]) <= budget

    def _trim(self, channel: str, turns: list[Turn]) -> list[Turn]:
        anchor = self._anchors.get(channel)
        if anchor is not None and anchor in turns:
            start = turns.index(anchor)
            if start < len(turns) and self._fits(turns[start:], self.budget):
                return turns[start:]
        # Trim to three quarters of the budget so that the next messages fit without a new trim.
        target = self.budget * 3 // 4
        lo, hi = 0, len(turns) - 1  # smallest start whose suffix fits; the last turn is always kept
        while lo < hi:
            mid = (lo + hi) // 2
            if self._fits(turns[mid:], target):
                hi = mid
            else:
                lo = mid + 1
        kept = turns[lo:]
        if not self._fits(kept, self.budget):
            kept = [self._shorten(kept[-1])]
        log.debug("channel %s: window trimmed from %d to %d turns", channel, len(turns), len(kept))
        self._anchors[channel] = kept[0]
        return kept

    def _shorten(self, turn: Turn) -> Turn:
        """Cut one over-long message until it fits the budget on its own."""
        content = turn.content
        while len(content) > 1:
            content = cap_text(content, len(content) // 2)
            shorter = Turn(role=turn.role, name=turn.name, content=content)
            if self._fits([shorter], self.budget):
                return shorter
        raise RuntimeError_(f"the context ({self.budget} tokens) cannot hold even an empty message")
