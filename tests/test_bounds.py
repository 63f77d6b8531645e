"""Issue 26, principles 2 and 3: a small file or option never makes rknet expand, recurse or allocate far beyond
its size. Each bad file is refused in one line naming it, each option in one line saying the limit and why;
`test_every_refusal_fits_the_budget` runs them all in a fresh process and checks each takes under 2 s and all
together under 500 MB of memory."""

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
from rknet.compare.plan import CompareSpec
from rknet.compare.status import status_lines
from rknet.data import load_dataset
from rknet.training.checkpoint import load_file
from rknet.training.config import TrainConfig

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
    (folder / "config.json").write_text(json.dumps({**config, "widths": [4096, 4096]}))
    cases["wide-pretrained"] = (lambda: rknet.from_pretrained(folder), "has shape")
    wider = rknet.save_pretrained(rknet.ODENet(in_channels=2, num_classes=2, widths=(2, 3)), root / "wider")
    (wider / "config.json").write_text(json.dumps({**config, "widths": [30000, 30000]}))
    cases["wider-pretrained"] = (lambda: rknet.from_pretrained(wider), "30000 channels; at most 4,096")
    path = shared_checkpoint(root / "shared.pt")
    cases["shared.pt"] = (lambda path=path: load_file(path), "items once shared")
    return cases


def train_options(**options) -> Callable[[], object]:
    return lambda: TrainConfig.from_dict(options).validate()


def compare_folder(root: Path, seeds: int) -> Path:
    """A comparison folder whose compare.json lists `seeds` seeds (what `--status` reads)."""
    (root / "grid").mkdir(exist_ok=True)
    (root / "grid" / "compare.json").write_text(json.dumps({"data": "circles", "seeds": seeds}))
    return root / "grid"


def option_refusals(root: Path) -> dict[str, tuple[Callable[[], object], str]]:
    """Every option of principle 2 that asks for more than rknet allows: name -> (what reads it, words)."""
    net = rknet.ODENet(in_channels=2, num_classes=2, widths=(2, 2), dims=0)
    y0, t = torch.ones(2, dtype=torch.float64), torch.tensor([0.0, 1.0])
    return {
        "steps 1e8": (train_options(steps=10**8), "steps per block; at most 10,000"),
        "control_steps 1e7": (train_options(control_steps=10**7), "steps per block; at most 10,000"),
        "100,000 widths": (train_options(widths=[4] * 100_000), "at most 64"),
        "widths 30000": (train_options(widths=[30000, 30000]), "at most 4,096"),
        "multilevel 1,1e6": (train_options(multilevel=[1, 10**6]), "steps per block; at most 10,000"),
        "threads 1e5": (train_options(threads=100_000), "at most 1,024"),
        "epochs 1e30": (train_options(epochs=10**30), "at most 1,000,000"),
        "max_krylov 3000": (train_options(method="sdirk2", solver={"max_krylov": 3000}), "at most 200"),
        "max_newton 1e9": (train_options(method="sdirk2", solver={"max_newton": 10**9}), "at most 1,000"),
        "rediscretize 1e8": (lambda: rknet.rediscretize(net, steps=10**8), "steps per block; at most 10,000"),
        "refine 1e8": (lambda: net.refine(10**8), "at most 1,000,000"),
        "t_states 1e5": (lambda: rknet.ODENet(2, 2, widths=(2, 2), dims=0, t_states=range(100_001)), "at most 10,000"),
        "step_size 1e-300": (lambda: rknet.odeint(lambda t, y: -y, y0, t, method="rk4",
                                                  options={"step_size": 1e-300}), "at most 1,000,000"),
        "compare seeds 1e9": (lambda: CompareSpec.coerce({"out": str(root / "c"), "seeds": 10**9}), "at most 10,000"),
        "compare status 1e9": (lambda: status_lines(compare_folder(root, 10**9)), "at most 10,000"),
    }


OPTIONS = ["steps 1e8", "control_steps 1e7", "100,000 widths", "widths 30000", "multilevel 1,1e6", "threads 1e5",
           "epochs 1e30", "max_krylov 3000", "max_newton 1e9", "rediscretize 1e8", "refine 1e8", "t_states 1e5",
           "step_size 1e-300", "compare seeds 1e9", "compare status 1e9"]


@pytest.mark.parametrize("name", OPTIONS)
def test_an_option_that_asks_for_more_than_rknet_allows_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    read, words = option_refusals(tmp_path)[name]
    with pytest.raises(ValueError, match=words) as error:
        read()
    assert "\n" not in str(error.value) and "; at most" in str(error.value)  # the limit, then why


def test_newton_stops_when_its_residual_stagnates() -> None:
    """max_newton up to the limit does not mean 1,000 iterations: a residual stuck at float32 round-off (tol
    1e-12 cannot be met) stops the solve after 10 iterations without progress, saying so."""
    solver = rknet.NewtonKrylov(tol=1e-12, max_newton=1000)
    with pytest.raises(rknet.ImplicitSolveError, match="stagnated: its residual has not decreased in 10 iterations"):
        rknet.integrate(lambda t, y: -5 * torch.tanh(3 * y), torch.linspace(-1, 1, 8), [0.0, 1.0], "backward_euler",
                        solver=solver)
    assert solver.report.krylov < 100  # a few Newton iterations, not 1,000


def test_the_warning_about_knots_inside_steps_counts_them_instead_of_listing_them() -> None:
    """10^7 control steps once printed all 10^7 knots; now any number of them is a count and a few values."""
    knots = [k / 5001 for k in range(5002)]  # 5,000 of them inside the one state step
    with pytest.warns(rknet.GridWarning, match="^5000 control times") as caught:
        rknet.ODENet(2, 2, widths=(2, 2), dims=0, t_states=[0.0, 1.0], t_controls=knots)
    assert len(str(caught[0].message)) < 400


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[Callable[[], object], str]]:
    return refusals(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", [*TABLES, "cifar-shared", "cifar-cycle", "bomb.npz", "forged.npz", "shared.pt",
                                  "wide-pretrained", "wider-pretrained"])
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
root = Path(tempfile.mkdtemp())
for name, (read, words) in {{**test_bounds.refusals(root), **test_bounds.option_refusals(root)}}.items():
    start = time.perf_counter()
    try:
        read()
        print(name.replace(" ", "_"), "not refused")
    except ValueError as error:
        print(name.replace(" ", "_"), round(time.perf_counter() - start, 3), "\\n" not in str(error))
# VmHWM: this process image's own high-water mark (ru_maxrss would carry over the forking pytest's, since
# Linux keeps it across execve)
status = Path("/proc/self/status")
lines = status.read_text().splitlines() if status.exists() else []
hwm = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
print("peak", hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow  # a fresh process importing torch, 28 refusals timed and measured
def test_every_refusal_fits_the_budget() -> None:
    done = subprocess.run([sys.executable, "-c", BUDGET.format(tests=str(Path(__file__).parent))],
                          capture_output=True, text=True, timeout=300, check=True)
    *lines, (_, peak_kib) = [line.split() for line in done.stdout.splitlines()]  # the child's own high-water mark
    assert len(lines) == 13 + len(OPTIONS), done.stdout + done.stderr
    for name, seconds, one_line in lines:
        assert float(seconds) < 2 and one_line == "True", (name, seconds, one_line)
    assert int(peak_kib) < 500 * 1024, f"peak {int(peak_kib) / 1024:.0f} MiB"
