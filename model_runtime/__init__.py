"""Model runtimes: the interface, the protocol, and backends imported lazily."""

from __future__ import annotations

from model_runtime.interface import Reply, Runtime, RuntimeError_, Score, Timings
from model_runtime.options import (
    ChatOptions,
    LlamaCppOptions,
    OpenAICompatOptions,
    RulesOptions,
    RuntimeOptions,
    TransformersOptions,
)
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn

__all__ = [
    "Reply",
    "Score",
    "Runtime",
    "RuntimeError_",
    "Timings",
    "Turn",
    "RuntimeOptions",
    "RulesOptions",
    "LlamaCppOptions",
    "TransformersOptions",
    "OpenAICompatOptions",
    "ChatOptions",
    "create_runtime",
]


def create_runtime(options: RuntimeOptions | ChatOptions, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> Runtime:
    """Build the backend named by ``options.kind`` in this process, importing its heavy library only now.

    ``isolate`` is not read here: ``model_runtime.worker.create_isolated_runtime`` runs
    this same function in a worker process.
    """
    if isinstance(options, RulesOptions):
        from model_runtime.rules import RuleBasedRuntime

        return RuleBasedRuntime(assistant_name=assistant_name, delay_s=options.delay_s)
    if isinstance(options, LlamaCppOptions):
        from model_runtime.llama_cpp_backend import LlamaCppRuntime

        return LlamaCppRuntime(options, assistant_name=assistant_name)
    if isinstance(options, TransformersOptions):
        from model_runtime.transformers_backend import TransformersRuntime

        return TransformersRuntime(options, assistant_name=assistant_name)
    if isinstance(options, OpenAICompatOptions):
        from model_runtime.openai_compat import OpenAICompatRuntime

        return OpenAICompatRuntime(options, assistant_name=assistant_name)
    if isinstance(options, ChatOptions):
        from model_runtime.openai_chat import OpenAIChatRuntime

        return OpenAIChatRuntime(options, assistant_name=assistant_name)
    raise RuntimeError_(f"unknown runtime kind: {options!r}")
