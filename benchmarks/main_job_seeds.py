"""The README's main job (`rknet train` defaults on digits) over seeds 0-4 at 1 and 2 torch threads: the test
accuracy of the selected model and of the last epoch's model, and the wall time, per run and as mean +- std.

Run: python benchmarks/main_job_seeds.py [--seeds 0,1,2,3,4] [--threads 1,2] [--out FILE.json] [--runs DIR]
Each run is a fresh `python -m rknet train --seed S --threads T` process with OMP_NUM_THREADS=T, as a user
runs it. Accuracies are deterministic for a given thread count on a given CPU; times depend on what else the
machine runs (the load average before and after is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rknet.common.cpu import cpu_model


def run(seed: int, threads: int, folder: Path) -> dict[str, float | int | None]:
    """One `rknet train` process: its selected-model and last-epoch test accuracy (percent), wall seconds."""
    out = folder / f"seed{seed}-threads{threads}"
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rknet", "train", "--seed", str(seed), "--threads", str(threads),
                    "--out", str(out)], check=True, env=environment, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    last = summary.get("last_test_acc")  # absent in summaries written before the last-epoch figure existed
    return {"seed": seed, "threads": threads, "selected_epoch": summary["best_epoch"],
            "test_acc": 100 * summary["test_acc"], "last_test_acc": None if last is None else 100 * last,
            "seconds": wall}


def mean_std(values: list[float]) -> str:
    """`mean +- std` (sample standard deviation) of `values`, in two decimals."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} +- {spread:.2f}"


def figure(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds, comma-separated (default 0,1,2,3,4)")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated (default 1,2)")
    parser.add_argument("--out", help="also write the runs as JSON to this file")
    parser.add_argument("--runs", help="keep the run folders in this folder (default: a temporary one)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    print(f"{cpu_model()}, {os.cpu_count()} cores, load before {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'threads':>7} {'seed':>4} {'epoch':>5} {'selected %':>10} {'last %':>7} {'seconds':>8}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.runs or temporary
        for threads in thread_counts:
            for seed in seeds:
                r = run(seed, threads, Path(folder))
                results.append(r)
                print(f"{threads:>7} {seed:>4} {r['selected_epoch']:>5} {figure(r['test_acc']):>10} "
                      f"{figure(r['last_test_acc']):>7} {figure(r['seconds'], 1):>8}", flush=True)
    for threads in thread_counts:
        rows = [r for r in results if r["threads"] == threads]
        last = [r["last_test_acc"] for r in rows if r["last_test_acc"] is not None]
        print(f"{threads} thread(s), {len(rows)} seeds: selected {mean_std([r['test_acc'] for r in rows])} %, "
              f"last epoch {mean_std(last) if last else '-'} %, {mean_std([r['seconds'] for r in rows])} s")
    print(f"load after {os.getloadavg()[0]:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"cpu": cpu_model(), "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
