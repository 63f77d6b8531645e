"""Training-step time of implicit (sdirk2, gauss2) and IMEX (ars222) networks against RK4, same widths.

Run: python benchmarks/implicit_step.py [--batch 32] [--size 16] [--repeats 5]
Each network: ODENet widths 8-8, DoubleSym with TV norm, 4 unit steps, on random images; a step is forward,
backward and an SGD update. Reported: median seconds per step, and for the implicit ones the solver's
iteration counts.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

import torch

import rknet
from rknet.common.cpu import cpu_model

METHODS = ("rk4", "sdirk2", "gauss2", "ars222")


def step_time(method: str, x: torch.Tensor, labels: torch.Tensor, repeats: int) -> tuple[float, str]:
    torch.manual_seed(0)
    net = rknet.ODENet(x.shape[1], 10, widths=(8, 8), method=method)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    block = net.blocks[0]
    report = block.report.text() if isinstance(block, rknet.ImplicitBlock) else ""
    return statistics.median(times[1:]), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    print(f"{cpu_model()}, torch {torch.__version__}, {datetime.datetime.now():%Y-%m-%d %H:%M}")
    print(f"Training step, ODENet widths 8-8, DoubleSym + TV, 4 unit steps, batch {args.batch}, "
          f"{args.size}x{args.size}, {torch.get_num_threads()} threads\n")
    print("| method | s per step | vs rk4 |\n|---|---|---|")
    base, reports = None, []
    for method in METHODS:
        seconds, report = step_time(method, x, labels, args.repeats)
        base = base or seconds
        print(f"| {method} | {seconds:.4f} | {seconds / base:.2f}x |")
        if report:
            reports.append(f"{method}: {report}")
    print("\n" + "\n".join(reports))


if __name__ == "__main__":
    main()
