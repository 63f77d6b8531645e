import pytest
import torch

import rknet
from rknet import ButcherTableau, get_tableau

KNOWN_ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "ralston": 2, "rk3": 3, "ssprk3": 3, "rk4": 4,
                "rk38": 4, "bs3": 3, "fehlberg45": 4, "dopri5": 5, "tsit5": 5, "heun3": 3, "heun_euler": 2,
                "fehlberg2": 2, "dopri8": 8}


def test_presets_are_the_documented_list():
    assert set(rknet.TABLEAUS) == set(KNOWN_ORDERS)


@pytest.mark.parametrize("name", sorted(KNOWN_ORDERS))
def test_order_from_conditions_matches_known_order(name):
    tableau = get_tableau(name)
    assert tableau.order == KNOWN_ORDERS[name]
    assert tableau.explicit
    assert tableau.name == name


def test_order_of_a_custom_tableau_is_computed_not_claimed():
    # Kutta's order-3 tableau with the last weight perturbed keeps consistency but loses order 2.
    tableau = ButcherTableau([[0, 0], [0.5, 0]], [0.75, 0.25], [0, 0.5], name="wrong")
    assert tableau.order == 1
    # A two-stage implicit Gauss method has order 4.
    r = 3 ** 0.5 / 6
    gauss = ButcherTableau([[0.25, 0.25 - r], [0.25 + r, 0.25]], [0.5, 0.5], [0.5 - r, 0.5 + r])
    assert gauss.order == 4 and not gauss.explicit


def test_stages_and_explicit_flag():
    assert get_tableau("rk4").stages == 4
    implicit = ButcherTableau([[0.5]], [1.0], [0.5], name="implicit midpoint")
    assert not implicit.explicit
    with pytest.raises(ValueError, match="implicit"):
        implicit.require_explicit()
    gauss = ButcherTableau([[0.25, 0.25 - 3**0.5 / 6], [0.25 + 3**0.5 / 6, 0.25]], [0.5, 0.5],
                           [0.5 - 3**0.5 / 6, 0.5 + 3**0.5 / 6], name="gauss2")
    # fully implicit, its stages solved together: one step of y' = y is the (2,2) Pade approximant 19/7 of e
    step = rknet.integrate(lambda t, y: y, torch.ones(1, dtype=torch.float64), [0, 1], method=gauss)
    assert step.item() == pytest.approx(19 / 7, rel=1e-10)
    lobatto = ButcherTableau([[0, 0, 0], ["5/24", "1/3", "-1/24"], ["1/6", "2/3", "1/6"]], ["1/6", "2/3", "1/6"],
                             [0, "1/2", 1], name="lobatto3a")
    with pytest.raises(ValueError, match="fully implicit with a singular A"):
        rknet.integrate(lambda t, y: y, torch.ones(1), [0, 1], method=lobatto)


@pytest.mark.parametrize(("args", "message"), [
    (([[0, 0], [1]], [0.5, 0.5], [0, 1]), "ragged"),
    (([[0, 0]], [0.5, 0.5], [0, 1]), "rows"),
    (([[0, 0], [1, 0]], [0.5, 0.5], [0, 1, 2]), "c has 3 entries"),
    (([[0, 0], [1, 0]], [0.5, 0.5], [0, 0.5]), "must sum to c"),
    (([[0, 0], [1, 0]], [0.5, 0.6], [0, 1]), "b sums to"),
    (([[0, 0], ["x", 0]], [0.5, 0.5], [0, 1]), "numbers"),
])
def test_invalid_tableaus_say_which_condition_failed(args, message):
    with pytest.raises(ValueError, match=message):
        ButcherTableau(*args)


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="rk4") as error:
        get_tableau("rk5")
    assert "euler" in str(error.value)


def test_stability_function_matches_closed_forms():
    z = torch.complex(torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64))
    euler = get_tableau("euler").stability(z)
    rk4 = get_tableau("rk4").stability(z)
    torch.testing.assert_close(euler, 1 + z)
    torch.testing.assert_close(rk4, 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)
    assert get_tableau("heun").stability(-2.0) == pytest.approx(1 - 2 + 2)
    assert get_tableau("rk4").stability(z.reshape(5, 10)).shape == (5, 10)


def gauss_legendre(stages):
    """The s-stage Gauss-Legendre collocation method (order 2s), built from its nodes."""
    import numpy as np
    from numpy.polynomial import Polynomial, legendre

    c = (legendre.legroots([0] * stages + [1]) + 1) / 2
    a, b = [], []
    for j in range(stages):
        others = [c[m] for m in range(stages) if m != j]
        lagrange = Polynomial.fromroots(others) / np.prod([c[j] - m for m in others])
        integral = lagrange.integ()
        b.append(integral(1.0) - integral(0.0))
        a.append([integral(ci) - integral(0.0) for ci in c])
    return ButcherTableau(np.array(a).T.tolist(), b, c.tolist(), name=f"gauss{stages}")


def test_order_is_computed_up_to_eight_and_flagged_as_a_lower_bound_there():
    assert gauss_legendre(3).order == 6 and not gauss_legendre(3).order_is_lower_bound
    eighth, tenth = gauss_legendre(4), gauss_legendre(5)
    assert eighth.order == tenth.order == 8
    assert tenth.order_is_lower_bound and "order>=8" in repr(tenth)
    assert "order=6" in repr(gauss_legendre(3))


def test_printed_coefficients_are_accepted_real_inconsistencies_refused():
    printed = ButcherTableau([[0, 0, 0], [0.5, 0, 0], [-1, 2, 0]], [0.166666667, 0.666666667, 0.166666667],
                             [0, 0.5, 1])  # b sums to 1 + 1e-9: round-off of coefficients printed to 9 digits
    assert printed.order == 3
    with pytest.raises(ValueError, match="b sums to"):
        ButcherTableau([[0, 0], [1, 0]], [0.5, 0.5 + 1e-6], [0, 1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1/0", True])
def test_non_finite_or_non_numeric_coefficients_are_refused(bad):
    with pytest.raises(ValueError, match="tableau"):
        ButcherTableau([[0, 0], [bad, 0]], [0.5, 0.5], [0, 1])


def test_fractions_and_by_value_round_trip():
    tableau = ButcherTableau.from_dict({"name": "kutta3", "a": [[0, 0, 0], ["1/2", 0, 0], [-1, 2, 0]],
                                        "b": ["1/6", "2/3", "1/6"], "c": [0, "1/2", 1]})
    assert tableau == get_tableau("rk3") and tableau.name == "kutta3"
    assert ButcherTableau.from_dict(tableau.to_dict()) == tableau
    with pytest.raises(ValueError, match="misses c"):
        ButcherTableau.from_dict({"a": [[0]], "b": [1]})
