"""Fixed-step `odeint_adjoint` against backprop, before and after restarting y at every output time (issue 24).

One run measures both: "before" is `callable_adjoint` as it was at commit 4347d83 (loaded from git), "after"
is the working tree's. Problems: a damped pendulum, theta'' = -k sin(theta) - c theta' (k = 2, c = 1), and
Van der Pol (mu = 1), on [0, 10] with 101 output times, rk4 (3/8 rule, torchdiffeq's "rk4") in steps of 0.1,
a loss weighting every output. Relative error of the gradient (y0 and parameters) against backprop through
`rknet.odeint` without the adjoint, and torchdiffeq's `odeint_adjoint` with the same method and grid.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/odeint_adjoint_restarts.py
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
import tempfile

import torch
import torchdiffeq

import rknet
import rknet.solvers.odeint as odeint_module

BEFORE = "4347d83"


def old_callable_adjoint():
    """`callable_adjoint` from the commit before the fix, imported from git's copy of the file."""
    source = subprocess.run(["git", "show", f"{BEFORE}:src/rknet/solvers/adjoint.py"], check=True,
                            capture_output=True, text=True).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / "adjoint_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("adjoint_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.callable_adjoint


class Pendulum(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.k, self.c = torch.nn.Parameter(torch.tensor(2.0)), torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, t, y):
        return torch.stack((y[..., 1], -self.k * torch.sin(y[..., 0]) - self.c * y[..., 1]), -1)


class VanDerPol(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, t, y):
        return torch.stack((y[..., 1], self.mu * (1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]), -1)


def gradient(solve, module, y0, t):
    y0 = y0.clone().requires_grad_()
    weight = torch.linspace(-1, 1, len(t) * y0.numel(), dtype=torch.float64).view(len(t), *y0.shape)
    module.zero_grad()
    (solve(module, y0, t) * weight).sum().backward()
    return torch.cat([y0.grad.flatten()] + [p.grad.flatten() for p in module.parameters()])


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


def main() -> None:
    t = torch.linspace(0, 10, 101, dtype=torch.float64)
    options = {"step_size": 0.1}
    solvers = {
        "backprop": lambda m, y0, t: rknet.odeint(m, y0, t, method="rk38", options=options),
        "rknet adjoint after": lambda m, y0, t: rknet.odeint_adjoint(m, y0, t, method="rk38", options=options),
        "torchdiffeq adjoint": lambda m, y0, t: torchdiffeq.odeint_adjoint(m, y0, t, method="rk4",
                                                                          options=options),
    }
    new = odeint_module.callable_adjoint

    def before(m, y0, t):
        odeint_module.callable_adjoint = old_callable_adjoint()
        try:
            return rknet.odeint_adjoint(m, y0, t, method="rk38", options=options)
        finally:
            odeint_module.callable_adjoint = new

    solvers["rknet adjoint before"] = before
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, torchdiffeq {torchdiffeq.__version__}")
    print("| problem | gradient | relative error vs backprop |")
    print("|---|---|---|")
    for module, y0 in ((Pendulum().double(), torch.tensor([2.5, 0.0], dtype=torch.float64)),
                       (VanDerPol().double(), torch.tensor([2.0, 0.0], dtype=torch.float64))):
        reference = gradient(solvers["backprop"], module, y0, t)
        for name in ("rknet adjoint before", "rknet adjoint after", "torchdiffeq adjoint"):
            error = relative(gradient(solvers[name], module, y0, t), reference)
            print(f"| {type(module).__name__} | {name} | {error:.3g} |")


if __name__ == "__main__":
    main()
