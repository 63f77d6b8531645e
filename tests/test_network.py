import io

import pytest
import torch

import rknet
from rknet.network.odenet import decay_parameter_names


def test_default_odenet_has_the_reference_parameter_count():
    net = rknet.ODENet(in_channels=3, num_classes=10, widths=(16, 32, 64, 64), layer="doublesym",
                       method="rk4", t_states=(0, 1, 2, 3, 4), norm="tv")
    assert sum(p.numel() for p in net.parameters()) == 251_866
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.evaluations_per_forward == 3 * 4 * 4


@pytest.mark.parametrize("norm", ["tv", "batch"])
def test_state_dict_round_trip_gives_identical_outputs(norm):
    net = rknet.ODENet(3, 10, widths=(4, 8, 8), norm=norm, layer="double")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):  # move weights and batch-norm statistics away from their initial values
        loss = net(torch.randn(8, 3, 8, 8)).logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    fresh = rknet.ODENet(3, 10, widths=(4, 8, 8), norm=norm, layer="double")
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    net.eval()
    fresh.eval()
    x = torch.randn(5, 3, 8, 8)
    assert torch.equal(net(x), fresh(x))
    if norm == "batch":
        assert net.blocks[0].norm1_running_mean.abs().sum() > 0  # statistics were really carried over


@pytest.mark.parametrize(("dims", "shape"), [(0, (4, 2)), (1, (4, 2, 16)), (2, (4, 2, 8, 8))])
def test_dimensionalities(dims, shape):
    net = rknet.ODENet(2, 3, widths=(4, 6), dims=dims, method="heun", t_states=(0, 1))
    assert net(torch.randn(shape)).shape == (4, 3)


def test_weight_decay_applies_to_kernels_only():
    net = rknet.ODENet(3, 10, widths=(4, 8), norm="batch")
    names = decay_parameter_names(net)
    assert "blocks.0.controls.K" in names and "classifier.weight" in names
    assert "blocks.0.controls.b1" not in names and "blocks.0.controls.norm_weight" not in names
    assert "classifier.bias" not in names and "connectors.0.norm.weight" not in names
    assert names <= {n for n, _ in net.named_parameters()}


@pytest.mark.slow  # torch.compile
def test_torch_compile_matches_eager():
    net = rknet.ODENet(1, 3, widths=(4, 6), t_states=(0, 1, 2), norm="batch").eval()
    x = torch.randn(2, 1, 8, 8)
    compiled = torch.compile(net)
    torch.testing.assert_close(compiled(x), net(x), rtol=1e-4, atol=1e-5)
