"""Bad input fails early with a message that names the problem and what is accepted."""

import pytest
import torch

import rknet
from rknet.layers import make_layer


def block(**kwargs):
    options = {"layer": make_layer("single", 2, dims=0), "method": "rk4", "t_states": [0, 1, 2]}
    options.update(kwargs)
    return rknet.DynamicBlock(**options)


@pytest.mark.parametrize(("times", "message"), [
    ([0, 2, 1], "unsorted"), ([0, 1, 1, 2], "repeated"), ([0], "at least 2"), ([], "at least 2"),
    ([0, float("nan")], "finite"), ("0,1", "sequence"), ([0, "a"], "numbers"),
])
def test_bad_state_times(times, message):
    with pytest.raises(ValueError, match=message):
        block(t_states=times)
    with pytest.raises(ValueError, match=message):
        rknet.integrate(lambda t, y: y, torch.ones(1), times)


def test_bad_control_times():
    with pytest.raises(ValueError, match="t_controls .* strictly increasing"):
        block(t_controls=[1, 0])
    with pytest.raises(ValueError, match="must span t_states"):
        block(t_controls=[0, 1])


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="valid methods: euler, midpoint"):
        block(method="dopri9")  # dopri5 and dopri8 are presets (embedded pairs)


@pytest.mark.parametrize(("kind", "kwargs", "valid"), [
    ("layer", {"layer": "resnet"}, "doublesym"),
    ("norm", {"norm": "layer"}, "batch, tv, none"),
    ("activation", {"activation": "swish"}, "relu"),
])
def test_unknown_names_list_the_valid_ones(kind, kwargs, valid):
    with pytest.raises(ValueError, match=f"unknown {kind}") as error:
        rknet.ODENet(3, 10, **kwargs)
    assert valid in str(error.value)


def test_unknown_interpolation():
    with pytest.raises(ValueError, match="linear, constant"):
        block(interpolation="cubic")


def test_channel_mismatch():
    net = rknet.ODENet(3, 10, widths=(4, 8))
    with pytest.raises(ValueError, match="C = 3"):
        net(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 2\)"):
        block()(torch.randn(4, 3))


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="dims=2"):
        rknet.ODENet(3, 10, widths=(4, 8))(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="dims must be 0"):
        rknet.ODENet(3, 10, dims=3)


def test_non_tensor_initial_state():
    with pytest.raises(TypeError, match="y0 must be a torch.Tensor"):
        rknet.integrate(lambda t, y: y, [1.0, 2.0], [0, 1])


def test_layer_must_be_a_layer():
    with pytest.raises(TypeError, match="rknet.layers.Layer"):
        rknet.DynamicBlock(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("widths", [(4,), (4, 0), ()])
def test_bad_widths(widths):
    with pytest.raises(ValueError, match="widths"):
        rknet.ODENet(3, 10, widths=widths)


def test_integrate_refuses_a_slope_of_another_shape_and_integer_states():
    with pytest.raises(ValueError, match=r"f\(t, y\) must return a tensor of y's shape \(3,\), got \(2, 3\)"):
        rknet.integrate(lambda t, y: y.expand(2, 3), torch.ones(3), [0, 1])
    with pytest.raises(TypeError, match="y0 must be a floating-point tensor, got dtype torch.int64"):
        rknet.integrate(lambda t, y: -y, torch.ones(3, dtype=torch.long), [0, 1])


def test_integrate_takes_a_numpy_grid():
    import numpy as np

    grid = np.linspace(0, 1, 5)
    assert torch.equal(rknet.integrate(lambda t, y: -y, torch.ones(2), grid),
                       rknet.integrate(lambda t, y: -y, torch.ones(2), grid.tolist()))


def test_odenet_refuses_integer_input():
    with pytest.raises(ValueError, match="ODENet expects floating-point input, got dtype torch.int64"):
        rknet.ODENet(2, 2, widths=(2, 2), dims=0)(torch.ones(3, 2, dtype=torch.long))
