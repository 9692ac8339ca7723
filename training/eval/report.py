"""How ``chime eval`` shows its results: the text table and the threshold sweep plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from training.eval.metrics import TurnResult, sweep

# The targets on the dev and challenge splits, shown under each table.
TARGET_F1 = 0.85
TARGET_FIR = 0.03
TARGET_FORCED = 1.0

_COLUMNS = (
    ("threshold", "thr", "{:.2f}"),
    ("precision", "prec", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("false_interruption_rate", "FIR", "{:.1%}"),
    ("missed_intervention_rate", "MIR", "{:.1%}"),
    ("balanced_accuracy", "bal.acc", "{:.3f}"),
    ("forced_compliance", "forced", "{:.0%}"),
    ("decisions_per_second", "dec/s", "rate"),
)


def _cell(value: object, fmt: str) -> str:
    if value is None:
        return "n/a"
    if fmt == "rate":  # from a fraction of a decision per second to hundreds of thousands
        return f"{value:.2f}" if value < 10 else f"{value:.0f}"
    return fmt.format(value)


def targets_met(m: dict) -> list[str]:
    """The targets ``m`` misses, as readable phrases (empty: all met)."""
    missed = []
    if m["f1"] < TARGET_F1:
        missed.append(f"F1 {m['f1']:.3f} < {TARGET_F1}")
    if m["false_interruption_rate"] > TARGET_FIR:
        missed.append(f"false interruptions {m['false_interruption_rate']:.1%} > {TARGET_FIR:.0%}")
    if m["forced_compliance"] is not None and m["forced_compliance"] < TARGET_FORCED:
        missed.append(f"forced compliance {m['forced_compliance']:.0%} < 100%")
    return missed


def format_report(report: dict) -> str:
    """The evaluation as a table: the configured runtime first, then each baseline."""
    rows = [(report["model_id"], report)]
    if "model_only" in report:
        # The same p_speak without the bot's rules (forcing by address, questions put to others).
        rows.append(("  model alone (no rules)", report["model_only"]))
    rows += list(report.get("baselines", {}).items())
    width = max(12, *(len(name) for name, _ in rows))
    header = f"{'runtime':<{width}} " + " ".join(f"{label:>7}" for _, label, _ in _COLUMNS)
    lines = [
        f"{report['data']}: {report['conversations']} conversations, {report['turns']} human turns, "
        f"{report['speak_turns']} gold speak, {report['forced_turns']} forced",
        "",
        header,
        "-" * len(header),
    ]
    for name, m in rows:
        if "error" in m:
            lines.append(f"{name:<{width}} {m['error']}")
            continue
        cells = " ".join(f"{_cell(m.get(key), fmt):>7}" for key, _, fmt in _COLUMNS)
        lines.append(f"{name:<{width}} {cells}")
    lines.append("")
    lines.append(
        f"confusion at threshold {report['threshold']:.2f}: tp {report['tp']}  fp {report['fp']}  "
        f"fn {report['fn']}  tn {report['tn']};  tokens evaluated per decision "
        f"{report['tokens_evaluated_per_decision']:.1f} (cached {report['tokens_cached_per_decision']:.1f})"
    )
    missed = targets_met(report)
    lines.append("targets (F1 >= 0.85, FIR <= 3%, forced 100%): " + ("met" if not missed else "; ".join(missed)))
    if "best_threshold" in report:
        lines.append(
            f"best threshold by F1: {report['best_threshold']:.3f} (F1 {report['best_f1']:.3f}); "
            f"sweep plot: {report['sweep_png']}"
        )
    if "best_threshold_within_fir" in report:
        capped = report["best_threshold_within_fir"]
        lines.append(
            f"best threshold by F1 with false interruptions <= {TARGET_FIR:.0%}: "
            + (
                "none (forced turns alone exceed it)"
                if capped is None
                else f"{capped:.3f} (F1 {report['best_f1_within_fir']:.3f})"
            )
        )
    return "\n".join(lines)


def format_traffic(t: dict) -> str:
    """The real-traffic check as a few lines: the unprompted rate and the speak rate by kind of line."""

    def rate(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    lines = [
        f"real traffic: {t['data']}: {t['logs']} logs, {t['lines']} annotated lines, threshold {t['threshold']:.2f}"
    ]
    for key, label in (
        ("put_to_another_person", "put to another person (gold silent)"),
        ("nick_address", "  opening with a present nick"),
        ("reply_link_only", "  answering another's line, no nick"),
        ("no_gold", "other lines (no gold)"),
    ):
        g = t[key]
        lines.append(
            f"  {label:<38} {g['lines']:>5} lines  speaks {rate(g['speak_rate']):>6}"
            f"  (model alone {rate(g['speak_rate_model_only'])})"
        )
    lines.append(f"unprompted rate on real traffic: {rate(t['unprompted_rate'])}")
    return "\n".join(lines)


def format_all(report: dict) -> str:
    """Every data set's table, then the real-traffic lines."""
    if "sets" not in report:
        return format_report(report)
    parts = [format_report(r) for r in report["sets"]]
    if report.get("real_traffic"):
        parts.append(format_traffic(report["real_traffic"]))
    return "\n\n".join(parts)


def write_sweep_png(results: Sequence[TurnResult], path: str | Path, *, threshold: float, best: float) -> None:
    """Plot precision, recall and F1 against the threshold, marking the F1 maximum and the threshold in use."""
    import matplotlib

    # No display on servers and in CI: render straight to the file.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [i / 200 for i in range(201)]
    rows = sweep(results, grid)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        ax.plot(grid, [r[1] for r in rows], label="precision")
        ax.plot(grid, [r[2] for r in rows], label="recall")
        ax.plot(grid, [r[3] for r in rows], label="F1", linestyle="--")
        ax.axvline(best, color="black", linewidth=1, label=f"best F1 at {best:.3f}")
        ax.axvline(threshold, color="grey", linestyle=":", linewidth=1, label=f"threshold in use {threshold:.2f}")
        ax.set_xlabel("threshold on p_speak")
        ax.set_ylabel("score")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"Speak decisions over {len(results)} human turns")
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
