"""The main job (`rknet train` on digits) on the CPU: wall time and test accuracy of the old defaults
against the new ones, with 1 and with all cores, in one run (ratios against the first row).

Run: python benchmarks/cpu_main_job.py [--seeds 0] [--quick]   (on a quiet machine: it times whole runs)
Each variant is a fresh `python -m rknet train` process, as a user runs it, timed from start to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rknet.common.cpu import cpu_model

OLD_DEFAULTS = ["--epochs", "20", "--batch-size", "64", "--lr", "0.1"]  # before 2026-11-27
CORES = str(os.cpu_count() or 1)
VARIANTS = {  # name: options (torch's own default was one thread per core)
    f"old defaults, {CORES} threads": [*OLD_DEFAULTS, "--threads", CORES],
    f"new defaults, {CORES} threads": ["--threads", CORES],
    "new defaults, 1 thread": ["--threads", "1"],
    "new defaults, automatic threads": [],
}


def run(options: list[str], seed: int, folder: Path) -> tuple[float, float, int]:
    """(wall seconds, test accuracy, threads) of one `rknet train` process."""
    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = folder / f"run-{time.monotonic_ns()}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rknet", "train", "--seed", str(seed), "--out", str(out), *options],
                   check=True, env=environment, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    return wall, summary["test_acc"], summary["threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="seeds, comma-separated (default 0)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{cpu_model()}, {os.cpu_count()} cores, load before {os.getloadavg()[0]:.2f}")
    baseline = None
    with tempfile.TemporaryDirectory() as folder:
        for name, options in VARIANTS.items():
            results = [run(options, seed, Path(folder)) for seed in seeds]
            wall = sum(r[0] for r in results) / len(results)
            baseline = baseline or wall
            accuracies = ", ".join(f"{100 * r[1]:.2f}%" for r in results)
            print(f"{name:<32} {wall:6.1f} s  ({baseline / wall:4.2f}x)  test {accuracies}  threads {results[0][2]}",
                  flush=True)
    print(f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
