"""Run folders: a run never writes into a folder of other files or one in use, and leaves none behind when it
fails before its first checkpoint.

Part of the bad-input suite (issue 13): each explicit test feeds one bad input and asserts the exception
type or exit code and the first words of the one-line message; the Hypothesis tests throw random input at
the same readers and assert that each loads cleanly or ends in a one-line ValueError. Add a test for every
new way in which bad input is found to slip through.
"""

from __future__ import annotations

import subprocess
import sys

from bad_input import TINY, one_line, trained_run
from conftest import run_cli
from rknet.training.checkpoint import (
    CHECKPOINT,
    load_file,
)


def test_out_into_a_folder_of_other_files_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(tmp_path), *TINY], capsys)
    assert code == 2
    assert one_line(err).startswith(f"rknet train: error: {tmp_path} holds other files (notes.txt) but no run")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "notes.txt"]  # untouched, no .lock
    assert (tmp_path / "config.json").read_text() == "{}"


LOCK_HOLDER = """
import fcntl, os, sys, time
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(descriptor, fcntl.LOCK_EX)
os.write(descriptor, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_run_into_the_same_folder_at_once_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(["train", "--data", "circles", "--out", str(out), *TINY], capsys)
    finally:
        holder.communicate("")
    assert code == 2
    assert one_line(err).startswith(f"rknet train: error: {out} is in use by another rknet run (process "
                                    f"{holder.pid} holds")
    assert run_cli(["train", "--data", "circles", "--out", str(out), *TINY], capsys)[0] == 0  # free again


def test_resume_of_a_run_in_use_is_refused(tmp_path, capsys):
    out = trained_run(tmp_path / "run", capsys)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    finally:
        holder.communicate("")
    assert code == 2 and one_line(err).startswith(f"rknet train: error: {out} is in use by another rknet run")


def test_run_failing_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", f"npz:{tmp_path / 'absent.npz'}", "--out", str(out), *TINY], capsys)
    assert code == 2 and one_line(err).startswith("rknet train: error: npz file not found")
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, _ = run_cli(["train", "--data", f"npz:{tmp_path / 'absent.npz'}", "--out", str(empty), *TINY], capsys)
    assert code == 2 and list(empty.iterdir()) == []  # a folder that was there stays, as it was


def test_run_diverging_in_epoch_one_leaves_no_folder_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(out), *TINY, "--lr", "1e30"], capsys)
    assert code == 3
    assert one_line(err).startswith("rknet train: training diverged in epoch 1: the loss is nan; no checkpoint was "
                                    "written")
    assert not out.exists()


def test_folder_of_a_run_killed_before_its_first_checkpoint_is_reused(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "tensorboard").mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl", ".lock"):
        (out / name).write_text("")
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 2 and "holds no checkpoint" in one_line(err)
    assert run_cli(["train", "--data", "circles", "--out", str(out), *TINY], capsys)[0] == 0
    assert load_file(out / CHECKPOINT)["epoch"] == 1
