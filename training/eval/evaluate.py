"""``chime eval``: replay conversations turn by turn and measure when the runtime chooses to speak.

Each conversation is replayed over its gold history: at every human turn the runtime is
asked for p_speak on the window ending there (the window for turn k extends the one for
turn k-1, which is what the runtime's per-channel cache is for). The gold decision is
"speak" iff an assistant message follows the turn. Turns containing ``@assistant`` are
also asked with ``force=True``, and count as complied if the reply is non-empty.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime import create_runtime
from model_runtime.interface import Runtime, RuntimeError_
from model_runtime.options import LlamaCppOptions, RuntimeOptions
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn, cap_text, sanitize_name
from model_runtime.seed_format import Conversation, SeedFormatError, read_seed_file
from training.eval import irc
from training.eval import report as eval_report
from training.eval.baselines import BASELINE_NAMES, AlwaysSilentRuntime, MentionOnlyRuntime, prompted_options
from training.eval.metrics import TurnResult, best_thresholds, metrics
from training.eval.windows import DEFAULT_HISTORY, human_windows, turn_rules

MAX_MESSAGE_CHARS = 2000
# What ``chime eval`` measures when given no file: the project's dev split and its challenge split.
_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEFAULT_SETS = (_DATA_DIR / "dev.jsonl", _DATA_DIR / "challenge.jsonl")


class EvalError(ValueError):
    """The evaluation cannot run on this input (names the file and what is wrong)."""


@dataclass
class Replay:
    """Per-turn results of one runtime over a data set and what the decisions cost."""

    results: list[TurnResult] = field(default_factory=list)
    decisions: int = 0
    seconds: float = 0.0
    tokens_evaluated: int = 0
    tokens_cached: int = 0


def load_conversations(path: str | Path) -> list[Conversation]:
    """Read a seed-format file for evaluation; a bad line or no human turn at all is an EvalError."""
    try:
        conversations = read_seed_file(path).conversations
    except (SeedFormatError, FileNotFoundError) as e:
        raise EvalError(str(e)) from None
    if not any(m["role"] == "user" for conv in conversations for m in conv):
        raise EvalError(f"{path}: no human turns to evaluate (the file has no conversations)")
    return conversations


def to_turns(conversation: Conversation, assistant_name: str) -> list[Turn]:
    """Protocol turns as the core would build them: names sanitised, long messages cut."""
    turns = []
    for m in conversation:
        content = cap_text(m["content"].strip(), MAX_MESSAGE_CHARS)
        if m["role"] == "user":
            turns.append(Turn(role="user", name=sanitize_name(m["name"], assistant_name), content=content))
        else:
            turns.append(Turn(role="assistant", content=content))
    return turns


def replay(
    runtime: Runtime,
    conversations: Sequence[Conversation],
    *,
    assistant_name: str = DEFAULT_ASSISTANT_NAME,
    history: int = DEFAULT_HISTORY,
    check_forced: bool = True,
    progress: Callable[[int, Replay], None] | None = None,
) -> Replay:
    """Ask ``runtime`` for p_speak at every human turn of every conversation.

    ``progress`` is called after each conversation with how many are done so far.
    """
    out = Replay()
    for ci, conv in enumerate(conversations):
        # One channel per conversation, so the runtime's cache follows each replay.
        channel = f"eval-{ci}"
        turns = to_turns(conv, assistant_name)
        for k, window in human_windows(turns, history):
            gold = k + 1 < len(turns) and turns[k + 1].role == "assistant"
            start = time.perf_counter()
            d = runtime.score(channel, window)
            out.seconds += time.perf_counter() - start
            out.decisions += 1
            out.tokens_evaluated += d.timings.tokens_evaluated
            out.tokens_cached += d.timings.tokens_cached
            forced, to_other = turn_rules(window, assistant_name)
            complied = None
            if check_forced and forced:
                reply = runtime.reply(channel, window)
                complied = bool(reply.text and reply.text.strip())
            out.results.append(TurnResult(ci, k, d.p_speak, gold, complied, forced=forced, to_other=to_other))
        runtime.forget(channel)
        if progress is not None:
            progress(ci + 1, out)
    return out


def _report_progress(total: int) -> Callable[[int, Replay], None]:
    """A progress callback that prints a line to stderr about every 10% of ``total``."""
    step = max(1, total // 10)

    def report(done: int, rep: Replay) -> None:
        if done % step == 0 or done == total:
            rate = rep.decisions / rep.seconds if rep.seconds > 0 else 0.0
            print(f"  {done}/{total} conversations, {rep.decisions} decisions, {rate:.1f}/s", file=sys.stderr)

    return report


def summarize(runtime: Runtime, rep: Replay, threshold: float, rules: bool = True) -> dict:
    """Metrics at ``threshold`` (as the bot decides, or the model alone) plus the runtime's identity and speed."""
    m: dict = {"runtime": runtime.name, "model_id": runtime.model_id}
    m.update(metrics(rep.results, threshold, rules))
    if rules:
        m["model_only"] = metrics(rep.results, threshold, rules=False)
    m["decisions_per_second"] = rep.decisions / rep.seconds if rep.seconds > 0 else None
    m["tokens_evaluated_per_decision"] = rep.tokens_evaluated / rep.decisions if rep.decisions else 0.0
    m["tokens_cached_per_decision"] = rep.tokens_cached / rep.decisions if rep.decisions else 0.0
    return m


def load_runtime_settings(config: Path | None) -> tuple[RuntimeOptions, str]:
    """The ``runtime:`` options and the assistant's name from a chime config, or the defaults."""
    if config is None:
        return LlamaCppOptions(), DEFAULT_ASSISTANT_NAME
    from bot.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as e:
        raise EvalError(str(e)) from None
    return cfg.runtime.decider, cfg.assistant.name


def evaluate_one(
    runtime: Runtime,
    conversations: Sequence[Conversation],
    threshold: float | None,
    args: argparse.Namespace,
    rules: bool = True,
) -> tuple[dict, Replay]:
    """Replay one runtime and summarise it at ``threshold`` (None: the runtime's base threshold)."""
    print(f"chime eval: replaying {len(conversations)} conversations with {runtime.model_id}", file=sys.stderr)
    rep = replay(
        runtime,
        conversations,
        assistant_name=runtime.assistant_name,
        history=args.history,
        progress=_report_progress(len(conversations)),
    )
    thr = runtime.base_threshold if threshold is None else threshold
    return summarize(runtime, rep, thr, rules), rep


def _baseline_runtime(name: str, options: RuntimeOptions, assistant_name: str) -> Runtime:
    if name == "prompted":
        return create_runtime(prompted_options(options), assistant_name=assistant_name)
    if name == "always_silent":
        return AlwaysSilentRuntime(assistant_name=assistant_name)
    return MentionOnlyRuntime(assistant_name=assistant_name)


def _tagged(path: Path, tag: str) -> Path:
    """``OUT.ext`` as ``OUT-tag.ext``, beside it."""
    return path.with_name(f"{path.stem}-{tag}{path.suffix}")


def _per_set_path(path: Path | None, args: argparse.Namespace, data: Path) -> Path | None:
    """An output file for one data set: the path given, or with the set's name added when there are several."""
    if path is None or len(args.data) == 1:
        return path
    return _tagged(path, data.stem)


def _irc_lines_path(args: argparse.Namespace) -> Path | None:
    """Where ``--turns`` puts the IRC lines: ``OUT-irc.jsonl``, never a data set's own turns file."""
    if args.turns is None:
        return None
    path = _tagged(args.turns, "irc")
    if any(_per_set_path(args.turns, args, Path(data)) == path for data in args.data):
        raise EvalError(f"{path}: the IRC lines and a data set's turns would share this file; rename that data set")
    return path


def write_turns(path: Path, conversations: Sequence[Conversation], results: Sequence[TurnResult]) -> None:
    """One JSON line per evaluated human turn: where it is, what was said, p_speak, gold and the rules' flags."""
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            msg = conversations[r.conversation][r.message]
            row = {
                "conversation": r.conversation,
                "message": r.message,
                "name": msg.get("name"),
                "content": msg["content"],
                "p_speak": r.p_speak,
                "gold_speak": r.gold_speak,
                "forced": r.forced,
                "to_other": r.to_other,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def run_set(runtime: Runtime, data: Path, args: argparse.Namespace, options: RuntimeOptions) -> dict:
    """One data set: the configured runtime (as the bot decides, and the model alone), the sweep, the baselines."""
    conversations = load_conversations(data)
    report, rep = evaluate_one(runtime, conversations, args.threshold, args)
    report = {"data": str(data), "conversations": len(conversations), **report}
    turns_path = _per_set_path(args.turns, args, data)
    if turns_path is not None:
        write_turns(turns_path, conversations, rep.results)
        report["turns_file"] = str(turns_path)
    sweep_png = _per_set_path(args.sweep, args, data)
    if sweep_png is not None:
        # The shipped threshold is the capped one: the best F1 within the false-interruption target.
        (best, best_f1), capped = best_thresholds(rep.results, eval_report.TARGET_FIR)
        eval_report.write_sweep_png(rep.results, sweep_png, threshold=report["threshold"], best=best)
        report.update(
            best_threshold=best,
            best_f1=best_f1,
            best_threshold_within_fir=None if capped is None else capped[0],
            best_f1_within_fir=None if capped is None else capped[1],
            sweep_png=str(sweep_png),
        )
    report["baselines"] = {}
    for name in [] if args.no_baselines else args.baselines:
        try:
            base = _baseline_runtime(name, options, runtime.assistant_name)
        except (ImportError, RuntimeError_) as e:
            # A missing base model must not hide the main result; the table says why.
            report["baselines"][name] = {"error": f"not evaluated: {e}"}
            continue
        try:
            # A baseline is its own policy: measured as it decides, without the bot's rules.
            report["baselines"][name] = evaluate_one(base, conversations, None, args, rules=False)[0]
        finally:
            base.close()
    return report


def run(args: argparse.Namespace) -> dict:
    """The whole evaluation: each data set, then real traffic when ``--irc`` names a log folder.

    One data set and no real traffic: that set's report. Otherwise ``{"sets": [...], "real_traffic": ...}``.
    """
    for data in args.data:
        if not Path(data).is_file():
            raise EvalError(f"{data}: no such file")
    lines_out = _irc_lines_path(args) if args.irc is not None else None
    options, assistant_name = load_runtime_settings(args.config)
    try:
        runtime = create_runtime(options, assistant_name=assistant_name)
    except ImportError as e:
        raise EvalError(f"cannot load the {options.kind} runtime: {e}") from None
    try:
        sets = [run_set(runtime, Path(data), args, options) for data in args.data]
        traffic = None
        if args.irc is not None:
            thr = runtime.base_threshold if args.threshold is None else args.threshold
            traffic = irc.evaluate(
                runtime, args.irc, thr, history=args.history, max_lines=args.irc_max_lines, lines_out=lines_out
            )
    finally:
        runtime.close()
    if len(sets) == 1 and traffic is None:
        return sets[0]
    return {"sets": sets, "real_traffic": traffic}


def _baseline_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINE_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown baseline {unknown[0]!r} (choose from {', '.join(BASELINE_NAMES)})")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The ``chime eval`` command line."""
    p = argparse.ArgumentParser(prog="chime eval", description=__doc__.splitlines()[0])
    p.add_argument(
        "data",
        type=Path,
        nargs="*",
        default=list(DEFAULT_SETS),
        help="seed-format JSON Lines files, each reported on its own (default: the dev and challenge splits)",
    )
    p.add_argument(
        "--irc",
        type=Path,
        metavar="DIR",
        help="also measure real traffic: a folder of annotated IRC logs (e.g. ../shared/data/ubuntu-irc/dev)",
    )
    p.add_argument("--irc-max-lines", type=int, help="at most this many annotated lines per IRC log (default: all)")
    p.add_argument("--config", type=Path, help="chime config whose runtime: section is evaluated (default: bundled)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument(
        "--sweep",
        type=Path,
        metavar="OUT.png",
        # "%%": argparse formats help strings with %.
        help="plot precision/recall against the threshold; report the best-F1 threshold and the best within "
        f"{eval_report.TARGET_FIR:.0%}% false interruptions",
    )
    p.add_argument("--threshold", type=float, help="override the runtime's threshold (0-1)")
    p.add_argument(
        "--turns",
        type=Path,
        metavar="OUT.jsonl",
        help="write every evaluated human turn (text, p_speak, gold, rules) to this file, to read the errors; "
        "with --irc, every measured IRC line to OUT-irc.jsonl beside it",
    )
    p.add_argument("--no-baselines", action="store_true", help="evaluate only the configured runtime")
    p.add_argument(
        "--baselines",
        type=_baseline_list,
        default=list(BASELINE_NAMES),
        metavar="NAMES",
        help=f"comma-separated baselines to run (default: {','.join(BASELINE_NAMES)})",
    )
    p.add_argument("--history", type=int, default=DEFAULT_HISTORY, help="most messages in a window (default 40)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``chime eval``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print(f"chime eval: --threshold must be between 0 and 1, got {args.threshold}", file=sys.stderr)
        return 2
    try:
        report = run(args)
    except (EvalError, RuntimeError_) as e:
        print(f"chime eval: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(eval_report.format_all(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
