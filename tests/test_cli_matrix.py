"""Every command on a tiny run of every block type: it works, or it refuses in one line with exit 2."""

import json

import pytest

import rknet

pytestmark = pytest.mark.slow  # trains one run per block type, then every command on each

BLOCK_TYPES = (*rknet.TABLEAUS, *rknet.IMPLICIT_TABLEAUS, *rknet.IMEX_PAIRS, "leapfrog", "hamiltonian")
TINY = ("--data", "circles", "--widths", "2,2", "--steps", "2", "--epochs", "1", "--batch-size", "256",
        "--device", "cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run per block type."""
    from rknet.cli.main import main

    folder = tmp_path_factory.mktemp("matrix")
    for method in BLOCK_TYPES:
        assert main(["train", *TINY, "--method", method, "--out", str(folder / method)]) == 0
    return folder


def one_line_refusal(code, err, command):
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"rknet {command}: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("method", BLOCK_TYPES)
def test_every_command_works_or_refuses_in_one_line(method, runs, cli):
    run = runs / method
    reversible = method in ("leapfrog", "hamiltonian")
    imex = method in rknet.IMEX_PAIRS
    summary = json.loads((run / "summary.json").read_text())

    code, out, err = cli("eval", run, "--device", "cpu")
    assert code == 0, err
    assert f"{100 * summary['test_acc']:.2f}%" in out.splitlines()[2]  # as trained: the training's figure

    code, out, err = cli("eval", run, "--steps", "1,4", "--device", "cpu")
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()[2:4]] == [[method, "1"], [method, "4"]]

    code, out, err = cli("eval", run, "--method", "euler,rk4", "--device", "cpu")
    if reversible or imex:
        one_line_refusal(code, err, "eval")
        assert f"a {method} network" in err and "cannot be re-discretised with euler" in err
    else:
        assert code == 0, err
        assert [line.split()[0] for line in out.splitlines()[2:4]] == ["euler", "rk4"]

    code, out, err = cli("spectrum", run, "--samples", "2", "--device", "cpu")
    if reversible or imex:
        one_line_refusal(code, err, "spectrum")
        assert "Jacobian spectra apply to Runge-Kutta blocks" in err
    else:
        assert code == 0, err
        assert (run / "spectra.png").is_file()

    code, out, err = cli("trajectories", run, "--points", "50", "--device", "cpu")
    assert code == 0, err
    assert (run / "trajectories.png").is_file()


def test_compare_runs_every_block_type(tmp_path, cli):
    code, out, err = cli("compare", "--data", "circles", "--widths", "2,2", "--steps", "1", "--epochs", "1",
                         "--batch-size", "256", "--seeds", "1", "--device", "cpu", "--methods", ",".join(BLOCK_TYPES),
                         "--out", tmp_path / "grid")
    assert code == 0, err
    rows = (tmp_path / "grid" / "results.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == sorted(BLOCK_TYPES)
    assert all(row.split(",")[5] == "1" for row in rows)  # one completed seed each, none failed
