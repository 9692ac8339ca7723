"""OpenAIChatRuntime: replies from any OpenAI-compatible chat endpoint (``/v1/chat/completions``).

A responder only: a chat endpoint gives no log-probabilities of chime's protocol, so the
fine-tuned decider stays in front of it and the endpoint is asked only for the turns that
speak. It gets the window as a group-chat prompt (``model_runtime.chat_prompt``). Whatever
goes wrong (no server, no answer within ``timeout_s``, an answer that is not a chat
completion) is one ``RuntimeError_`` naming the server; the service decides what the room sees.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
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
        self.requests += 1
        with self._errors():
            response = self._http.post("/v1/chat/completions", json=self._body(window))
        text, usage = self._completion(self._json(response))
        return self._reply(window, text, usage, t0)

    def reply_stream(self, channel: str, window: Sequence[Turn]) -> Iterator[Reply]:
        """The reply as the endpoint streams it (server-sent events), a whole word at a time."""
        t0 = time.perf_counter()
        deadline = t0 + self.options.timeout_s
        raw, shown, usage = "", "", {}
        self.requests += 1
        with (
            self._errors(),
            self._http.stream("POST", "/v1/chat/completions", json=self._body(window, stream=True)) as r,
        ):
            if not r.headers.get("content-type", "").startswith("text/event-stream"):
                # An endpoint that does not stream answers with one completion.
                text, usage = self._completion(self._json(r, r.read()))
                yield self._reply(window, text, usage, t0)
                return
            for delta, usage in self._events(r, deadline):
                raw += delta
                # Up to the last whole word: a half-written word or name prefix is not shown yet.
                partial = self._reply(window, raw[: max(raw.rfind(" "), raw.rfind("\n"), 0)], usage, t0)
                if partial.text and partial.text != shown:
                    shown = partial.text
                    yield partial
        yield self._reply(window, raw, usage, t0)

    def close(self) -> None:
        """Close the HTTP client and the worker thread."""
        super().close()
        self._http.close()

    def _body(self, window: Sequence[Turn], stream: bool = False) -> dict[str, Any]:
        opts = self.options
        body: dict[str, Any] = {
            "model": opts.model,
            "messages": group_chat_messages(window, self.assistant_name, opts.system_prompt),
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
        }
        if stream:
            body["stream"] = True
        return body

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """HTTP failures as one RuntimeError_ naming the server (and the timeout, when that was it)."""
        try:
            yield
        except httpx.TimeoutException:
            raise RuntimeError_(
                f"{self.base_url} gave no reply within {self.options.timeout_s:g} s (runtime.responder.timeout_s)"
            ) from None
        except httpx.HTTPError as exc:
            raise RuntimeError_(f"{self.base_url} cannot be reached: {exc}") from None

    def _json(self, response: httpx.Response, raw: bytes | None = None) -> object:
        if response.status_code != 200:
            raise RuntimeError_(f"{self.base_url} answered {response.status_code}: {response.read()[:300]!r}")
        try:
            return json.loads(raw if raw is not None else response.read())
        except ValueError:
            raise RuntimeError_(
                f"{self.base_url} answered something that is not JSON: {response.read()[:200]!r}"
            ) from None

    def _events(self, response: httpx.Response, deadline: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """(text delta, usage so far) per server-sent event, until ``[DONE]``; the deadline is checked on each."""
        usage: dict[str, Any] = {}
        for line in response.iter_lines():
            if time.perf_counter() > deadline:
                raise httpx.ReadTimeout("the stream outlasted timeout_s")
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
                choices = event.get("choices") or [{}]
                delta = (choices[0].get("delta") or {}).get("content") or ""
            except (ValueError, AttributeError, TypeError):
                raise RuntimeError_(
                    f"{self.base_url} streamed something that is not a chat chunk: {data[:200]!r}"
                ) from None
            if not isinstance(delta, str):
                raise RuntimeError_(f"{self.base_url} streamed a chunk without text: {data[:200]!r}")
            usage = event.get("usage") or usage
            yield delta, usage

    def _reply(self, window: Sequence[Turn], raw: str, usage: dict[str, Any], t0: float) -> Reply:
        names = [t.name for t in window if t.role == "user"]
        ms = (time.perf_counter() - t0) * 1000
        timings = Timings(
            generate_ms=ms,
            total_ms=ms,
            tokens_evaluated=int(usage.get("prompt_tokens") or 0),
            tokens_generated=int(usage.get("completion_tokens") or 0),
        )
        return Reply(clean_chat_reply(raw, names, self.assistant_name), timings)

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
