"""Small networks on the CPU: training throughput of the default network on signals and vectors.

The default ODENet (`rknet.ODENet(in_channels, num_classes, dims=...)`: widths 16-32-64-64, DoubleSym with
TV norm, RK4 over 4 unit steps) trained on random data shaped like what the command line feeds it:
signals of 1 x 40 (dims=1, 10 classes, an `npz:` file) and vectors of 2 features (dims=0, 5 classes, as
`--data peaks`). A full training step each time: forward, cross-entropy, backward, SGD with momentum
(the trainer's optimizer, weight decay on kernels). Variants run in interleaved rounds in one process, so
that a machine whose load changes treats them alike; the table gives the median images/s and the ratio to
the first variant (the eager path at the old default batch of 64).

Run: python benchmarks/small_networks.py [--rounds 5] [--threads 1] [--profile] [--floor]
     python benchmarks/small_networks.py --write-signals signals.npz   (a 1 x 40 set for `rknet train`)
`--profile` prints where the time of a step goes (torch.profiler, CPU ops) for the baseline and the new path.
`--floor` prints a lower bound on the fused step's time in eager mode: the tensor operations it dispatches, each
at the cost of the cheapest dispatch (a one-element add), plus its arithmetic at the matmul peak.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import rknet
from rknet.common.cpu import cpu_flags, cpu_model
from rknet.gradients import fused
from rknet.training.config import TrainConfig
from rknet.training.optim import make_optimizer

CASES = {  # name: (sample shape, classes, dims)
    "signals 1x40 (dims=1)": ((1, 40), 10, 1),
    "vectors 2 (dims=0)": ((2,), 5, 0),
}
VARIANTS = {  # name: (batch size, fused block pass, fused SGD step)
    "eager, batch 64 (old default)": (64, False, False),
    "eager, batch 128 (today's default)": (128, False, False),
    "fused blocks, batch 128": (128, True, False),
    "fused blocks + fused SGD, batch 128": (128, True, True),
}


def write_signals(path: str, train: int = 3000, test: int = 1000, seed: int = 0) -> None:
    """A 1 x 40 signals set for `rknet train --data npz:PATH` (the accuracy check of BENCHMARKS.md): ten
    classes of sines of 1 to 5.5 periods over the window, random phase and amplitude, noise of sd 0.5."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def signals(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, n)
        t = np.linspace(0, 1, 40, endpoint=False)
        phase, amplitude = rng.uniform(0, 2 * np.pi, (n, 1)), rng.uniform(0.5, 1.5, (n, 1))
        x = amplitude * np.sin(2 * np.pi * (1 + labels[:, None] / 2) * t + phase) + 0.5 * rng.standard_normal((n, 40))
        return x[:, None, :].astype(np.float32), labels

    x_train, y_train = signals(train)
    x_test, y_test = signals(test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def cpu_description() -> str:
    flags = cpu_flags()
    wanted = [flag for flag in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if flag in flags]
    return f"{cpu_model()}, {os.cpu_count()} cores, flags: {', '.join(wanted) or 'no avx512'}"


def training_step(shape: tuple[int, ...], classes: int, dims: int, batch: int, fused_sgd: bool,
                  seed: int = 0) -> tuple[Callable[[], None], torch.nn.Module]:
    """A closure running one full training step on a fixed random batch."""
    torch.manual_seed(seed)
    model = rknet.ODENet(shape[0], classes, dims=dims)
    optimizer = make_optimizer(model, TrainConfig(), fused=fused_sgd)
    x, y = torch.randn(batch, *shape), torch.randint(0, classes, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model


def flops_per_image(shape: tuple[int, ...], classes: int, dims: int) -> float:
    """Floating-point operations of one training image (forward and backward), as torch counts them."""
    model = rknet.ODENet(shape[0], classes, dims=dims)
    x, y = torch.randn(64, *shape), torch.randint(0, classes, (64,))
    with fused.disabled(), FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 64


def matmul_peak() -> float:
    """GFLOP/s of a 1024^3 fp32 matrix product on this thread count: what the arithmetic can reach."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    started, count = time.perf_counter(), 10
    for _ in range(count):
        a @ b
    return 2 * 1024**3 * count / (time.perf_counter() - started) / 1e9


def timed(step: Callable[[], None], batch: int, seconds: float) -> float:
    """Images per second over about `seconds` of steps (after one untimed step)."""
    step()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += 1
    return batch * count / (time.perf_counter() - started)


def run_case(name: str, rounds: int, seconds: float) -> dict[str, list[float]]:
    shape, classes, dims = CASES[name]
    steps = {variant: training_step(shape, classes, dims, batch, fused_sgd)[0]
             for variant, (batch, _, fused_sgd) in VARIANTS.items()}
    results: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(rounds):
        for variant, (batch, use_fused, _) in VARIANTS.items():
            fused.set_enabled(use_fused)
            results[variant].append(timed(steps[variant], batch, seconds))
    fused.set_enabled(True)
    return results


def profiled(name: str, use_fused: bool, steps: int) -> profile:
    """torch.profiler's record of `steps` training steps at batch 128 (after 3 untimed ones)."""
    shape, classes, dims = CASES[name]
    step, _ = training_step(shape, classes, dims, 128, use_fused)
    fused.set_enabled(use_fused)
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    fused.set_enabled(True)
    return profiler


def profile_case(name: str, use_fused: bool, top: int) -> None:
    profiler = profiled(name, use_fused, 5)
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n{name}, {'fused' if use_fused else 'eager'}, batch 128: {total / 5 / 1e3:.2f} ms of CPU ops per step "
          "(profiled; the profiler inflates small ops)")
    print("| op | ms per step | share | calls per step |\n|---|---|---|---|")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"| {event.key[:60]} | {event.self_cpu_time_total / 5 / 1e3:.2f} | "
              f"{100 * event.self_cpu_time_total / total:.1f} % | {event.count / 5:.0f} |")


def dispatch_cost() -> float:
    """Seconds per call of the cheapest tensor operation (a one-element add): the per-operation floor."""
    a, b = torch.zeros(1), torch.zeros(1)
    for _ in range(1000):
        a.add(b)
    count, started = 100_000, time.perf_counter()
    for _ in range(count):
        a.add(b)
    return (time.perf_counter() - started) / count


def floor_case(name: str, flops: float, peak: float, baseline: float) -> None:
    """The eager floor of the fused step at batch 128: its top-level tensor operations (those not called by
    another one) at the cheapest dispatch's cost, plus its arithmetic at the matmul peak."""
    operations = sum(1 for e in profiled(name, True, 1).events() if e.name.startswith("aten::")
                     and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    cost, arithmetic = dispatch_cost(), 128 * flops / (peak * 1e9)
    floor = operations * cost + arithmetic
    print(f"\n{name}, fused step at batch 128: {operations:,} tensor operations per step at {cost * 1e6:.2f} us "
          f"each ({operations * cost * 1e3:.2f} ms) + arithmetic at the matmul peak ({arithmetic * 1e3:.2f} ms) = "
          f"{floor * 1e3:.2f} ms per step at least: {128 / floor:,.0f} images/s, {128 / floor / baseline:.1f}x the "
          "baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per variant and round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--profile", action="store_true", help="also profile the baseline and the fused path")
    parser.add_argument("--floor", action="store_true", help="also print the fused step's eager floor")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--write-signals", metavar="PATH", help="only write the 1 x 40 signals npz file and exit")
    args = parser.parse_args()
    if args.write_signals:
        write_signals(args.write_signals)
        return
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"{cpu_description()}; torch {torch.__version__}, {args.threads} thread(s); "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load {os.getloadavg()[0]:.2f}; "
          f"fp32 matmul peak {peak:.0f} GFLOP/s")
    for name in [n.strip() for n in args.cases.split(",")]:
        flops = flops_per_image(*CASES[name])
        results = run_case(name, args.rounds, args.seconds)
        base = statistics.median(results[next(iter(VARIANTS))])
        print(f"\n{name}: {flops / 1e6:.2f} MFLOP per training image; load {os.getloadavg()[0]:.2f}\n"
              "| variant | images/s (median) | vs baseline | GFLOP/s | share of matmul peak | rounds |\n"
              "|---|---|---|---|---|---|")
        for variant, values in results.items():
            median = statistics.median(values)
            print(f"| {variant} | {median:,.0f} | {median / base:.2f}x | {median * flops / 1e9:.1f} | "
                  f"{100 * median * flops / 1e9 / peak:.0f} % | {', '.join(f'{v:.0f}' for v in values)} |", flush=True)
        if args.floor:
            floor_case(name, flops, peak, base)
        if args.profile:
            profile_case(name, False, args.top)
            profile_case(name, True, args.top)
    print(f"\nload after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
