"""TransformersRuntime: a Hugging Face model (id, local path or GGUF file) plus a peft adapter.

4-bit NF4 through bitsandbytes when CUDA is present (full precision otherwise). p_speak
comes from one forward pass over the prompt and the silent continuation, whose prefixes
also answer the speak continuation's queries when the two share their first token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from model_runtime.interface import RuntimeError_, Timings
from model_runtime.options import TransformersOptions
from model_runtime.prompt_runtime import PromptRuntime
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, p_speak_from_logprobs
from model_runtime.template import (
    GENERATION_PREFILL,
    ChatTemplate,
    DecisionTokens,
    Prompt,
    PromptBuilder,
    continuation_tokens,
)

log = logging.getLogger(__name__)

_DECISION_RESERVE = 16
# End-of-turn tokens of common chat templates, used besides the tokenizer's EOS.
_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>", "<|end|>")


class TransformersRuntime(PromptRuntime):
    """Scores and replies with a transformers causal LM on GPU (4-bit) or CPU."""

    name = "transformers"

    def __init__(self, options: TransformersOptions, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        super().__init__(assistant_name)
        self.options = options
        cuda = torch.cuda.is_available()
        self.device = torch.device(options.device or ("cuda" if cuda else "cpu"))
        quantize = options.load_in_4bit if options.load_in_4bit is not None else self.device.type == "cuda"
        if quantize and not cuda:
            raise RuntimeError_("runtime.load_in_4bit needs CUDA (bitsandbytes NF4); set it to false on a CPU")
        self.tokenizer = self._load_tokenizer()
        self.model = self._load_model(quantize)
        self.adapter_meta: dict[str, Any] = {}
        if options.adapter:
            self.model = self._load_adapter(options.adapter)
        self.model.eval()
        tok = self.tokenizer
        if not tok.chat_template:
            raise RuntimeError_(f"the tokenizer of {options.model} has no chat template")
        specials = list(tok.all_special_tokens) + [t.content for t in tok.added_tokens_decoder.values() if t.special]
        self.template = ChatTemplate(tok.chat_template, tok.bos_token or "", tok.eos_token or "", specials)
        with_special = tok("x", add_special_tokens=True)["input_ids"]
        bos = tok.bos_token_id if with_special[:1] == [tok.bos_token_id] and tok.bos_token_id is not None else None
        budget = options.max_context - options.max_tokens - _DECISION_RESERVE
        self._builder = PromptBuilder(
            self.template, self._tokenize, budget, prompted=options.prompt_style == "prompted", bos_id=bos
        )
        self._end_ids = self._end_token_ids()

    def _source(self) -> dict[str, Any]:
        return {"gguf_file": self.options.gguf_file} if self.options.gguf_file else {}

    def _load_tokenizer(self) -> Any:
        try:
            return AutoTokenizer.from_pretrained(self.options.model, **self._source())
        except (OSError, ValueError) as exc:
            raise RuntimeError_(f"could not load the tokenizer of {self._where()}: {exc}") from exc

    def _load_model(self, quantize: bool) -> Any:
        kwargs: dict[str, Any] = dict(self._source())
        if quantize:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
            kwargs["device_map"] = {"": self.device.index or 0}
        dtype = self.options.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        try:
            model = AutoModelForCausalLM.from_pretrained(self.options.model, dtype=getattr(torch, dtype), **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            raise RuntimeError_(f"could not load the model {self._where()}: {exc}") from exc
        return model if quantize else model.to(self.device)

    def _load_adapter(self, adapter: str) -> Any:
        from peft import PeftModel

        path = Path(adapter).expanduser()
        meta_path = path / "meta.json"
        if meta_path.is_file():
            self.adapter_meta = json.loads(meta_path.read_text(encoding="utf-8"))
        try:
            return PeftModel.from_pretrained(self.model, adapter)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            # peft raises a size-mismatch RuntimeError for an adapter made for another base.
            raise RuntimeError_(f"adapter {adapter} does not load onto {self._where()}: {exc}") from exc

    def _where(self) -> str:
        gguf = f" (gguf_file {self.options.gguf_file})" if self.options.gguf_file else ""
        return f"{self.options.model}{gguf}"

    def _end_token_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in _END_TOKENS if t in vocab)
        return sorted(i for i in ids if i is not None)

    @property
    def model_id(self) -> str:
        """The model (and GGUF file) plus the adapter, as configured."""
        adapter = f"+{self.options.adapter}" if self.options.adapter else ""
        return f"transformers:{self._where()}{adapter}"

    @property
    def base_threshold(self) -> float:
        """options.threshold, else the adapter's meta.json threshold, else 0.5."""
        if self.options.threshold is not None:
            return self.options.threshold
        value = self.adapter_meta.get("threshold")
        return float(value) if isinstance(value, int | float) else 0.5

    def _tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes, with the model's tokenizer."""
        return len(self._tokenize(text))

    @torch.inference_mode()
    def _p_speak(self, channel: str, prompt: Prompt) -> tuple[float, Timings]:
        """Score "(response" against "(silence" in one forward pass (this backend keeps no KV state)."""
        p_speak, evaluated = self._score(prompt.decision)
        return p_speak, Timings(tokens_evaluated=evaluated)

    @torch.inference_mode()
    def _generate(self, channel: str, prompt: Prompt) -> tuple[str, Timings]:
        """Prefill "(response)" and decode greedily."""
        text, prompt_len, generated = self._decode(prompt.text, prompt.all_tokens)
        return text, Timings(tokens_evaluated=prompt_len + generated, tokens_generated=generated)

    def _score(self, decision: DecisionTokens) -> tuple[float, int]:
        """p_speak and the number of tokens evaluated."""
        prompt = list(decision.prompt)
        rows: dict[tuple[int, ...], torch.Tensor] = {}
        evaluated = 0
        for branch, first, last in decision.plan():
            ids = prompt + list(branch[:last])
            keep = last - first + 1
            inputs = torch.tensor([ids], device=self.device)
            logits = self.model(input_ids=inputs, use_cache=False, logits_to_keep=keep).logits[0, -keep:]
            logprobs = torch.log_softmax(logits.float(), dim=-1).double().cpu()
            for k in range(keep):
                rows[branch[: first + k]] = logprobs[k]
            evaluated += len(ids)
        lp_speak, lp_silent = decision.logprobs(lambda prefix, tok: float(rows[prefix][tok]))
        return p_speak_from_logprobs(lp_speak, lp_silent), evaluated

    def _decode(self, prompt_text: str, prompt_tokens: Sequence[int]) -> tuple[str, int, int]:
        """Decode to the end of the turn or max_tokens; returns the text, the prompt's length and the tokens made."""
        drop, prefill = continuation_tokens(self._tokenize, prompt_text, GENERATION_PREFILL)
        ids = list(prompt_tokens[: len(prompt_tokens) - drop]) + prefill
        inputs = torch.tensor([ids], device=self.device)
        out = self.model.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=self.options.max_tokens,
            min_new_tokens=1,  # a reply is wanted (often forced): never an empty turn
            do_sample=False,
            eos_token_id=self._end_ids,
            pad_token_id=self._end_ids[0],
        )
        new = [int(t) for t in out[0, len(ids) :]]
        while new and new[-1] in self._end_ids:
            new.pop()
        return self.tokenizer.decode(new, skip_special_tokens=True), len(ids), len(new)
