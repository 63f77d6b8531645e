"""Training end to end on tiny settings: files written, resume after kill, checkpoints, CLI errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import rknet
from conftest import run_cli
from rknet.training.checkpoint import load_file
from rknet.training.config import TrainConfig
from rknet.training.metrics import read_metrics
from rknet.training.optim import lr_factor

TINY = ["--widths", "4,6", "--steps", "2", "--final-time", "1", "--batch-size", "128"]


def test_train_writes_every_artifact_and_load_returns_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["train", "--data", "peaks", "--epochs", "2", "--out", str(out), *TINY], capsys)
    assert code == 0
    assert '"method": "rk4"' in stdout  # the resolved configuration is printed
    records = read_metrics(out)
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s"):
        assert key in records[0]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("test_loss", "test_acc", "params", "epochs", "wall_seconds", "device", "config"):
        assert key in summary
    assert summary["config"]["data"] == "peaks" and summary["best_epoch"] in (1, 2)
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    model = rknet.load(out)
    assert not model.training and sum(p.numel() for p in model.parameters()) == summary["params"]
    rows = rknet.evaluate_run(out, device="cpu")
    assert rows[0]["test_acc"] == pytest.approx(summary["test_acc"])


def test_python_api_mirrors_the_cli(tmp_path, capsys):
    """rknet.train(options) and `rknet train --options` are one run: same configuration, metrics and weights."""
    result = rknet.train({"data": "circles", "epochs": 2, "widths": [4, 4], "steps": 1, "method": "heun",
                          "lr": 0.05, "out": str(tmp_path / "api")}, log=lambda line: None)
    assert result.epochs == 2 and (result.out / "model.pt").exists()
    assert result.model(torch.zeros(3, 2)).shape == (3, 2)
    code, _, err = run_cli(["train", "--data", "circles", "--epochs", "2", "--widths", "4,4", "--steps", "1",
                            "--method", "heun", "--lr", "0.05", "--out", tmp_path / "cli"], capsys)
    assert code == 0, err
    api, cli = (json.loads((tmp_path / name / "config.json").read_text()) for name in ("api", "cli"))
    assert api.pop("out") != cli.pop("out") and api == cli
    timing = ("seconds", "images_per_s")
    assert ([{k: v for k, v in r.items() if k not in timing} for r in read_metrics(tmp_path / "api")]
            == [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(tmp_path / "cli")])
    x = torch.randn(5, 2)
    assert torch.equal(rknet.load(tmp_path / "cli")(x), result.model(x))


def test_config_files_toml_and_yaml_with_command_line_overrides(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('data = "circles"\nepochs = 1\nwidths = [4, 4]\nmethod = "heun"\n'
                                     'steps = 1\n')
    (tmp_path / "c.yaml").write_text("data: circles\nepochs: 1\nwidths: [4, 4]\nmethod: euler\nsteps: 1\n")
    for name, method in (("c.toml", "rk4"), ("c.yaml", "euler")):
        out = tmp_path / name.replace(".", "_")
        extra = ["--method", "rk4"] if name.endswith("toml") else []
        code, _, err = run_cli(["train", "--config", str(tmp_path / name), "--out", str(out), *extra], capsys)
        assert code == 0, err
        saved = json.loads((out / "config.json").read_text())
        assert saved["method"] == method and saved["data"] == "circles" and saved["widths"] == [4, 4]


def test_learning_rate_schedules():
    config = TrainConfig(epochs=10, warmup_epochs=2, schedule="cosine")
    factors = [lr_factor(i, config, 5) for i in range(50)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.01
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    step = TrainConfig(epochs=10, schedule="step", step_epochs=3, step_gamma=0.5)
    assert [lr_factor(i * 5, step, 5) for i in (0, 2, 3, 6, 9)] == [1, 1, 0.5, 0.25, 0.125]


def _spawn(args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "rknet", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow  # kills a training process and resumes it in another
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path):
    args = ["train", "--data", "digits", "--epochs", "4", "--widths", "4,8", "--steps", "2", "--batch-size", "32"]
    whole = subprocess.run([sys.executable, "-m", "rknet", *args, "--out", str(tmp_path / "whole")],
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    process = _spawn([*args, "--out", str(killed)], tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "rknet", "train", "--resume", str(killed)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((tmp_path / "whole" / "summary.json").read_text())
    got = json.loads((killed / "summary.json").read_text())
    assert got["test_acc"] == pytest.approx(expected["test_acc"], abs=1e-6)
    assert got["test_loss"] == pytest.approx(expected["test_loss"], abs=1e-6)
    assert [r["epoch"] for r in read_metrics(killed)] == [1, 2, 3, 4]
    losses = [r["train_loss"] for r in read_metrics(killed)]
    assert losses == pytest.approx([r["train_loss"] for r in read_metrics(tmp_path / "whole")], abs=1e-6)


def test_corrupted_checkpoint_falls_back_to_the_previous_one_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = run_cli(["train", "--data", "circles", "--epochs", "2", "--out", str(out), *TINY], capsys)
    assert code == 0
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    code, stdout, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 0, err
    notes = [line for line in stdout.splitlines() if "resuming from the previous checkpoint" in line]
    assert len(notes) == 1 and "is truncated, corrupted" in notes[0] and "checkpoint.prev.pt (epoch 1)" in notes[0]
    assert load_file(checkpoint)["epoch"] == 2  # epoch 2 trained again from the previous checkpoint
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())  # the resumed run wrote the model it tested
    assert rknet.evaluate_run(out, device="cpu")[0]["test_acc"] == summary["test_acc"]


def test_refuses_to_overwrite_an_existing_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", "--data", "circles", "--epochs", "1", "--out", str(out), *TINY], capsys)[0] == 0
    code, _, err = run_cli(["train", "--data", "circles", "--epochs", "1", "--out", str(out), *TINY], capsys)
    assert code == 2 and "already holds a run" in err


def test_non_finite_loss_stops_with_exit_code_3_keeping_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    # A schedule that multiplies the learning rate by 1e12 after epoch 1 (no option asks for that: step_gamma
    # above 1 is refused): epoch 2 diverges.
    monkeypatch.setattr(rknet.training.optim, "lr_factor", lambda iteration, config, per_epoch, epochs=None:
                        lr_factor(iteration, config, per_epoch, epochs) * (1e12 if iteration >= per_epoch else 1))
    code, _, err = run_cli(["train", "--data", "circles", "--epochs", "3", "--out", str(out), "--layer", "single",
                            "--norm", "none", "--activation", "identity", "--schedule", "constant", *TINY], capsys)
    assert code == 3 and "diverged in epoch 2" in err and len(err.strip().splitlines()) == 1
    assert load_file(out / "checkpoint.pt")["epoch"] == 1
    assert [r["epoch"] for r in read_metrics(out)] == [1]


@pytest.fixture
def bad_npz(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((4, 2)), y_train=np.zeros(4, dtype=int))  # no test arrays
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "mnist"], "unknown data set"),
    (["--data", "cifar10:/does/not/exist"], "/does/not/exist"),
    (["--data", "npz:BAD"], "x_test"),
    (["--epochs", "-1"], "epochs must be a positive integer"),
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    (["--method", "rk5"], "unknown method"),
    (["--epochs", "two"], "invalid int value"),
    (["--widths", "4,x"], "comma-separated"),
])
def test_bad_cli_values_give_one_line_and_exit_code_2(args, message, bad_npz, tmp_path, capsys):
    args = [str(bad_npz) if a == "npz:BAD" else a for a in args]
    args = [f"npz:{bad_npz}" if a == str(bad_npz) else a for a in args]
    code, _, err = run_cli(["train", *args, "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_eval_rediscretises_with_several_methods_and_step_counts(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", "--data", "peaks", "--epochs", "2", "--out", str(out), *TINY], capsys)[0] == 0
    code, stdout, err = run_cli(["eval", str(out), "--method", "euler,rk4", "--steps", "2,4,8",
                                 "--device", "cpu"], capsys)
    assert code == 0, err
    lines = [line for line in stdout.splitlines() if line.startswith(("euler", "rk4"))]
    assert len(lines) == 6
    assert sum("(as trained)" in line for line in lines) == 1
    summary = json.loads((out / "summary.json").read_text())
    trained = next(line for line in lines if "(as trained)" in line)
    assert f"{100 * summary['test_acc']:.2f}%" in trained
    # what it prints is saved: RUN/eval-TIME.json always, --out files as JSON or CSV, and the plot
    (first,) = out.glob("eval-*.json")
    saved = json.loads(first.read_text())
    assert [(row["method"], row["steps"]) for row in saved] == [(m, n) for m in ("euler", "rk4") for n in (2, 4, 8)]
    for line, row in zip(lines, saved, strict=True):
        assert line.split()[:3] == [row["method"], str(row["steps"]), f"{100 * row['test_acc']:.2f}%"]
    code, stdout, err = run_cli(["eval", str(out), "--steps", "1,2", "--device", "cpu", "--out",
                                 str(tmp_path / "e.json"), "--out", str(tmp_path / "e.csv"), "--plot"], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "e.json").read_text())
    (second,) = set(out.glob("eval-*.json")) - {first}  # the first evaluation's file is kept
    assert rows == json.loads(second.read_text()) and len(rows) == 2 and json.loads(first.read_text()) == saved
    csv_lines = (tmp_path / "e.csv").read_text().splitlines()
    assert csv_lines[0] == "method,steps,rtol,test_acc,test_loss,evaluations_per_image,trained"
    assert csv_lines[2].startswith("rk4,2,,")  # no tolerance on a fixed grid
    assert second.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"  # beside its table
    code, _, err = run_cli(["eval", str(out), "--out", str(tmp_path / "e.txt")], capsys)
    assert code == 2 and "must end in .json or .csv" in err


def test_rediscretize_keeps_the_function_up_to_discretisation_error():
    net = rknet.ODENet(2, 3, widths=(4, 4), dims=0, norm="batch", t_states=(0, 0.5, 1)).double().eval()
    x = torch.randn(16, 2, dtype=torch.float64)
    same = rknet.rediscretize(net, "rk4", 2)
    assert torch.equal(same(x), net(x))
    errors = [(rknet.rediscretize(net, "rk4", n)(x) - rknet.rediscretize(net, "rk4", 256)(x)).abs().max().item()
              for n in (4, 8)]
    assert errors[1] < errors[0] / 4


def test_resume_with_more_epochs_extends_a_finished_run(tmp_path, capsys):
    base = ["--data", "circles", "--schedule", "constant", *TINY]
    short, long = tmp_path / "short", tmp_path / "long"
    assert run_cli(["train", "--epochs", "2", "--out", str(short), *base], capsys)[0] == 0
    assert run_cli(["train", "--epochs", "4", "--out", str(long), *base], capsys)[0] == 0
    code, _, err = run_cli(["train", "--resume", str(short), "--epochs", "4"], capsys)
    assert code == 0, err
    assert [r["epoch"] for r in read_metrics(short)] == [1, 2, 3, 4]
    extended, straight = (json.loads((folder / "summary.json").read_text()) for folder in (short, long))
    assert extended["epochs"] == 4 and json.loads((short / "config.json").read_text())["epochs"] == 4
    # a constant schedule: extending a 2-epoch run to 4 is the 4-epoch run, batch for batch
    assert extended["test_loss"] == pytest.approx(straight["test_loss"], abs=1e-6)
    assert [r["train_loss"] for r in read_metrics(short)] == pytest.approx(
        [r["train_loss"] for r in read_metrics(long)], abs=1e-6)
    code, _, err = run_cli(["train", "--resume", str(short), "--epochs", "3"], capsys)
    assert code == 2 and "the run has trained 4 epochs; to extend it give --epochs above 4, got 3" in err
    code, _, err = run_cli(["train", "--resume", str(short), "--lr", "0.5"], capsys)
    assert code == 2 and "give no other option than --epochs" in err


def test_extending_a_cosine_run_follows_the_longer_schedule(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", "--data", "circles", "--epochs", "1", "--out", str(out), *TINY], capsys)[0] == 0
    assert run_cli(["train", "--resume", str(out), "--epochs", "3"], capsys)[0] == 0
    config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    records = read_metrics(out)
    batches = -(-1800 // 128)  # circles: 2,000 points, 10 % held out for validation, batch 128
    # epoch 2 starts where the 3-epoch cosine stands after one epoch (the 1-epoch schedule had reached 0)
    assert records[1]["lr"] == pytest.approx(config.lr * lr_factor(batches, config, batches))
    assert records[1]["lr"] == pytest.approx(config.lr * 0.75)  # (1 + cos(pi / 3)) / 2
