"""``chime data check|generate``: the command line of the data tools."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from functools import partial
from pathlib import Path

from model_runtime.protocol import DEFAULT_ASSISTANT_NAME
from training.corpus.check import check_file, format_check
from training.corpus.generate import ask, generate, response_format


def build_parser() -> argparse.ArgumentParser:
    """The ``chime data`` command line."""
    p = argparse.ArgumentParser(prog="chime data", description="Check and generate seed-format conversation data.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="counts, duplicates, names, schema errors and train/dev leakage")
    c.add_argument("file", type=Path, help="seed-format JSON Lines file")
    c.add_argument("--against", type=Path, metavar="OTHER.jsonl", help="report conversations/messages also in OTHER")
    c.add_argument("--assistant-name", default=DEFAULT_ASSISTANT_NAME, help="the assistant's name (default: assistant)")
    c.add_argument("--json", action="store_true", help="print the report as one JSON object")

    g = sub.add_parser("generate", help="ask an OpenAI-compatible endpoint for conversations and append valid ones")
    g.add_argument("--base-url", required=True, help="the endpoint's base URL, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--model", required=True, help="the model name the endpoint serves")
    topic = g.add_mutually_exclusive_group(required=True)
    topic.add_argument("--topics", type=Path, metavar="FILE", help="one topic per line ('#' starts a comment)")
    topic.add_argument("--topic", help="a single topic")
    g.add_argument("--count", type=int, required=True, help="how many conversations to ask for")
    g.add_argument("--out", type=Path, required=True, help="JSON Lines file to append accepted conversations to")
    g.add_argument("--seed", type=int, default=0, help="seed for the choice of names (default 0)")
    g.add_argument("--max-tokens", type=int, default=1500, help="answer length limit per request (default 1500)")
    g.add_argument("--temperature", type=float, default=0.9)
    g.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one answer (default 300)")
    g.add_argument("--min-messages", type=int, default=6, help="reject shorter conversations (default 6)")
    g.add_argument(
        "--structured",
        choices=("off", "json_object", "json_schema"),
        default="off",
        help="constrain output to the message schema: json_object (llama.cpp), json_schema (vLLM, OpenAI)",
    )
    g.add_argument("--api-key-env", help="environment variable holding the endpoint's API key")
    g.add_argument("--assistant-name", default=DEFAULT_ASSISTANT_NAME)
    g.add_argument("-v", "--verbose", action="store_true", help="say what happened to each request")
    return p


def read_topics(path: Path) -> list[str]:
    """Topics from a file, one per line; blank lines and '#' comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the topics: {e.strerror}") from None
    topics = [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
    if not topics:
        raise ValueError(f"{path}: no topics in the file")
    return topics


def run_check(args: argparse.Namespace) -> int:
    """``chime data check``: 0 when the file is clean, 1 on schema errors or leakage."""
    for path in (args.file, args.against):
        if path is not None and not path.is_file():
            print(f"chime data check: {path}: no such file", file=sys.stderr)
            return 2
    try:
        report = check_file(args.file, args.against, args.assistant_name)
    except ValueError as e:
        print(f"chime data check: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dataclasses.asdict(report) | {"speak_ratio": report.speak_ratio, "ok": report.ok}))
    else:
        print(format_check(report))
    return 0 if report.ok else 1


def run_generate(args: argparse.Namespace) -> int:
    """``chime data generate``: ask, validate, de-duplicate, append; prints the counts."""
    if args.count < 1:
        print("chime data generate: --count must be at least 1", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"chime data generate: {args.out.parent}: no such directory for --out", file=sys.stderr)
        return 2
    try:
        topics = read_topics(args.topics) if args.topics else [args.topic.strip()]
    except ValueError as e:
        print(f"chime data generate: {e}", file=sys.stderr)
        return 2
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    body = {"model": args.model, "max_tokens": args.max_tokens, "temperature": args.temperature}

    def send(prompt: str, names: list[str]) -> str:
        request = body | {"messages": [{"role": "user", "content": prompt}]}
        if fmt := response_format(args.structured, names):
            request["response_format"] = fmt
        return ask(args.base_url, request, args.timeout, api_key)

    log = partial(print, file=sys.stderr) if args.verbose else (lambda _: None)
    stats = generate(
        send,
        topics,
        args.count,
        args.out,
        seed=args.seed,
        min_messages=args.min_messages,
        assistant_name=args.assistant_name,
        log=log,
    )
    print(f"{args.out}: {stats.summary()}")
    if stats.aborted:
        print(f"chime data generate: stopped: {stats.aborted}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``chime data``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return run_check(args)
    return run_generate(args)


if __name__ == "__main__":
    sys.exit(main())
