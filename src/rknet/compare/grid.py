"""`run_grid(spec)`: train every setting of a comparison grid, then write results.csv, report.md and plots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rknet.common.figures import PlotsUnavailable, require_matplotlib
from rknet.compare.launchers import make_launcher
from rknet.compare.machine import THREADS_DEFAULT, Threads, cores, resolve_threads
from rknet.compare.paired import DIFFERENCE_COLUMNS, PairedDifference, difference_row, paired_differences
from rknet.compare.paired_report import difference_line
from rknet.compare.plan import CompareSpec, Run, plan, plural
from rknet.compare.plots import draw_all
from rknet.compare.report import write_report
from rknet.compare.resources import THREADS_CPUS
from rknet.compare.results import SettingResult, collect, write_csv
from rknet.compare.runner import Outcome, execute
from rknet.io.atomic import write_json
from rknet.io.layout import COMPARE_SPEC, REPORT, RESULTS_CSV, RUNS


@dataclass
class CompareResults:
    """What `run_grid` did and wrote."""

    spec: CompareSpec
    runs: list[Run]
    outcomes: list[Outcome]
    results: list[SettingResult]
    csv: Path
    report: Path
    plots: dict[str, Path]
    differences: list[PairedDifference] = field(default_factory=list)  # to spec.baseline, when given

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows of results.csv (accuracy as a fraction; None where unknown)."""
        return [result.row() for result in self.results]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def run_grid(spec: CompareSpec | dict[str, Any], *, show_progress: bool | None = None,
             log: Callable[[str], None] = print) -> CompareResults:
    """Train every (setting, seed) of `spec` not yet complete and write OUT/results.csv, OUT/report.md and
    the plots in OUT.

    Every configuration is validated first (ValueError naming the bad value, before any run starts). A
    run whose folder OUT/runs/NAME holds summary.json is skipped; one with a checkpoint but no summary is
    resumed. With the local launcher runs train in fresh spawned processes, `spec.workers` at a time, each
    with `spec.threads` torch threads (default: OMP_NUM_THREADS if set, else the cores shared out among the
    workers); with `slurm` or `ray` as cluster jobs or tasks (threads default: the CPUs per run), the command
    waiting for them and reporting each as it finishes. A failed run (diverged,
    crashed) does not stop the grid: it is reported and left out of the means. `show_progress`: a bar
    over the grid (default: only on a terminal); `log` gets one line per run either way.
    """
    spec, runs = plan(spec)
    threads = resolve_threads(spec.workers, spec.threads)
    if spec.launcher != "local" and threads.source == THREADS_DEFAULT:  # this machine's cores say nothing there
        threads = Threads(spec.resources.cpus_per_run, THREADS_CPUS)
    out = Path(spec.out)
    launcher = make_launcher(spec.launcher, spec.resources, spec.workers, threads, out)
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    write_json(out / COMPARE_SPEC, spec.to_dict())
    pending = sum(run.state != "complete" for run in runs)
    log(f"compare: {plural(len(runs), 'run')} ({plural(len(spec.settings()), 'setting')} x "
        f"{plural(len(spec.seed_list()), 'seed')}), {len(runs) - pending} already complete; output {out}; "
        f"{launcher.describe()}")
    if spec.launcher == "local" and spec.workers * threads.per_worker > cores():
        log(f"compare: warning: {spec.workers} x {threads.per_worker} threads exceed the {cores()} cores: runs "
            "will compete for them and their times will not mean much")
    plots_missing = _plots_missing()
    if plots_missing:
        log(f"compare: {plots_missing}; the report will have no plots")
    outcomes = execute(runs, launcher, threads, spec.workers, show_progress, log)
    results = collect(runs)
    differences = [] if spec.baseline is None else paired_differences(results, spec.baseline)
    by_setting = {d.result.setting: d for d in differences}
    csv = write_csv(results, out / RESULTS_CSV, DIFFERENCE_COLUMNS if spec.baseline else (),
                    lambda result: difference_row(by_setting.get(result.setting)))
    plots = {} if plots_missing else draw_all(results, out, differences)
    report = write_report(out / REPORT, spec, results, outcomes, plots, threads, differences)
    log(f"wrote {report}, {csv} and {len(plots)} plots")
    for difference in differences:
        log(f"compare: {difference_line(difference)}")
    return CompareResults(spec, runs, outcomes, results, csv, report, plots, differences)


def _plots_missing() -> str | None:
    """Why no plots can be drawn (matplotlib missing), or None: the runs and the report do not need them."""
    try:
        require_matplotlib()
    except PlotsUnavailable as missing:
        return str(missing)
    return None
