"""Trainer options beyond the defaults: multilevel, time regulariser, clipping, memory modes, fast path."""

import json

import pytest
import torch

import rknet
from rknet.common.cpu import has_bf16_units
from rknet.layers.norms import TV_EPS
from rknet.training.metrics import read_metrics

TOY = {"data": "peaks", "widths": [4, 4], "batch_size": 200, "lr": 0.05}


def run(tmp_path, name, **options):
    return rknet.train(dict(TOY, out=str(tmp_path / name), **options), log=lambda line: None)


def test_multilevel_refines_coarse_to_fine_and_records_accuracy_around_each_refinement(tmp_path):
    result = run(tmp_path, "ml", steps=1, epochs=3, multilevel=[1, 2, 4])
    summary = json.loads((result.out / "summary.json").read_text())
    refinements = summary["refinements"]
    assert [(r["epoch"], r["steps_before"], r["steps_after"]) for r in refinements] == [(2, 1, 2), (3, 2, 4)]
    for r in refinements:  # refinement changes the network only by the discretisation error
        assert abs(r["val_acc_after"] - r["val_acc_before"]) < 0.2
    assert [r["steps"] for r in read_metrics(result.out)] == [1, 2, 4]
    assert result.model.spec.t_states == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert summary["params"] == sum(p.numel() for p in result.model.parameters())
    assert rknet.load(result.out).spec.t_states == (0.0, 1.0, 2.0, 3.0, 4.0)


def test_multilevel_refines_the_best_network_of_the_level(tmp_path):
    result = run(tmp_path, "ml", steps=1, epochs=6, multilevel=[1, 2], lr=0.3, seed=4, level_schedule="restart")
    level_accuracies = [r["val_acc"] for r in read_metrics(result.out)[:3]]
    refinement = json.loads((result.out / "summary.json").read_text())["refinements"][0]
    assert refinement["val_acc_before"] == max(level_accuracies)


def test_multilevel_learning_rate_restarts_per_level_or_continues_over_the_run(tmp_path):
    rates = {schedule: [r["lr"] for r in read_metrics(run(tmp_path, schedule, steps=1, epochs=4, multilevel=[1, 2],
                                                          level_schedule=schedule).out)]
             for schedule in ("restart", "continue")}
    single = [r["lr"] for r in read_metrics(run(tmp_path, "single", steps=2, epochs=4).out)]
    assert rates["continue"] == pytest.approx(single)
    assert rates["restart"][2] == rates["restart"][0] == TOY["lr"] > rates["continue"][2]
    assert rates["restart"][:2] == pytest.approx([TOY["lr"], TOY["lr"] / 2])  # cosine over 2 epochs


def test_multilevel_resume_rebuilds_the_refined_network(tmp_path):
    result = run(tmp_path, "ml", steps=1, epochs=2, multilevel=[1, 2])
    folder = result.out
    checkpoint = torch.load(folder / "checkpoint.prev.pt", weights_only=True)
    assert checkpoint["level"] == 0
    (folder / "checkpoint.pt").write_bytes((folder / "checkpoint.prev.pt").read_bytes())
    resumed = rknet.train(resume=folder, log=lambda line: None)
    assert resumed.test_loss == pytest.approx(result.test_loss, abs=1e-6)


def test_time_regulariser_is_logged_and_pulls_controls_together(tmp_path):
    plain = run(tmp_path, "plain", steps=4, epochs=2)
    smooth = run(tmp_path, "smooth", steps=4, epochs=2, time_reg=10.0, val_fraction=0.0)  # keeps the last model
    records = read_metrics(smooth.out)
    assert records[-1]["time_reg"] == pytest.approx(rknet.time_regularization(smooth.model).item(), rel=1e-6)
    assert "time_reg" not in read_metrics(plain.out)[0]
    assert rknet.time_regularization(smooth.model) < rknet.time_regularization(plain.model)


def test_clip_bounds_kernel_weights(tmp_path):
    result = run(tmp_path, "clip", steps=2, epochs=1, clip=0.05)
    for block in result.model.blocks:
        assert block.controls["K"].abs().max() <= 0.05 + 1e-7


@pytest.mark.parametrize("memory", ["checkpoint", "selective"])
def test_recomputing_memory_modes_train_like_backprop(tmp_path, memory):
    backprop = run(tmp_path, "backprop", steps=2, epochs=1, norm="batch")
    recomputing = run(tmp_path, memory, steps=2, epochs=1, norm="batch", gradient=memory)
    assert recomputing.test_loss == pytest.approx(backprop.test_loss, rel=1e-4)


@pytest.mark.parametrize("method", ["leapfrog", "hamiltonian"])
def test_reversible_methods_from_the_trainer(tmp_path, method):
    result = run(tmp_path, method, steps=4, epochs=1, method=method, norm="tv")
    assert result.model.blocks[0].family == method and result.model.blocks[0].gradient.name == "reversible"
    assert rknet.evaluate_run(result.out, device="cpu")[0]["test_acc"] == result.test_acc


def test_gradient_norms_per_block_are_logged(tmp_path):
    result = run(tmp_path, "grads", steps=2, epochs=1, widths=[4, 4, 4])
    record = read_metrics(result.out)[0]
    assert record["grad_norm/blocks.0"] > 0 and record["grad_norm/blocks.1"] > 0


@pytest.mark.slow  # torch.compile
def test_fast_path_agrees_with_eager_within_bf16_tolerance(tmp_path):
    """--fast (compiled, bf16 autocast) against eager fp32 over the same SGD step.

    Compared by losses: the TV norm of 4-channel vectors amplifies rounding (its gradient near zero scales
    with 1/sqrt(eps)), so bf16 parameters drift apart while the losses agree within 1%; over several steps
    even fp32 reassociation grows to percents, hence a single step for the compiled-fp32 comparison.
    """
    options = {"data": "circles", "widths": [4, 4], "steps": 2, "batch_size": 2000, "epochs": 1, "lr": 0.05,
               "val_fraction": 0.0}  # one SGD step over the 2,000 training points
    eager = rknet.train(dict(options, out=str(tmp_path / "eager")), log=lambda line: None)
    compiled = rknet.train(dict(options, out=str(tmp_path / "compiled"), compile=True), log=lambda line: None)
    fast = rknet.train(dict(options, out=str(tmp_path / "fast"), fast=True), log=lambda line: None)
    saved = json.loads((fast.out / "config.json").read_text())
    assert saved["compile"] is True and saved["precision"] == ("bf16" if has_bf16_units() else "fp32")
    eager_loss = read_metrics(eager.out)[0]["train_loss"]
    assert read_metrics(compiled.out)[0]["train_loss"] == pytest.approx(eager_loss, rel=1e-4)
    assert read_metrics(fast.out)[0]["train_loss"] == pytest.approx(eager_loss, rel=2e-2)
    assert fast.test_loss == pytest.approx(eager.test_loss, rel=3e-2)
    # fp32 compiled: the same step up to rounding. Reassociated sums over the batch differ by ~eps * sqrt(n),
    # and the TV norm's gradient amplifies them by up to 1/sqrt(its eps); each tensor is compared norm-wise.
    tolerance = torch.finfo(torch.float32).eps / TV_EPS ** 0.5 * options["batch_size"] ** 0.5
    for key, value in eager.model.state_dict().items():
        if value.is_floating_point():
            difference = (compiled.model.state_dict()[key] - value).norm()
            assert difference <= tolerance * max(value.norm(), 1.0), key


def test_without_a_validation_split_the_last_epoch_model_is_kept(tmp_path):
    result = run(tmp_path, "noval", steps=1, epochs=3, val_fraction=0.0)
    assert json.loads((result.out / "summary.json").read_text())["best_epoch"] == 3


def test_memory_mode_with_a_reversible_method_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reversible"):
        run(tmp_path, "bad", method="leapfrog", gradient="checkpoint")


def test_patience_stops_when_validation_accuracy_stalls_and_keeps_the_best_model(tmp_path):
    result = run(tmp_path, "patient", steps=1, epochs=40, lr=0.3, patience=2)
    records = read_metrics(result.out)
    summary = json.loads((result.out / "summary.json").read_text())
    stopped, accuracies = summary["stopped"], [r["val_acc"] for r in records]
    best = summary["best_epoch"]
    assert stopped["reason"] == "patience" and stopped["patience"] == 2 and stopped["best_epoch"] == best
    assert len(records) == stopped["epoch"] == best + 2 < 40  # stopped 2 epochs after the last improvement
    assert accuracies[best - 1] == max(accuracies) > max(accuracies[best:])  # ... which was the best, strictly
    assert "validation accuracy has not improved for 2 epochs" in stopped["message"]
    checkpoint = torch.load(result.out / "checkpoint.pt", weights_only=True)
    saved = rknet.load(result.out).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in checkpoint["best"]["state"].items())  # model.pt is the best
    assert any(not torch.equal(saved[k], v) for k, v in checkpoint["model"].items())  # ... not the last epoch's
    # resumed from the epoch before the stop, the run stops at the same epoch with the same model
    (result.out / "checkpoint.pt").write_bytes((result.out / "checkpoint.prev.pt").read_bytes())
    resumed = rknet.train(resume=result.out, log=lambda line: None)
    again = json.loads((result.out / "summary.json").read_text())
    assert again["stopped"] == stopped and resumed.test_loss == pytest.approx(result.test_loss, abs=1e-6)


def test_without_patience_every_epoch_runs_and_patience_is_validated(tmp_path):
    summary = json.loads((run(tmp_path, "all", steps=1, epochs=2).out / "summary.json").read_text())
    assert summary["stopped"] == {"reason": "epochs", "epoch": 2, "best_epoch": summary["best_epoch"],
                                  "patience": None}
    with pytest.raises(ValueError, match="patience must be a positive integer, got 0"):
        run(tmp_path, "zero", patience=0)
    with pytest.raises(ValueError, match="patience cannot be combined with multilevel"):
        run(tmp_path, "ml", patience=2, multilevel=[1, 2])
    with pytest.raises(ValueError, match="--patience 2 stops on validation accuracy, but this run has no validation"):
        run(tmp_path, "noval", patience=2, val_fraction=0.0)
