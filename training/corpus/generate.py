"""``chime data generate``: ask an OpenAI-compatible chat endpoint for synthetic group chats.

Each request names a topic and two or three people and asks for 10-12 messages as a JSON
array in the seed format. The answer is parsed (code fences and chatter around the array
are tolerated), simple slips are repaired, anything else is rejected with a reason, and
accepted conversations not already in the output file are appended to it.
"""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, RESPONSE, SILENCE
from model_runtime.seed_format import Conversation, dumps_conversation, read_seed_file, validate_conversation
from training.corpus.check import near_key

NAMES = (
    "Amara", "Ben", "Chiara", "Dmitri", "Esi", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kavya", "Luis",
    "Mei", "Nadia", "Olu", "Pavel", "Quinn", "Rosa", "Sami", "Tomasz", "Uma", "Viktor", "Wen", "Yara", "Zeynep",
)  # fmt: skip
_ROLE_ALIASES = {
    "user": "user", "human": "user", "person": "user", "participant": "user",
    "assistant": "assistant", "bot": "assistant", "ai": "assistant", "model": "assistant", "gpt": "assistant",
}  # fmt: skip
_NAME_KEYS = ("name", "speaker", "author", "user_name", "username")
_CONTENT_KEYS = ("content", "text", "message", "msg")
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TEXT = {"type": "string", "minLength": 1}


def message_schema(names: list[str]) -> dict:
    """JSON schema of the answer: people's messages carry one of ``names``, the assistant's none."""
    return {
        "type": "array",
        "minItems": 6,
        "maxItems": 14,
        "items": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"role": {"const": "user"}, "name": {"enum": names}, "content": _TEXT},
                    "required": ["role", "name", "content"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"role": {"const": "assistant"}, "content": _TEXT},
                    "required": ["role", "content"],
                    "additionalProperties": False,
                },
            ]
        },
    }


class Rejected(ValueError):
    """A generated answer that cannot become a conversation; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class GenerateError(RuntimeError):
    """The endpoint cannot be used at all (unreachable, refuses the request)."""


def build_prompt(topic: str, names: list[str], min_messages: int = 10, max_messages: int = 12) -> str:
    """The request for one conversation: who, about what, how long, and the exact JSON shape."""
    people = ", ".join(names[:-1]) + " and " + names[-1]
    example = [
        {"role": "user", "name": "Noor", "content": "did anyone finish the crossword?"},
        {"role": "user", "name": "Teo", "content": "nearly, stuck on 'capital of Australia', 8 letters"},
        {"role": "assistant", "content": "That's Canberra, not Sydney."},
        {"role": "user", "name": "Teo", "content": "ha, that fits. thanks"},
    ]
    return (
        f"Write a group chat between {people}, who are talking about {topic}. An assistant is also in the "
        "chat. It stays quiet while the people talk among themselves, and speaks only when someone asks it "
        "directly (sometimes as @assistant) or when it can supply a fact they are missing, such as a name, a "
        f"date or a number. Write between {min_messages} and {max_messages} messages in total; most of them "
        "are the people's. Answer with the JSON array only, one object per message: "
        '{"role": "user", "name": "<who>", "content": "<text>"} for a person and '
        '{"role": "assistant", "content": "<text>"} for the assistant. For example:\n'
        + json.dumps(example, ensure_ascii=False)
    )


def extract_json_array(text: str) -> list:
    """The JSON array in a model's answer, tolerating code fences and text around it."""
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    for cand in candidates:
        start, end = cand.find("["), cand.rfind("]")
        for chunk in (cand.strip(), cand[start : end + 1] if 0 <= start < end else ""):
            if not chunk:
                continue
            try:
                value = json.loads(chunk)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                # {"conversation": [...]} and the like: the array is what was asked for.
                value = next((v for v in value.values() if isinstance(v, list)), value)
            if isinstance(value, list):
                return value
    if "[" not in text:
        raise Rejected("no JSON array", text[:80])
    raise Rejected("not JSON", text[:80])


def _pick(msg: dict, keys: tuple[str, ...]) -> object:
    return next((msg[k] for k in keys if k in msg), None)


def _repair_message(i: int, msg: object, names: list[str], assistant_name: str) -> tuple[dict | None, bool]:
    """One message in seed form (None: an explicit silence, dropped) and whether it was changed."""
    if not isinstance(msg, dict):
        raise Rejected("schema", f"message {i + 1} is a {type(msg).__name__}, not an object")
    raw_role = str(msg.get("role", "")).strip()
    role = _ROLE_ALIASES.get(raw_role.casefold())
    name = _pick(msg, _NAME_KEYS)
    if role is None and raw_role.casefold() in {n.casefold() for n in names}:
        role, name = "user", raw_role  # {"role": "Ana", ...}: the speaker written as the role
    if role is None:
        raise Rejected("unknown role", f"message {i + 1}: {raw_role!r}")
    content = _pick(msg, _CONTENT_KEYS)
    if not isinstance(content, str):
        raise Rejected("schema", f"message {i + 1} has no text content")
    text = content.strip()
    if role == "assistant":
        if text.casefold().startswith(SILENCE) or not text:
            return None, True
        if text.casefold().startswith(RESPONSE):
            text = text[len(RESPONSE) :].strip()
        out = {"role": "assistant", "content": text}
    else:
        if not isinstance(name, str) or not name.strip():
            raise Rejected("user message without a name", f"message {i + 1}")
        name = name.strip()
        if name.casefold().lstrip("@") == assistant_name.casefold():
            raise Rejected("user named like the assistant", f"message {i + 1}: {name!r}")
        if text.casefold().startswith(name.casefold() + ":"):
            text = text[len(name) + 1 :].strip()  # "Ana: hi" in Ana's own message
        out = {"role": "user", "name": name, "content": text}
    changed = out != {k: msg.get(k) for k in out} or set(msg) != set(out)
    return out, changed


def repair(value: list, names: list[str], assistant_name: str = DEFAULT_ASSISTANT_NAME) -> tuple[Conversation, bool]:
    """A valid conversation from a parsed answer, and whether anything had to be fixed; else Rejected."""
    out: list[dict] = []
    repaired = False
    for i, msg in enumerate(value):
        fixed, changed = _repair_message(i, msg, names, assistant_name)
        repaired |= changed
        if fixed is None:
            continue
        if fixed["role"] == "assistant" and not out:
            raise Rejected("assistant speaks first")
        if fixed["role"] == "assistant" and out[-1]["role"] == "assistant":
            raise Rejected("two assistant messages in a row", f"message {i + 1}")
        out.append(fixed)
    try:
        return validate_conversation(out), repaired
    except ValueError as e:
        raise Rejected("schema", str(e)) from None


@dataclass
class GenerateStats:
    """What happened to each request."""

    asked: int = 0
    accepted: int = 0
    repaired: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)
    # Why the run stopped early (the endpoint failed), if it did.
    aborted: str | None = None

    def summary(self) -> str:
        """One line of counts, rejections by reason."""
        reasons = ", ".join(f"{r} {n}" for r, n in self.rejected.most_common())
        return (
            f"asked {self.asked}: accepted {self.accepted} ({self.repaired} repaired), duplicates {self.duplicates}, "
            f"rejected {sum(self.rejected.values())}" + (f" ({reasons})" if reasons else "")
        )


def ask(base_url: str, body: dict, timeout: float, api_key: str | None = None) -> str:
    """POST one chat completion request; the answer's text."""
    req = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {}),
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise GenerateError(f"{req.full_url}: HTTP {e.code}: {e.read()[:300].decode(errors='replace')}") from None
    except urllib.error.URLError as e:
        raise GenerateError(f"{req.full_url}: cannot reach the endpoint: {e.reason}") from None
    try:
        return answer["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise GenerateError(f"{req.full_url}: not a chat completion answer: {str(answer)[:200]}") from None


def response_format(mode: str, names: list[str]) -> dict | None:
    """The ``response_format`` that makes a server constrain its output to the message schema."""
    if mode == "json_object":  # llama.cpp and llama-cpp-python servers
        return {"type": "json_object", "schema": message_schema(names)}
    if mode == "json_schema":  # vLLM, OpenAI
        return {"type": "json_schema", "json_schema": {"name": "conversation", "schema": message_schema(names)}}
    return None


def existing_keys(path: Path) -> set[tuple[str, ...]]:
    """Near-duplicate keys of the conversations already in ``path`` (missing file: none)."""
    if not path.exists():
        return set()
    return {near_key(c) for c in read_seed_file(path, skip_bad=True).conversations}


def generate(
    send: Callable[[str, list[str]], str],
    topics: list[str],
    count: int,
    out: Path,
    *,
    seed: int = 0,
    min_messages: int = 6,
    assistant_name: str = DEFAULT_ASSISTANT_NAME,
    log: Callable[[str], None] = lambda _: None,
) -> GenerateStats:
    """Ask ``count`` times (``send`` maps a prompt and its speakers to an answer), appending accepted conversations to ``out``.

    A GenerateError from ``send`` stops the run; what was accepted so far stays appended.
    """
    rng = random.Random(seed)
    seen = existing_keys(out)
    stats = GenerateStats()
    with open(out, "a", encoding="utf-8") as f:
        for i in range(count):
            topic = topics[i % len(topics)]
            names = rng.sample(NAMES, rng.choice((2, 3)))
            stats.asked += 1
            try:
                answer = send(build_prompt(topic, names), names)
            except GenerateError as e:
                stats.aborted = str(e)
                break
            try:
                conv, repaired = repair(extract_json_array(answer), names, assistant_name)
                if len(conv) < min_messages:
                    raise Rejected("too short", f"{len(conv)} messages")
                if strangers := sorted({m["name"] for m in conv if m["role"] == "user"} - set(names)):
                    # Someone else talking (often the prompt's example copied) is not what was asked for.
                    raise Rejected("speakers not asked for", ", ".join(strangers))
            except Rejected as e:
                stats.rejected[e.reason] += 1
                log(f"request {i + 1} ({topic}): rejected: {e}")
                continue
            if near_key(conv) in seen:
                stats.duplicates += 1
                log(f"request {i + 1} ({topic}): duplicate of a conversation already kept")
                continue
            seen.add(near_key(conv))
            f.write(dumps_conversation(conv) + "\n")
            f.flush()
            stats.accepted += 1
            stats.repaired += repaired
            log(f"request {i + 1} ({topic}): accepted, {len(conv)} messages" + (" (repaired)" if repaired else ""))
    return stats
