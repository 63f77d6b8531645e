"""rknet.odeint against torchdiffeq.odeint on DETEST non-stiff problems: CPU time, evaluations, error.

The problems are re-implemented from the published DETEST set (Hull, Enright, Fellen & Sedgwick 1972,
"Comparing numerical methods for ordinary differential equations", SIAM J. Numer. Anal. 9(4), classes A-E),
all on [0, 20]. Each library solves each problem at rtol = atol = tol for tol in 1e-4, 1e-6, 1e-8 with dopri5,
tsit5 and bosh3 (torchdiffeq's names), outputs at t = 0 and 20, as a new user would call them (no options).
Error: max |y(20) - reference| / max(1, |reference|), the reference by scipy's DOP853 at rtol = atol = 1e-13.
CPU time: time.process_time of one call, the best of 3, the two libraries alternating call by call.

    OMP_NUM_THREADS=1 PYTHONPATH=src:path/to/torchdiffeq python benchmarks/odeint_detest.py

torchdiffeq's release 0.2.5 on PyPI has no tsit5: the run in BENCHMARKS.md used its repository's source.
"""

from __future__ import annotations

import math
import subprocess
import time

import numpy as np
import torch
import torchdiffeq
from scipy.integrate import solve_ivp

import rknet


def two_body(e: float):
    def f(t, y):
        r3 = (y[0] ** 2 + y[1] ** 2) ** 1.5
        return torch.stack((y[2], y[3], -y[0] / r3, -y[1] / r3))
    return f, [1 - e, 0.0, 0.0, math.sqrt((1 + e) / (1 - e))]


def chain(t, y):  # C1: a radioactive decay chain
    return torch.cat((-y[:1], y[:-2] - y[1:-1], y[-2:-1]))


def tridiagonal(t, y):  # C3
    padded = torch.nn.functional.pad(y, (1, 1))
    return padded[:-2] - 2 * y + padded[2:]


def b4(t, y):
    r = torch.sqrt(y[0] ** 2 + y[1] ** 2)
    return torch.stack((-y[1] - y[0] * y[2] / r, y[0] - y[1] * y[2] / r, y[0] / r))


PROBLEMS = {
    "A1": (lambda t, y: -y, [1.0]),
    "A3": (lambda t, y: y * torch.cos(t), [1.0]),
    "A4": (lambda t, y: y / 4 * (1 - y / 20), [1.0]),
    "B1": (lambda t, y: torch.stack((2 * (y[0] - y[0] * y[1]), -(y[1] - y[0] * y[1]))), [1.0, 3.0]),
    "B4": (b4, [3.0, 0.0, 0.0]),
    "B5": (lambda t, y: torch.stack((y[1] * y[2], -y[0] * y[2], -0.51 * y[0] * y[1])), [0.0, 1.0, 1.0]),
    "C1": (chain, [1.0] + [0.0] * 9),
    "C3": (tridiagonal, [1.0] + [0.0] * 9),
    "D1": two_body(0.1),
    "D5": two_body(0.9),
    "E2": (lambda t, y: torch.stack((y[1], (1 - y[0] ** 2) * y[1] - y[0])), [2.0, 0.0]),  # Van der Pol
    "E3": (lambda t, y: torch.stack((y[1], y[0] ** 3 / 6 - y[0] + 2 * torch.sin(2.78535 * t))), [0.0, 0.0]),
}
METHODS, TOLERANCES, END = ("dopri5", "tsit5", "bosh3"), (1e-4, 1e-6, 1e-8), 20.0
LIBRARIES = {"rknet": rknet.odeint, "torchdiffeq": torchdiffeq.odeint}


def reference(f, y0):
    def slope(t, y):
        return f(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).numpy()
    solved = solve_ivp(slope, (0.0, END), y0, method="DOP853", rtol=1e-13, atol=1e-13)
    return torch.tensor(solved.y[:, -1])


def run(library: str, f, y0: torch.Tensor, method: str, tol: float) -> tuple[float, int, torch.Tensor]:
    calls = [0]

    def counted(t, y):
        calls[0] += 1
        return f(t, y)

    t = torch.tensor([0.0, END], dtype=torch.float64)
    start = time.process_time()
    with torch.no_grad():
        y = LIBRARIES[library](counted, y0, t, rtol=tol, atol=tol, method=method)[-1]
    return time.process_time() - start, calls[0], y


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if line.startswith("Model name")), "unknown CPU")
    return (f"{model}; torch {torch.__version__} with {torch.get_num_threads()} thread(s); "
            f"torchdiffeq {torchdiffeq.__version__} from {torchdiffeq.__file__}")


def main() -> None:
    print(machine())
    references = {name: reference(f, y0) for name, (f, y0) in PROBLEMS.items()}
    rows, slower = [], []
    for method in METHODS:
        for tol in TOLERANCES:
            total = {lib: [0.0, 0, []] for lib in LIBRARIES}
            for name, (f, y0) in PROBLEMS.items():
                y0 = torch.tensor(y0, dtype=torch.float64)
                best, result = {lib: math.inf for lib in LIBRARIES}, {}
                for _ in range(3):
                    for lib in LIBRARIES:
                        seconds, evaluations, y = run(lib, f, y0, method, tol)
                        best[lib], result[lib] = min(best[lib], seconds), (evaluations, y)
                for lib, (evaluations, y) in result.items():
                    error = ((y - references[name]).abs().max() / max(1.0, references[name].abs().max().item())).item()
                    total[lib][0] += best[lib]
                    total[lib][1] += evaluations
                    total[lib][2].append(max(error, 1e-17))
                if best["rknet"] > best["torchdiffeq"]:
                    slower.append(f"{method} tol {tol:g} {name}: rknet {best['rknet'] * 1e3:.1f} ms, "
                                  f"torchdiffeq {best['torchdiffeq'] * 1e3:.1f} ms")
            rows.append((method, tol, total))
    print("| method | tol | rknet CPU s | torchdiffeq CPU s | torchdiffeq / rknet | rknet evals | torchdiffeq evals "
          "| rknet error (geo. mean, max) | torchdiffeq error (geo. mean, max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method, tol, total in rows:
        ours, theirs = total["rknet"], total["torchdiffeq"]
        errors = [f"{math.exp(np.mean(np.log(e))):.1e}, {max(e):.1e}" for e in (ours[2], theirs[2])]
        print(f"| {method} | {tol:g} | {ours[0]:.3f} | {theirs[0]:.3f} | {theirs[0] / ours[0]:.2f} | {ours[1]} | "
              f"{theirs[1]} | {errors[0]} | {errors[1]} |")
    print(f"problems: {', '.join(PROBLEMS)}; rows where rknet was slower on one problem: {len(slower)}")
    for line in slower:
        print("  " + line)


if __name__ == "__main__":
    main()
