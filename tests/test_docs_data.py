"""docs/data.md says what the loaders do: its example writes a valid npz, its table matches the data sets."""

import re
from pathlib import Path

import pytest

from rknet.data import load_dataset

DATA_MD = Path(__file__).resolve().parents[1] / "docs" / "data.md"


def _table_rows() -> dict[str, list[str]]:
    """The data-set table: `--data` name -> its cells."""
    rows = {}
    for line in DATA_MD.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9]+)`( \(default\))?", cells[0]) if len(cells) == 5 else None
        if match:
            rows[match.group(1)] = cells
    return rows


@pytest.mark.parametrize("name", ["digits", "peaks", "swissroll", "circles"])
def test_the_table_gives_each_built_in_set_its_true_sizes_shapes_and_classes(name):
    _, _, sample, sizes, classes = _table_rows()[name]
    data = load_dataset(name, val_fraction=0.0)
    assert sizes == f"{len(data.x_train):,} / {len(data.x_test):,}"
    assert int(classes) == data.num_classes
    assert sample.startswith(str(tuple(data.x_train.shape[1:]))) and f"({data.dims})" in sample


def test_the_example_writes_an_npz_that_loads(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DATA_MD.read_text(), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DATA_MD), "exec"), {})
    data = load_dataset("npz:waves.npz")
    assert data.dims == 1 and data.num_classes == 3 and data.in_channels == 1
    assert (len(data.x_train) + len(data.x_val), len(data.x_test)) == (600, 200)
