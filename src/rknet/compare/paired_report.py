"""The report's words and table for paired differences to a baseline (`rknet compare --baseline`)."""

from __future__ import annotations

from rknet.compare.paired import CONFIDENCE, Interval, PairedDifference


def interval_text(interval: Interval | None) -> str:
    """`+0.44 [-0.31, +1.19]`: mean and interval of a difference in percentage points; – without one."""
    if interval is None:
        return "–"
    return f"{100 * interval.mean:+.2f} [{100 * interval.low:+.2f}, {100 * interval.high:+.2f}]"


def difference_line(difference: PairedDifference) -> str:
    """One log line: `heun - euler: +0.44 points, 95 % interval [-0.31, +1.19]: no detectable ...`."""
    name = f"{difference.result.label} - {difference.baseline.setting.method_label}"
    if difference.accuracy is None:
        return f"{name}: {difference.verdict()}"
    a = difference.accuracy
    return (f"{name}: test accuracy {100 * a.mean:+.2f} points, {100 * a.confidence:g} % interval "
            f"[{100 * a.low:+.2f}, {100 * a.high:+.2f}]: {difference.verdict()}")


def differences_section(differences: list[PairedDifference], baseline: str, describe) -> list[str]:
    """The report's section: a table of each setting's paired difference to the baseline, the verdicts in
    words, and how the pairs were formed (where the initial weights could not be paired, it says so)."""
    level = f"{100 * CONFIDENCE:g} %"
    lines = [f"## Paired differences to {baseline}", "",
             f"Per seed: the method's test accuracy minus {baseline}'s on the same seed, in percentage points; "
             f"mean over the paired seeds and its {level} confidence interval (Student t: mean ± "
             "t<sub>0.975, n-1</sub> · sd / √n). Half / twice step: the same difference with both networks "
             "re-discretised at half and at twice their step size (`rknet eval --steps`).", "",
             f"| setting | paired seeds | Δ test accuracy [{level} CI] | conclusion | Δ at half step | "
             "Δ at twice step | same initial weights |",
             "|---|---|---|---|---|---|---|"]
    for d in differences:
        lines.append(f"| {describe(d.result)} | {len(d.seeds)} | {interval_text(d.accuracy)} | {d.verdict()} | "
                     f"{interval_text(d.half_step)} | {interval_text(d.twice_step)} | "
                     f"{'yes' if d.same_initial_weights else 'no (other parameter shapes)'} |")
    if not differences:
        lines.append(f"| (no setting has a {baseline} counterpart with completed seeds) | | | | | | |")
    lines += ["", "In words:", ""]
    lines += [f"- {d.result.label}: {d.verdict()}." for d in differences]
    unpaired = [d.result.label for d in differences if not d.same_initial_weights]
    lines += ["", "Pairing: every run seeds torch with its seed before building the network and draws its batches "
              "from a generator seeded the same way, so runs of one seed see the same batches in the same order "
              f"whatever the method, and start from the same weights as {baseline}'s run when the networks have "
              "the same parameter names and shapes (checked on the saved models)."
              + (f" Not so for {', '.join(unpaired)}: other parameter shapes (e.g. an IMEX operator control or "
                 "another control count), so only the batch order is paired there." if unpaired else ""), ""]
    return lines
