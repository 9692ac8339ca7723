"""OpenAICompatRuntime: decisions and replies from an OpenAI-compatible server (vLLM, llama.cpp server).

chime renders the prompt locally with the model's own template and tokenizer (so the
server sees exactly what a local backend would), asks ``/v1/completions`` for the top
log-probabilities after "(" and at the few tokens the model goes on with (temperature 0),
combines them into p_speak, and asks again with "(response)" appended to generate the
reply. A silent turn takes one request; a turn whose model leans to speaking, two round
trips. The server's prompt cache makes the follow-up requests cheap.

Calls for different channels run at once, up to ``max_concurrency`` (the service's
per-channel scheduler keeps each channel's calls one at a time, in order): nothing here
is held across a request (a transformers tokenizer is used by one thread at a time).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_runtime.gguf_meta import read_metadata
from model_runtime.interface import RuntimeError_, Timings
from model_runtime.json_http import JsonHttp
from model_runtime.openai_chat import server_root
from model_runtime.options import OpenAICompatOptions
from model_runtime.preflight import api_key, template_source
from model_runtime.prompt_runtime import PromptRuntime
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, p_speak_from_logprobs
from model_runtime.template import GENERATION_PREFILL, ChatTemplate, Prompt, PromptBuilder

log = logging.getLogger(__name__)

_DECISION_RESERVE = 16


class _GgufTokenizer:
    """Tokenizer and template from a GGUF file (llama.cpp, vocabulary only)."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        from model_runtime.llama_load import load_llama

        self.template = ChatTemplate.from_gguf_metadata(read_metadata(path), str(path))
        try:
            self._llm = load_llama(str(path), vocab_only=True, n_ctx=256)
        except (ValueError, RuntimeError) as exc:
            raise RuntimeError_(f"llama.cpp could not read the vocabulary of {path}: {exc}") from exc
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.bos_id = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None

    # No lock: a vocabulary is read-only once loaded (llama.cpp's own server tokenizes from
    # its HTTP threads at once), and the calls release the GIL, so channels tokenize in parallel.
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def piece(self, token: int, prev: Sequence[int]) -> str:
        return self._llm.detokenize([token], prev_tokens=list(prev)).decode("utf-8", errors="replace")


class _HfTokenizer:
    """Tokenizer and template from a transformers tokenizer directory."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoTokenizer

        try:
            self._tok = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise RuntimeError_(f"could not load a tokenizer from {path}: {exc}") from exc
        tok = self._tok
        if not tok.chat_template:
            raise RuntimeError_(f"the tokenizer in {path} has no chat template")
        self.template = ChatTemplate(
            tok.chat_template, tok.bos_token or "", tok.eos_token or "", tok.all_special_tokens
        )
        with_special = tok("x", add_special_tokens=True)["input_ids"]
        self.bos_id = tok.bos_token_id if with_special[:1] == [tok.bos_token_id] else None
        # A fast tokenizer used from two threads at once can fail ("Already borrowed").
        self._lock = threading.Lock()

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        with self._lock:
            return list(self._tok(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"])

    def piece(self, token: int, prev: Sequence[int]) -> str:
        with self._lock:
            return self._tok.decode([token])


class OpenAICompatRuntime(PromptRuntime):
    """Scores and replies through a server's ``/v1/completions`` endpoint."""

    name = "openai"

    def __init__(self, options: OpenAICompatOptions, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        super().__init__(assistant_name)
        self.options = options
        source = template_source(options)
        self._tok = _HfTokenizer(source) if source.is_dir() else _GgufTokenizer(source)
        self.template = self._tok.template
        budget = options.max_context - options.max_tokens - _DECISION_RESERVE
        self._builder = PromptBuilder(
            self.template, self._tok.tokenize, budget, prompted=options.prompt_style == "prompted", bos_id=None
        )
        headers = {}
        key = api_key(options)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.concurrency = options.max_concurrency
        # A keep-alive connection per thread that sends (the calls' threads and the request threads).
        self._http = JsonHttp(server_root(options.base_url), headers, options.timeout_s)
        # Sends a decision's scoring requests together (separate from the calls' own threads).
        self._requests = concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * self.concurrency, thread_name_prefix="chime-openai-request"
        )
        self._count_lock = threading.Lock()
        self.requests = 0  # completions requests sent, for tests and logs
        self._warned_top_k = False

    @property
    def model_id(self) -> str:
        """The served model name and the server's address."""
        return f"openai:{self.options.model}@{self.options.base_url}"

    @property
    def base_threshold(self) -> float:
        """options.threshold, else 0.5 (the server holds the adapter, not its meta.json)."""
        return self.options.threshold if self.options.threshold is not None else 0.5

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes, with the model's tokenizer."""
        return len(self._tok.tokenize(text, special=False))

    def close(self) -> None:
        """Close the HTTP client and the worker threads."""
        super().close()
        self._requests.shutdown(wait=True)
        self._http.close()

    def _exclusive(self) -> contextlib.AbstractContextManager[object]:
        """Nothing: the server takes calls for several channels at once."""
        return contextlib.nullcontext()

    def _p_speak(self, channel: str, prompt: Prompt) -> tuple[float, Timings]:
        """p_speak from the server's top log-probabilities (the server owns its own cache)."""
        if prompt.decision.merged:
            # Prompts are sent as text, so the continuations must start on a token boundary.
            raise RuntimeError_("the chat template's generation prompt merges with '(response'; use a local backend")
        return self._score(prompt), Timings()

    def _generate(self, channel: str, prompt: Prompt) -> tuple[str, Timings]:
        """Prefill "(response)" and let the server generate to the end of the turn or max_tokens."""
        choice = self._complete(prompt.text + GENERATION_PREFILL, self.options.max_tokens, None)
        text = choice.get("text") or ""
        generated = len(self._tok.tokenize(text, special=False)) if text else 0
        return text, Timings(tokens_generated=generated)

    def _complete(self, prompt: str, max_tokens: int, logprobs: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.options.model, "prompt": prompt, "max_tokens": max_tokens}
        body["temperature"] = 0.0
        if logprobs is not None:
            body["logprobs"] = logprobs
        with self._count_lock:
            self.requests += 1
        status, payload = self._http.post("/v1/completions", body)
        if status != 200:
            text = payload.decode("utf-8", errors="replace")
            raise RuntimeError_(f"{self.options.base_url} answered {status}: {text[:300]}")
        return json.loads(payload)["choices"][0]

    def _score(self, prompt: Prompt) -> float:
        """p_speak from top log-probabilities, in one request when the model's own next tokens cover the rest.

        The shortest continuation prefix (usually "(") is appended to the prompt and the
        server generates as many tokens as the longest prefix still needs, greedily, with the
        top log-probabilities at each position: position i holds the distribution after the
        first i generated tokens. When the model goes on as one branch does ("sil" after
        "(", the common silent turn), that branch's later prefixes are answered by the same
        request; the prefixes it did not cover are asked for together in a second round trip.
        """
        decision = prompt.decision
        prefixes = sorted(decision.queries(), key=len)
        base = prefixes[0]
        reach = max(len(p) for p in prefixes) - len(base) + 1
        head = list(decision.prompt)
        tables: dict[tuple[int, ...], dict[str, float]] = {}
        k = self.options.top_logprobs
        first = self._complete(self._text(prompt, head, base), reach, k)
        self._read_positions(tables, head, prefixes, base, first)
        missing = [p for p in prefixes if p not in tables]
        # The prefixes left do not depend on each other's answers: one more round trip, not one each.
        choices = list(self._requests.map(lambda p: self._complete(self._text(prompt, head, p), 1, k), missing))
        for prefix, choice in zip(missing, choices, strict=True):
            self._read_positions(tables, head, [prefix], prefix, choice)

        def lookup(prefix: tuple[int, ...], token: int) -> float:
            table = tables[prefix]
            piece = self._tok.piece(token, list(decision.prompt) + list(prefix))
            if piece in table:
                return float(table[piece])
            # Outside the top k: at most the k-th value, which is what we use.
            if not self._warned_top_k:
                self._warned_top_k = True
                log.warning(
                    "decision token %r is not among the server's top %d log-probabilities; p_speak is approximate "
                    "(raise runtime.top_logprobs, and the server's limit, e.g. vLLM --max-logprobs)",
                    piece,
                    len(table),
                )
            return float(min(table.values()))

        return p_speak_from_logprobs(*decision.logprobs(lookup))

    def _text(self, prompt: Prompt, head: list[int], prefix: tuple[int, ...]) -> str:
        """The prompt's text followed by the continuation prefix's tokens as text (``head``: the prompt's tokens)."""
        return prompt.text + "".join(self._tok.piece(tok, head + list(prefix[:i])) for i, tok in enumerate(prefix))

    def _read_positions(
        self,
        tables: dict[tuple[int, ...], dict[str, float]],
        head: list[int],
        prefixes: Sequence[tuple[int, ...]],
        sent: tuple[int, ...],
        choice: dict[str, Any],
    ) -> None:
        """File each generated position's top log-probabilities under the prefix it answers.

        Position i answers ``sent`` plus the first i generated tokens (``head``: the prompt's
        tokens, for reading tokens as text); a prefix is answered when its tokens after
        ``sent`` read as the generated ones (compared as text, as the server names tokens).
        A server that stopped early answers fewer positions: the rest are asked for again.
        """
        logprobs = choice.get("logprobs") or {}
        top = logprobs.get("top_logprobs") or [None]
        if not top[0]:
            raise RuntimeError_(f"{self.options.base_url} returned no top_logprobs (does it support logprobs?)")
        generated = list(logprobs.get("tokens") or [])
        for prefix in prefixes:
            extra = prefix[len(sent) :]
            if prefix[: len(sent)] != sent or len(extra) >= len(top) or not top[len(extra)]:
                continue
            pieces = [self._tok.piece(tok, head + list(prefix[: len(sent) + i])) for i, tok in enumerate(extra)]
            if pieces == generated[: len(extra)]:
                tables[prefix] = top[len(extra)]
