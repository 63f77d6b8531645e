"""The analysis commands on a tiny trained toy run: each writes a valid PNG and reports in one line."""

import sys

import pytest

from rknet.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "toy"
    assert main(["train", "--data", "circles", "--widths", "2,2", "--steps", "2", "--epochs", "1",
                 "--norm", "none", "--activation", "tanh", "--out", str(out)]) == 0
    return out


def test_stability_command(tmp_path, capsys):
    out = tmp_path / "regions.png"
    assert main(["stability", "--methods", "euler,rk4", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)


def test_spectrum_command(toy_run, capsys):
    assert main(["spectrum", str(toy_run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "stability region |R(h*lambda)| <= 1, per block and per state time" in out[0]
    # the toy run has one block of 2 steps: its line over all times, then one line per step start
    assert out[1].startswith("block 0 (rk4, all eigenvalues): ") and "|R(h*lambda)|" in out[1]
    assert out[2].startswith("  t=0: ") and out[3].startswith("  t=2: ") and out[4].startswith("wrote ")
    assert (toy_run / "spectra.png").read_bytes().startswith(PNG)


def test_trajectories_command(toy_run, capsys):
    assert main(["trajectories", str(toy_run), "--points", "50", "--device", "cpu"]) == 0
    assert (toy_run / "trajectories.png").read_bytes().startswith(PNG)


def test_trajectories_of_a_non_toy_run_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "wide"
    assert main(["train", "--data", "circles", "--widths", "4,4", "--steps", "1", "--epochs", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["trajectories", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["stability"], ["spectrum", "no-such-run"], ["trajectories", "no-such-run"]])
def test_plot_commands_without_matplotlib_refuse_in_one_line(command, tmp_path, monkeypatch, capsys):
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main([*command, "--out", str(tmp_path / "figure.png")]) == 2
    err = capsys.readouterr().err
    # refused before any other work: the missing run folder is not what it complains about
    assert err.count("\n") == 1 and err.startswith(f"rknet {command[0]}: error: plots need matplotlib")
    assert "pip install 'rknet[plots]'" in err
    assert not (tmp_path / "figure.png").exists()
