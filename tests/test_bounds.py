"""Issue 26, principles 2 and 3: a small file never makes rknet expand, recurse or allocate far beyond its size.
Each bad file is refused in one line naming it; `test_every_refusal_fits_the_budget` runs them all in a fresh
process and checks each takes under 2 s and all together under 500 MB of memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import rknet
from bad_input import cifar_folder
from conftest import run_cli
from rknet.common.limits import expanded_items, shown
from rknet.common.tablefiles import read_table
from rknet.data import load_dataset
from rknet.training.checkpoint import load_file

ALIASES = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nseed: [*b, *b, *b]\n"
TABLES = {  # file name -> (text, the words of the refusal)
    "aliases.yaml": (ALIASES, "anchors and aliases are not accepted"),
    "anchor.yaml": ("seed: &s 1\n", "anchors and aliases are not accepted"),
    "deep.json": ('{"seed": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested deeper than 32"),
    "deep.toml": ("seed = " + "[" * 5_000 + "]" * 5_000 + "\n", "nested deeper than 32"),
    "deep.yaml": ("seed: " + "[" * 5_000 + "]" * 5_000 + "\n", "nested deeper than 32"),
    "deep-blocks.yaml": ("".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "v: 1\n", "deeper than 32"),
}


def shared_list(levels: int = 9) -> list:
    """A list that holds 10 ** (levels + 1) integers once its shared rows are expanded (a few hundred bytes)."""
    rows: list = [0] * 10
    for _ in range(levels):
        rows = [rows] * 10
    return rows


def npz_bomb(path: Path) -> Path:
    """1 GiB of zeros as x_train, in about 1 MB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("x_train.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (2**28,)})
        for _ in range(64):
            member.write(bytes(2**24))
    return path


def npz_forged(path: Path) -> Path:
    """An x_train whose header declares 80 GB, holding 80 bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (10**9, 10)})
        archive.writestr("x_train.npy", buffer.getvalue() + bytes(80))
    return path


def shared_checkpoint(path: Path) -> Path:
    torch.save({"epoch": 1, "history": shared_list(), "sha256": "0" * 64}, path)
    return path


def refusals(root: Path) -> dict[str, tuple[Callable[[], object], str]]:
    """Every bad file of principles 2 and 3 made under `root`: name -> (what reads it, words of the refusal)."""
    cases: dict[str, tuple[Callable[[], object], str]] = {}
    for name, (text, words) in TABLES.items():
        (root / name).write_text(text)
        cases[name] = (lambda path=root / name: read_table(path), words)
    cycle: list = []
    cycle.append(cycle)
    for name, batch in {"cifar-shared": {b"data": np.zeros((1, 3072), np.uint8), b"labels": shared_list()},
                        "cifar-cycle": {b"data": np.zeros((1, 3072), np.uint8), b"labels": cycle}}.items():
        folder = cifar_folder(root / name, batch).parent.parent
        cases[name] = (lambda folder=folder: load_dataset(f"cifar10:{folder}", val_fraction=0), "items|holds itself")
    for name, make in {"bomb.npz": npz_bomb, "forged.npz": npz_forged}.items():
        path = make(root / name)
        cases[name] = (lambda path=path: load_dataset(f"npz:{path}", val_fraction=0), "inflates|declares shape")
    folder = rknet.save_pretrained(rknet.ODENet(in_channels=2, num_classes=2, widths=(2, 3)), root / "wide")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "widths": [30000, 30000]}))
    cases["wide-pretrained"] = (lambda: rknet.from_pretrained(folder), "has shape")
    path = shared_checkpoint(root / "shared.pt")
    cases["shared.pt"] = (lambda path=path: load_file(path), "items once shared")
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[Callable[[], object], str]]:
    return refusals(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", [*TABLES, "cifar-shared", "cifar-cycle", "bomb.npz", "forged.npz", "shared.pt",
                                  "wide-pretrained"])
def test_a_file_that_asks_for_more_than_it_holds_is_refused_in_one_line(cases, name: str) -> None:
    read, words = cases[name]
    with pytest.raises(ValueError, match=words) as error:
        read()
    assert "\n" not in str(error.value)


def test_the_command_line_refuses_an_aliased_config_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text(ALIASES)
    code, _, err = run_cli(["train", "--config", tmp_path / "bad.yaml", "--out", tmp_path / "run"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "aliases" in err and "bad.yaml" in err


def test_plain_files_still_read(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("seed: 1\nmilestones: [3, 6]\nmethod: {a: [[0]], b: [1], c: [0]}\n")
    assert read_table(tmp_path / "ok.yaml")["milestones"] == [3, 6]
    assert expanded_items({"labels": list(range(1000))}) == 1001 + 1


def test_shown_never_echoes_an_unbounded_value() -> None:
    assert len(shown(shared_list())) <= 80 and len(shown("x" * 10**6)) <= 80


BUDGET = """
import resource, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_bounds
for name, (read, words) in test_bounds.refusals(Path(tempfile.mkdtemp())).items():
    start = time.perf_counter()
    try:
        read()
        print(name, "not refused")
    except ValueError as error:
        print(name, round(time.perf_counter() - start, 3), "\\n" not in str(error))
# VmHWM: this process image's own high-water mark (ru_maxrss would carry over the forking pytest's, since
# Linux keeps it across execve)
status = Path("/proc/self/status")
lines = status.read_text().splitlines() if status.exists() else []
hwm = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
print("peak", hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow  # a fresh process importing torch, 12 refusals timed and measured
def test_every_refusal_fits_the_budget() -> None:
    done = subprocess.run([sys.executable, "-c", BUDGET.format(tests=str(Path(__file__).parent))],
                          capture_output=True, text=True, timeout=300, check=True)
    *lines, (_, peak_kib) = [line.split() for line in done.stdout.splitlines()]  # the child's own high-water mark
    assert len(lines) >= 12, done.stdout + done.stderr
    for name, seconds, one_line in lines:
        assert float(seconds) < 2 and one_line == "True", (name, seconds, one_line)
    assert int(peak_kib) < 500 * 1024, f"peak {int(peak_kib) / 1024:.0f} MiB"
