"""rknet compare --baseline: seeds paired across methods, the Student-t interval, its verdict in words, the
refusal with one seed, the half/twice step-size columns, one label for a tableau file."""

import csv
import math

import pytest
import torch

import rknet.training.trainer as trainer
from rknet.cli.main import main
from rknet.compare import CompareSpec, Setting, SettingResult, run_grid
from rknet.compare.paired import PairedDifference, t_interval
from rknet.compare.paired_report import difference_line
from rknet.compare.robustness import step_counts
from rknet.training import train

BUILD, LOADER = trainer.build_model, trainer.BatchLoader  # the originals, before any test patches them
TOY = {"data": "circles", "widths": [4, 4], "steps": 2, "epochs": 1, "batch_size": 256, "device": "cpu"}


def first_state_and_batches(monkeypatch, tmp_path, method, seed):
    """The network `train` builds for (method, seed) before any step, and the labels of its first batches."""
    captured = {}
    def recording_build(*args, **kwargs):
        model = BUILD(*args, **kwargs)
        captured.setdefault("state", {k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    class RecordingLoader(LOADER):
        def __iter__(self):
            for x, y in super().__iter__():
                captured.setdefault("batches", []).append(y.clone())
                yield x, y

    monkeypatch.setattr(trainer, "build_model", recording_build)
    monkeypatch.setattr(trainer, "BatchLoader", RecordingLoader)
    train(dict(TOY, method=method, seed=seed, out=str(tmp_path / f"{method}-{seed}")), show_progress=False,
          log=lambda line: None)
    return captured["state"], captured["batches"]


def test_same_seed_gives_same_initial_weights_and_batches_across_methods(monkeypatch, tmp_path):
    euler, euler_batches = first_state_and_batches(monkeypatch, tmp_path, "euler", 3)
    rk4, rk4_batches = first_state_and_batches(monkeypatch, tmp_path, "rk4", 3)
    other, other_batches = first_state_and_batches(monkeypatch, tmp_path, "euler", 4)
    assert euler.keys() == rk4.keys()
    assert all(torch.equal(euler[k], rk4[k]) for k in euler)
    assert all(torch.equal(a, b) for a, b in zip(euler_batches, rk4_batches, strict=True))
    assert not all(torch.equal(euler[k], other[k]) for k in euler)  # the seed does change them
    assert not all(torch.equal(a, b) for a, b in zip(euler_batches, other_batches))


def test_t_interval_by_hand_and_against_scipy():
    differences = [0.01, 0.03, -0.01, 0.02, 0.00]
    interval = t_interval(differences)
    sd = math.sqrt((0.0 + 0.02**2 + 0.02**2 + 0.01**2 + 0.01**2) / 4)  # mean 0.01
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t_{0.975, 4} from a table
    assert interval.mean == pytest.approx(0.01)
    assert (interval.low, interval.high) == pytest.approx((0.01 - half, 0.01 + half), rel=1e-12)
    scipy_stats = pytest.importorskip("scipy.stats")
    low, high = scipy_stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([0.1])


def result(method, accuracies):
    r = SettingResult(Setting(method, "doublesym", 4, None, (8, 8)))
    r.seeds = list(range(len(accuracies)))
    r.test_acc = list(accuracies)
    r.half_step_acc = r.twice_step_acc = [None] * len(accuracies)
    return r


@pytest.mark.parametrize("method_acc, words", [
    ([0.981, 0.972, 0.990, 0.975, 0.983], "no detectable difference from euler at 5 seeds"),
    ([0.990, 0.985, 0.995, 0.988, 0.992], "higher than euler at 5 seeds (the interval excludes 0)"),
    ([0.960, 0.955, 0.968, 0.950, 0.962], "lower than euler at 5 seeds (the interval excludes 0)"),
])
def test_verdict_says_whether_the_interval_contains_zero(method_acc, words):
    base, other = result("euler", [0.978, 0.975, 0.983, 0.980, 0.979]), result("heun", method_acc)
    differences = [m - b for m, b in zip(method_acc, base.test_acc)]
    difference = PairedDifference(other, base, base.seeds, t_interval(differences), None, None, True)
    assert difference.verdict() == words
    assert difference.accuracy.contains_zero == words.startswith("no detectable")
    assert difference_line(difference).endswith(words)


def test_baseline_with_one_seed_is_refused_in_one_line(tmp_path, capsys):
    code = main(["compare", "--data", "circles", "--methods", "euler,heun", "--seeds", "1", "--baseline", "euler",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--seeds >= 2" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="not among the methods"):
        CompareSpec.coerce({"out": tmp_path, "methods": ["euler"], "baseline": "rk4"})


def test_step_counts_for_half_and_twice_the_step_size():
    assert step_counts(4) == (8, 2)
    assert step_counts(3) == (6, None)


@pytest.fixture(scope="module")
def baseline_grid(tmp_path_factory):
    """euler (baseline) and a tableau file, 2 seeds on the circles toy set, one epoch each."""
    folder = tmp_path_factory.mktemp("paired")
    tableau = folder / "heun3.toml"
    tableau.write_text('a = [[0, 0, 0], ["1/3", 0, 0], [0, "2/3", 0]]\nb = ["1/4", 0, "3/4"]\nc = [0, "1/3", "2/3"]\n')
    spec = {"out": folder / "out", "data": "circles", "methods": ["euler", str(tableau)], "steps": [2],
            "widths": [[4, 4]], "seeds": 2, "baseline": "euler",
            "options": {"epochs": 1, "batch_size": 256, "device": "cpu"}}
    return run_grid(spec, show_progress=False, log=lambda line: None)


@pytest.mark.slow
def test_baseline_grid_reports_intervals_and_step_size_columns(baseline_grid):
    results = baseline_grid
    assert not results.failed
    (difference,) = results.differences
    assert difference.method == "heun3" and difference.seeds == [0, 1] and difference.same_initial_weights
    assert difference.accuracy is not None and difference.half_step is not None and difference.twice_step is not None
    with open(results.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["euler", "heun3"]  # the tableau's name, not heun3.toml
    for row in rows:
        assert 0 <= float(row["half_step_acc_mean"]) <= 1 and 0 <= float(row["twice_step_acc_mean"]) <= 1
    assert float(rows[1]["diff_mean"]) == pytest.approx(difference.accuracy.mean)
    assert rows[0]["diff_mean"] == "" and rows[1]["baseline"] == "euler"
    report = results.report.read_text()
    assert "## Paired differences to euler" in report and difference.verdict() in report
    assert "| at half step (%) | at twice step (%) |" in report and "heun3.toml" not in report.split("```")[2]
    assert results.plots["differences"].read_bytes().startswith(b"\x89PNG")
