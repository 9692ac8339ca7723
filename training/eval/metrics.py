"""Decision metrics: what the evaluation computes from per-turn p_speak and the gold decisions.

Pure functions over ``TurnResult`` lists, so the arithmetic can be checked by hand.
A turn is predicted "speak" as the bot decides it: always when the turn addresses the
assistant (forced), never when it is put to another person in the room, otherwise when
``p_speak >= threshold``. With ``rules=False`` only ``p_speak >= threshold`` counts (the
model alone, as the baselines and the ablations report it).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnResult:
    """One human turn of a replayed conversation: the model's p_speak against the gold decision."""

    conversation: int
    message: int
    p_speak: float
    gold_speak: bool
    # None: not a forced turn; otherwise whether the forced reply was non-empty.
    complied: bool | None = None
    # The turn addresses the assistant ("@assistant", "hey assistant, ..."): the bot answers.
    forced: bool = False
    # The turn is put to another person in the window ("Priya, ...", "nick: ..."): not ours.
    to_other: bool = False

    def spoke(self, threshold: float, rules: bool = True) -> bool:
        """Whether the bot speaks on this turn at ``threshold`` (``rules``: force and addressee applied)."""
        if not rules:
            return self.p_speak >= threshold
        return self.forced or (not self.to_other and self.p_speak >= threshold)


@dataclass(frozen=True)
class Confusion:
    """Counts of speak decisions against the gold ones."""

    tp: int
    fp: int
    fn: int
    tn: int


def confusion(results: Sequence[TurnResult], threshold: float, rules: bool = True) -> Confusion:
    """Count true/false speaks and silences at ``threshold``."""
    tp = fp = fn = tn = 0
    for r in results:
        spoke = r.spoke(threshold, rules)
        if spoke and r.gold_speak:
            tp += 1
        elif spoke:
            fp += 1
        elif r.gold_speak:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, fn, tn)


def _ratio(num: int, den: int) -> float:
    # An empty denominator (e.g. precision of a model that never speaks) counts as 0, like
    # scikit-learn's zero_division=0, so the always-silent baseline scores 0 rather than n/a.
    return num / den if den else 0.0


def scores(c: Confusion) -> dict[str, float]:
    """Precision, recall, F1, false interruption, missed intervention and balanced accuracy."""
    precision = _ratio(c.tp, c.tp + c.fp)
    recall = _ratio(c.tp, c.tp + c.fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fir = _ratio(c.fp, c.fp + c.tn)
    specificity = _ratio(c.tn, c.fp + c.tn)
    # Balanced accuracy averages the recall of the classes that occur in the data.
    per_class = [v for v, n in ((recall, c.tp + c.fn), (specificity, c.fp + c.tn)) if n]
    balanced = sum(per_class) / len(per_class) if per_class else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_interruption_rate": fir,
        "missed_intervention_rate": _ratio(c.fn, c.tp + c.fn),
        "balanced_accuracy": balanced,
    }


def forced_compliance(results: Sequence[TurnResult]) -> float | None:
    """Share of forced turns that got a non-empty reply; None when there are none."""
    forced = [r.complied for r in results if r.complied is not None]
    return sum(forced) / len(forced) if forced else None


def metrics(results: Sequence[TurnResult], threshold: float, rules: bool = True) -> dict[str, float | int | None]:
    """All decision metrics at ``threshold`` plus the turn counts they rest on."""
    c = confusion(results, threshold, rules)
    out: dict[str, float | int | None] = dict(scores(c))
    out["forced_compliance"] = forced_compliance(results)
    out["turns"] = len(results)
    out["speak_turns"] = sum(r.gold_speak for r in results)
    out["forced_turns"] = sum(r.complied is not None for r in results)
    out["to_other_turns"] = sum(r.to_other for r in results)
    out.update(tp=c.tp, fp=c.fp, fn=c.fn, tn=c.tn, threshold=threshold, rules=rules)
    return out


def candidate_thresholds(results: Sequence[TurnResult]) -> list[float]:
    """Thresholds that separate every pair of distinct p_speak values (midpoints), plus both ends."""
    ps = sorted({r.p_speak for r in results})
    mids = [(a + b) / 2 for a, b in zip(ps, ps[1:], strict=False)]
    # Midpoints rather than the values themselves: a threshold equal to an observed p_speak
    # sits on a knife edge that an unseen conversation would fall either side of.
    return [0.0, *mids, 1.0 + 1e-9]


def sweep(
    results: Sequence[TurnResult], thresholds: Sequence[float], rules: bool = True
) -> list[tuple[float, float, float, float, float]]:
    """(threshold, precision, recall, F1, false interruption rate) at each threshold."""
    rows = []
    for t, c in zip(thresholds, confusions(results, thresholds, rules), strict=True):
        s = scores(c)
        rows.append((t, s["precision"], s["recall"], s["f1"], s["false_interruption_rate"]))
    return rows


def confusions(results: Sequence[TurnResult], thresholds: Sequence[float], rules: bool = True) -> list[Confusion]:
    """``confusion`` at each threshold, counted from sorted p_speak values instead of a pass per threshold.

    Choosing a threshold on the train split tries one per distinct p_speak (thousands), so
    a pass over every turn per threshold grew with the square of the split.
    """
    # Turns whose decision the threshold cannot change: forced ones speak, ones put to
    # another person stay silent (with the rules); the rest speak when p_speak >= t.
    fixed_tp = fixed_fp = 0
    speak_ps: list[float] = []
    silent_ps: list[float] = []
    for r in results:
        if rules and (r.forced or r.to_other):
            fixed_tp += r.forced and r.gold_speak
            fixed_fp += r.forced and not r.gold_speak
        else:
            (speak_ps if r.gold_speak else silent_ps).append(r.p_speak)
    speak_ps.sort()
    silent_ps.sort()
    gold_speak = sum(r.gold_speak for r in results)
    gold_silent = len(results) - gold_speak
    out = []
    for t in thresholds:
        tp = fixed_tp + len(speak_ps) - bisect_left(speak_ps, t)
        fp = fixed_fp + len(silent_ps) - bisect_left(silent_ps, t)
        out.append(Confusion(tp, fp, gold_speak - tp, gold_silent - fp))
    return out


def best_thresholds(
    results: Sequence[TurnResult], max_fir: float, rules: bool = True
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """(threshold, F1) with the highest F1, and the same among thresholds with at most ``max_fir``.

    The capped choice serves a target pair such as F1 >= 0.85 with <= 3% false
    interruptions, where the best F1 alone may sit where the bot interrupts too often; it is
    None when no threshold keeps false interruptions that low (forced turns alone exceed it).
    Ties go to the highest threshold.
    """
    if not results:
        raise ValueError("no turns to choose a threshold from")
    rows = sweep(results, candidate_thresholds(results), rules)
    best = max(rows, key=lambda r: (r[3], r[0]))
    within = [r for r in rows if r[4] <= max_fir]
    capped = max(within, key=lambda r: (r[3], r[0])) if within else None
    return (best[0], best[3]), None if capped is None else (capped[0], capped[3])
