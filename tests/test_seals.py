"""Issue 26, principles 3 and 4: what a saved model or checkpoint holds is checked whatever its seal says (the
SHA-256 seal is unkeyed: anyone can edit a file and re-seal it). Each forged file is refused with one ValueError
line naming the file and the tensor, and a forged size is refused before the network of that size is built."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest
import torch

import rknet
from rknet.io.layout import PRETRAINED_CONFIG, PRETRAINED_WEIGHTS
from rknet.io.safetensors import load_tensors, save_tensors
from rknet.training.checkpoint import CheckpointError, atomic_save, load_checkpoint, load_file
from rknet.training.model_io import read_model, save_model


def shared(tmp_path: Path) -> Path:
    model = rknet.ODENet(in_channels=2, num_classes=2, widths=(2, 3), norm="batch")
    return rknet.save_pretrained(model, tmp_path / "shared")


def forge(folder: Path, change) -> Path:
    tensors, _ = load_tensors(folder / PRETRAINED_WEIGHTS)
    tensors = {name: tensor.clone() for name, tensor in tensors.items()}
    change(tensors)
    save_tensors(tensors, folder / PRETRAINED_WEIGHTS)
    return folder


def first(tensors: dict, ending: str) -> str:
    return next(name for name in tensors if name.endswith(ending))


FORGERIES = {  # what is changed -> the words of the refusal
    "nan": (lambda t: t[first(t, "weight")].fill_(float("nan")), "NaN or infinite"),
    "inf": (lambda t: t[first(t, "bias")].fill_(float("inf")), "NaN or infinite"),
    "negative variance": (lambda t: t[first(t, "running_var")].fill_(-1), "negative variances"),
    "int8 weights": (lambda t: t.update({first(t, "weight"): t[first(t, "weight")].to(torch.int8)}), "stored as"),
    "bool weights": (lambda t: t.update({first(t, "weight"): t[first(t, "weight")].bool()}), "stored as"),
    "missing tensor": (lambda t: t.pop(first(t, "bias")), "lacks tensor"),
    "renamed tensor": (lambda t: t.update({"renamed": t.pop(first(t, "bias"))}), "lacks tensor"),
    "wrong shape": (lambda t: t.update({first(t, "bias"): torch.zeros(7)}), "has shape"),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_pretrained_folder_is_refused_naming_the_tensor(tmp_path: Path, forgery: str) -> None:
    change, words = FORGERIES[forgery]
    folder = forge(shared(tmp_path), change)
    with pytest.raises(ValueError, match=words) as error:
        rknet.from_pretrained(folder)
    assert "'" in str(error.value) and "\n" not in str(error.value)


def test_a_forged_spec_is_refused_before_anything_of_its_size_is_built(tmp_path: Path) -> None:
    folder = shared(tmp_path)
    config = json.loads((folder / PRETRAINED_CONFIG).read_text())
    (folder / PRETRAINED_CONFIG).write_text(json.dumps({**config, "widths": [4096, 4096]}))
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(ValueError, match="has shape"):
        rknet.from_pretrained(folder)
    assert time.perf_counter() - start < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: [30000, 30000] took 3.7 GB


@pytest.mark.parametrize(("entry", "words"), [({"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}, "dtype"),
                                              ({"dtype": "F32", "shape": [2**62, 4, 0], "data_offsets": [0, 0]},
                                               "too large")])
def test_a_bad_safetensors_header_is_one_line(tmp_path: Path, entry: dict, words: str) -> None:
    text = json.dumps({"w": entry}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(4))
    with pytest.raises(ValueError, match=words):
        load_tensors(path)


def test_a_forged_model_file_is_refused_before_building(tmp_path: Path) -> None:
    model = rknet.ODENet(in_channels=2, num_classes=2, widths=(2, 3))
    save_model(tmp_path / "model.pt", model, {})
    saved = load_file(tmp_path / "model.pt", "model file")
    atomic_save({**saved, "network": {**saved["network"], "widths": [4096, 4096]}}, tmp_path / "big.pt")
    with pytest.raises(CheckpointError, match="has shape"):
        read_model(tmp_path / "big.pt")
    weights = {name: tensor.clone() for name, tensor in saved["state_dict"].items()}
    weights[first(weights, "weight")].fill_(float("nan"))
    atomic_save({**saved, "state_dict": weights}, tmp_path / "nan.pt")  # re-sealed: the seal says nothing
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        rknet.load(tmp_path / "nan.pt")


def test_a_resealed_checkpoint_with_a_negative_epoch_is_refused(tmp_path: Path) -> None:
    result = rknet.train({"data": "circles", "epochs": 1, "widths": [2, 2], "steps": 1,
                          "out": str(tmp_path / "run")}, log=lambda line: None)
    state = load_file(result.out / "checkpoint.pt")
    for epoch in (-100, 1.5, True):
        atomic_save({**state, "epoch": epoch}, result.out / "checkpoint.pt")
        (result.out / "checkpoint.prev.pt").unlink(missing_ok=True)
        with pytest.raises(CheckpointError, match="a count of epochs done"):
            load_checkpoint(result.out, log=print)


def test_old_files_still_load() -> None:
    assert rknet.load("tests/fixtures/main-5149055/run") is not None
    assert rknet.from_pretrained("tests/fixtures/main-5149055/pretrained-custom") is not None


def test_a_device_this_machine_lacks_is_one_line() -> None:
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    for load in (rknet.from_pretrained, rknet.load):
        with pytest.raises(ValueError, match="CUDA device"):
            load("tests/fixtures/main-5149055/pretrained-custom", device="cuda:7")
    with pytest.raises(ValueError, match="not a device name"):
        rknet.from_pretrained("tests/fixtures/main-5149055/pretrained-custom", device="nonsense")


def test_what_is_not_a_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    import os

    from rknet.common.tablefiles import read_table

    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "folder.toml").mkdir()
    for path, words in [(tmp_path / "pipe.yaml", "pipe"), (tmp_path / "folder.toml", "folder"),
                        (tmp_path / "none.json", "does not exist")]:
        with pytest.raises(ValueError, match=words):
            read_table(path)
    with pytest.raises(CheckpointError, match="is a device"):
        load_file(Path("/dev/zero"))


def test_a_config_json_that_is_not_utf8_names_its_path(tmp_path: Path) -> None:
    folder = shared(tmp_path)
    (folder / PRETRAINED_CONFIG).write_bytes(b'{"model_type": "\xff\xfe"}')
    with pytest.raises(ValueError, match=f"cannot read {folder / PRETRAINED_CONFIG}: UnicodeDecodeError"):
        rknet.from_pretrained(folder)
