"""Tests of rknet.data: readers of each format (on small fake files), splits, augmentation, batching."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rknet.data import DATASETS, BatchLoader, Dataset, load_dataset, random_crop_flip

# ---------------------------------------------------------------- fake files in the real formats


def cifar_images(n: int, offset: int) -> np.ndarray:
    """Rows of 3072 uint8 values where image i has a distinct marker pixel: (c=2, h=5, w=7) = 200 + i."""
    data = np.full((n, 3 * 32 * 32), offset, dtype=np.uint8)
    data[:, 2 * 1024 + 5 * 32 + 7] = 200 + np.arange(n)
    return data


def write_pickle(path: Path, batch: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(batch, f)


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        labels = [(2 * i + j) % 10 for j in range(4)]
        write_pickle(folder / f"data_batch_{i}", {b"data": cifar_images(4, 10 * i), b"labels": labels})
    write_pickle(folder / "test_batch", {b"data": cifar_images(3, 0), b"labels": [7, 8, 9]})
    return tmp_path


@pytest.fixture
def stl10_dir(tmp_path: Path) -> Path:
    """Two train and one test image; train image 0 has one bright pixel at (c=1, h=3, w=70)."""
    images = np.zeros((3, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    images[0, 1, 3, 70] = 255
    images[1] = 100
    column_major = images.transpose(0, 1, 3, 2)  # on disk each image is C x W x H
    column_major[:2].tofile(tmp_path / "train_X.bin")
    np.array([1, 10], dtype=np.uint8).tofile(tmp_path / "train_y.bin")
    column_major[2:].tofile(tmp_path / "test_X.bin")
    np.array([5], dtype=np.uint8).tofile(tmp_path / "test_y.bin")
    return tmp_path


def write_npz(path: Path, shape: tuple[int, ...], n_train: int = 50, n_test: int = 20, **extra) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(3.0, 2.0, (n_train, *shape)),
        "y_train": np.arange(n_train) % 3,
        "x_test": rng.normal(3.0, 2.0, (n_test, *shape)),
        "y_test": np.arange(n_test) % 4,
    }
    arrays.update(extra)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def unnormalised(x: torch.Tensor, data: Dataset) -> torch.Tensor:
    """`x` mapped back to the values the source stored (undoing the training-split normalisation)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * data.std.view(shape) + data.mean.view(shape)


# ---------------------------------------------------------------- file formats


def test_cifar10_reads_pixels_labels_and_layout(cifar10_dir: Path) -> None:
    data = load_dataset(f"cifar10:{cifar10_dir}", val_fraction=0)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    assert (data.dims, data.in_channels, data.num_classes, data.augment) == (2, 3, 10, True)
    assert data.name == "cifar10"
    assert data.y_train.tolist() == [(2 * i + j) % 10 for i in range(1, 6) for j in range(4)]
    assert data.y_test.tolist() == [7, 8, 9]
    raw_test = unnormalised(data.x_test, data)
    assert torch.allclose(raw_test[:, 2, 5, 7] * 255, torch.tensor([200.0, 201.0, 202.0]), atol=1e-3)
    assert torch.allclose(raw_test[:, 0, 5, 7], torch.zeros(3), atol=1e-5)
    assert torch.allclose(raw_test[:, 2, 7, 5], torch.zeros(3), atol=1e-5)  # not transposed


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_batches_of_every_pickle_protocol_load(cifar10_dir: Path, protocol: int) -> None:
    """The restricted unpickler accepts numpy arrays however pickle writes them (the real files are
    Python 2 protocol-2 pickles; later protocols and numpy versions name other functions)."""
    batch = {b"batch_label": "testing batch 1 of 1", b"data": cifar_images(3, 5), b"labels": [1, 2, 3],
             b"filenames": [b"a.png", b"b.png", b"c.png"]}
    with open(cifar10_dir / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=protocol)
    data = load_dataset(f"cifar10:{cifar10_dir}", val_fraction=0)
    assert data.y_test.tolist() == [1, 2, 3]
    assert torch.allclose(unnormalised(data.x_test, data)[:, 2, 5, 7] * 255, torch.tensor([200.0, 201, 202]),
                          atol=1e-3)


def test_cifar100_uses_fine_labels_and_is_found_in_dir_itself(tmp_path: Path) -> None:
    write_pickle(tmp_path / "train", {b"data": cifar_images(6, 1), b"fine_labels": [0, 99, 5, 6, 7, 8]})
    write_pickle(tmp_path / "test", {b"data": cifar_images(2, 1), b"fine_labels": [42, 1]})
    data = load_dataset(f"cifar100:{tmp_path}", val_fraction=0)
    assert data.num_classes == 100 and data.x_train.shape == (6, 3, 32, 32)
    assert data.y_train.tolist() == [0, 99, 5, 6, 7, 8] and data.y_test.tolist() == [42, 1]


def test_stl10_transposes_column_major_images(stl10_dir: Path) -> None:
    data = load_dataset(f"stl10:{stl10_dir}", val_fraction=0)
    assert data.x_train.shape == (2, 3, 96, 96) and data.x_test.shape == (1, 3, 96, 96)
    assert data.y_train.tolist() == [0, 9] and data.y_test.tolist() == [4]
    assert (data.num_classes, data.augment) == (10, True)
    raw = unnormalised(data.x_train, data)
    assert raw[0, 1, 3, 70] == pytest.approx(1.0, abs=1e-5)
    assert raw[0, 1, 70, 3] == pytest.approx(0.0, abs=1e-5)


def test_stl10_found_in_stl10_binary_subfolder(tmp_path: Path, stl10_dir: Path) -> None:
    nested = tmp_path / "outer"
    (nested / "stl10_binary").mkdir(parents=True)
    for file in stl10_dir.glob("*.bin"):
        (nested / "stl10_binary" / file.name).write_bytes(file.read_bytes())
    assert load_dataset(f"stl10:{nested}", val_fraction=0).x_train.shape == (2, 3, 96, 96)


@pytest.mark.parametrize(
    ("shape", "dims", "channels"),
    [((5,), 0, 5), ((2, 12), 1, 2), ((3, 6, 6), 2, 3)],
    ids=["vectors", "signals", "images"],
)
def test_npz_shapes_dims_and_training_only_normalisation(
    tmp_path: Path, shape: tuple[int, ...], dims: int, channels: int
) -> None:
    data = load_dataset(f"npz:{write_npz(tmp_path / 'd.npz', shape)}", val_fraction=0.2, seed=1)
    assert (data.dims, data.in_channels, data.num_classes, data.augment) == (dims, channels, 4, False)
    assert data.x_train.shape == (40, *shape) and data.x_val.shape == (10, *shape)
    assert data.x_test.shape == (20, *shape)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.mean.shape == data.std.shape == (channels,)
    reduce = [0, *range(2, data.x_train.ndim)]
    assert torch.allclose(data.x_train.mean(reduce), torch.zeros(channels), atol=1e-5)
    assert torch.allclose(data.x_train.std(reduce, correction=0), torch.ones(channels), atol=1e-4)
    assert not torch.allclose(data.x_val.mean(reduce), torch.zeros(channels), atol=1e-5)


def test_npz_own_validation_set_replaces_split(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", (4,), x_val=np.ones((7, 4)), y_val=np.full(7, 5))
    data = load_dataset(f"npz:{path}", val_fraction=0.5, seed=3)
    assert data.x_train.shape == (50, 4) and data.x_val.shape == (7, 4) and data.num_classes == 6
    assert data.val_indices.numel() == 0 and data.train_indices.tolist() == list(range(50))


# ---------------------------------------------------------------- splits and built-in sets


def test_split_sizes_determinism_and_resume(tmp_path: Path) -> None:
    spec = f"npz:{write_npz(tmp_path / 'd.npz', (3,), n_train=100)}"
    first, again = load_dataset(spec, seed=5), load_dataset(spec, seed=5)
    other = load_dataset(spec, seed=6)
    assert len(first.x_train) == 90 and len(first.x_val) == 10
    assert torch.equal(first.val_indices, again.val_indices) and torch.equal(first.x_val, again.x_val)
    assert not torch.equal(first.val_indices, other.val_indices)
    assert sorted(first.val_indices.tolist() + first.train_indices.tolist()) == list(range(100))
    resumed = load_dataset(spec, seed=6, val_indices=first.val_indices)
    assert torch.equal(resumed.val_indices, first.val_indices) and torch.equal(resumed.x_val, first.x_val)
    none = load_dataset(spec, val_fraction=0)
    assert none.x_val.shape == (0, 3) and none.y_val.shape == (0,) and len(none.x_train) == 100


def test_digits_fixed_stratified_test_split() -> None:
    data = load_dataset("digits", seed=1)
    assert data.x_train.shape[1:] == (1, 8, 8)
    assert (data.dims, data.in_channels, data.num_classes, data.augment) == (2, 1, 10, False)
    assert len(data.x_test) == 360 and len(data.x_train) + len(data.x_val) == 1797 - 360
    assert data.y_test.bincount(minlength=10).min() >= 35
    other = load_dataset("digits", seed=2)
    assert torch.equal(other.y_test, data.y_test)
    assert torch.allclose(unnormalised(other.x_test, other), unnormalised(data.x_test, data), atol=1e-5)


@pytest.mark.parametrize(("name", "classes"), [("peaks", 5), ("swissroll", 2), ("circles", 2)])
def test_toy_sets(name: str, classes: int) -> None:
    data = load_dataset(name)
    assert data.x_train.shape == (1800, 2) and data.x_test.shape == (1000, 2) and data.dims == 0
    assert data.num_classes == classes and data.in_channels == 2
    counts = torch.cat([data.y_train, data.y_val]).bincount(minlength=classes)
    assert counts.min() >= 0.8 * 2000 / classes
    other = load_dataset(name, seed=9)
    assert torch.equal(other.y_test, data.y_test)
    assert torch.allclose(unnormalised(other.x_test, other), unnormalised(data.x_test, data), atol=1e-5)


def test_dataset_to_moves_every_tensor() -> None:
    data = load_dataset("circles").to("cpu")
    assert isinstance(data, Dataset) and data.val_indices.device.type == "cpu"
    assert "npz:PATH" in DATASETS and "digits" in DATASETS


# ---------------------------------------------------------------- augmentation and loader


def test_augment_shape_determinism_and_seed() -> None:
    x = torch.randn(16, 3, 8, 8)
    a = random_crop_flip(x, torch.Generator().manual_seed(0))
    b = random_crop_flip(x, torch.Generator().manual_seed(0))
    c = random_crop_flip(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


def test_augment_without_padding_only_flips() -> None:
    x = torch.randn(32, 2, 5, 7)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and same.any() and mirrored.any()


def test_augment_takes_windows_of_the_padded_image() -> None:
    x = torch.randn(8, 1, 6, 6)
    out = random_crop_flip(x, torch.Generator().manual_seed(4), padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    windows = padded.unfold(2, 6, 1).unfold(3, 6, 1)  # (N, C, 5, 5, 6, 6)
    moved = 0
    for i in range(len(x)):
        candidates = torch.cat([windows[i, 0].flatten(0, 1), windows[i, 0].flatten(0, 1).flip(-1)])
        assert any(torch.equal(out[i, 0], w) for w in candidates)
        moved += not torch.equal(out[i], x[i])
    assert moved > 0


def test_loader_covers_each_sample_once_per_epoch() -> None:
    x, y = torch.arange(23.0).view(23, 1), torch.arange(23)
    loader = BatchLoader(x, y, 5, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 5 and len(BatchLoader(x, y, 5, shuffle=False, drop_last=True)) == 4
    epochs = [torch.cat([yb for _, yb in loader]) for _ in range(2)]
    assert all(sorted(e.tolist()) == list(range(23)) for e in epochs)
    assert not torch.equal(epochs[0], epochs[1])
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in loader)


def test_loader_folds_a_single_last_row_into_the_batch_before() -> None:
    x = torch.arange(11.0).view(11, 1)
    loader = BatchLoader(x, torch.arange(11), 5, shuffle=False)
    assert len(loader) == 2 and [len(yb) for _, yb in loader] == [5, 6]
    assert torch.equal(torch.cat([xb for xb, _ in loader]), x)
    assert [len(yb) for _, yb in BatchLoader(x[:1], torch.arange(1), 5, shuffle=False)] == [1]
    assert [len(yb) for _, yb in BatchLoader(x, torch.arange(11), 5, shuffle=False, drop_last=True)] == [5, 5]


def test_loader_augments_image_batches() -> None:
    x, y = torch.randn(10, 3, 8, 8), torch.arange(10)
    loader = BatchLoader(x, y, 4, shuffle=False, generator=torch.Generator().manual_seed(0), augment=True)
    batches = list(loader)
    assert [xb.shape[0] for xb, _ in batches] == [4, 4, 2]
    assert not torch.equal(torch.cat([xb for xb, _ in batches]), x)


# ---------------------------------------------------------------- bad input, one clear message each


def test_unknown_name_lists_valid_forms() -> None:
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'.*digits.*npz:PATH.*cifar10:DIR"):
        load_dataset("mnist")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cifar10: directory not found: .*nowhere"):
        load_dataset(f"cifar10:{tmp_path / 'nowhere'}")


def test_missing_file(cifar10_dir: Path) -> None:
    (cifar10_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match=r"cifar10: missing file 'data_batch_3'"):
        load_dataset(f"cifar10:{cifar10_dir}")


def test_missing_npz_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"npz file not found: .*absent\.npz"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")


def test_npz_missing_key(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", (3,), y_test=None)
    with pytest.raises(ValueError, match=r"missing array\(s\) y_test; expected arrays x_train"):
        load_dataset(f"npz:{path}")


def test_npz_wrong_ndim(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", (1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"x_train must be shaped \(N, D\), .* got shape \(50, 1, 2, 3, 4\)"):
        load_dataset(f"npz:{path}")


def test_npz_length_mismatch(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", (3,), y_train=np.zeros(49, dtype=int))
    with pytest.raises(ValueError, match=r"x_train has 50 rows but y_train has 49"):
        load_dataset(f"npz:{path}")


def test_npz_float_labels(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", (3,), y_test=np.full(20, 1.5))
    with pytest.raises(ValueError, match=r"y_test\[0\] = 1.5 is not an integer; labels must be integers 0..K-1"):
        load_dataset(f"npz:{path}")
    integral = load_dataset(f"npz:{write_npz(tmp_path / 'e.npz', (3,), y_test=np.full(20, 2.0))}")
    assert integral.y_test.dtype == torch.int64 and integral.y_test.tolist() == [2] * 20


def test_npz_negative_labels(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", (3,), y_test=np.full(20, -1))
    with pytest.raises(ValueError, match=r"y_test\[0\] = -1 is out of range; labels must be integers 0..K-1"):
        load_dataset(f"npz:{path}")


def test_labels_outside_a_fixed_class_list(cifar10_dir: Path) -> None:
    batch = {b"data": cifar_images(3, 0), b"labels": [7, 10, 9]}
    write_pickle(cifar10_dir / "cifar-10-batches-py" / "test_batch", batch)
    expected = r"y_test labels must be in 0..9, found 7..10 \(first outside at y_test\[1\]\)"
    with pytest.raises(ValueError, match=expected):
        load_dataset(f"cifar10:{cifar10_dir}")


def test_truncated_cifar_pickle(cifar10_dir: Path) -> None:
    batch = cifar10_dir / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cifar10: .*data_batch_2 is truncated or corrupt"):
        load_dataset(f"cifar10:{cifar10_dir}")


def test_stl10_wrong_size(stl10_dir: Path) -> None:
    (stl10_dir / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match=r"test_X.bin has 1000 bytes, not a multiple of the image size"):
        load_dataset(f"stl10:{stl10_dir}")


def test_bad_val_fraction() -> None:
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1"):
        load_dataset("circles", val_fraction=1.0)


def test_batch_size_zero() -> None:
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        BatchLoader(torch.zeros(4, 2), torch.zeros(4), 0, shuffle=False)
