"""configs/: every literature run parses, builds the parameter count its comment states, and trains one step
on a tiny data set in the same file format; the multistep schedule the reference run needs."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import rknet
from rknet.training.config import read_config_file
from rknet.training.optim import lr_factor

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))
CLASSES = {"cifar10": 10, "cifar100": 100, "stl10": 10}
IMAGES = 10  # training images of each fake set: 8 train + 2 validation at val_fraction 0.2, one batch of 8


def fake_data(kind: str, root: Path) -> Path:
    """Random images and labels in the real file format of `kind` (CIFAR pickles or STL-10 binaries)."""
    rng = np.random.default_rng(0)
    if kind == "stl10":
        for split, n in (("train", IMAGES), ("test", 3)):
            rng.integers(0, 256, (n, 3 * 96 * 96), dtype=np.uint8).tofile(root / f"{split}_X.bin")
            rng.integers(1, 11, n, dtype=np.uint8).tofile(root / f"{split}_y.bin")
        return root
    folder = root / ("cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python")
    folder.mkdir()
    key, batches = (b"labels", [f"data_batch_{i}" for i in range(1, 6)]) if kind == "cifar10" else \
        (b"fine_labels", ["train"])
    sizes = [IMAGES // len(batches) + (i < IMAGES % len(batches)) for i in range(len(batches))]
    for name, n in [*zip(batches, sizes), ("test_batch" if kind == "cifar10" else "test", 3)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: rng.integers(0, CLASSES[kind], n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    return root


def stated(path: Path, label: str) -> str:
    """The value of the comment line `# label: value` in a config file."""
    match = re.search(rf"^# {label}: (.+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name} lacks a '# {label}:' comment"
    return match.group(1)


def test_there_is_a_config_for_every_run_of_the_issue() -> None:
    names = {path.stem for path in CONFIGS}
    assert "reference-cifar10" in names
    for net in ("parabolic", "hamiltonian", "second-order"):
        for kind in CLASSES:
            assert f"rh2018-{net}-{kind}" in names


@pytest.mark.slow  # builds every literature network
@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_builds_its_stated_count_and_trains_a_step(path: Path, tmp_path: Path) -> None:
    options = read_config_file(path)
    config = rknet.TrainConfig.from_dict(options).validate()
    kind = config.data.split(":")[0]
    assert re.match(r"[\d.]+ % test accuracy", stated(path, "Published"))
    count = int(stated(path, "rknet parameters").replace(",", ""))
    model = rknet.ODENet.from_spec(config.network_spec(3, CLASSES[kind], 2))
    assert sum(p.numel() for p in model.parameters()) == count
    result = rknet.train(dict(options, data=f"{kind}:{fake_data(kind, tmp_path)}", epochs=1, batch_size=8,
                              device="cpu", out=str(tmp_path / "run")), log=lambda line: None)
    assert result.params == count
    assert json.loads((result.out / "summary.json").read_text())["epochs"] == 1


def test_multistep_divides_the_rate_after_each_milestone_epoch() -> None:
    config = rknet.TrainConfig(schedule="multistep", milestones=[2, 3], step_gamma=0.1, epochs=5).validate()
    factors = [lr_factor(epoch * 4, config, 4) for epoch in range(5)]  # the first step of each epoch
    assert factors == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert lr_factor(2 * 4 - 1, config, 4) == 1  # the last step of epoch 2 still at the base rate


@pytest.mark.parametrize("options, message", [
    ({"schedule": "multistep"}, "schedule multistep needs milestones"),
    ({"milestones": [5]}, "milestones apply to it alone"),
    ({"schedule": "multistep", "milestones": [5, 5]}, "milestones must be increasing epochs"),
    ({"schedule": "multistep", "milestones": [0, 5]}, "milestones must be positive integers"),
])
def test_bad_milestones_are_refused_in_one_line(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        rknet.TrainConfig(**options).validate()
