"""Bad input never passes silently: every case issue 13 found, kept here, plus property-based fuzzing.

Each explicit test feeds one bad input (a data file, a checkpoint, a run folder, a diverging run) and
asserts the exception type or exit code and the first words of the one-line message. The Hypothesis
tests throw random arrays, bytes and byte flips at the same readers and assert that each one either
loads cleanly (and then is sound) or ends in a one-line ValueError, never in another exception.
Add a test here for every new way in which bad input is found to slip through.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rknet.io.atomic
from conftest import run_cli
from rknet.data import load_dataset
from rknet.data.checks import MAX_CLASSES, labels_to_tensor
from rknet.data.safe_pickle import ALLOWED_GLOBALS
from rknet.io.atomic import json_text, write_json
from rknet.training.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    CheckpointError,
    content_digest,
    load_checkpoint,
    load_file,
    save_checkpoint,
)
from rknet.training.divergence import TrainingDiverged, check_epoch_finite
from rknet.training.metrics import MetricsLog, read_metrics

TINY = ["--widths", "4,6", "--steps", "2", "--final-time", "1", "--batch-size", "128", "--epochs", "1"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_line(err: str) -> str:
    """The single line of `err`; fails if there are several."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def npz_file(path: Path, n_train: int = 12, n_test: int = 4, features: int = 3, **arrays: np.ndarray | None) -> Path:
    """A valid npz data set (2 classes) with some arrays replaced (None drops one)."""
    rng = np.random.default_rng(0)
    content = {"x_train": rng.normal(size=(n_train, features)), "y_train": np.arange(n_train) % 2,
               "x_test": rng.normal(size=(n_test, features)), "y_test": np.arange(n_test) % 2}
    content.update(arrays)
    np.savez(path, **{name: array for name, array in content.items() if array is not None})
    return path


def refused(spec: str) -> str:
    """The one-line ValueError that `load_dataset(spec)` raises."""
    with pytest.raises(ValueError) as caught:
        load_dataset(spec, val_fraction=0)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def with_value(array: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    changed = array.astype(np.float64)
    changed[index] = value
    return changed


# ---------------------------------------------------------------- CIFAR batches: restricted unpickling


class RunsShell:
    """Unpickling calls os.system: the classic pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class OpensFile:
    """Unpickling calls builtins.open, creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def cifar_folder(root: Path, test_batch: object) -> Path:
    """A CIFAR-10 folder of valid training batches and the given test batch object."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [i % 10, (i + 1) % 10]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (folder / "test_batch").write_bytes(pickle.dumps(test_batch))
    return folder / "test_batch"


@pytest.mark.parametrize(("payload", "refused_global"), [(RunsShell, r"(posix|nt)\.system"),
                                                         (OpensFile, r"(io|builtins)\.open")])
def test_malicious_cifar_batch_is_refused_and_never_runs(tmp_path, payload, refused_global):
    marker = tmp_path / "MARKER"
    batch = cifar_folder(tmp_path, {b"data": payload(marker), b"labels": [1]})
    message = refused(f"cifar10:{tmp_path}")
    assert re.match(rf"cifar10: {re.escape(str(batch))} refused: its pickle asks for {refused_global}, which a "
                    "CIFAR batch never holds", message), message
    assert not marker.exists()


def test_malicious_cifar_batch_on_the_command_line(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    cifar_folder(tmp_path, {b"data": RunsShell(marker), b"labels": [1]})
    code, _, err = run_cli(["train", "--data", f"cifar10:{tmp_path}", "--out", str(tmp_path / "run"), *TINY], capsys)
    assert code == 2 and one_line(err).startswith("rknet train: error: cifar10: ")
    assert "refused: its pickle asks for" in err and not marker.exists() and not (tmp_path / "run").exists()


def test_cifar_labels_must_be_integers(tmp_path):
    cifar_folder(tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1.7, 2.0]})
    assert re.match(r"cifar10: \S+test_batch: labels\[0\] = 1.7 is not an integer", refused(f"cifar10:{tmp_path}"))


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 folder whose test batch each fuzzing example replaces."""
    root = tmp_path_factory.mktemp("cifar")
    cifar_folder(root, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    return root


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_cifar_batch_are_refused_in_one_line(cifar_root, data):
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(data)
    message = refused(f"cifar10:{cifar_root}")
    assert message.startswith(f"cifar10: {cifar_root / 'cifar-10-batches-py' / 'test_batch'} ")


DANGEROUS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
             ("builtins", "open"), ("builtins", "getattr"), ("subprocess", "Popen"), ("numpy", "load"),
             ("numpy.lib.npyio", "load"), ("pickle", "loads"), ("torch", "load"), ("shutil", "rmtree")]
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}(\.[A-Za-z_][A-Za-z0-9_]{0,10}){0,2}", fullmatch=True)


@FUZZ
@given(st.one_of(st.sampled_from(DANGEROUS), st.tuples(NAMES, NAMES)))
def test_any_global_but_the_allowed_ones_is_refused_unlooked_up(cifar_root, target):
    module, name = target
    crafted = f"c{module}\n{name}\n(S'touch {cifar_root}/MARKER'\ntR.".encode()  # protocol 0: module.name(arg)
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(crafted)
    if target in ALLOWED_GLOBALS:
        event("allowed global")
        return
    assert re.match(rf"cifar10: \S+test_batch refused: its pickle asks for {re.escape(module)}\.{re.escape(name)},",
                    refused(f"cifar10:{cifar_root}"))
    assert not (cifar_root / "MARKER").exists()


# ---------------------------------------------------------------- data sets: validated at the boundary


@pytest.mark.parametrize(("array", "index", "value", "expected"), [
    ("x_train", (3, 1), np.nan, r"x_train\[3, 1\] is nan; inputs must be finite numbers"),
    ("x_train", (0, 0), np.inf, r"x_train\[0, 0\] is inf; inputs must be finite"),
    ("x_val", (2, 2), -np.inf, r"x_val\[2, 2\] is -inf; inputs must be finite"),
    ("x_test", (1, 0), np.nan, r"x_test\[1, 0\] is nan; inputs must be finite"),
])
def test_non_finite_inputs_name_the_split_and_the_first_bad_index(tmp_path, array, index, value, expected):
    rng = np.random.default_rng(1)
    arrays = {"x_val": rng.normal(size=(5, 3)), "y_val": np.arange(5) % 2}
    base = arrays.get(array, rng.normal(size=(12 if array == "x_train" else 4, 3)))
    arrays[array] = with_value(base, index, value)
    path = npz_file(tmp_path / "d.npz", **arrays)
    assert re.match(rf"npz file {re.escape(str(path))}: {expected}", refused(f"npz:{path}"))


def test_nan_in_x_test_stops_the_command_before_training(tmp_path, capsys):
    path = npz_file(tmp_path / "d.npz", x_test=with_value(np.zeros((4, 3)), (2, 1), np.nan))
    code, out, err = run_cli(["train", "--data", f"npz:{path}", "--out", str(tmp_path / "run"), *TINY], capsys)
    assert code == 2 and "test accuracy" not in out
    assert re.match(r"rknet train: error: npz file \S+: x_test\[2, 1\] is nan", one_line(err))
    assert not (tmp_path / "run").exists()  # nothing half-made left behind


def test_complex_inputs_are_refused(tmp_path):
    path = npz_file(tmp_path / "d.npz", x_train=np.ones((12, 3)) * (1 + 2j))
    assert re.match(r"npz file \S+: x_train is complex \(complex128\); inputs must be real", refused(f"npz:{path}"))


@pytest.mark.parametrize(("labels", "expected"), [
    (np.array([0, 1, 1.7, 0] * 3), r"y_train\[2\] = 1.7 is not an integer; labels must be integers 0..K-1"),
    (np.array([0, 1, np.nan, 1] * 3), r"y_train\[2\] = nan is not an integer"),
    (np.array([0, 1, -1, 1] * 3), r"y_train\[2\] = -1 is out of range; labels must be integers 0..K-1 with K <= "),
    (np.array([0, 1, 10**9, 1] * 3), r"y_train\[2\] = 1000000000 is out of range"),
    (np.array([0, 1, 2**64 - 1, 1] * 3, dtype=np.uint64), r"y_train\[2\] = 18446744073709551615 is out of range"),
    (np.array([0, 1, 20, 1] * 3), r"y_train\[2\] = 20 implies 21 classes, more than the 12 training samples"),
    (np.zeros(12, dtype=np.int64), r"every label is 0; a classifier needs at least 2 classes"),
    (np.array(["a", "b"] * 6), r"y_train must hold integer labels, got dtype <U1"),
    (np.array([True, False] * 6), r"y_train must hold integer labels, got dtype bool"),
])
def test_bad_labels_are_refused_naming_the_first_bad_index(tmp_path, labels, expected):
    path = npz_file(tmp_path / "d.npz", y_train=labels, y_test=np.zeros(4, dtype=np.int64))
    assert re.match(rf"npz file \S+: {expected}", refused(f"npz:{path}"))


def test_absurd_label_on_the_command_line_fails_before_building_a_model(tmp_path, capsys):
    path = npz_file(tmp_path / "d.npz", y_test=np.array([0, 1, 10**9, 1]))
    code, out, err = run_cli(["train", "--data", f"npz:{path}", "--out", str(tmp_path / "run"), *TINY], capsys)
    assert code == 2 and "parameters" not in out
    assert re.match(r"rknet train: error: npz file \S+: y_test\[2\] = 1000000000 is out of range", one_line(err))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint64, np.int16])
def test_integral_labels_of_any_real_dtype_load(tmp_path, dtype):
    data = load_dataset(f"npz:{npz_file(tmp_path / 'd.npz', y_train=(np.arange(12) % 3).astype(dtype))}")
    assert data.num_classes == 3 and data.y_train.dtype == torch.int64


@pytest.mark.parametrize(("arrays", "expected"), [
    ({"x_test": np.zeros((0, 3)), "y_test": np.zeros(0, dtype=int)}, r"the test split is empty"),
    ({"x_train": np.zeros((0, 3)), "y_train": np.zeros(0, dtype=int)}, r"0 training sample\(s\); training needs at"),
    ({"x_train": np.zeros((1, 3)), "y_train": np.array([1])}, r"1 training sample\(s\); training needs at least 2"),
    ({"x_train": np.zeros((12, 0))}, r"x_train must be shaped \(N, D\), \(N, C, L\) or \(N, C, H, W\) with every"),
    ({"x_train": np.full((12, 3), 1e39)}, r"x_train\[0, 0\] = 1e\+39 is outside the float32 range"),
    ({"x_train": np.random.default_rng(0).normal(size=(12, 3)) * 1e-3, "x_test": np.full((4, 3), 1e38)},
     r"x_test\[0, 0\] = 1e\+38 lies so far outside the training split's range"),
    ({"x_train": np.array(["a"] * 36).reshape(12, 3)}, r"x_train must be numeric"),
])
def test_empty_tiny_or_unusable_splits_are_refused(tmp_path, arrays, expected):
    assert re.match(rf"npz file \S+: {expected}", refused(f"npz:{npz_file(tmp_path / 'd.npz', **arrays)}"))


def test_one_sample_npz_on_the_command_line(tmp_path, capsys):
    path = npz_file(tmp_path / "d.npz", n_train=1, x_train=np.ones((1, 3)), y_train=np.array([1]))
    code, _, err = run_cli(["train", "--data", f"npz:{path}", "--out", str(tmp_path / "run"), *TINY], capsys)
    assert code == 2
    assert re.match(r"rknet train: error: npz file \S+: 1 training sample\(s\)", one_line(err)), err


def test_validation_hold_out_that_leaves_one_training_sample(tmp_path):
    path = npz_file(tmp_path / "d.npz", n_train=2, y_train=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"^npz file \S+: 1 training sample\(s\) after holding out 1 for valid"):
        load_dataset(f"npz:{path}", val_fraction=0.5)


def test_huge_values_are_normalised_without_overflow(tmp_path):
    rng = np.random.default_rng(2)
    x_train = rng.choice([-3e38, -1e30, 1e30, 3e38], size=(12, 3))
    data = load_dataset(f"npz:{npz_file(tmp_path / 'd.npz', x_train=x_train, x_test=x_train[:4])}", val_fraction=0)
    assert torch.isfinite(data.std).all() and bool((data.std > 1e29).all())
    assert torch.isfinite(data.x_train).all() and data.x_train.abs().max() > 0.5  # not all mapped to 0
    assert torch.allclose(data.x_train.std(0, correction=0), torch.ones(3), atol=1e-4)


def test_a_single_trailing_sample_joins_the_last_batch(tmp_path, capsys):
    """129 vectors in batches of 64: the last batch of one sample would break batch norm."""
    path = npz_file(tmp_path / "d.npz", n_train=129)
    code, _, err = run_cli(["train", "--data", f"npz:{path}", "--val-fraction", "0", "--batch-size", "64",
                            "--out", str(tmp_path / "run"), "--widths", "4,4", "--steps", "1", "--epochs", "1"],
                           capsys)
    assert code == 0, err


SPECIAL = [0.0, 1.0, 2.0, 3.0, 1.7, -1.0, 1e30, -1e30, 1e39, float("nan"), float("inf"), -float("inf"), 1e9,
           2.0**63 + 4096]
ELEMENTS = st.one_of(st.sampled_from(SPECIAL), st.floats(-1e6, 1e6, allow_nan=False))
DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.uint64,
                          np.complex64, np.bool_])
REAL_DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_])
LABEL_DTYPES = st.sampled_from([np.int64, np.int32, np.uint8, np.uint64, np.float32, np.float64])


def cast(values: np.ndarray, dtype: type) -> np.ndarray:
    """`values` as `dtype`, whatever the cast does to NaN or out-of-range values (that is the point)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return values.astype(dtype)


@st.composite
def valid_npz(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A valid data set: 2 to 8 training and 1 to 4 test samples of 1 to 3 axes, two classes."""
    sample = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    rows = {"train": draw(st.integers(2, 8)), "test": draw(st.integers(1, 4))}
    x_dtype, y_dtype = draw(REAL_DTYPES), draw(LABEL_DTYPES)
    content = {}
    for split, n in rows.items():
        values = draw(st.lists(st.floats(-1000, 1000), min_size=1, max_size=6))
        content[f"x_{split}"] = cast(np.resize(np.array(values), (n, *sample)), x_dtype)
        content[f"y_{split}"] = cast(np.arange(n) % 2, y_dtype)
    return content


@st.composite
def mutated_npz(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], list[str]]:
    """A valid data set with up to three random defects, and their descriptions: a special value (NaN,
    inf, huge, fractional, negative) put somewhere, a cast to another dtype, rows removed or added, an
    extra axis, or an array dropped."""
    content, defects = draw(valid_npz()), []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(content)))
        kind = draw(st.sampled_from(["value", "value", "dtype", "rows", "axis", "drop"]))
        array = content[name]
        if kind == "value" and array.size:
            value = draw(ELEMENTS)
            array = cast(array, np.float64) if array.dtype.kind in "biu" else array.copy()
            with np.errstate(all="ignore"):  # 1e39 in a float32 array is inf: one more bad value
                array.reshape(-1)[draw(st.integers(0, array.size - 1))] = value
        elif kind == "dtype":
            array = cast(array, draw(DTYPES))
        elif kind == "rows":
            array = np.resize(array, (max(0, len(array) + draw(st.sampled_from([-2, -1, 1]))), *array.shape[1:]))
        elif kind == "axis":
            array = array[..., None]
        if kind == "drop":
            del content[name]
        else:
            content[name] = array
        defects.append(f"{kind} {name}")
    return content, defects


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_npz())
def test_random_npz_files_load_cleanly_or_give_one_line(case):
    content, defects = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.npz"
        np.savez(path, **content)
        try:
            data = load_dataset(f"npz:{path}", val_fraction=0)
        except ValueError as error:
            assert defects, f"a valid data set was refused: {error}"
            assert "\n" not in str(error) and str(error).startswith(f"npz file {path}: "), str(error)
            event("refused")
            return
    event(f"loaded ({'with' if defects else 'without'} defects)")
    for x in (data.x_train, data.x_val, data.x_test):
        assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    for y in (data.y_train, data.y_val, data.y_test):
        assert y.dtype == torch.int64 and (len(y) == 0 or 0 <= int(y.min()) <= int(y.max()) < data.num_classes)
    assert 2 <= data.num_classes <= min(MAX_CLASSES, len(data.x_train))
    assert len(data.x_train) >= 2 and len(data.x_test) >= 1
    assert bool(torch.isfinite(data.std).all()) and bool((data.std > 0).all())


@FUZZ
@given(st.lists(ELEMENTS, max_size=6), DTYPES)
def test_random_label_arrays_become_valid_labels_or_one_line(values, dtype):
    array = cast(np.array(values, dtype=np.float64), dtype)
    try:
        labels = labels_to_tensor(array, "source", "y")
    except ValueError as error:
        assert "\n" not in str(error) and str(error).startswith("source: y")
        event("refused")
        return
    event("accepted")
    assert labels.dtype == torch.int64 and torch.equal(labels.double(), torch.from_numpy(array.astype(np.float64)))
    assert len(labels) == 0 or 0 <= int(labels.min()) <= int(labels.max()) < MAX_CLASSES


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_an_npz_file_give_one_line(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.npz"
        path.write_bytes(data)
        message = refused(f"npz:{path}")
    assert message.startswith(f"npz file {path}")


# ---------------------------------------------------------------- checkpoints: verified before trusted


def small_state(epoch: int) -> dict:
    """A stand-in for a training state: nested tensors, numbers, strings, like a real checkpoint."""
    generator = torch.Generator().manual_seed(epoch)
    model = {"weight": torch.randn(16, 8, generator=generator), "bias": torch.zeros(8)}
    return {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
            "scheduler": {"last_epoch": epoch}, "rng": {"torch": torch.get_rng_state()}, "epoch": epoch, "level": 0,
            "history": [{"epoch": e, "val_loss": 0.5 / e} for e in range(1, epoch + 1)],
            "best": {"val_acc": 0.5, "epoch": epoch, "state": None}, "refinements": [],
            "val_indices": torch.arange(3), "config": {"method": "rk4", "widths": (4, 8)}, "wall_seconds": 1.5}


def trained_run(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    """A finished two-epoch run on circles (so checkpoint.pt is epoch 2, checkpoint.prev.pt epoch 1)."""
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(folder), *TINY, "--epochs", "2", *extra],
                           capsys)
    assert code == 0, err
    return folder


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


# ---------------------------------------------------------------- metrics and summary: strict JSON


def strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_metrics_are_written_as_null(tmp_path):
    log = MetricsLog(tmp_path, [{"epoch": 1, "val_loss": float("inf")}])
    log.append({"epoch": 2, "train_loss": 0.5, "val_loss": float("nan"), "grad_norm/blocks.0": float("-inf")})
    log.close()
    records = [strict_json(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"epoch": 1, "val_loss": None},
                       {"epoch": 2, "train_loss": 0.5, "val_loss": None, "grad_norm/blocks.0": None}]
    assert read_metrics(tmp_path) == records


def test_summary_json_is_strict(tmp_path, monkeypatch):
    write_json(tmp_path / "summary.json", {"test_loss": float("nan"), "refinements": [{"acc": float("inf")}]})
    assert strict_json((tmp_path / "summary.json").read_text()) == {"test_loss": None, "refinements": [{"acc": None}]}
    monkeypatch.setattr(rknet.io.atomic, "json_safe", lambda value: value)  # a slip: NaN no longer turned into null
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_text({"test_loss": float("nan")})


# ---------------------------------------------------------------- run folders


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


# ---------------------------------------------------------------- divergence: everything a checkpoint keeps


def test_nan_validation_loss_is_divergence(tmp_path, capsys):
    """A learning rate of 1e6 on one full batch: the training loss stays finite, the validation loss does not."""
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(out), "--widths", "4,6", "--steps", "2",
                            "--epochs", "3", "--lr", "1e6", "--batch-size", "2000"], capsys)
    assert code == 3
    assert one_line(err).startswith("rknet train: training diverged in epoch 2: the validation loss is nan; the "
                                    "last good checkpoint (epoch 1) is kept")
    kept = load_file(out / CHECKPOINT)
    assert kept["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in kept["model"].values() if tensor.is_floating_point())
    assert all(record["epoch"] == 1 for record in read_metrics(out))


@pytest.mark.parametrize(("poison", "expected"), [
    ("running_var", r"buffer \S+running_var holds non-finite values"),
    ("weight", r"parameter \S+weight holds non-finite values"),
])
def test_non_finite_weights_or_statistics_are_divergence(poison, expected):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    check_epoch_finite(4, {"train_loss": 0.1, "val_loss": 0.2}, model)  # finite: passes
    tensor = dict(model.named_buffers(), **dict(model.named_parameters()))[f"1.{poison}"]
    with torch.no_grad():
        tensor[1] = float("inf")
    with pytest.raises(TrainingDiverged, match=rf"^training diverged in epoch 4: {expected}; the last good "
                                               r"checkpoint \(epoch 3\) is kept"):
        check_epoch_finite(4, {"train_loss": 0.1, "val_loss": 0.2}, model)


def test_a_subnormal_deviation_counts_as_constant(tmp_path):
    """Found by Hypothesis: training inputs [0, 1e-42] have a deviation float32 cannot divide by."""
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=np.array([[0.0], [1e-42]]), y_train=np.array([0, 1]), x_test=np.array([[1.0]]),
             y_test=np.array([0]))
    data = load_dataset(f"npz:{path}", val_fraction=0.0)
    assert torch.isfinite(data.x_test).all() and data.x_test.abs().max() <= 1
