"""Bad data files are refused at the boundary in one line naming the split and the first bad index.

Part of the bad-input suite (issue 13): each explicit test feeds one bad input and asserts the exception
type or exit code and the first words of the one-line message; the Hypothesis tests throw random input at
the same readers and assert that each loads cleanly or ends in a one-line ValueError. Add a test for every
new way in which bad input is found to slip through.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bad_input import FUZZ, TINY, npz_file, one_line, refused, with_value
from conftest import run_cli
from rknet.data import load_dataset
from rknet.data.checks import MAX_CLASSES, labels_to_tensor


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
