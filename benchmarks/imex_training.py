"""IMEX networks trained against the explicit default (RK4), then re-discretised with larger steps.

For each experiment every method is trained with `python -m rknet train ... --threads 1` (a fresh process per
run, default options unless the experiment names others), then `python -m rknet eval RUN --steps ...` gives the
test accuracy of the same network theta(t) on other grids of the same interval. One markdown table per
experiment: test accuracy as trained, time per epoch (metrics.jsonl, training + validation, mean over the
epochs), and the accuracy re-discretised at each step count (from the eval.json that `rknet eval` writes).

Experiments:
  A  digits and peaks (vectors, dims=0), the default grid: 4 unit steps over [0, 4]; evaluated at 8, 4 (as
     trained), 2 and 1 steps, i.e. 2x smaller, 2x and 4x larger steps. Explicit Euler and Heun (orders 1
     and 2, like imex_euler and ars222) as controls.
  B  peaks trained at 16 steps over [0, 4] (h = 1/4), evaluated at 16 .. 1 steps (up to 16x larger steps);
     peaks trained at 16 unit steps over a 4x longer interval [0, 16], evaluated at 16, 8, 4 steps; digits
     at 16 steps over [0, 4], RK4 and ARS(2,2,2), the first seed only.

Run:  OMP_NUM_THREADS=1 python benchmarks/imex_training.py [--seeds 0,1] [--parts A,B] [--keep DIR]
      OMP_NUM_THREADS=1 python benchmarks/imex_training.py --quick     (smoke test: 1 epoch, 2 methods, ~1 min)
A run that diverges (`rknet train` exit code 3) is reported as such and the others go on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rknet.common.cpu import cpu_model

EXIT_DIVERGED = 3
METHODS = ("rk4", "imex_euler", "ars222", "ars443")
CONTROLS = ("euler", "heun")  # explicit, of the IMEX pairs' orders 1 and 2: is it the order or the IMEX split?


@dataclass(frozen=True)
class Experiment:
    part: str
    title: str
    data: str
    options: tuple[str, ...]  # rknet train options on top of the defaults, the same for every method
    trained_steps: int
    eval_steps: tuple[int, ...]
    methods: tuple[str, ...] = METHODS
    first_seed_only: bool = False


EXPERIMENTS = (
    Experiment("A", "digits, 4 unit steps over [0, 4] (the default grid)", "digits", (), 4, (8, 4, 2, 1),
               METHODS + CONTROLS),
    Experiment("A", "peaks, 4 unit steps over [0, 4] (the default grid)", "peaks", (), 4, (8, 4, 2, 1),
               METHODS + CONTROLS),
    Experiment("B", "peaks, 16 steps over [0, 4] (h = 1/4)", "peaks", ("--steps", "16"), 16, (16, 8, 4, 2, 1)),
    Experiment("B", "peaks, 16 unit steps over [0, 16]", "peaks", ("--steps", "16", "--final-time", "16"), 16,
               (16, 8, 4)),
    Experiment("B", "digits, 16 steps over [0, 4] (h = 1/4)", "digits", ("--steps", "16"), 16, (16, 8, 4, 2, 1),
               ("rk4", "ars222"), first_seed_only=True),
)


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def train(experiment: Experiment, method: str, seed: int, folder: Path, extra: list[str]) -> dict:
    """Train one network and evaluate it re-discretised; a dict of the figures (or of why there are none)."""
    out = folder / f"{experiment.data}-{'-'.join(experiment.options).replace('--', '') or 'default'}-{method}-{seed}"
    command = [sys.executable, "-m", "rknet", "train", "--data", experiment.data, "--method", method,
               *experiment.options, *extra, "--threads", "1", "--seed", str(seed), "--out", str(out),
               "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        kind = "diverged" if done.returncode == EXIT_DIVERGED else "failed"
        print(f"  {method} seed {seed}: {kind} after {wall:.1f} s: {reason}", flush=True)
        return {"method": method, "seed": seed, "failed": kind}
    summary = json.loads((out / "summary.json").read_text())
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = ",".join(str(n) for n in experiment.eval_steps)
    subprocess.run([sys.executable, "-m", "rknet", "eval", str(out), "--steps", steps], env=environment(),
                   check=True, stdout=subprocess.DEVNULL)
    table = json.loads((out / "eval.json").read_text())
    accuracy = {row["steps"]: row["test_acc"] for row in table if row["method"] == method}
    result = {"method": method, "seed": seed, "test_acc": summary["test_acc"], "best_epoch": summary["best_epoch"],
              "epoch_seconds": sum(e["seconds"] for e in epochs) / len(epochs), "wall": wall, "eval": accuracy,
              "params": summary["params"]}
    print(f"  {method} seed {seed}: test {100 * result['test_acc']:.2f}%, {result['epoch_seconds']:.2f} s/epoch, "
          f"re-discretised " + ", ".join(f"{n}: {100 * a:.1f}%" for n, a in accuracy.items()), flush=True)
    return result


def markdown(experiment: Experiment, results: list[dict]) -> str:
    """One table: a row per method, the seeds' figures side by side (seed order)."""
    larger = [n for n in experiment.eval_steps if n != experiment.trained_steps]
    def label(n: int) -> str:
        ratio = experiment.trained_steps / n
        size = f"{ratio:g}x larger" if ratio > 1 else f"{1 / ratio:g}x smaller"
        return f"{n} step{'s' * (n > 1)} ({size})"
    header = ["method", "params", f"test acc ({experiment.trained_steps} steps, as trained)", "s / epoch",
              *[label(n) for n in larger]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method in experiment.methods:
        runs = [r for r in results if r["method"] == method]
        good = [r for r in runs if "failed" not in r]
        failed = [f"seed {r['seed']} {r['failed']}" for r in runs if "failed" in r]
        if not good:
            lines.append(f"| {method} | | {', '.join(failed)} |" + " |" * (len(header) - 3))
            continue
        accuracy = " / ".join(f"{100 * r['test_acc']:.2f}" for r in good) + (f" ({', '.join(failed)})" if failed
                                                                               else "")
        seconds = " / ".join(f"{r['epoch_seconds']:.2f}" for r in good)
        cells = [" / ".join(f"{100 * r['eval'][n]:.1f}" for r in good) for n in larger]
        lines.append(f"| {method} | {good[0]['params']:,} | {accuracy} | {seconds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="seeds, comma-separated (default 0,1)")
    parser.add_argument("--parts", default="A,B", help="experiments to run: A, B or A,B (default)")
    parser.add_argument("--methods", default=",".join(METHODS + CONTROLS),
                        help="methods, comma-separated (default: all; each experiment runs those of its own list)")
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, rk4 and ars222, seed 0, part A")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    parts, methods = set(args.parts.upper().split(",")), args.methods.split(",")
    extra: list[str] = []
    if args.quick:
        seeds, parts, methods, extra = [0], {"A"}, ["rk4", "ars222"], ["--epochs", "1"]
    import torch  # only for its version

    started = time.perf_counter()
    print(f"{cpu_model()}, {os.cpu_count()} cores, 1 torch thread per run, torch {torch.__version__}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.2f}")
    print(f"seeds {','.join(map(str, seeds))}; default options otherwise ({' '.join(extra) or 'rknet train defaults'})")
    tables = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        for experiment in EXPERIMENTS:
            if experiment.part not in parts:
                continue
            print(f"\n{experiment.part}: {experiment.title}  (rknet train --data {experiment.data} "
                  f"{' '.join(experiment.options)})", flush=True)
            chosen = [m for m in experiment.methods if m in methods]
            results = [train(experiment, method, seed, folder, extra) for method in chosen
                       for seed in (seeds[:1] if experiment.first_seed_only else seeds)]
            shown = Experiment(experiment.part, experiment.title, experiment.data, experiment.options,
                               experiment.trained_steps, experiment.eval_steps, tuple(chosen))
            tables.append(f"{experiment.part}: {experiment.title}\n\n{markdown(shown, results)}")
    print("\n" + "\n\n".join(tables))
    print(f"\ntotal {time.perf_counter() - started:.0f} s, load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
