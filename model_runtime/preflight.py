"""Checks a runtime's options without loading a model: files, environment, context budget.

The backends call these same functions when they start, so ``chime config check`` (which
runs them alone) and ``chime run`` reject a configuration with the same message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from model_runtime.bundled import AdapterChoice, bundled_model_path, check_gguf_adapter, resolve_adapter
from model_runtime.gguf_meta import read_metadata
from model_runtime.interface import RuntimeError_
from model_runtime.options import ChatOptions, LlamaCppOptions, OpenAICompatOptions, RuntimeOptions
from model_runtime.template import ChatTemplate

# Room left in the context after the prompt for the decision tokens and the prefill.
DECISION_RESERVE = 16
# The smallest prompt budget that still holds a few messages.
_MIN_PROMPT_TOKENS = 64

# Each backend's library and the extra that installs it.
RUNTIME_LIBRARIES: dict[str, tuple[tuple[str, ...], str]] = {
    "llama_cpp": (("llama_cpp",), "cpu"),
    "transformers": (("torch", "transformers", "peft"), "gpu"),
    "openai": (("httpx",), "server"),
    "chat": (("httpx",), "server"),
}


def missing_library(kind: str, name: str, key: str = "runtime") -> str:
    """The error for a backend whose library is not installed, naming the extra to install."""
    extra = RUNTIME_LIBRARIES.get(kind, ((), ""))[1]
    return (
        f"{key}.kind={kind}: its library is not installed ({name}); "
        f"install chime-bot[{extra}] or choose another {key}.kind"
    )


def prompt_budget(n_ctx: int, max_tokens: int) -> int:
    """Tokens left for the prompt; RuntimeError_ when the context cannot hold a useful one."""
    budget = n_ctx - max_tokens - DECISION_RESERVE
    if budget < _MIN_PROMPT_TOKENS:
        raise RuntimeError_(f"n_ctx {n_ctx} leaves no room for a prompt after max_tokens")
    return budget


def resolve_model_path(options: LlamaCppOptions) -> Path:
    """The GGUF file the options name, or the bundled model's."""
    return Path(options.model_path).expanduser() if options.model_path else bundled_model_path()


def llama_cpp_files(options: LlamaCppOptions) -> tuple[Path, dict[str, Any], AdapterChoice, ChatTemplate]:
    """The base GGUF, its metadata, the adapter and the chat template; RuntimeError_ naming a bad file."""
    model_path = resolve_model_path(options)
    base_meta = read_metadata(model_path)  # a missing or broken file fails here, named
    adapter = resolve_adapter(options.adapter_path)
    check_gguf_adapter(adapter, model_path, base_meta)
    template = ChatTemplate.from_gguf_metadata(base_meta, str(model_path))
    return model_path, base_meta, adapter, template


def template_source(options: OpenAICompatOptions) -> Path:
    """Where the server backend reads its chat template and tokenizer (a GGUF file or a directory)."""
    source = Path(options.template_from).expanduser() if options.template_from else bundled_model_path()
    if not source.exists():
        raise RuntimeError_(f"runtime.template_from not found: {source}")
    return source


def api_key(options: OpenAICompatOptions | ChatOptions) -> str | None:
    """The server's API key from ``api_key_env`` (None when none is configured)."""
    if not options.api_key_env:
        return None
    key = os.environ.get(options.api_key_env)
    if not key:
        raise RuntimeError_(f"runtime.api_key_env names {options.api_key_env}, which is not set")
    return key


def check_options(options: RuntimeOptions | ChatOptions) -> None:
    """Raise RuntimeError_ for what would stop the backend from starting, short of loading the model."""
    if isinstance(options, LlamaCppOptions):
        llama_cpp_files(options)
        prompt_budget(options.n_ctx, options.max_tokens)
    elif isinstance(options, OpenAICompatOptions):
        template_source(options)
        api_key(options)
    elif isinstance(options, ChatOptions):
        api_key(options)
