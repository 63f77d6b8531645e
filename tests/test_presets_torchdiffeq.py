"""The presets added after torchdiffeq's methods give torchdiffeq's numbers: on the same fixed grid for the
fixed-step ones, one step and its error estimate for the embedded pairs (torchdiffeq steps those adaptively
only), and their orders are the published ones."""

import numpy as np
import pytest
import torch
import torchdiffeq
from torchdiffeq._impl import adaptive_heun, dopri8, fehlberg2
from torchdiffeq._impl.misc import _PerturbFunc
from torchdiffeq._impl.rk_common import _runge_kutta_step

import rknet
from rknet import ButcherTableau

# rknet preset -> (torchdiffeq name, published order, embedded order)
PUBLISHED = {"heun3": ("heun3", 3, None), "heun_euler": ("adaptive_heun", 2, 1), "fehlberg2": ("fehlberg2", 2, 1),
             "dopri8": ("dopri8", 8, 7), "radau_iia3": ("radauIIA3", 3, None), "radau_iia5": ("radauIIA5", 5, None),
             "gauss3": ("gl6", 6, None), "trbdf2": ("trbdf2", 2, None)}
PAIRS = {"heun_euler": adaptive_heun._ADAPTIVE_HEUN_TABLEAU, "fehlberg2": fehlberg2._FEHLBERG2_TABLEAU,
         "dopri8": dopri8._DOPRI8_TABLEAU}


def field(t, y):
    return torch.stack((y[1], -torch.sin(y[0]) - 0.1 * y[1] + 0.3 * torch.cos(t)))


Y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_order_from_the_conditions_is_the_published_one(name):
    tableau = rknet.get_tableau(name)
    assert (tableau.order, tableau.embedded_order) == PUBLISHED[name][1:]


def test_heun3_trajectory_equals_torchdiffeq_on_the_same_grid():
    t = torch.linspace(0, 3, 31, dtype=torch.float64)
    ours = rknet.integrate(lambda s, y: field(torch.tensor(s, dtype=torch.float64), y), Y0, t, "heun3",
                           trajectory=True)
    torch.testing.assert_close(ours, torchdiffeq.odeint(field, Y0, t, method="heun3"), rtol=0, atol=1e-14)


COLLOCATION_NODES = {"gauss3": np.polynomial.legendre.legroots([0, 0, 0, 1]) / 2 + 0.5,  # roots of P_3 on [0, 1]
                     "radau_iia3": np.array([1 / 3, 1.0]),  # roots of P_2 - P_1 on [0, 1], mapped: (1/3, 1)
                     "radau_iia5": np.array([(4 - 6 ** 0.5) / 10, (4 + 6 ** 0.5) / 10, 1.0])}


@pytest.mark.parametrize("name", sorted(COLLOCATION_NODES))
def test_fully_implicit_presets_are_the_collocation_methods_at_their_nodes(name):
    # The installed torchdiffeq (0.2.5) has no implicit methods; these tableaus are defined by their nodes:
    # a_ij = int_0^{c_i} l_j, b_j = int_0^1 l_j for the Lagrange polynomials l_j of the nodes c.
    c = COLLOCATION_NODES[name]
    powers = np.vander(c, increasing=True).T  # row k: c_j^k
    s = len(c)
    a = np.linalg.solve(powers, np.array([[ci ** (k + 1) / (k + 1) for ci in c] for k in range(s)])).T
    b = np.linalg.solve(powers, 1 / np.arange(1, s + 1))
    tableau = rknet.get_tableau(name)
    np.testing.assert_allclose(tableau.a, a, rtol=0, atol=1e-14)
    np.testing.assert_allclose(tableau.b, b, rtol=0, atol=1e-14)
    np.testing.assert_allclose(tableau.c, c, rtol=0, atol=1e-15)


def test_trbdf2_is_l_stable_and_its_second_stage_is_the_trapezoid_rule():
    tableau = rknet.get_tableau("trbdf2")
    gamma = tableau.c[1] / 2
    assert tableau.a[1][:2] == (gamma, gamma) and tableau.a[2] == tuple(tableau.b)
    assert abs(tableau.stability(-1e9)) < 1e-6
    assert all(abs(tableau.stability(complex(-x, y))) <= 1 + 1e-12 for x in (0.1, 1, 10, 100) for y in (-5, 0, 5))


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_one_step_and_its_error_estimate_equal_torchdiffeq(name):
    tableau, h = rknet.get_tableau(name), 0.3
    t0, dt = torch.tensor(0.2, dtype=torch.float64), torch.tensor(h, dtype=torch.float64)
    y1, _, error, _ = _runge_kutta_step(_PerturbFunc(field), Y0, field(t0, Y0), t0, dt, t0 + dt, PAIRS[name])
    step = (0.2, 0.2 + h)
    ours = rknet.integrate(lambda s, y: field(torch.tensor(s, dtype=torch.float64), y), Y0, step, tableau)
    embedded = ButcherTableau(tableau.a, tableau.b_hat, tableau.c, name="embedded")
    lower = rknet.integrate(lambda s, y: field(torch.tensor(s, dtype=torch.float64), y), Y0, step, embedded)
    torch.testing.assert_close(ours, y1, rtol=0, atol=1e-15)
    torch.testing.assert_close((ours - lower).abs(), error.abs(), rtol=0, atol=1e-15)
