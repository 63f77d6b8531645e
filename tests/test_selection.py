"""Model selection (--select, ties by validation loss), batch-norm statistics recomputed before evaluation,
and the frictions of issue 25: eval files kept, --version, one-line refusals (mlflow store, gradients plots)."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import rknet
from conftest import run_cli
from rknet.layers.norms import BatchNorm, block_statistics_momentum
from rknet.training.batch_stats import recompute_batch_stats
from rknet.training.metrics import read_metrics
from rknet.training.selection import improves, kept, no_best
from rknet.training.trackers import check_tracker

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "main-5149055" / "run"
TOY = {"data": "peaks", "widths": [4, 4], "steps": 1, "batch_size": 200, "lr": 0.05}


def run(tmp_path, name, **options):
    return rknet.train(dict(TOY, out=str(tmp_path / name), **options), log=lambda line: None)


def chosen(records):
    """The epoch the `best` rule keeps over `records` of (val_acc, val_loss)."""
    best, model = no_best(), nn.Linear(1, 1)
    for epoch, (accuracy, loss) in enumerate(records, 1):
        record = {"epoch": epoch, "val_acc": accuracy, "val_loss": loss}
        if improves(record, best):
            best = kept(record, model)
    return best["epoch"]


def test_ties_in_validation_accuracy_go_to_the_lower_loss_then_the_later_epoch():
    # the main job's pattern: 97.92 % first reached at epoch 5, tied later with a lower loss
    assert chosen([(0.90, 0.3), (0.9792, 0.09), (0.9792, 0.05), (0.9792, 0.07), (0.95, 0.01)]) == 3
    assert chosen([(0.5, 1.0), (0.5, 1.0)]) == 2  # a full tie: the later epoch
    assert chosen([(0.5, 0.2), (0.6, 0.9), (0.6, 1.0)]) == 2  # accuracy first: a lower loss alone does not win
    assert chosen([(None, None), (None, None)]) == 2  # no validation split: the latest
    old_checkpoint_best = {"val_acc": 0.5, "epoch": 1, "state": {}}  # written before losses broke ties
    assert improves({"epoch": 2, "val_acc": 0.5, "val_loss": 3.0}, old_checkpoint_best)


def test_summary_and_final_line_give_the_selected_and_the_last_epoch_models(tmp_path):
    lines = []
    result = rknet.train(dict(TOY, epochs=3, out=str(tmp_path / "best")), log=lines.append)
    summary = json.loads((result.out / "summary.json").read_text())
    records = read_metrics(result.out)
    assert summary["select"] == "best" and summary["selected_epoch"] == summary["best_epoch"] == result.selected_epoch
    assert summary["best_val_loss"] == records[summary["best_epoch"] - 1]["val_loss"]
    assert result.last_test_acc == summary["last_test_acc"] and "last_test_loss" in summary
    assert f"with the epoch-{summary['selected_epoch']} model (selected: best validation); last epoch " \
           f"{100 * summary['last_test_acc']:.2f}%" in lines[-1]
    assert not any(line.startswith("configuration:") for line in lines)  # only `rknet train` prints it
    last = run(tmp_path, "last", epochs=3, select="last")
    summary = json.loads((last.out / "summary.json").read_text())
    assert summary["selected_epoch"] == 3 and summary["test_acc"] == summary["last_test_acc"] == last.test_acc
    checkpoint = torch.load(last.out / "checkpoint.pt", weights_only=True)
    saved = rknet.load(last.out).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in checkpoint["model"].items())  # model.pt: the last epoch's
    with pytest.raises(ValueError, match="unknown select 'worst'; valid: best, last"):
        run(tmp_path, "bad", select="worst")


def test_rknet_batch_norm_with_momentum_none_is_a_cumulative_average_as_torch():
    torch.manual_seed(1)
    ours, theirs = BatchNorm(3, momentum=None), nn.BatchNorm2d(3, momentum=None)
    for _ in range(3):
        x = torch.randn(5, 3, 4, 4) * 2 + 1
        ours(x), theirs(x)
    assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-6)
    model = rknet.ODENet(1, 10, widths=[4, 4], t_states=(0, 1))  # torch's update_bn now works on rknet networks
    torch.optim.swa_utils.update_bn([torch.randn(8, 1, 8, 8)], model)
    with pytest.raises(ValueError, match=r"momentum is in \(0, 1\]"):
        with block_statistics_momentum(0.0):
            pass


def test_recomputed_statistics_of_one_batch_make_eval_mode_equal_the_batch_statistics():
    torch.manual_seed(2)
    model = rknet.ODENet(1, 10, widths=[4, 4], t_states=(0, 0.5, 1), norm="batch")  # batch norm inside the blocks too
    x = torch.randn(64, 1, 8, 8)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # move the running statistics away from this batch's
            model(torch.randn(64, 1, 8, 8) * 3 + 1)
        reference = model(x)  # train mode: every batch norm normalises with x's own statistics
        assert not torch.allclose(model.eval()(x), reference, atol=1e-2)
    assert recompute_batch_stats(model, x, batch_size=64, device=torch.device("cpu")) == 1
    assert not model.training and model.opening[1].momentum == 0.1  # the mode and momenta come back
    with torch.no_grad():  # running variances are unbiased (n / (n - 1)): equal up to that factor
        assert torch.allclose(model(x), reference, atol=2e-3)


def test_training_recomputes_statistics_before_each_validation(tmp_path):
    result = run(tmp_path, "recompute", epochs=2, norm="batch", bn_recompute=200)
    data = rknet.data.load_dataset("peaks", val_fraction=0.1, seed=0)
    model = rknet.load(result.out)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    recompute_batch_stats(model, data.x_train[:200], 200, torch.device("cpu"))
    assert all(torch.allclose(saved[k], v, atol=1e-6) for k, v in model.state_dict().items())
    off = run(tmp_path, "off", epochs=2, norm="batch", bn_recompute=0)
    assert read_metrics(off.out)[0]["train_loss"] == read_metrics(result.out)[0]["train_loss"]  # training unchanged
    assert read_metrics(off.out)[-1]["val_loss"] != read_metrics(result.out)[-1]["val_loss"]


@pytest.mark.slow
def test_a_run_folder_written_before_the_recomputation_loads_and_resumes(tmp_path):
    model = rknet.load(FIXTURE_RUN)  # main at 5149055, norm=batch inside the blocks: the keys load strictly
    assert any(name.endswith("_running_mean") for name, _ in model.blocks.named_buffers())
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE_RUN, folder)  # its checkpoint's kept model has no validation loss yet
    result = rknet.train(resume=folder, epochs=2, log=lambda line: None)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["config"]["bn_recompute"] == 4096 and summary["last_test_acc"] == result.last_test_acc
    assert [r["epoch"] for r in read_metrics(folder)] == [1, 2]


def test_every_evaluation_is_kept_in_its_own_file(tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, folder)
    for steps in ("2", "4"):
        code, _, err = run_cli(["eval", folder, "--steps", steps, "--device", "cpu"], capsys)
        assert code == 0, err
    files = sorted(folder.glob("eval-*.json"))
    assert len(files) == 2 and {json.loads(f.read_text())[0]["steps"] for f in files} == {2, 4}


def test_version_and_help_descriptions(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"rknet {rknet.__version__}"
    for command, words in (("stability", "stability region"), ("spectrum", "Jacobian"),
                           ("trajectories", "test points"), ("gradients", "steps per unit time")):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and words in " ".join(out.split()), command
    code, out, _ = run_cli(["eval", "--help"], capsys)
    assert "default: the run's own method" in " ".join(out.split())


def test_gradients_without_matplotlib_refuses_first_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    code, out, err = run_cli(["gradients", tmp_path / "no-such-run"], capsys)  # refused before reading the run
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "matplotlib" in err


@pytest.mark.slow  # importing mlflow takes seconds
def test_mlflow_without_its_database_packages_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    pytest.importorskip("mlflow")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sqlalchemy" else real(name, *a))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ValueError, match="needs sqlalchemy"):
        check_tracker("mlflow")
    code, _, err = run_cli(["train", "--data", "circles", "--logger", "mlflow", "--out", tmp_path / "r"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "rknet[mlflow]" in err
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


@pytest.mark.slow
def test_torchrun_ranks_print_no_deprecation_warnings_of_ours(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(port), "-m", "rknet", "train", "--data", "circles", "--widths", "4,4", "--steps",
               "1", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "ddp")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.count("test accuracy") == 1  # one line, from rank 0
