"""rknet compare through submitit's local executor and a local Ray instance (two workers): the same results
as the local launcher, and a run killed (or preempted) mid-way continues from its checkpoint, not from epoch 1."""

import csv
import os
import signal
import threading
import time

import pytest

from rknet.compare import run_grid
from rknet.compare.status import status_lines
from rknet.training.metrics import read_metrics

pytestmark = pytest.mark.slow  # grids through submitit and Ray workers

# 2 methods x 2 seeds on the circles toy set; the columns that do not depend on time or memory
GRID = {"data": "circles", "methods": ["euler", "heun"], "layers": ["doublesym"], "steps": [1], "widths": [[4, 4]],
        "seeds": 2, "options": {"epochs": 2, "batch_size": 256, "device": "cpu"}, "threads": 1}
SAME = ("method", "layer", "steps", "control_steps", "widths", "seeds", "test_acc_mean", "test_acc_std", "params",
        "evaluations_per_forward", "failed")
# one run of 4 epochs of ~0.8 s (batch size 4), so that it can be stopped after its first epoch
SLOW = {"data": "circles", "methods": ["euler"], "layers": ["doublesym"], "steps": [1], "widths": [[4, 4]],
        "seeds": [0], "options": {"epochs": 4, "batch_size": 4, "device": "cpu"}, "threads": 1}
SLOW_RUN = "euler-doublesym-steps1-w4-4-seed0"
LOCAL_SUBMITIT = {"submitit_cluster": "local"}


def quiet(spec):
    return run_grid(spec, show_progress=False, log=lambda line: None)


def columns(out):
    with open(out / "results.csv", newline="") as handle:
        return [{key: row[key] for key in SAME} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def local_columns(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    results = quiet(dict(GRID, out=out, workers=2))
    assert [o.status for o in results.outcomes] == ["trained"] * 4
    return columns(out)


def stop_after_first_epoch(folder, signum):
    """A thread that, once the run in `folder` has finished epoch 1 (checkpoint, then the first metrics line),
    sends `signum` to the process holding the run's lock (the process training it); `seen` records what was
    there at that moment."""
    seen = {}

    def watch():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not seen:
            try:
                records = read_metrics(folder) if (folder / "metrics.jsonl").is_file() else []
                pid = int((folder / ".lock").read_text().split()[0]) if records else None
            except (OSError, ValueError, IndexError):
                pid = None
            if pid is not None:
                seen.update(first=records[0], complete=(folder / "summary.json").exists(), pid=pid)
                os.kill(pid, signum)
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, seen


def assert_continued(folder, seen):
    """The run was stopped after epoch 1 and later finished from its checkpoint: epoch 1 was not trained again."""
    assert seen and not seen["complete"]
    records = read_metrics(folder)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[0] == seen["first"]  # the same record, timings included: epoch 1 ran once
    assert "resuming" in (folder / "compare.log").read_text()
    assert (folder / "summary.json").is_file()


def killed_then_rerun(out, launcher, resources):
    """Kill the one run of SLOW after its first epoch under `launcher`, then rerun the grid."""
    spec = dict(SLOW, out=out, launcher=launcher, resources=resources)
    folder = out / "runs" / SLOW_RUN
    thread, seen = stop_after_first_epoch(folder, signal.SIGKILL)
    first = quiet(spec)
    thread.join()
    (outcome,) = first.outcomes
    assert outcome.status == "failed" and not (folder / "summary.json").exists()
    assert "## Failed runs" in (out / "report.md").read_text()
    (line, counts) = status_lines(out)
    assert line.startswith(f"failed      {SLOW_RUN}  ") and counts == "1 run: 1 failed"
    (outcome,) = quiet(spec).outcomes
    assert outcome.status == "resumed"
    assert_continued(folder, seen)
    assert status_lines(out)[0].startswith(f"complete    {SLOW_RUN}  test acc ")


# submitit ---------------------------------------------------------------------------------------------------

def test_submitit_local_executor_gives_the_local_results(tmp_path, local_columns):
    pytest.importorskip("submitit")
    results = quiet(dict(GRID, out=tmp_path, launcher="slurm", resources=LOCAL_SUBMITIT))
    assert [o.status for o in results.outcomes] == ["trained"] * 4
    assert columns(tmp_path) == local_columns
    assert len(list((tmp_path / "slurm").glob("*_result.pkl"))) == 4  # one submitit job per run
    assert "| launcher | slurm (resources: --submitit-cluster local)" in (tmp_path / "report.md").read_text()


def test_submitit_job_killed_midway_is_resumed_on_rerun(tmp_path):
    pytest.importorskip("submitit")
    killed_then_rerun(tmp_path, "slurm", LOCAL_SUBMITIT)


def test_preempted_submitit_job_is_requeued_and_resumes(tmp_path):
    """SIGUSR2 is SLURM's (and the local executor's) preemption signal: submitit checkpoints the job and
    requeues it, and the requeued job resumes the run in the same invocation."""
    pytest.importorskip("submitit")
    folder = tmp_path / "runs" / SLOW_RUN
    thread, seen = stop_after_first_epoch(folder, signal.SIGUSR2)
    (outcome,) = quiet(dict(SLOW, out=tmp_path, launcher="slurm", resources=LOCAL_SUBMITIT)).outcomes
    thread.join()
    assert outcome.status == "resumed"
    assert_continued(folder, seen)
    assert any("Requeued job" in path.read_text() for path in (tmp_path / "slurm").glob("*_log.*"))


# Ray --------------------------------------------------------------------------------------------------------

def test_ray_with_two_workers_gives_the_local_results(tmp_path, local_columns):
    ray = pytest.importorskip("ray")
    results = quiet(dict(GRID, out=tmp_path, launcher="ray", resources={"max_parallel": 2}))
    assert not ray.is_initialized()  # the launcher shut down the instance it started
    assert [o.status for o in results.outcomes] == ["trained"] * 4
    assert columns(tmp_path) == local_columns


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with two workers for the tests below (the launcher uses it, and leaves it up)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_lost_ray_worker_is_retried_and_resumes(tmp_path, ray_instance):
    folder = tmp_path / "runs" / SLOW_RUN
    thread, seen = stop_after_first_epoch(folder, signal.SIGKILL)
    (outcome,) = quiet(dict(SLOW, out=tmp_path, launcher="ray")).outcomes
    thread.join()
    assert outcome.status == "resumed"
    assert_continued(folder, seen)
    assert ray_instance.is_initialized()


def test_ray_run_killed_midway_without_retries_is_resumed_on_rerun(tmp_path, ray_instance):
    killed_then_rerun(tmp_path, "ray", {"retries": 0})
