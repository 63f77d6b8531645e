"""The implicit solver's parts: batched GMRES, one system per image, fully implicit Gauss-Legendre stages,
and the solver's options in the network spec and the command line."""

import json

import pytest
import torch

import rknet
from rknet.blocks.implicit import ImplicitBlock
from rknet.layers import DoubleSym
from rknet.solvers.gmres import gmres
from rknet.solvers.newton_krylov import NewtonKrylov


def test_batched_gmres_solves_each_row_its_own_system():
    generator = torch.Generator().manual_seed(0)
    rows, n = 5, 12
    matrices = torch.eye(n, dtype=torch.float64) + 0.3 * torch.randn(rows, n, n, dtype=torch.float64,
                                                                     generator=generator)
    rhs = torch.randn(rows, n, dtype=torch.float64, generator=generator)
    rhs[2] = 0.0  # a row with nothing to solve
    rhs[3] *= 1e-6  # a row on another scale: its tolerance is its own
    tolerance = 1e-10 * rhs.norm(dim=1)
    solution, iterations, residual = gmres(lambda x: torch.einsum("bij,bj->bi", matrices, x), rhs, tolerance, n + 2)
    exact = torch.linalg.solve(matrices, rhs)
    assert iterations <= n
    assert torch.all(residual <= tolerance + 1e-300)
    for b in range(rows):
        assert torch.allclose(solution[b], exact[b], rtol=1e-7, atol=1e-9 * rhs[b].norm().item()), b
    assert torch.equal(solution[2], torch.zeros(n, dtype=torch.float64))


def test_batched_gmres_keeps_rows_apart_in_float32():
    """A zero row (tolerance 0) gets zero and a non-finite row stays non-finite; neither spoils the others
    (float32: a row scale computed in float64 and cast down must not become 0 / 0)."""
    matrices = torch.eye(3) + 0.1 * torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(1))
    rhs = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    rhs[1], rhs[2, 0] = 0.0, float("nan")
    solution, _, _ = gmres(lambda x: torch.einsum("bij,bj->bi", matrices, x), rhs, 1e-6 * rhs.norm(dim=1).double(), 5)
    assert torch.equal(solution[1], torch.zeros(3)) and solution[2].isnan().any()
    for b in (0, 3):
        assert torch.allclose(solution[b], torch.linalg.solve(matrices[b], rhs[b]), atol=1e-5)


def test_each_image_is_solved_as_its_own_system():
    """A batch gives the images' results one by one: outputs and gradients equal to solving each alone."""
    torch.manual_seed(0)
    layer = DoubleSym(3, dims=1, activation="relu", norm="tv")
    block = ImplicitBlock(layer, "sdirk2", (0, 1, 2), solver=NewtonKrylov(tol=1e-12, forcing=1e-4)).double()
    x = 2 * torch.randn(4, 3, 8, dtype=torch.float64)
    together = block(x)
    alone = torch.cat([block(x[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, rtol=0, atol=1e-9)
    weights = torch.randn_like(together)
    grad_together = torch.autograd.grad((together * weights).sum(), list(block.parameters()))
    grad_alone = torch.autograd.grad(sum((block(x[i:i + 1]) * weights[i]).sum() for i in range(4)),
                                     list(block.parameters()))
    for ours, reference in zip(grad_together, grad_alone):
        assert torch.allclose(ours, reference, rtol=1e-7, atol=1e-9)


def gauss_step_matrix(a: torch.Tensor, h: float) -> torch.Tensor:
    """One step of 2-stage Gauss-Legendre on y' = A y: the (2,2) Pade approximant of exp(hA)."""
    eye, z = torch.eye(len(a), dtype=a.dtype), h * a
    return torch.linalg.solve(eye - z / 2 + z @ z / 12, eye + z / 2 + z @ z / 12)


def test_gauss_legendre_equals_its_closed_form_with_its_gradient():
    """Fully implicit: both stages solved together; value and gradient equal the Pade step's."""
    generator = torch.Generator().manual_seed(2)
    a = torch.randn(3, 3, dtype=torch.float64, generator=generator).requires_grad_()
    y0 = torch.randn(3, dtype=torch.float64, generator=generator).requires_grad_()
    solver = NewtonKrylov(tol=1e-13, forcing=1e-8)
    solved = rknet.integrate(lambda t, y: a @ y, y0, [0, 0.4, 0.8], "gauss2", solver=solver)
    step = gauss_step_matrix(a, 0.4)
    closed = step @ (step @ y0)
    assert torch.allclose(solved, closed, rtol=1e-11, atol=1e-12)
    grads = torch.autograd.grad(solved.square().sum(), (a, y0))
    expected = torch.autograd.grad(closed.square().sum(), (a, y0))
    for ours, reference in zip(grads, expected):
        assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-11)
    assert solver.report.adjoint_stages == 2


def test_gauss_legendre_is_a_stable_on_the_stiff_problem():
    """A-stable (|R(z)| <= 1 on the left half-plane, R(-inf) = 1): bounded where RK4 blows up."""
    ys = rknet.integrate(lambda t, y: -1000.0 * (y - torch.cos(torch.tensor(t, dtype=y.dtype))),
                         torch.zeros(1, dtype=torch.float64), rknet.uniform_grid(20), "gauss2",
                         trajectory=True, solver=NewtonKrylov(tol=1e-12))
    assert ys.abs().max().item() <= 2.0


@pytest.mark.slow  # ~4 s
def test_gradcheck_of_a_gauss_legendre_block():
    torch.manual_seed(0)
    layer = DoubleSym(2, dims=0, activation="tanh", norm=None)
    block = ImplicitBlock(layer, "gauss2", (0, 0.5, 1.0), solver=NewtonKrylov(tol=1e-13, forcing=1e-8)).double()
    names = [f"controls.{name}" for name in block.controls]
    controls = [value.detach().clone().requires_grad_() for value in block.controls.values()]
    y = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)

    def run(y, *controls):
        return torch.func.functional_call(block, dict(zip(names, controls)), (y,))

    assert torch.autograd.gradcheck(run, (y, *controls), atol=1e-7, nondet_tol=1e-12)


def test_solver_options_in_the_spec():
    spec = rknet.NetworkSpec(in_channels=1, widths=(2, 2), method="sdirk2", solver={"tol": 1e-4, "max_newton": 40})
    assert rknet.NetworkSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    solver = rknet.ODENet.from_spec(spec).blocks[0].solver
    assert (solver.tol, solver.max_newton, solver.max_krylov) == (1e-4, 40, 40)
    with pytest.raises(ValueError, match="unknown solver option 'tolerance'; valid: tol, max_newton"):
        rknet.NetworkSpec(method="sdirk2", solver={"tolerance": 1e-4})
    with pytest.raises(ValueError, match="solver options apply to implicit tableaus .* not to rk4"):
        rknet.NetworkSpec(method="rk4", solver={"tol": 1e-4})
    with pytest.raises(ValueError, match="max_newton must be a positive integer"):
        rknet.NetworkSpec(method="sdirk2", solver={"max_newton": 0})
    net = rknet.ODENet.from_spec(spec)
    assert rknet.rediscretize(net, "rk4").spec.solver == {}  # an explicit copy has no solver to set
    assert rknet.rediscretize(net, "gauss2").spec.solver == spec.solver


def test_solver_options_from_the_command_line(tmp_path, cli):
    tiny = ("--data", "circles", "--widths", "2,2", "--steps", "2", "--epochs", "1", "--batch-size", "256",
            "--device", "cpu")
    code, out, err = cli("train", *tiny, "--method", "gauss2", "--solver", "tol=1e-4,max_krylov=60",
                         "--out", tmp_path / "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["solver"] == {"tol": 1e-4, "max_krylov": 60}
    assert rknet.load(tmp_path / "run" / "model.pt").blocks[0].solver.max_krylov == 60
    code, out, err = cli("train", *tiny, "--solver", "tol=1e-4", "--out", tmp_path / "explicit")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "solver options apply to implicit tableaus" in err and not (tmp_path / "explicit").exists()


def test_the_adjoint_solve_restarts_until_it_reaches_its_tolerance():
    """GMRES(4) on 6 unknowns: one cycle cannot solve the adjoint system exactly, restarts do; with
    GMRES(1) and a non-normal matrix they cannot, and the backward pass says so."""
    generator = torch.Generator().manual_seed(3)
    a = (0.3 * torch.randn(6, 6, dtype=torch.float64, generator=generator)).requires_grad_()
    y0 = torch.randn(6, dtype=torch.float64, generator=generator)
    solver = NewtonKrylov(tol=1e-12, max_krylov=4, max_newton=60)
    solved = rknet.integrate(lambda t, y: a @ y, y0, [0, 0.2], "backward_euler", solver=solver)
    (grad,) = torch.autograd.grad(solved.sum(), a)
    closed = torch.linalg.solve(torch.eye(6, dtype=torch.float64) - 0.2 * a, y0)
    (expected,) = torch.autograd.grad(closed.sum(), a)
    assert torch.allclose(grad, expected, rtol=1e-9, atol=1e-11)
    assert solver.report.adjoint_krylov > 4  # it restarted
    stiff = 5 * torch.triu(torch.randn(6, 6, dtype=torch.float64, generator=generator))
    start = torch.zeros(6, dtype=torch.float64, requires_grad=True)  # solved at once: Y = 0
    solved = rknet.integrate(lambda t, y: stiff @ y, start, [0, 1.0], "backward_euler",
                             solver=NewtonKrylov(tol=1e-12, max_krylov=1))
    with pytest.raises(rknet.ImplicitSolveError, match=r"adjoint .* did not converge in 4 x 1 GMRES iterations"):
        solved.sum().backward()
