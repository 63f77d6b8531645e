"""Paired differences to a baseline method, with a 95 % Student-t confidence interval over seeds.

Runs of one seed are paired across methods: `train` seeds torch with the run's seed before it builds the
model, so two methods whose networks have the same parameter names and shapes start from the same weights,
and the batch order comes from its own generator seeded the same way, so it is the same for every method.
The difference of a pair (method minus baseline, same seed) removes what the seed does to both; the mean
of the differences and its interval say whether the method differs from the baseline beyond seed noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rknet.compare.plan import Setting
from rknet.compare.results import SettingResult

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences (fractions of 1 for accuracies) and its two-sided confidence interval."""

    mean: float
    low: float
    high: float
    seeds: int
    confidence: float = CONFIDENCE

    @property
    def contains_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def t_quantile(probability: float, dof: int) -> float:
    """The Student-t quantile t_{probability, dof} (scipy.stats.t.ppf)."""
    from scipy.stats import t

    return float(t.ppf(probability, dof))


def t_interval(differences: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean ± t_{(1+confidence)/2, n-1} · sd / √n over n >= 2 paired differences (sd: sample std)."""
    n = len(differences)
    if n < 2:
        raise ValueError(f"a confidence interval over seeds needs at least 2 paired seeds, got {n}")
    mean = statistics.fmean(differences)
    half = t_quantile((1 + confidence) / 2, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


@dataclass
class PairedDifference:
    """One setting against the baseline setting that differs from it only in the method."""

    result: SettingResult
    baseline: SettingResult
    seeds: list[int]
    accuracy: Interval | None  # test accuracy, method minus baseline; None with fewer than 2 paired seeds
    half_step: Interval | None  # the same, both re-discretised at half their step size
    twice_step: Interval | None  # ... and at twice their step size
    same_initial_weights: bool  # parameter names and shapes agree, so the same seed gives the same weights

    @property
    def method(self) -> str:
        return self.result.setting.method_label

    def verdict(self) -> str:
        """The conclusion in words: whether the interval excludes zero, and in which direction."""
        base = self.baseline.setting.method_label
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}"
        if self.accuracy is None:
            return f"too few paired seeds ({len(self.seeds)}) for an interval"
        if self.accuracy.contains_zero:
            return f"no detectable difference from {base} at {seeds}"
        direction = "higher" if self.accuracy.mean > 0 else "lower"
        return f"{direction} than {base} at {seeds} (the interval excludes 0)"


def _paired_interval(result: SettingResult, baseline: SettingResult, seeds: list[int],
                     values: Callable[[SettingResult], list[float | None]]) -> Interval | None:
    mine, theirs = dict(zip(result.seeds, values(result))), dict(zip(baseline.seeds, values(baseline)))
    differences = [mine[s] - theirs[s] for s in seeds if mine.get(s) is not None and theirs.get(s) is not None]
    return t_interval(differences) if len(differences) >= 2 else None


def _baseline_of(setting: Setting, method: str) -> Setting:
    return Setting(method, setting.layer, setting.steps, setting.control_steps, setting.widths)


def paired_differences(results: list[SettingResult], baseline: str) -> list[PairedDifference]:
    """Every non-baseline setting against the baseline method's setting of the same layer, steps, control
    grid and widths, over the seeds both completed."""
    by_setting = {r.setting: r for r in results}
    differences = []
    for result in results:
        if result.setting.method == baseline:
            continue
        base = by_setting.get(_baseline_of(result.setting, baseline))
        if base is None:
            continue
        seeds = [s for s in result.seeds if s in base.seeds]
        differences.append(PairedDifference(
            result, base, seeds,
            _paired_interval(result, base, seeds, lambda r: r.test_acc),
            _paired_interval(result, base, seeds, lambda r: r.half_step_acc),
            _paired_interval(result, base, seeds, lambda r: r.twice_step_acc),
            result.shapes is not None and result.shapes == base.shapes))
    return differences


DIFFERENCE_COLUMNS = ("baseline", "paired_seeds", "diff_mean", "diff_low", "diff_high", "half_step_diff_mean",
                      "half_step_diff_low", "half_step_diff_high", "twice_step_diff_mean", "twice_step_diff_low",
                      "twice_step_diff_high", "same_initial_weights")


def difference_row(difference: PairedDifference | None) -> dict[str, object]:
    """The results.csv cells of a setting's paired difference (accuracies as fractions; empty without one)."""
    if difference is None:
        return {}
    row: dict[str, object] = {"baseline": difference.baseline.setting.method_label,
                              "paired_seeds": len(difference.seeds),
                              "same_initial_weights": difference.same_initial_weights}
    for prefix, interval in (("", difference.accuracy), ("half_step_", difference.half_step),
                             ("twice_step_", difference.twice_step)):
        if interval is not None:
            row.update({f"{prefix}diff_mean": interval.mean, f"{prefix}diff_low": interval.low,
                        f"{prefix}diff_high": interval.high})
    return row
