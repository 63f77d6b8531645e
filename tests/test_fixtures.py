"""Folders written by an earlier rknet (main at 5149055, before the packages by tier) load unchanged.

tests/fixtures/main-5149055/ holds a training run folder and a `save_pretrained` folder, each with the logits
that version gave on a fixed input (expected.json; see the README there). A user who upgrades must get the
same predictions, be able to evaluate the run and train it on. The fixture files are never written to: the
resumed run trains in a copy.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import rknet
from rknet.training import evaluate_run
from rknet.training.checkpoint import load_file

FIXTURES = Path(__file__).parent / "fixtures" / "main-5149055"
RUN, PRETRAINED = FIXTURES / "run", FIXTURES / "pretrained-custom"


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(autouse=True, scope="module")
def fixtures_stay_unchanged():
    """No test here may write into the fixture folders (a stray eval.json would hide a loading bug)."""
    before = digests(FIXTURES)
    yield
    assert digests(FIXTURES) == before


def expected_logits(folder: Path) -> torch.Tensor:
    expected = json.loads((folder / "expected.json").read_text())
    assert expected["input"] == "torch.linspace(-1, 1, 128).reshape(2, 1, 8, 8)"  # the input used below
    return torch.tensor(expected["logits"])


def logits(model: rknet.ODENet) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.linspace(-1, 1, 128).reshape(2, 1, 8, 8))


def test_a_run_folder_loads_with_the_logits_it_gave():
    model = rknet.load(RUN)
    assert model.spec.norm == "batch" and model.spec.num_steps == 2  # per-evaluation running statistics in use
    torch.testing.assert_close(logits(model), expected_logits(RUN), rtol=0, atol=1e-6)


def test_the_runs_pretrained_folder_gives_the_same_logits():
    torch.testing.assert_close(logits(rknet.from_pretrained(RUN / "pretrained")), expected_logits(RUN),
                               rtol=0, atol=1e-6)


def test_a_pretrained_folder_with_a_users_tableau_loads_with_the_logits_it_gave():
    model = rknet.from_pretrained(PRETRAINED)
    tableau = model.spec.method
    assert tableau.name == "mine" and tableau.b == pytest.approx((0.25, 0.75))  # stored by value
    assert model.spec.t_controls == (0.0, 1.0) and model.spec.norm == "tv"
    torch.testing.assert_close(logits(model), expected_logits(PRETRAINED), rtol=0, atol=1e-6)
    torch.testing.assert_close(logits(rknet.load(PRETRAINED)), expected_logits(PRETRAINED), rtol=0, atol=1e-6)


def test_evaluate_run_reads_the_run_folder_and_reproduces_its_test_score():
    summary = json.loads((RUN / "summary.json").read_text())
    (row,) = evaluate_run(RUN, device="cpu")
    assert row["trained"] and row["steps"] == 2
    assert row["test_acc"] == pytest.approx(summary["test_acc"], abs=1e-9)
    assert row["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-5)


def test_rknet_eval_reads_a_copy_of_the_run_folder(cli, tmp_path):
    run = shutil.copytree(RUN, tmp_path / "run")  # eval writes RUN/eval-TIME.json
    code, out, err = cli("eval", run, "--device", "cpu")
    assert code == 0, err
    (written,) = run.glob("eval-*.json")
    (row,) = json.loads(written.read_text())
    assert row["method"] == "rk4" and row["test_acc"] == pytest.approx(0.1, abs=1e-9) and "rk4" in out


def test_a_copy_of_the_run_resumes_from_its_checkpoint_and_trains_on(tmp_path):
    run = shutil.copytree(RUN, tmp_path / "run")
    lines = []
    result = rknet.train(resume=run, epochs=2, log=lines.append)
    assert any(line.startswith(f"resuming {run} after epoch 1/2") for line in lines), lines
    assert result.epochs == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    first = json.loads((RUN / "metrics.jsonl").read_text().splitlines()[0])
    assert records[0] == first  # epoch 1 is the fixture's own, kept as it was
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    before, after = load_file(RUN / "checkpoint.pt"), load_file(run / "checkpoint.pt")
    assert (before["epoch"], after["epoch"]) == (1, 2)
    assert any(not torch.equal(after["model"][name], weight) for name, weight in before["model"].items())
