"""The ``chime`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import Config, ConfigError, configure_logging, load_config, parse_config
from bot.store import StoreError, check_url, sqlite_file
from chime import datadir, memory_cli
from chime.app import build_runtime, preflight, prepare_store, run_bot, with_data_dir
from model_runtime import RuntimeError_

# Subcommands that belong to the offline training package, imported only when used.
_TRAINING_COMMANDS = {
    "train": "training.fit.cli",
    "eval": "training.eval.evaluate",
    "data": "training.corpus.cli",
}


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if getattr(args, "config", None) else parse_config({}, "<defaults>")
    config = with_data_dir(config, getattr(args, "data_dir", None))
    runtime = getattr(args, "runtime", None)
    # Another kind starts from that kind's defaults (options differ per kind); the same
    # kind keeps the config file's options.
    if runtime and runtime != config.runtime.decider.kind:
        decider = parse_config({"runtime": {"kind": runtime}}).runtime.decider
        config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"decider": decider})})
    return config


def cmd_run(args: argparse.Namespace) -> int:
    """Start the bot (with no config: the console group chat on the bundled model)."""
    config = _load(args)
    preflight(config)
    data_dir = config.resolved_data_dir()
    # The lock guards the SQLite store in the data directory; a store elsewhere is not ours to guard.
    with datadir.hold(data_dir, lock=config.store.url is None):
        # The log goes to the data directory for every platform; the console chat keeps the terminal.
        configure_logging(config.log_level, data_dir / "chime.log", quiet_stderr=config.adapters.console.enabled)
        return asyncio.run(run_bot(config))


def cmd_db(args: argparse.Namespace) -> int:
    """Apply, revert or show the store's migrations."""
    from bot.store.migrate import current_revision, downgrade, head_revision, upgrade

    config = _load(args)
    url = args.url or config.store_url()
    check_url(url)
    path = sqlite_file(url)
    if args.action != "upgrade" and path is not None and not path.exists():
        # Opening it would create an empty file; say what creates the store instead.
        raise ConfigError(f"no database yet at {path}: 'chime run' or 'chime db upgrade' creates it")
    if args.action == "upgrade":
        if args.url:
            upgrade(url)
        else:
            prepare_store(config)
        print(f"store at revision {current_revision(url)}")
    elif args.action == "downgrade":
        if not args.revision:
            raise ConfigError("db downgrade needs a revision (e.g. 'base' or '-1')")
        downgrade(url, args.revision)
        print(f"store at revision {current_revision(url) or 'base'}")
    else:
        print(f"current {current_revision(url) or 'base'}, head {head_revision()}")
    return 0


def _roles(config: Config) -> str:
    """``llama_cpp``, or ``llama_cpp, replies by chat`` when another runtime writes the replies."""
    rt = config.runtime
    return rt.decider.kind if rt.shared else f"{rt.decider.kind}, replies by {rt.responder.kind}"


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate a config file and say what it configures."""
    config = load_config(args.file)
    preflight(config)
    enabled = [n for n in ("console", "discord", "matrix") if getattr(config.adapters, n).enabled]
    print(
        f"{args.file}: OK (runtime {_roles(config)}; adapters {', '.join(enabled) or 'none'}; "
        f"store {config.store.url or 'sqlite under ' + str(config.resolved_data_dir())})"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a channel's history as seed-format JSONL (or, with --gguf/--merge, a trained adapter).

    With --labels, only the conversations the room labelled, each falsely interrupting
    reply turned into a silent turn.
    """
    from bot.export import labelled_conversations, to_conversations, write_jsonl
    from bot.store import Store

    if args.out is None:
        raise ConfigError("export CHANNEL needs --out FILE.jsonl (or ADAPTER_DIR --gguf OUT.gguf for an adapter)")
    config = _load(args)
    store = Store(prepare_store(config))
    try:
        channel = store.find_channel(args.target)
        if channel is None:
            raise ConfigError(f"export: no channel {args.target!r} in the store (use platform:channel_id)")
        messages = store.all_messages(channel.pk)
        labelled = store.labelled_messages(channel.pk) if args.labels else set()
    finally:
        store.close()
    conversations = labelled_conversations(messages, labelled) if args.labels else to_conversations(messages)
    write_jsonl(conversations, Path(args.out))
    turns = sum(len(c) for c in conversations)
    what = "labelled conversations" if args.labels else "conversations"
    note = f"; {len(labelled)} false interruptions as silent turns" if args.labels else ""
    print(
        f"wrote {len(conversations)} {what} ({turns} messages{note}) "
        f"from {channel.platform}:{channel.channel_id} to {args.out}"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Print each human turn of a seed-format file with the decision and p_speak beside it."""
    from model_runtime.protocol import Turn, sanitize_name, threshold_for
    from model_runtime.seed_format import read_seed_file

    config = _load(args)
    configure_logging("WARNING")
    data = read_seed_file(args.file)
    runtime = build_runtime(config)
    name = config.assistant.name
    threshold = args.threshold if args.threshold is not None else threshold_for(50, runtime.base_threshold)
    try:
        for n, conv in enumerate(data.conversations, start=1):
            print(f"--- conversation {n} (line {data.line_numbers[n - 1]})")
            window: list[Turn] = []
            for i, m in enumerate(conv):
                if m["role"] == "assistant":
                    window.append(Turn(role="assistant", content=m["content"]))
                    print(f"    gold {name}: {m['content']}")
                    continue
                window.append(Turn(role="user", name=sanitize_name(m["name"], name), content=m["content"]))
                d = runtime.score(f"replay-{n}", window)
                gold = "speak" if i + 1 < len(conv) and conv[i + 1]["role"] == "assistant" else "silent"
                verdict = "speak " if d.p_speak >= threshold else "silent"
                print(f"{m['name']}: {m['content']}    [{verdict} p={d.p_speak:.2f} gold={gold}]")
    finally:
        runtime.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every core subcommand."""
    p = argparse.ArgumentParser(prog="chime", description="A group-chat participant that knows when to speak.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, runtime: bool = False) -> None:
        sp.add_argument("--config", type=Path, help="YAML config (default: the embedded default)")
        sp.add_argument("--data-dir", type=Path, help="data directory (default: $XDG_DATA_HOME/chime)")
        if runtime:
            sp.add_argument(
                "--runtime",
                choices=["llama_cpp", "rules", "transformers", "openai"],
                help="override runtime.decider.kind",
            )

    common(sub.add_parser("run", help="start the bot"), runtime=True)
    db = sub.add_parser("db", help="store migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?")
    db.add_argument("--url", help="store URL (default: from the config)")
    common(db)
    cfg = sub.add_parser("config", help="configuration")
    cfg.add_argument("action", choices=["check"])
    cfg.add_argument("file", type=Path)
    ex = sub.add_parser("export", help="export a channel as seed-format JSONL, or an adapter as GGUF")
    ex.add_argument("target", help="platform:channel_id (or an adapter directory with --gguf/--merge)")
    ex.add_argument("--out", type=Path)
    ex.add_argument(
        "--labels", action="store_true", help="only labelled conversations; a false interruption becomes silence"
    )
    common(ex)
    memory_cli.add_parser(sub, common)
    rp = sub.add_parser("replay", help="decide on every human turn of a seed-format file")
    rp.add_argument("file", type=Path)
    rp.add_argument("--threshold", type=float)
    common(rp, runtime=True)
    for name in _TRAINING_COMMANDS:
        sub.add_parser(name, help=f"{name} (training package; see 'chime {name} --help')", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the chime command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "eval" and any(a == "--answers" or a.startswith("--answers=") for a in argv):
            from chime import memory_eval  # the memory evaluation needs no training package

            return memory_eval.main(argv[1:])
        if argv and argv[0] in _TRAINING_COMMANDS:
            return _dispatch(_TRAINING_COMMANDS[argv[0]], argv[1:])
        if (
            argv
            and argv[0] == "export"
            and any(a in ("--gguf", "--merge") or a.startswith(("--gguf=", "--merge=")) for a in argv)
        ):
            return _dispatch("training.export.cli", argv[1:])
        args = build_parser().parse_args(argv)
        handlers = {
            "run": cmd_run,
            "db": cmd_db,
            "config": cmd_config_check,
            "replay": cmd_replay,
            "export": cmd_export,
            "memory": memory_cli.cmd_memory,
        }
        return handlers[args.command](args)
    except ConfigError as e:
        print(f"chime: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file or directory: the message names it
        print(f"chime: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # seed-format errors carry file:line
        print(f"chime: {e}", file=sys.stderr)
        return 2
    except (RuntimeError_, StoreError) as e:  # a model file or the database: the message names it
        print(f"chime: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("chime").info("interrupted")
        return 130


def _dispatch(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        print(f"chime: this command needs the training extra: pip install 'chime-bot[train]' ({e})", file=sys.stderr)
        return 2
    return int(mod.main(argv) or 0)
