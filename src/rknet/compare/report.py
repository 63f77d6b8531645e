"""OUT/report.md: the command, the settings, the results table, the plots and a plain summary."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from rknet.common.figures import PLOTS_EXTRA
from rknet.compare.machine import LOAD_INTERVAL, THREADS_ENV, THREADS_OPTION, Threads, cores
from rknet.compare.paired import PairedDifference
from rknet.compare.paired_report import differences_section
from rknet.compare.plan import CompareSpec, method_label, plural, varying_phrases, widths_text
from rknet.compare.resources import THREADS_CPUS, Resources
from rknet.compare.results import SettingResult
from rknet.compare.runner import Outcome
from rknet.compare.worker import CUDA_MEMORY, peak_resettable
from rknet.io.atomic import atomic_write_text
from rknet.io.layout import RUNS

CONTENDED_MARK = "†"


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def accuracy_text(result: SettingResult) -> str:
    """`83.10 ± 1.20` (percent), or the mean alone with one seed."""
    if result.acc_mean is None:
        return "–"
    if result.acc_std is None:
        return _pct(result.acc_mean)
    return f"{_pct(result.acc_mean)} ± {_pct(result.acc_std)}"


def describe_setting(result: SettingResult, spec: CompareSpec) -> str:
    """`heun / double` plus whichever other axes the grid varies."""
    s = result.setting
    return ", ".join([f"{s.method_label} / {s.layer}", *varying_phrases(spec.settings())(s)])


def results_table(results: list[SettingResult]) -> str:
    header = ("| method | layer | steps | control steps | widths | seeds | test accuracy (%) | at half step (%) | "
              "at twice step (%) | params | wall time (s) | time / epoch (s) | peak memory (MB) | f-evals / forward |")
    lines = [header, "|" + "---|" * 14]
    best = max((r.acc_mean for r in results if r.acc_mean is not None), default=None)
    for r in results:
        s = r.setting
        accuracy = accuracy_text(r)
        if best is not None and r.acc_mean == best:
            accuracy = f"**{accuracy}**"
        seeds = str(len(r.seeds)) + (f" ({len(r.failed)} failed)" if r.failed else "")
        row = r.row()
        mark = CONTENDED_MARK if r.contended else ""
        lines.append(f"| {s.method_label} | {s.layer} | {s.steps} | {s.controls_text} | {widths_text(s.widths)} | "
                     f"{seeds} | {accuracy} | {_pct(row['half_step_acc_mean'])} | {_pct(row['twice_step_acc_mean'])} | "
                     f"{_num(r.params, ',')} | {_num(row['wall_seconds_mean'], '.1f')}{mark} | "
                     f"{_num(row['seconds_per_epoch_mean'], '.2f')}{mark} | {_num(row['peak_memory_mb'], '.1f')} | "
                     f"{_num(r.evaluations_per_forward, 'd')} |")
    return "\n".join(lines)


def threads_text(results: list[SettingResult], threads: Threads) -> str:
    """The torch threads of this invocation and where they came from, and of the runs, where they differ."""
    origin = {THREADS_OPTION: "from --threads", THREADS_ENV: "from OMP_NUM_THREADS",
              THREADS_CPUS: "the CPUs per run"}.get(
        threads.source, f"the {plural(cores(), 'core')} shared out among the workers")
    text = f"{plural(threads.per_worker, 'torch thread')} each ({origin})"
    recorded = Counter(count for r in results for count in r.threads)
    if len(recorded) > 1:
        text += ("; the runs trained with " + ", ".join(f"{count} ({plural(n, 'run')})" for count, n in
                                                        sorted(recorded.items()))
                 + " threads, so their times do not compare")
    elif recorded and next(iter(recorded)) != threads.per_worker:
        text += f"; the runs were trained earlier with {plural(next(iter(recorded)), 'thread')}"
    return text


def timing_warnings(results: list[SettingResult], spec: CompareSpec, threads: Threads) -> list[str]:
    """Warnings that the times were taken under contention: other processes kept the load average above
    the cores during some runs, or the grid itself asked for more threads than cores."""
    warnings = []
    contended = [r for r in results if r.contended]
    if contended:
        count, total = sum(len(r.contended) for r in results), sum(len(r.seeds) for r in results)
        peak = max(load for r in contended for load in r.load_peaks)
        machine = max(r.machine_cores or 0 for r in contended)
        names = ("every setting" if len(contended) == len(results)
                 else "; ".join(describe_setting(r, spec) for r in contended))
        warnings.append(
            f"**Timings taken under contention.** While {count} of {plural(total, 'run')} trained, the 1-minute "
            f"load average exceeded the machine's {plural(machine, 'core')} (up to {peak:.1f}): other work "
            "competed for the CPU, so those wall times and times per epoch are inflated by an unknown, varying "
            f"amount and the cost comparison between settings is unreliable (marked {CONTENDED_MARK} in the table). "
            f"Affected: {names}. For trustworthy times, rerun on an idle machine with another `--out` (or after "
            f"deleting `{RUNS}/`).")
    if spec.launcher == "local" and spec.workers * threads.per_worker > cores():
        warnings.append(
            f"**More threads than cores.** {plural(spec.workers, 'worker')} x {plural(threads.per_worker, 'thread')}"
            f" = {spec.workers * threads.per_worker} on {plural(cores(), 'core')}: the runs compete with each "
            "other for the cores, so their times are inflated; use fewer `--workers` or `--threads`.")
    return warnings


def processes_row(spec: CompareSpec, results: list[SettingResult], threads: Threads) -> str:
    """Where the runs trained: local worker processes, or the cluster launcher and its resources."""
    if spec.launcher == "local":
        return (f"| processes | {spec.workers} worker process{'es' if spec.workers > 1 else ''} "
                f"({'reused between runs' if peak_resettable() else 'a fresh one per run'}), "
                f"{threads_text(results, threads)} |")
    given = " ".join(Resources.coerce(spec.resources).flags()) or "the defaults"
    return f"| launcher | {spec.launcher} (resources: {given}), {threads_text(results, threads)} |"


def write_report(path: Path, spec: CompareSpec, results: list[SettingResult], outcomes: list[Outcome],
                 plots: dict[str, Path], threads: Threads, differences: list[PairedDifference] = ()) -> Path:
    """Write OUT/report.md (atomically) and return its path."""
    counts = Counter(o.status for o in outcomes)
    seeds = spec.seed_list()
    options = ", ".join(f"{k} {v}" for k, v in spec.options.items()) or "none"
    devices = ", ".join(dict.fromkeys(d for r in results for d in r.devices)) or "–"
    sources = list(dict.fromkeys(s for r in results for s in r.memory_sources))
    lines = [
        f"# rknet compare: {spec.data}",
        "",
        f"Written {datetime.now():%Y-%m-%d %H:%M}. Rerunning the command skips complete runs, resumes interrupted "
        "ones and rewrites this report, `results.csv` and the plots.",
        "",
        "```",
        spec.command(),
        "```",
        "",
        *[f"> {warning}\n" for warning in timing_warnings(results, spec, threads)],
        "## Settings",
        "",
        "| | |",
        "|---|---|",
        f"| data | {spec.data} |",
        f"| methods | {', '.join(method_label(m) for m in spec.methods)}"
        + (f" (baseline {spec.baseline_label})" if spec.baseline else "") + " |",
        f"| layers | {', '.join(spec.layers)} |",
        f"| state steps per block | {', '.join(map(str, spec.steps))} |",
        "| control steps per block | "
        + ", ".join("on the state grid" if c is None else str(c) for c in spec.control_steps) + " |",
        f"| widths | {', '.join(widths_text(w) for w in spec.widths)} |",
        f"| seeds | {', '.join(map(str, seeds))} ({len(seeds)} per setting) |",
        f"| fixed options | {options} (everything else at the `rknet train` defaults; each run's full "
        "configuration is in its `config.json`) |",
        f"| runs | {len(outcomes)}: {counts['trained']} trained, {counts['resumed']} resumed, "
        f"{counts['skipped']} skipped (already complete), {counts['failed']} failed |",
        processes_row(spec, results, threads),
        f"| device | {devices} |",
        "",
        "## Results",
        "",
        results_table(results),
        "",
        "Test accuracy: accuracy on the test set of each run's best-by-validation model, mean ± sample standard "
        "deviation over the completed seeds (best mean in bold). At half / twice step: the same networks "
        "re-discretised at half and at twice their step size (twice and half the steps; – for an odd step "
        "count), mean over seeds (`rknet eval --steps`). Wall time: the whole run (data, training, "
        "validation, test; not the process start). Time / epoch: mean `seconds` of `metrics.jsonl` (one epoch "
        "of training plus its validation pass). Peak memory: the largest over seeds, see below. f-evals / "
        "forward: evaluations of the layer inside the dynamic blocks per forward pass "
        "(`rknet.load(run).evaluations_per_forward`). Machine-readable: [results.csv](results.csv) (accuracy "
        "there as a fraction)."
        + (f" {CONTENDED_MARK}: some seed of this setting trained under contention (see the warning above)."
           if any(r.contended for r in results) else ""),
        "",
        *(differences_section(differences, spec.baseline_label, lambda r: describe_setting(r, spec))
          if spec.baseline else []),
        "## Plots",
        "",
    ]
    titles = {"params": "Test accuracy vs parameters", "time": "Test accuracy vs training time",
              "curves": "Learning curves", "differences": f"Paired differences to {spec.baseline_label}"}
    for key, plot in plots.items():
        lines += [f"![{titles[key]}]({plot.name})", ""]
    if plots:
        lines += ["Colour is the method, marker the layer; error bars and bands are ± 1 standard deviation over "
                  "seeds." + (" In the paired differences, bars are the 95 % confidence intervals of the mean "
                              "difference and dots the single seeds." if "differences" in plots else ""), ""]
    else:
        lines += [f"No plots: matplotlib is not installed. `{PLOTS_EXTRA}`, then rerun the command above: complete "
                  "runs are skipped, so only the results, this report and the plots are written.", ""]
    lines += [
        "## How the numbers were measured",
        "",
    ]
    if not sources or any(source.startswith("cpu") for source in sources):
        lines.append("- Peak memory on the CPU is the growth of the peak resident set size of the worker process "
                     "during the run (`resource.getrusage` `ru_maxrss`, which is the kernel's high-water mark "
                     "VmHWM): on Linux the worker releases freed memory and resets that mark before each run, "
                     "elsewhere each run gets a fresh process. It covers the data set, model, activations kept "
                     "for the backward pass and optimiser state, plus any library code a run touches first (a "
                     "few MB); not the Python and torch start-up, nor one-time allocations of the data set "
                     "(each worker trains one unmeasured epoch of its first run's configuration before it). "
                     "For a resumed run it covers the resumed part only.")
    if CUDA_MEMORY in sources:
        lines.append("- Peak memory on CUDA is `torch.cuda.max_memory_allocated` of the run's process (tensors "
                     "allocated by torch, not the CUDA context or the allocator's cache).")
    lines.append("- Times are wall-clock. With more than one worker, runs share the machine's cores and memory "
                 "bandwidth, so compare times only within one grid run with one `--workers` setting.")
    lines.append(f"- Contention: each run samples the 1-minute load average every {LOAD_INTERVAL:g} s while it "
                 "trains (`load_peak` and `machine_cores` in its `compare.json`, with the torch `threads` it had). "
                 "A peak above the machine's cores means runnable threads waited for a core; the report then "
                 "warns at the top.")
    if counts["failed"]:
        lines += ["", "## Failed runs", ""]
        lines += [f"- `{RUNS}/{o.run.name}`: {o.error}" for o in outcomes if o.status == "failed"]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
