"""p_speak of decision prompts under transformers (+ peft) and under llama.cpp (+ GGUF LoRA), token for token.

Both sides get the same token ids (from the transformers tokenizer) and score the same
continuations with the runtime's own ``decision_tokens``, so any difference is numeric:
the quantised matmuls of llama.cpp against the dequantised float weights of transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from model_runtime.protocol import p_speak_from_logprobs
from model_runtime.template import DecisionTokens, decision_tokens
from training.fit.dataset import Messages
from training.fit.labels import render

# logits for every position of a token sequence, shape (len(tokens), vocab)
Evaluate = Callable[[list[int]], np.ndarray]


def decision_points(tokenizer: Any, conversations: Sequence[Messages], limit: int) -> list[DecisionTokens]:
    """Decision prompts at the human turns of the conversations (up to ``limit``), tokenised."""

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    out: list[DecisionTokens] = []
    for msgs in conversations:
        for i, m in enumerate(msgs):
            if m["role"] != "user":
                continue
            text = render(tokenizer, msgs[: i + 1], generation_prompt=True)
            out.append(decision_tokens(tokenize, text, tokenize(text)))
            if len(out) >= limit:
                return out
    return out


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    m = row.max()
    return row - m - np.log(np.exp(row - m).sum())


def p_speak(decision: DecisionTokens, evaluate: Evaluate) -> float:
    """P(speak) for one decision, evaluating prompt + each continuation."""
    prompt = list(decision.prompt)
    rows: dict[tuple[int, ...], np.ndarray] = {}
    for branch in (decision.speak, decision.silent):
        logits = evaluate(prompt + list(branch))
        for k in range(len(branch)):
            rows[tuple(branch[:k])] = _log_softmax(logits[len(prompt) - 1 + k])
    speak, silent = decision.logprobs(lambda prefix, tok: float(rows[prefix][tok]))
    return p_speak_from_logprobs(speak, silent)


def transformers_evaluator(model: Any) -> Evaluate:
    """Logits from a transformers (or peft) causal LM, in float32."""
    import torch

    device = next(model.parameters()).device

    @torch.no_grad()
    def evaluate(tokens: list[int]) -> np.ndarray:
        ids = torch.tensor([tokens], device=device)
        return model(input_ids=ids, use_cache=False).logits[0].float().cpu().numpy()

    return evaluate


def llama_cpp_evaluator(model_path: str, lora_path: str | None, n_ctx: int = 2048, threads: int = 1) -> Evaluate:
    """Logits from llama.cpp with an optional GGUF LoRA adapter."""
    from model_runtime.llama_load import load_llama

    llm = load_llama(
        model_path, lora_path=lora_path, n_ctx=n_ctx, logits_all=True, n_threads=threads, n_threads_batch=threads
    )

    def evaluate(tokens: list[int]) -> np.ndarray:
        llm.reset()
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)

    return evaluate


def compare(decisions: Sequence[DecisionTokens], a: Evaluate, b: Evaluate) -> list[tuple[float, float]]:
    """(p_speak under a, p_speak under b) for each decision."""
    return [(p_speak(d, a), p_speak(d, b)) for d in decisions]
