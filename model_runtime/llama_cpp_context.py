"""One llama.cpp context seen as a token sequence that is extended, rewound, saved and restored.

The runtime keeps the live channel in sequence 0 of the context and the other channels
as saved snapshots; this class knows which tokens the context holds, so that each call
evaluates only the tokens past the longest common prefix.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp
import numpy as np

from model_runtime.interface import RuntimeError_
from model_runtime.template import common_prefix

_SEQ = 0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from a row of logits, computed in float64."""
    row = logits.astype(np.float64)
    peak = row.max()
    return row - (peak + np.log(np.exp(row - peak).sum()))


def _chunks(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Split [start, end) into batches of at most ``size``, none of them a single token if avoidable."""
    bounds = list(range(start, end, size)) + [end]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds[-2] -= 1
    return list(zip(bounds[:-1], bounds[1:], strict=False))


class LlamaSequence:
    """The tokens held by sequence 0 of a llama.cpp context, and the operations on it."""

    def __init__(self, llm: llama_cpp.Llama, n_batch: int) -> None:
        self.llm = llm
        self.ctx = llm.ctx
        self.n_ctx = llm.n_ctx()
        self.n_vocab = llm.n_vocab()
        self.n_batch = n_batch
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.tokens: list[int] = []
        self.batched = 0  # leading tokens evaluated in batches of two or more
        self.evaluated = 0  # tokens decoded since the counter was last reset
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)

    def close(self) -> None:
        """Free the batch (the context belongs to the Llama object)."""
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def is_end(self, token: int) -> bool:
        """Whether ``token`` ends a turn (end-of-generation token)."""
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def clear(self) -> None:
        """Empty the context."""
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), False)
        self.tokens = []
        self.batched = 0

    def sync(self, target: Sequence[int], want_from: int) -> np.ndarray:
        """Make the context hold exactly ``target``; return the logits rows for positions >= ``want_from``.

        Tokens already held (the common prefix) are not evaluated again, except from
        ``want_from`` on (logits are not kept between calls) and except tokens that
        ``step`` evaluated one at a time: llama.cpp computes a one-token batch with other
        kernels than a longer one, so re-evaluating them in a batch makes a cached
        decision give exactly the p_speak that evaluating the whole prompt at once gives.
        """
        if len(target) > self.n_ctx:
            raise RuntimeError_(f"{len(target)} tokens do not fit the context of {self.n_ctx}")
        want_from = max(0, min(want_from, len(target) - 1))
        keep = min(common_prefix(self.tokens, target), want_from, self.batched)
        if len(target) - keep == 1 and keep > 0:
            keep -= 1  # never a one-token batch (see above)
        keep = self.truncate(keep)
        rows: list[np.ndarray] = []
        for start, end in _chunks(keep, len(target), self.n_batch):
            self._decode(target[start:end], start, want_from)
            rows.extend(self._logits(j) for j, pos in enumerate(range(start, end)) if pos >= want_from)
        self.batched = len(self.tokens)
        return np.stack(rows) if rows else np.empty((0, self.n_vocab), dtype=np.float32)

    def step(self, token: int) -> np.ndarray:
        """Append one generated token and return the logits after it (fast, one-token batch)."""
        start = len(self.tokens)
        self._decode([token], start, start)
        return self._logits(0)

    def truncate(self, keep: int) -> int:
        """Drop the tokens from position ``keep`` on; returns how many are kept (0 if llama.cpp refused)."""
        if keep < len(self.tokens):
            if not llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), _SEQ, keep, -1):
                self.clear()
                return 0
            del self.tokens[keep:]
        self.batched = min(self.batched, keep)
        return len(self.tokens)

    def _logits(self, j: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, j)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _decode(self, chunk: Sequence[int], start: int, want_from: int) -> None:
        batch = self._batch
        batch.n_tokens = len(chunk)
        for j, tok in enumerate(chunk):
            batch.token[j] = tok
            batch.pos[j] = start + j
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = _SEQ
            batch.logits[j] = start + j >= want_from
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            # The context's contents are now unknown: start over on the next call.
            self.clear()
            raise RuntimeError_(f"llama_decode failed with code {rc}")
        self.tokens.extend(chunk)
        self.evaluated += len(chunk)

    def save(self) -> ctypes.Array:
        """A snapshot of the sequence's KV cache (no logits)."""
        size = llama_cpp.llama_state_seq_get_size(self.ctx, _SEQ)
        blob = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.ctx, blob, size, _SEQ)
        if written != size:
            raise RuntimeError_(f"saving the sequence state wrote {written} of {size} bytes")
        return blob

    def restore(self, tokens: list[int], blob: ctypes.Array) -> bool:
        """Load a snapshot taken by ``save`` into the (cleared) context; False if llama.cpp refused it."""
        self.clear()
        if llama_cpp.llama_state_seq_set_data(self.ctx, blob, len(blob), _SEQ) == 0:
            self.clear()
            return False
        self.tokens = list(tokens)
        self.batched = len(tokens)
        return True
