import pytest
import torch
import torch.nn.functional as F

import rknet
from rknet.layers import LAYERS, make_layer


def per_control(layer):
    return sum(torch.Size(spec.shape).numel() for spec in layer.parameter_specs().values())


def test_forward_euler_block_equals_handwritten_resnet_exactly():
    layer = make_layer("double", 3, dims=2, norm="batch")
    block = rknet.DynamicBlock(layer, "euler", t_states=[0, 1, 2, 3])
    with torch.no_grad():
        for value in block.controls.values():
            value.normal_()
    y = torch.randn(2, 3, 5, 5)
    c = block.controls
    stats = [(torch.zeros(3), torch.ones(3)) for _ in range(6)]
    expected = y
    for k in range(3):
        z = F.conv2d(expected, c["K1"][k], c["b1"][k], padding=1)
        z = torch.relu(F.batch_norm(z, *stats[2 * k], c["norm1_weight"][k], c["norm1_bias"][k], True))
        z = F.conv2d(z, c["K2"][k], c["b2"][k], padding=1)
        z = torch.relu(F.batch_norm(z, *stats[2 * k + 1], c["norm2_weight"][k], c["norm2_bias"][k], True))
        expected = expected + z
    assert torch.equal(block(y), expected)
    assert torch.equal(block.norm1_running_mean, torch.stack([s[0] for s in stats[0::2]]))


@pytest.mark.parametrize("dims", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck_every_layer_inside_rk4_block(name, dims):
    norm = "batch" if name == "double" else "tv"
    layer = make_layer(name, 2, dims=dims, activation="tanh", norm=norm)
    block = rknet.DynamicBlock(layer, "rk4", t_states=[0, 0.5, 1], t_controls=[0, 1]).double()
    with torch.no_grad():
        for value in block.controls.values():
            value.add_(0.1 * torch.randn_like(value))
    shape = (3, 2) + (3,) * dims
    y = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    names = list(block.controls)
    params = [block.controls[n].detach().clone().requires_grad_() for n in names]

    def run(y, *params):
        return torch.func.functional_call(block, {f"controls.{n}": p for n, p in zip(names, params)}, (y,))

    assert torch.autograd.gradcheck(run, (y, *params))


def test_parameters_are_stacked_over_control_times():
    layer = make_layer("doublesym", 4, dims=2, norm="tv")
    block = rknet.DynamicBlock(layer, "rk4", t_states=[0, 1, 2], t_controls=[0, 2])
    assert block.controls["K"].shape == (2, 4, 4, 3, 3)
    assert sum(p.numel() for p in block.parameters()) == 2 * per_control(layer)


def test_nonuniform_state_grid():
    layer = make_layer("double", 4, dims=0, norm="batch")
    block = rknet.DynamicBlock(layer, "rk4", t_states=[0, 0.5, 2, 4])
    assert block.step_sizes == (0.5, 1.5, 2.0) and block.num_steps == 3
    assert sum(p.numel() for p in block.parameters()) == 4 * per_control(layer)
    assert block.norm1_running_mean.shape == (3 * 4, 4)  # one set of statistics per step and stage
    assert block(torch.randn(5, 4)).shape == (5, 4)


def test_coarse_controls_two_for_eight_steps():
    layer = make_layer("single", 3, dims=1, norm=None)
    block = rknet.DynamicBlock(layer, "heun", t_states=rknet.uniform_grid(8, 1.0), t_controls=[0, 1])
    assert sum(p.numel() for p in block.parameters()) == 2 * per_control(layer)
    assert block(torch.randn(2, 3, 7)).shape == (2, 3, 7)
    # Stage times between the two controls get linearly interpolated weights.
    assert block.stage_interpolation[3][1] == ((0, pytest.approx(0.5)), (1, pytest.approx(0.5)))


def test_single_control_time_means_weights_constant_in_time():
    block = rknet.DynamicBlock(make_layer("single", 3, dims=0, activation="tanh"), "rk4", [0, 1, 2],
                               t_controls=[0.0])
    assert block.controls["K"].shape[0] == 1
    times = [0.0, 0.3, 1.0, 1.5, 2.0]
    for name, values in block.theta(times).items():  # theta(t) is the one control at every time
        assert all(torch.equal(value, block.controls[name][0]) for value in values), name
    y = torch.randn(4, 3)
    fields = [block.vector_field(t, y) for t in times]
    assert all(torch.equal(field, fields[0]) for field in fields)  # an autonomous ODE
    f = lambda z: block.vector_field(0.0, z)  # noqa: E731
    expected = y
    for _ in range(2):  # RK4 written out with f(y) alone: the forward pass's stages see the same weights
        k1 = f(expected)
        k2 = f(expected + k1 / 2)
        k3 = f(expected + k2 / 2)
        k4 = f(expected + k3)
        expected = expected + (k1 + 2 * k2 + 2 * k3 + k4) / 6
    torch.testing.assert_close(block(y), expected)


def test_constant_interpolation_takes_the_left_limit_at_the_end_of_a_step():
    block = rknet.DynamicBlock(make_layer("single", 2, dims=0), "rk4", [0, 1, 2], interpolation="constant")
    assert [w[0][0] for w in block.stage_interpolation[0]] == [0, 0, 0, 0]
    assert [w[0][0] for w in block.stage_interpolation[1]] == [1, 1, 1, 1]


def test_repr_names_method_grids_and_layer():
    text = repr(rknet.DynamicBlock(rknet.layers.DoubleSym(16, norm="tv"), "rk4", [0, 1, 2]))
    assert "method=rk4" in text and "t_states=[0, 1, 2]" in text and "DoubleSym(16" in text


def test_vector_field_matches_forward_euler_step():
    block = rknet.DynamicBlock(make_layer("single", 3, dims=0, activation="tanh"), "euler", [0, 1])
    y = torch.randn(4, 3)
    torch.testing.assert_close(block(y), y + block.vector_field(0.0, y))


def test_evaluations_per_forward():
    block = rknet.DynamicBlock(make_layer("single", 2, dims=0), "rk4", [0, 1, 2, 3])
    assert block.evaluations_per_forward == 12


@pytest.mark.parametrize("dims", [0, 1, 2])
def test_kernel_transpose_is_the_adjoint(dims):
    from rknet.common.kernels import apply_kernel, apply_kernel_transpose, kernel_shape

    kernel = torch.randn(kernel_shape(3, 3, dims), dtype=torch.float64)
    x = torch.randn((2, 3) + (5,) * dims, dtype=torch.float64)
    z = torch.randn((2, 3) + (5,) * dims, dtype=torch.float64)
    left = (apply_kernel(x, kernel, None, dims) * z).sum()
    right = (x * apply_kernel_transpose(z, kernel, None, dims)).sum()
    assert left.item() == pytest.approx(right.item(), rel=1e-12)
