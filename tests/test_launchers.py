"""The launcher options of rknet compare without running a grid: checks before anything is written, the
equivalent command, the config file, a missing engine, the base install without the engines, --status."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rknet.cli.compare import add_compare_parser, spec_from_args
from rknet.cli.main import OneLineParser
from rknet.compare import CompareSpec, plan, run_grid
from rknet.compare.resources import Resources

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TINY = {"data": "circles", "widths": [[4, 4]], "seeds": 1, "options": {"epochs": 1}}


def parse(*argv):
    root = OneLineParser(prog="rknet")
    add_compare_parser(root.add_subparsers(dest="command", required=True, parser_class=OneLineParser))
    return spec_from_args(root.parse_args(["compare", *argv]))


@pytest.mark.parametrize(("spec", "message"), [
    ({"launcher": "sge"}, "unknown launcher 'sge'; valid: local, slurm, ray"),
    ({"launcher": "ray", "resources": {"partition": "gpu"}}, "--partition applies to --launcher slurm, not ray"),
    ({"resources": {"gpus_per_run": 1}}, "--gpus-per-run applies to --launcher slurm or ray, not local"),
    ({"launcher": "slurm", "resources": {"gpu": 1}}, "unknown resource 'gpu'; valid: partition"),
    ({"launcher": "slurm", "resources": {"time_limit": 0}}, "time_limit must be a positive integer, got 0"),
    ({"launcher": "slurm", "resources": {"mem_gb": -4}}, "mem_gb must be a finite number > 0"),
    ({"launcher": "ray", "resources": {"retries": -1}}, "retries must be an integer >= 0, got -1"),
    ({"launcher": "slurm", "resources": {"slurm_options": ["account"]}}, "slurm options must be NAME=VALUE"),
    ({"launcher": "slurm", "resources": {"submitit_cluster": "pbs"}}, "unknown submitit_cluster 'pbs'; valid: slurm"),
    ({"launcher": "ray", "workers": 2}, "workers applies to --launcher local; with ray, limit the runs at a time"),
])
def test_bad_launcher_options_fail_before_anything_is_written(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message):
        run_grid({"out": tmp_path / "bad", **TINY, **spec}, log=lambda line: None)
    assert not (tmp_path / "bad").exists()


def test_launcher_options_survive_the_equivalent_command():
    spec = CompareSpec.coerce(parse("--launcher", "SLURM", "--partition", "gpu", "--gpus-per-run", "1",
                                    "--time-limit", "240", "--mem-gb", "16", "--max-parallel", "8",
                                    "--slurm-option", "account=abc", "--slurm-option", "qos=long", "--out", "o"))
    assert spec.launcher == "slurm"
    assert spec.resources == Resources(partition="gpu", gpus_per_run=1, time_limit=240, mem_gb=16.0, max_parallel=8,
                                       slurm_options={"account": "abc", "qos": "long"})
    assert "--launcher slurm --partition gpu --gpus-per-run 1 --mem-gb 16 --time-limit 240" in spec.command()
    assert CompareSpec.coerce(parse(*spec.command().split()[2:])) == spec
    assert "--launcher" not in CompareSpec.coerce({"out": "o"}).command()  # local: the command of before


def test_resources_come_from_the_config_file_and_the_command_line_wins(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text('launcher = "ray"\nray_address = "auto"\nepochs = 3\nout = "o"\n'
                      '[resources]\ncpus_per_run = 4\ngpus_per_run = 1\n')
    spec = CompareSpec.coerce(parse("--config", str(config), "--gpus-per-run", "2"))
    assert spec.launcher == "ray" and spec.options == {"epochs": 3}
    assert spec.resources == Resources(ray_address="auto", cpus_per_run=4, gpus_per_run=2)


@pytest.mark.parametrize(("launcher", "module"), [("slurm", "submitit"), ("ray", "ray")])
def test_a_missing_engine_is_one_line_naming_its_extra(tmp_path, monkeypatch, cli, launcher, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    code, _, err = cli("compare", "--data", "circles", "--widths", "4,4", "--seeds", "1", "--launcher", launcher,
                       "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1
    assert f"--launcher {launcher} needs {module}, which is not installed: pip install 'rknet[{launcher}]'" in err
    assert not (tmp_path / "o").exists()


def test_slurm_without_sbatch_says_how_to_try_the_grid_locally(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ValueError, match="needs SLURM's sbatch on PATH .* or --submitit-cluster local"):
        run_grid({"out": tmp_path / "o", **TINY, "launcher": "slurm"}, log=lambda line: None)


@pytest.mark.slow  # imports rknet in a fresh process
def test_the_base_install_stays_light():
    """The engines are extras, and nothing imports them unless their launcher is chosen."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(name in dep for dep in project["dependencies"] for name in ("ray", "submitit"))
    assert project["optional-dependencies"]["slurm"] == ["submitit>=1.5"]
    assert project["optional-dependencies"]["ray"] == ["ray>=2.9"]
    code = ("import sys; from rknet.cli.main import build_parser; from rknet.compare.launchers import make_launcher; "
            "build_parser().parse_args(['compare', '--launcher', 'ray', '--out', 'o']); "
            "print(sorted({'ray', 'submitit'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_status_reads_each_run_from_its_folder(tmp_path, cli):
    out = tmp_path / "grid"
    spec, runs = plan({"out": out, "data": "circles", "methods": "euler,heun,rk4", "layers": "double,doublesym",
                       "widths": [[4, 4]], "seeds": 1, "options": {"epochs": 5}})
    (out / "runs").mkdir(parents=True)
    (out / "compare.json").write_text(json.dumps(spec.to_dict()))
    complete, failed, training, interrupted, starting, waiting = (run.folder for run in runs)
    for folder in (complete, failed, training, interrupted, starting):
        folder.mkdir()
    (complete / "summary.json").write_text(json.dumps({"test_acc": 0.875, "wall_seconds": 12.5}))
    (failed / "compare.json").write_text(json.dumps({"status": "failed", "error": "diverged at epoch 2"}))
    for folder in (training, interrupted):
        (folder / "checkpoint.pt").write_bytes(b"")
        (folder / "config.json").write_text(json.dumps({"epochs": 5}))
        (folder / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    (training / ".lock").write_text("123\n")
    (starting / ".lock").write_text("124\n")
    code, stdout, _ = cli("compare", "--status", out)
    assert code == 0
    lines = stdout.splitlines()
    assert [line.split()[:2] for line in lines[:6]] == [[state, run.name] for state, run in zip(
        ("complete", "failed", "training", "interrupted", "starting", "waiting"), runs)]
    assert lines[0].endswith("test acc 87.50%, 12.5 s") and lines[1].endswith("diverged at epoch 2")
    assert "epoch 2/5, last checkpoint" in lines[2] and "epoch 2/5" in lines[3]
    assert lines[-1] == "6 runs: 1 complete, 1 failed, 1 training, 1 interrupted, 1 starting, 1 waiting"
    code, _, err = cli("compare", "--status", tmp_path)
    assert code == 2 and "holds no comparison" in err


def test_resources_reach_the_sbatch_script(tmp_path, monkeypatch):
    """submitit's SLURM executor writes the job script from the resources (a stand-in srun lets it start
    without a cluster; nothing is submitted)."""
    submitit = pytest.importorskip("submitit")
    from rknet.compare.launchers.slurm import job_parameters

    (tmp_path / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{Path(sys.executable).parent}")
    spec = CompareSpec.coerce(parse("--launcher", "slurm", "--partition", "gpu", "--gpus-per-run", "1",
                                    "--cpus-per-run", "8", "--mem-gb", "32", "--time-limit", "240",
                                    "--slurm-option", "account=abc", "--out", "o"))
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
    executor.update_parameters(**job_parameters(spec.resources))
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--time=240",
                 "--account=abc", "--ntasks-per-node=1", "--signal=USR2@"):
        assert f"#SBATCH {line}" in script
