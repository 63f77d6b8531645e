"""One Runge-Kutta engine: explicit, diagonally implicit and IMEX steps all run through the same stage loop
(`rknet.solvers.runge_kutta.step_parts`), with one rule for which stages are needed."""

import sys

import pytest
import torch

import rknet
from rknet.methods.imex_pairs import IMEX_PAIRS
from rknet.solvers.runge_kutta import needed_slopes, pair_terms, rk_step, stage_terms, step_parts


def calls_of(code, run) -> int:
    """How many times the function with `code` ran during `run()` (traced, so no name binding can hide it)."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call" and frame.f_code is code:
            count += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("method", ["rk4", "sdirk2", "trapezoid", "ars222", "imex_euler"])
def test_every_stepping_family_runs_through_the_one_stage_loop(method):
    torch.manual_seed(0)
    net = rknet.ODENet(in_channels=1, num_classes=3, widths=(2, 2), method=method, t_states=(0, 0.5, 1), norm="tv")
    block = net.blocks[0]
    y = torch.randn(2, 2, 4, 4)
    with rknet.gradients.fused.disabled():
        assert calls_of(step_parts.__code__, lambda: block.step(y, 0)) == 1


def test_the_needed_rule_skips_a_stage_nothing_uses():
    # stage 1 has b_1 = 0 and no later stage uses it: it is never evaluated
    tab = rknet.ButcherTableau([[0, 0, 0], [1, 0, 0], [1, 0, 0]], [0.5, 0, 0.5], [0, 1, 1], name="skip")
    assert stage_terms(tab).needed == (True, False, True)
    evaluated = []
    rk_step(lambda i, y: evaluated.append(i) or -y, torch.ones(3), 0.1, stage_terms(tab))
    assert evaluated == [0, 2]


def test_an_imex_pair_shares_the_rule_across_its_two_tableaus():
    pair = IMEX_PAIRS["ars222"]
    explicit, implicit = pair_terms(pair.explicit, pair.implicit)
    assert (explicit.needed, implicit.needed) == needed_slopes([pair.explicit, pair.implicit])
    # ARS(2,2,2): the explicit slope at the last stage has weight 0 and no later stage: never evaluated
    assert explicit.needed == (True, True, False)
    assert implicit.needed == (False, True, True)
    assert implicit.diagonal == pytest.approx((0.0, pair.implicit.a[1][1], pair.implicit.a[2][2]))


def test_a_dirk_stage_is_solved_only_where_its_diagonal_is_non_zero():
    tab = rknet.get_tableau("trapezoid")  # a_00 = 0 (explicit first stage), a_11 = 1/2
    solved = []

    def solve(i, gamma, base):
        solved.append((i, gamma))
        k = -base / (1 + gamma)  # y' = -y: k = -(base + gamma k)
        return k, base + gamma * k

    y = rk_step(lambda i, y: -y, torch.ones(1, dtype=torch.float64), 0.2, stage_terms(tab, implicit=True), solve)
    assert solved == [(1, pytest.approx(0.1))]
    assert y.item() == pytest.approx((1 - 0.1) / (1 + 0.1))  # the trapezoidal rule's R(z), z = -0.2
