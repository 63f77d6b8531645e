"""Checkpoints and model files are verified before they are trusted: flipped bytes, random bytes, pickled code,
a full disk.

Part of the bad-input suite (issue 13): each explicit test feeds one bad input and asserts the exception
type or exit code and the first words of the one-line message; the Hypothesis tests throw random input at
the same readers and assert that each loads cleanly or ends in a one-line ValueError. Add a test for every
new way in which bad input is found to slip through.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from bad_input import FUZZ, TINY, RunsShell, one_line, trained_run
from conftest import run_cli
from rknet.training.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    CheckpointError,
    content_digest,
    load_checkpoint,
    load_file,
    save_checkpoint,
)


def small_state(epoch: int) -> dict:
    """A stand-in for a training state: nested tensors, numbers, strings, like a real checkpoint."""
    generator = torch.Generator().manual_seed(epoch)
    model = {"weight": torch.randn(16, 8, generator=generator), "bias": torch.zeros(8)}
    return {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
            "scheduler": {"last_epoch": epoch}, "rng": {"torch": torch.get_rng_state()}, "epoch": epoch, "level": 0,
            "history": [{"epoch": e, "val_loss": 0.5 / e} for e in range(1, epoch + 1)],
            "best": {"val_acc": 0.5, "epoch": epoch, "state": None}, "refinements": [],
            "val_indices": torch.arange(3), "config": {"method": "rk4", "widths": (4, 8)}, "wall_seconds": 1.5}


def flip_byte_inside(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit in the middle of `tensor`'s bytes as stored in the file `path`."""
    content = bytearray(path.read_bytes())
    stored = tensor.contiguous().numpy().tobytes()
    start = content.find(stored)
    assert start >= 0, "tensor bytes not found in the file"
    content[start + len(stored) // 2] ^= 0x10
    path.write_bytes(bytes(content))


def test_flipped_byte_is_detected_by_the_checksum(tmp_path):
    save_checkpoint(small_state(1), tmp_path)
    path = tmp_path / CHECKPOINT
    flip_byte_inside(path, small_state(1)["model"]["weight"])
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(path))} fails its SHA-256 check"):
        load_file(path)


def test_flipped_byte_in_a_run_resumes_from_the_previous_checkpoint(tmp_path, capsys):
    out = trained_run(tmp_path / "run", capsys)
    state = load_file(out / CHECKPOINT)
    flip_byte_inside(out / CHECKPOINT, max(state["model"].values(), key=lambda tensor: tensor.numel()))
    code, stdout, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 0, err
    notes = [line for line in stdout.splitlines() if "fails its SHA-256 check" in line]
    assert len(notes) == 1 and notes[0].startswith(f"checkpoint {out / CHECKPOINT} fails its SHA-256 check")
    assert notes[0].endswith(f"resuming from the previous checkpoint {out / PREVIOUS} (epoch 1)")
    assert load_file(out / CHECKPOINT)["epoch"] == 2 and load_file(out / PREVIOUS)["epoch"] == 1


def test_flipped_byte_in_model_pt_is_detected_by_eval(tmp_path, capsys):
    out = trained_run(tmp_path / "run", capsys)
    state = load_file(out / "model.pt")["state_dict"]
    flip_byte_inside(out / "model.pt", max(state.values(), key=lambda tensor: tensor.numel()))
    code, _, err = run_cli(["eval", str(out), "--device", "cpu"], capsys)
    assert code == 2
    assert one_line(err).startswith(f"rknet eval: error: model file {out / 'model.pt'} fails its SHA-256 check")


def test_damaged_checkpoint_is_never_copied_over_the_previous_one(tmp_path):
    save_checkpoint(small_state(1), tmp_path)
    save_checkpoint(small_state(2), tmp_path)
    flip_byte_inside(tmp_path / CHECKPOINT, small_state(2)["model"]["weight"])
    assert load_checkpoint(tmp_path, log=lambda line: None)["epoch"] == 1
    save_checkpoint(small_state(2), tmp_path)  # the resumed run saves its next epoch
    assert load_file(tmp_path / PREVIOUS)["epoch"] == 1 and load_file(tmp_path / CHECKPOINT)["epoch"] == 2


def test_both_checkpoints_damaged_gives_one_line(tmp_path, capsys):
    out = trained_run(tmp_path / "run", capsys)
    for name in (CHECKPOINT, PREVIOUS):
        (out / name).write_bytes(os.urandom(2000))
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"rknet train: error: checkpoint {out / CHECKPOINT} is truncated, corrupted or not")
    assert "the previous one cannot be used either" in line and "weights_only" not in line


def test_random_bytes_checkpoint_never_suggests_weights_only_false(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(os.urandom(3000))
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 2 and "weights_only" not in err
    assert one_line(err).startswith(f"rknet train: error: checkpoint {out / CHECKPOINT} is truncated, corrupted")


def test_random_bytes_model_file_in_eval(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_bytes(os.urandom(3000))
    code, _, err = run_cli(["eval", str(out), "--device", "cpu"], capsys)
    assert code == 2 and "weights_only" not in err
    assert one_line(err).startswith(f"rknet eval: error: model file {out / 'model.pt'} is truncated, corrupted")


def test_pickle_with_code_as_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    (tmp_path / CHECKPOINT).write_bytes(pickle.dumps({"model": RunsShell(marker)}))
    with pytest.raises(CheckpointError, match=r"is truncated, corrupted or not written by rknet \(it holds something "
                                              r"other than tensors and plain data"):
        load_file(tmp_path / CHECKPOINT)
    assert not marker.exists()


def test_model_file_in_place_of_the_checkpoint(tmp_path, capsys):
    out = trained_run(tmp_path / "run", capsys)
    (out / PREVIOUS).unlink()
    shutil.copyfile(out / "model.pt", out / CHECKPOINT)
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 2
    assert one_line(err).startswith(f"rknet train: error: checkpoint {out / CHECKPOINT} is not an rknet training "
                                    "checkpoint (it holds a saved model, as model.pt does): it lacks")


def test_resume_of_a_folder_without_checkpoint(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    code, _, err = run_cli(["train", "--resume", str(tmp_path)], capsys)
    assert code == 2 and one_line(err).startswith(f"rknet train: error: {tmp_path} holds no checkpoint")
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "absent")], capsys)
    assert code == 2 and one_line(err).startswith("rknet train: error: run folder ")


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_saving_keeps_the_previous_files(tmp_path, monkeypatch):
    save_checkpoint(small_state(1), tmp_path)
    save_checkpoint(small_state(2), tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in (CHECKPOINT, PREVIOUS)}
    monkeypatch.setattr(os, "fsync", disk_full)  # full while writing the new checkpoint
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(tmp_path / CHECKPOINT))}: No space left") as e:
        save_checkpoint(small_state(3), tmp_path)
    assert e.value.errno == errno.ENOSPC and "\n" not in str(e.value)
    monkeypatch.undo()
    monkeypatch.setattr(shutil, "copyfile", disk_full)  # full while copying checkpoint.pt aside
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(tmp_path / PREVIOUS))}: No space left"):
        save_checkpoint(small_state(3), tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in (CHECKPOINT, PREVIOUS)} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [PREVIOUS, CHECKPOINT]  # no temporary files left


def test_disk_full_during_a_run_gives_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    calls = []

    def full_after_the_first(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 3:  # the checkpoints of epochs 1 and 2 went through
            disk_full()

    monkeypatch.setattr(os, "fsync", full_after_the_first)
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(out), *TINY, "--epochs", "3"], capsys)
    assert code == 2
    assert one_line(err).startswith(f"rknet train: error: cannot write {out}/")
    assert "No space left on device" in err
    assert load_file(out / CHECKPOINT)["epoch"] == 2 and load_file(out / PREVIOUS)["epoch"] == 1


@FUZZ
@given(st.data())
def test_any_flipped_byte_is_detected_or_harmless(data):
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(small_state(3), Path(folder))
        path = Path(folder) / CHECKPOINT
        content = bytearray(path.read_bytes())
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] ^= 1 << data.draw(st.integers(0, 7))
        path.write_bytes(bytes(content))
        try:
            loaded = load_file(path)
        except CheckpointError as error:
            assert "\n" not in str(error) and "weights_only" not in str(error)
            event("detected")
            return
    event("harmless (zip metadata)")
    assert content_digest(loaded) == content_digest(small_state(3))


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_checkpoint_gives_one_line(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CHECKPOINT
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as caught:
            load_file(path)
    assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)
    assert str(caught.value).startswith(f"checkpoint {path} ")
