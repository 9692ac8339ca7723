"""Real traffic: how often the bot would speak up on lines that real people put to another person.

Reads the annotated Ubuntu IRC logs (Kummerfeld et al., ACL 2019, CC BY 4.0; shared data,
read where it lies and never copied into the project). Each log is replayed as one channel,
every message a human turn under its nick. A line from the annotated part (line 1000 on)
is *put to another person*, so gold silent, when the annotation links it as an answer to an
earlier line of someone else, or when it opens by addressing a nick present in the window
("jacob_: what do you mean?"). The "unprompted rate" is the share of those lines on which the
bot would speak. Lines with neither mark have no gold decision; their speak rate is reported
for context only.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from model_runtime.interface import Runtime, RuntimeError_
from model_runtime.protocol import Turn, cap_text, sanitize_name
from training.eval.windows import addresses_present, human_windows, turn_rules

# The corpus annotates reply links from this line on; the lines before are context only.
FIRST_ANNOTATED = 1000
# A factoid bot of the channel: its lines are context, not a person's.
BOT_NICKS = frozenset({"ubotu", "ubottu"})
_MESSAGE = re.compile(r"^\[\d\d:\d\d\] <([^>]+)> (.*)$")
_MAX_CHARS = 2000


@dataclass(frozen=True)
class IrcLine:
    """One message of a log: its line number in the file, the nick and the text."""

    number: int
    nick: str
    text: str


@dataclass(frozen=True)
class LineResult:
    """One annotated line (its nick and text), p_speak on it, and why it is gold silent (None: no gold decision)."""

    log: str
    number: int
    nick: str
    text: str
    p_speak: float
    forced: bool
    addressed_other: bool  # the bot's own rule saw the line put to another person
    gold: str | None  # "reply_link", "nick_address" or None


def read_log(path: Path) -> list[IrcLine]:
    """The messages of an ``.ascii.txt`` log (system lines and actions left out)."""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        m = _MESSAGE.match(raw)
        if m and m.group(2).strip():
            lines.append(IrcLine(number, m.group(1), m.group(2).strip()))
    return lines


def read_links(path: Path) -> dict[int, set[int]]:
    """For each line, the earlier lines the annotation links it to (a self-link starts a thread)."""
    links: dict[int, set[int]] = defaultdict(set)
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            a, b = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise RuntimeError_(f"{path}:{n}: expected 'LINE LINE -', got {raw!r}") from None
        if a != b:
            links[max(a, b)].add(min(a, b))
    return links


def log_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(log, annotation) file pairs in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise RuntimeError_(f"--irc {folder}: no such folder (expected annotated IRC logs)")
    pairs = []
    for log in sorted(folder.glob("*.ascii.txt")):
        ann = log.with_name(log.name.replace(".ascii.txt", ".annotation.txt"))
        if ann.is_file():
            pairs.append((log, ann))
    if not pairs:
        raise RuntimeError_(f"--irc {folder}: no *.ascii.txt logs with an .annotation.txt beside them")
    return pairs


def gold_label(
    line: IrcLine, by_number: dict[int, IrcLine], links: dict[int, set[int]], to_present: bool
) -> str | None:
    """Why the line is gold silent: it addresses a nick present, or it answers another person's line."""
    if to_present:
        return "nick_address"
    for earlier in links.get(line.number, ()):
        other = by_number.get(earlier)
        if other is not None and other.nick != line.nick:
            return "reply_link"
    return None


def replay_log(
    runtime: Runtime, log: Path, ann: Path, history: int, max_lines: int | None, channel: str
) -> list[LineResult]:
    """p_speak on each annotated human line of one log, replayed as one channel."""
    messages = read_log(log)
    links = read_links(ann)
    by_number = {m.number: m for m in messages}
    name = runtime.assistant_name
    turns = [
        Turn(role="user", name=sanitize_name(m.nick, name), content=cap_text(m.text, _MAX_CHARS)) for m in messages
    ]
    out: list[LineResult] = []
    for k, window in human_windows(turns, history):
        line = messages[k]
        if line.number < FIRST_ANNOTATED or line.nick.lower() in BOT_NICKS:
            continue
        if max_lines is not None and len(out) >= max_lines:
            break
        forced, to_other = turn_rules(window, name)
        # The gold mark: a nick present in the window, whatever else the bot's rules catch.
        gold = gold_label(line, by_number, links, not forced and addresses_present(window, name))
        d = runtime.score(channel, window)
        out.append(LineResult(log.name, line.number, line.nick, line.text, d.p_speak, forced, to_other, gold))
    runtime.forget(channel)
    return out


def _rate(results: list[LineResult], threshold: float, rules: bool) -> float | None:
    if not results:
        return None
    spoke = [
        (r.forced or (not r.addressed_other and r.p_speak >= threshold)) if rules else r.p_speak >= threshold
        for r in results
    ]
    return sum(spoke) / len(results)


def summarize(results: list[LineResult], threshold: float, seconds: float) -> dict:
    """Speak rates on the gold-silent lines (the unprompted rate), by kind, and on the rest."""
    to_other = [r for r in results if r.gold is not None]
    groups = {
        "put_to_another_person": to_other,
        "nick_address": [r for r in results if r.gold == "nick_address"],
        "reply_link_only": [r for r in results if r.gold == "reply_link"],
        "no_gold": [r for r in results if r.gold is None],
    }
    out: dict = {"lines": len(results), "threshold": threshold}
    for key, group in groups.items():
        out[key] = {
            "lines": len(group),
            "speak_rate": _rate(group, threshold, rules=True),
            "speak_rate_model_only": _rate(group, threshold, rules=False),
        }
    out["unprompted_rate"] = out["put_to_another_person"]["speak_rate"]
    out["speak_rate_all_lines"] = _rate(results, threshold, rules=True)
    out["decisions_per_second"] = len(results) / seconds if seconds > 0 else None
    return out


def write_lines(path: Path, results: list[LineResult]) -> None:
    """One JSON line per measured IRC line (log, line number, nick, text, p_speak, gold mark, rules' flags).

    The file holds the shared corpus's text: it is for reading errors, never for committing.
    """
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            row = {
                "log": r.log,
                "line": r.number,
                "nick": r.nick,
                "content": r.text,
                "p_speak": r.p_speak,
                "gold": r.gold,
                "forced": r.forced,
                "to_other": r.addressed_other,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def evaluate(
    runtime: Runtime,
    folder: Path,
    threshold: float,
    *,
    history: int = 40,
    max_lines: int | None = None,
    lines_out: Path | None = None,
) -> dict:
    """Replay every annotated log in ``folder`` and summarise the unprompted rate at ``threshold``.

    ``lines_out``: also write every measured line there (``write_lines``), to read the errors.
    """
    pairs = log_pairs(Path(folder))
    results: list[LineResult] = []
    start = time.perf_counter()
    for i, (log, ann) in enumerate(pairs):
        results += replay_log(runtime, log, ann, history, max_lines, channel=f"irc-{i}")
        print(f"  real traffic: {i + 1}/{len(pairs)} logs, {len(results)} lines", file=sys.stderr)
    report = summarize(results, threshold, time.perf_counter() - start)
    report.update(data=str(folder), logs=len(pairs), model_id=runtime.model_id)
    if lines_out is not None:
        write_lines(lines_out, results)
        report["lines_file"] = str(lines_out)
    return report
