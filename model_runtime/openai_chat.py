"""OpenAIChatRuntime: replies from any OpenAI-compatible chat endpoint (``/v1/chat/completions``).

A responder only: a chat endpoint gives no log-probabilities of chime's protocol, so the
fine-tuned decider stays in front of it and the endpoint is asked only for the turns that
speak. It gets the window as a group-chat prompt (``model_runtime.chat_prompt``). Whatever
goes wrong (no server, no answer within ``timeout_s``, an answer that is not a chat
completion) is one ``RuntimeError_`` naming the server; the service decides what the room sees.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from model_runtime.chat_prompt import clean_chat_reply, group_chat_messages
from model_runtime.interface import Reply, Runtime, RuntimeError_, Score, Timings
from model_runtime.options import ChatOptions
from model_runtime.preflight import api_key
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn


def server_root(base_url: str) -> str:
    """The server's root URL: no trailing slash, no trailing ``/v1`` (the paths add it)."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class OpenAIChatRuntime(Runtime):
    """Writes replies through a chat endpoint; never scores."""

    name = "chat"

    def __init__(self, options: ChatOptions, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> None:
        super().__init__(assistant_name)
        self.options = options
        self.base_url = server_root(options.base_url)
        key = api_key(options)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # Replies for different channels are written at once (each channel's one at a time).
        self.concurrency = options.max_concurrency
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=options.timeout_s, limits=limits)
        self.requests = 0  # chat requests sent, for tests and logs

    @property
    def model_id(self) -> str:
        """The served model name and the server's address."""
        return f"chat:{self.options.model}@{self.base_url}"

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """Not possible: a chat endpoint writes replies, chime's decider scores."""
        raise RuntimeError_("a chat endpoint cannot score turns: use it as runtime.responder, not as the decider")

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """One chat completion for the window; its text cleaned of a name prefix and forged turns."""
        t0 = time.perf_counter()
        body = self._body(window)
        data = self._post(body)
        text, usage = self._completion(data)
        names = [t.name for t in window if t.role == "user"]
        text = clean_chat_reply(text, names, self.assistant_name)
        ms = (time.perf_counter() - t0) * 1000
        timings = Timings(
            generate_ms=ms,
            total_ms=ms,
            tokens_evaluated=int(usage.get("prompt_tokens") or 0),
            tokens_generated=int(usage.get("completion_tokens") or 0),
        )
        return Reply(text, timings)

    def close(self) -> None:
        """Close the HTTP client and the worker thread."""
        super().close()
        self._http.close()

    def _body(self, window: Sequence[Turn]) -> dict[str, Any]:
        opts = self.options
        return {
            "model": opts.model,
            "messages": group_chat_messages(window, self.assistant_name, opts.system_prompt),
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
        }

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        try:
            response = self._http.post("/v1/chat/completions", json=body)
        except httpx.TimeoutException:
            raise RuntimeError_(
                f"{self.base_url} gave no reply within {self.options.timeout_s:g} s (runtime.responder.timeout_s)"
            ) from None
        except httpx.HTTPError as exc:
            raise RuntimeError_(f"{self.base_url} cannot be reached: {exc}") from None
        if response.status_code != 200:
            raise RuntimeError_(f"{self.base_url} answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            raise RuntimeError_(
                f"{self.base_url} answered something that is not JSON: {response.text[:200]!r}"
            ) from None

    def _completion(self, data: object) -> tuple[str, dict[str, Any]]:
        """The message text and the usage of a chat completion; RuntimeError_ for anything else."""
        try:
            content = data["choices"][0]["message"]["content"]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise RuntimeError_(f"{self.base_url} answered something that is not a chat completion: {str(data)[:200]}")
        usage = data.get("usage") if isinstance(data, dict) else None
        return content, usage if isinstance(usage, dict) else {}
