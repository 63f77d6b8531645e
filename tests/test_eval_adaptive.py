"""`rknet eval --method dopri5 --rtol ...`: accuracy and layer evaluations per image with error control."""

import json

import numpy as np
import pytest
import torch

import rknet
from rknet.training.adaptive_eval import adaptive_logits


@pytest.mark.slow  # ~4 s: trains, then solves adaptively at tight tolerances
def test_tight_tolerance_reproduces_a_fine_fixed_grid_and_costs_more():
    net = rknet.ODENet(2, 3, widths=(3, 3, 4), dims=0, norm="tv", activation="tanh",
                       t_states=(0, 0.5, 1, 1.5, 2)).double()
    net.train()
    net(torch.randn(64, 2, dtype=torch.float64))  # settle the connectors' batch-norm statistics
    net.eval()
    x = torch.randn(6, 2, dtype=torch.float64)
    loose, loose_cost = adaptive_logits(net, x, "dopri5", 1e-3, 1e-6)
    tight, tight_cost = adaptive_logits(net, x, "dopri5", 1e-10, 1e-12)
    with torch.no_grad():
        reference = rknet.rediscretize(net, "rk4", 512)(x)  # the same theta(t) on a very fine grid
    assert (tight - reference).abs().max() < 1e-6 < (loose - reference).abs().max() + 1e-6
    assert tight_cost > 2 * loose_cost > 0


def test_eval_with_tolerances_from_the_command_line(tmp_path, cli):
    generator = np.random.default_rng(0)
    x = generator.normal(size=(200, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "xor.npz", x_train=x[:180], y_train=y[:180], x_test=x[180:], y_test=y[180:])
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", f"npz:{tmp_path / 'xor.npz'}", "--widths", "4,4", "--steps", "2",
                       "--epochs", "2", "--out", out)
    assert code == 0, err
    code, stdout, err = cli("eval", out, "--method", "dopri5,bs3", "--rtol", "1e-2,1e-6", "--device", "cpu")
    assert code == 0, err
    (saved,) = out.glob("eval-*.json")
    rows = json.loads(saved.read_text())
    assert [(r["method"], r["rtol"]) for r in rows] == [("dopri5", 1e-2), ("dopri5", 1e-6), ("bs3", 1e-2),
                                                        ("bs3", 1e-6)]
    for loose, tight in (rows[:2], rows[2:]):
        assert tight["evaluations_per_image"] > loose["evaluations_per_image"] > 0
        assert tight["steps"] is None and not tight["trained"]
    assert "rtol 1e-06" in stdout
    # at a tight tolerance the adaptive solve is the network's ODE solved exactly: a fine fixed grid's figures
    # (not the trained 2-step grid's, which differ from the exact flow by its discretisation error)
    (fine,) = rknet.evaluate_run(out, methods=["rk4"], steps=[64], device="cpu")
    assert rows[1]["test_acc"] == fine["test_acc"]
    assert rows[1]["test_loss"] == pytest.approx(fine["test_loss"], abs=1e-4)
    code, _, err = cli("eval", out, "--method", "rk4", "--rtol", "1e-3")
    assert code == 2 and "adaptive stepping needs an embedded pair" in err
    code, _, err = cli("eval", out, "--steps", "2", "--rtol", "1e-3")
    assert code == 2 and "not both" in err
