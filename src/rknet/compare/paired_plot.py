"""The paired-differences figure of `rknet compare --baseline`: each method minus the baseline, per seed and
as a mean with its 95 % confidence interval, at the trained step size and re-discretised at half and twice it."""

from __future__ import annotations

from pathlib import Path

from rknet.common.figures import agg_figure, save_figure
from rknet.compare.paired import CONFIDENCE, Interval, PairedDifference
from rknet.compare.plan import varying_phrases

DIFFERENCES = "paired_differences.png"
VARIANTS = (("trained step size", "accuracy", "test_acc", "o"), ("half the step size", "half_step", "half_step_acc",
                                                                  "s"),
            ("twice the step size", "twice_step", "twice_step_acc", "^"))
OFFSET = 0.24  # horizontal distance between the three variants of one setting
SEED_SHIFT = 0.07  # the single seeds' dots sit just left of their interval, not hidden behind it


def _per_seed(difference: PairedDifference, values: str) -> list[float]:
    mine = dict(zip(difference.result.seeds, getattr(difference.result, values)))
    theirs = dict(zip(difference.baseline.seeds, getattr(difference.baseline, values)))
    return [100 * (mine[s] - theirs[s]) for s in difference.seeds if mine.get(s) is not None
            and theirs.get(s) is not None]


def plot_paired_differences(differences: list[PairedDifference], path: Path) -> Path:
    """One column per compared setting; dots: the per-seed differences, marker and bar: mean and confidence
    interval; a line at zero (no difference)."""
    settings = [d.result.setting for d in differences]
    phrases = varying_phrases(settings)
    layers = len({s.layer for s in settings}) > 1
    labels = ["\n".join([s.method_label, *([s.layer] if layers else []), *phrases(s)]) for s in settings]
    figure = agg_figure((max(6.5, 1.8 * len(differences) + 2.0), 5.0))
    ax = figure.subplots()
    ax.axhline(0.0, color="0.3", linewidth=1.0, zorder=1)
    colours = ("tab:blue", "tab:orange", "tab:green")
    for k, (name, attribute, values, marker) in enumerate(VARIANTS):
        x_shift = (k - 1) * OFFSET
        for i, difference in enumerate(differences):
            seeds = _per_seed(difference, values)
            ax.plot([i + x_shift - SEED_SHIFT] * len(seeds), seeds, linestyle="none", marker=".", color=colours[k],
                    alpha=0.6, markersize=6, zorder=2)
            interval: Interval | None = getattr(difference, attribute)
            if interval is None:
                continue
            mean = 100 * interval.mean
            ax.errorbar(i + x_shift, mean, yerr=[[mean - 100 * interval.low], [100 * interval.high - mean]],
                        color=colours[k], marker=marker, markersize=7, capsize=5, linestyle="none",
                        markeredgecolor="black", markeredgewidth=0.5, zorder=3,
                        label=name if i == 0 else None)
    ax.set_xticks(range(len(differences)), labels)
    ax.set_xlim(-0.6, len(differences) - 0.4)
    baseline = differences[0].baseline.setting.method_label if differences else "the baseline"
    ax.set_ylabel(f"test accuracy minus {baseline}'s\n(percentage points, same seed)")
    seeds = sorted({len(d.seeds) for d in differences})
    figure.suptitle(f"Paired differences to {baseline}: mean and {100 * CONFIDENCE:g} % confidence interval over "
                 f"{'/'.join(map(str, seeds))} seeds\n(dots: single seeds; an interval crossing 0: no detectable "
                 "difference)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    figure.legend(title="both networks evaluated at", loc="outside lower center", ncols=3, fontsize=8,
                  title_fontsize=8)
    return save_figure(figure, path)
