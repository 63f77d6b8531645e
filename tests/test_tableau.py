import pytest
import torch

import rknet
from rknet import ButcherTableau, get_tableau

KNOWN_ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "ralston": 2, "rk3": 3, "ssprk3": 3, "rk4": 4,
                "rk38": 4}


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
    with pytest.raises(ValueError, match="implicit"):
        rknet.integrate(lambda t, y: y, torch.ones(1), [0, 1], method=implicit)


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
