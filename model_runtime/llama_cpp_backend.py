"""LlamaCppRuntime: a GGUF model (default: the bundled SmolLM2) plus an optional LoRA, on the CPU.

One model and one context serve every channel. The live channel's tokens sit in the
context; when another channel speaks, the live one is snapshotted into an LRU of channel
states (``cache_budget_mb``) and the other's snapshot is restored, so that a decision
evaluates only the tokens the channel's state lacks: the new message and the decision.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from model_runtime.channel_states import ChannelStates, SavedState
from model_runtime.gguf_meta import read_metadata
from model_runtime.interface import RuntimeError_, Timings
from model_runtime.llama_cpp_context import LlamaSequence, log_softmax
from model_runtime.llama_load import install as install_llama_log
from model_runtime.llama_load import load_llama, safe_model_defaults
from model_runtime.options import LlamaCppOptions
from model_runtime.preflight import llama_cpp_files, prompt_budget
from model_runtime.prompt_runtime import PromptRuntime
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, p_speak_from_logprobs
from model_runtime.template import (
    GENERATION_PREFILL,
    DecisionTokens,
    Prompt,
    PromptBuilder,
    common_prefix,
    continuation_tokens,
)

log = logging.getLogger(__name__)


class VocabCounter:
    """``count_tokens`` with only the model's vocabulary loaded: for a process that does not run the model."""

    def __init__(self, model_path: Path) -> None:
        read_metadata(model_path)  # a missing or broken file fails here, named
        install_llama_log()  # llama.cpp's log into chime's log
        params = safe_model_defaults()  # no extra buffer types, as every load
        params.vocab_only = True
        self._model = llama_cpp.llama_model_load_from_file(str(model_path).encode("utf-8"), params)
        if not self._model:
            raise RuntimeError_(f"llama.cpp could not load the vocabulary of {model_path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)

    def __call__(self, text: str) -> int:
        """Tokens ``text`` takes, exactly as LlamaCppRuntime.count_tokens counts them."""
        data = text.encode("utf-8")
        room = len(data) + 8
        while True:
            buf = (llama_cpp.llama_token * room)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, room, False, False)
            if n >= 0:
                return n
            room = -n  # too small: llama.cpp says how many are needed

    def close(self) -> None:
        """Free the vocabulary."""
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None


class LlamaCppRuntime(PromptRuntime):
    """Scores and replies with llama.cpp, caching each channel's evaluated tokens."""

    name = "llama_cpp"

    def __init__(self, options: LlamaCppOptions, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        super().__init__(assistant_name)
        self.options = options
        # The same checks as `chime config check`: a missing or broken file fails here, named.
        self.model_path, _, self.adapter, self.template = llama_cpp_files(options)
        self._llm = self._load()
        self._seq = LlamaSequence(self._llm, self._llm.n_batch)
        vocab = self._seq.vocab
        bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        budget = prompt_budget(self._seq.n_ctx, options.max_tokens)
        self._builder = PromptBuilder(
            self.template, self._tokenize, budget, prompted=options.prompt_style == "prompted", bos_id=bos
        )
        self._states: ChannelStates = ChannelStates(options.cache_budget_mb * 1024 * 1024)
        self._active: str | None = None
        self._rng = np.random.default_rng(options.seed)

    def _load(self) -> llama_cpp.Llama:
        opts = self.options
        threads = opts.n_threads or os.cpu_count() or 1
        try:
            return load_llama(
                str(self.model_path),
                n_ctx=opts.n_ctx,
                n_batch=opts.n_batch,
                n_ubatch=opts.n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                seed=opts.seed,
                lora_path=str(self.adapter.path) if self.adapter.path else None,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            culprit = self.adapter.path if "lora" in str(exc).lower() else self.model_path
            raise RuntimeError_(f"llama.cpp could not load {culprit}: {exc}") from exc

    @property
    def model_id(self) -> str:
        """Base model file name, plus the adapter file's when one is loaded."""
        adapter = f"+{self.adapter.path.parent.name}/{self.adapter.path.name}" if self.adapter.path else ""
        return f"llama_cpp:{self.model_path.name}{adapter}"

    @property
    def base_threshold(self) -> float:
        """options.threshold, else the adapter's recommended threshold, else 0.5."""
        if self.options.threshold is not None:
            return self.options.threshold
        return self.adapter.threshold if self.adapter.threshold is not None else 0.5

    @property
    def cached_channels(self) -> int:
        """Channels whose state is saved (the live one not counted)."""
        return len(self._states)

    def _tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes, with the model's tokenizer."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _drop_state(self, channel: str) -> None:
        """Drop the channel's saved or live state."""
        self._states.drop(channel)
        if self._active == channel:
            self._seq.clear()
            self._active = None

    def _after_failure(self) -> None:
        # Whatever the context holds now is not trustworthy.
        self._seq.clear()
        self._active = None

    def close(self) -> None:
        """Free the model, the context and the worker thread."""
        super().close()
        with self._lock:
            self._seq.close()
            self._llm.close()

    def _p_speak(self, channel: str, prompt: Prompt) -> tuple[float, Timings]:
        """Score "(response" against "(silence" on the channel's cached state."""
        cached = self._prepare(channel, prompt)
        p_speak = self._score(prompt.decision)
        return p_speak, Timings(tokens_evaluated=self._seq.evaluated, tokens_cached=cached)

    def _generate(self, channel: str, prompt: Prompt) -> tuple[str, Timings]:
        """Prefill "(response)" on the channel's cached state and generate."""
        cached = self._prepare(channel, prompt)
        text, generated = self._continue(prompt.text, prompt.all_tokens)
        return text, Timings(tokens_evaluated=self._seq.evaluated, tokens_cached=cached, tokens_generated=generated)

    def _prepare(self, channel: str, prompt: Prompt) -> int:
        """Make the channel live and count from zero; returns how many prompt tokens are cached."""
        self._activate(channel)
        self._seq.evaluated = 0
        return min(len(prompt.tokens), common_prefix(self._seq.tokens, prompt.tokens))

    def _activate(self, channel: str) -> None:
        """Make ``channel``'s state the live one, snapshotting the previous channel's."""
        if self._active == channel:
            return
        saved = self._states.pop(channel)  # before saving the live one, so it cannot be evicted by it
        if self._active is not None and self._seq.tokens and self._states.budget_bytes > 0:
            # A tail from one-token batches (a reply) is re-evaluated anyway: don't keep it.
            self._seq.truncate(self._seq.batched)
            self._states.put(self._active, SavedState(list(self._seq.tokens), self._seq.save()))
        self._seq.clear()
        self._active = channel
        if saved is not None and not self._seq.restore(saved.tokens, saved.blob):
            log.warning("channel %s: saved state rejected by llama.cpp, evaluating from scratch", channel)

    def _score(self, decision: DecisionTokens) -> float:
        """p_speak from the logits after the prompt, evaluating only what the context lacks."""
        prompt = list(decision.prompt)
        rows: dict[tuple[int, ...], np.ndarray] = {}
        for branch, first, last in decision.plan():
            got = self._seq.sync(prompt + list(branch[:last]), want_from=len(prompt) + first - 1)
            for k, row in enumerate(got):
                rows[branch[: first + k]] = log_softmax(row)
        lp_speak, lp_silent = decision.logprobs(lambda prefix, tok: float(rows[prefix][tok]))
        return p_speak_from_logprobs(lp_speak, lp_silent)

    def _continue(self, prompt_text: str, prompt_tokens: Sequence[int]) -> tuple[str, int]:
        """Prefill "(response)" and generate to the end of the turn or max_tokens."""
        drop, prefill = continuation_tokens(self._tokenize, prompt_text, GENERATION_PREFILL)
        target = list(prompt_tokens[: len(prompt_tokens) - drop]) + prefill
        logits = self._seq.sync(target, want_from=len(target) - 1)[-1]
        out: list[int] = []
        while len(out) < self.options.max_tokens:
            token = self._pick(logits)
            if self._seq.is_end(token):
                if out:
                    break
                # A reply is wanted (often forced): an empty turn is no reply, so take the
                # best token that does not end it.
                logits = logits.copy()
                logits[token] = -np.inf
                continue
            out.append(token)
            if len(out) < self.options.max_tokens:
                logits = self._seq.step(token)
        text = self._llm.detokenize(out, prev_tokens=target).decode("utf-8", errors="replace")
        return text, len(out)

    def _pick(self, logits: np.ndarray) -> int:
        if self.options.temperature <= 0:
            return int(np.argmax(logits))
        probs = np.exp(log_softmax(logits / self.options.temperature))
        return int(self._rng.choice(len(probs), p=probs / probs.sum()))
