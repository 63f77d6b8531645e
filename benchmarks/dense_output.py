"""Function evaluations for many output times: rknet's dense output, rknet stepping onto every output, torchdiffeq.

For each problem and method, 201 equally spaced outputs at rtol 1e-7, atol 1e-9: evaluations, max error
against a reference (the closed form, else a dopri5 solve at rtol 1e-12), and CPU time (best of 5,
the three solvers interleaved). rknet: `interp="dense"` (odeint's default) and `interp="step"`, both with
rknet's PI controller; torchdiffeq: its dopri5 / bosh3.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/dense_output.py
"""

import math
import time

import torch
import torchdiffeq

from rknet.solvers.adaptive import solve_adaptive
from rknet.solvers.adaptive_options import AdaptiveOptions

torch.set_default_dtype(torch.float64)
MATRIX = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])


def damped(t, y):
    return y @ MATRIX.T


def van_der_pol(t, y):
    return torch.stack([y[1], (1 - y[0] ** 2) * y[1] - y[0]])


def modulated(t, y):
    return y @ MATRIX.T * (1 + 0.5 * torch.sin(t))


def damped_exact(t):
    decay = 2 * torch.exp(-0.1 * t)
    return torch.stack([decay * torch.cos(2 * t), -decay * torch.sin(2 * t)], -1)


PROBLEMS = {"damped oscillator": (damped, damped_exact), "van der Pol (mu=1)": (van_der_pol, None),
            "modulated oscillator": (modulated, None)}
METHODS = {"dopri5": "dopri5", "bs3": "bosh3"}


def counted(func):
    count = [0]

    def f(t, y):
        count[0] += 1
        return func(t, y)

    return f, count


def solvers(f, ours: str, theirs: str, y0: torch.Tensor, t: torch.Tensor) -> dict:
    """The three solves of one problem and method, as callables."""
    on_floats = lambda s, y: f(torch.tensor(s), y)  # noqa: E731
    return {"rknet interp=dense": lambda: solve_adaptive(on_floats, y0, t.tolist(), ours, 1e-7, 1e-9,
                                                         options=AdaptiveOptions(interp="dense"))[0],
            "rknet interp=step": lambda: solve_adaptive(on_floats, y0, t.tolist(), ours, 1e-7, 1e-9,
                                                        options=AdaptiveOptions(interp="step"))[0],
            "torchdiffeq": lambda: torchdiffeq.odeint(f, y0, t, rtol=1e-7, atol=1e-9, method=theirs)}


def main() -> None:
    y0, t = torch.tensor([2.0, 0.0]), torch.linspace(0, 20, 201)
    print(f"{'problem':22s} {'method':7s} {'solver':22s} {'evaluations':>11s} {'max error':>10s} {'CPU ms':>8s}")
    for name, (func, exact) in PROBLEMS.items():
        reference = exact(t) if exact else torchdiffeq.odeint(func, y0, t, rtol=1e-12, atol=1e-14)
        for ours, theirs in METHODS.items():
            f, count = counted(func)
            runs = solvers(f, ours, theirs, y0, t)
            best, cost, error = {}, {}, {}
            for _ in range(5):
                for solver, run in runs.items():
                    count[0] = 0
                    start = time.process_time()
                    states = run()
                    best[solver] = min(best.get(solver, math.inf), time.process_time() - start)
                    cost[solver], error[solver] = count[0], (states - reference).abs().max().item()
            for solver in runs:
                print(f"{name:22s} {ours:7s} {solver:22s} {cost[solver]:11d} {error[solver]:10.2e} "
                      f"{best[solver] * 1e3:8.1f}")


if __name__ == "__main__":
    main()
