"""rknet compare on a tiny grid: files and contents, a rerun that skips, an interrupted run resumed, early errors."""

import csv
import json
import statistics
import sys
import time

import pytest

import rknet
from rknet.cli.compare import add_compare_parser, spec_from_args
from rknet.cli.main import OneLineParser
from rknet.compare import COLUMNS, CompareSpec, machine, plan, run_grid
from rknet.training import train
from rknet.training.metrics import read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("accuracy_vs_params.png", "accuracy_vs_time.png", "learning_curves.png")
# 2 methods x 2 layers x 2 seeds on the circles toy set; 2 epochs so that a run can be cut after epoch 1
TINY = ["--data", "circles", "--methods", "euler,heun", "--layers", "double,doublesym", "--steps", "1",
        "--widths", "4,4", "--seeds", "2", "--epochs", "2", "--batch-size", "256", "--device", "cpu"]
INTERRUPTED = "heun-doublesym-steps1-w4-4-seed1"


def parser():
    """The rknet parser with only `compare` on it, built as rknet.cli builds its subcommands."""
    root = OneLineParser(prog="rknet")
    add_compare_parser(root.add_subparsers(dest="command", required=True, parser_class=OneLineParser))
    return root


def compare(argv, capsys):
    args = parser().parse_args(["compare", *argv])
    code = args.handler(args)
    return code, capsys.readouterr().out


class Interrupt(Exception):
    pass


def stop_after_first_epoch(line):
    if line.startswith("epoch "):
        raise Interrupt


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The tiny grid run once through the command line, with one run interrupted beforehand."""
    out = tmp_path_factory.mktemp("compare")
    argv = [*TINY, "--out", str(out), "--workers", "2"]
    _, runs = plan(spec_from_args(parser().parse_args(["compare", *argv])))
    (interrupted,) = [run for run in runs if run.name == INTERRUPTED]
    with pytest.raises(Interrupt):
        train(interrupted.config, show_progress=False, log=stop_after_first_epoch)
    assert (interrupted.folder / "checkpoint.pt").exists() and not (interrupted.folder / "summary.json").exists()
    lines = []
    results = run_grid(spec_from_args(parser().parse_args(["compare", *argv])), show_progress=False,
                       log=lines.append)
    return out, argv, results, lines


@pytest.mark.slow  # trains the tiny grid (8 runs, 2 workers) for the tests below
def test_grid_writes_results_report_and_plots(grid):
    out, _, results, lines = grid
    assert not results.failed
    finished = [line for line in lines if line.startswith("[")]
    assert len(finished) == 8  # one line per run
    assert sum("trained" in line for line in finished) == 7
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["method"], r["layer"]) for r in rows] == [("euler", "double"), ("heun", "double"),
                                                         ("euler", "doublesym"), ("heun", "doublesym")]
    for row in rows:
        assert row["seeds"] == "2" and row["failed"] == "0" and row["widths"] == "4-4" and row["control_steps"] == ""
        folders = [out / "runs" / f"{row['method']}-{row['layer']}-steps1-w4-4-seed{k}" for k in (0, 1)]
        summaries = [json.loads((folder / "summary.json").read_text()) for folder in folders]
        accuracies = [summary["test_acc"] for summary in summaries]
        assert float(row["test_acc_mean"]) == pytest.approx(statistics.fmean(accuracies))
        assert float(row["test_acc_std"]) == pytest.approx(statistics.stdev(accuracies))
        assert float(row["wall_seconds_mean"]) == pytest.approx(statistics.fmean(s["wall_seconds"] for s in summaries))
        peaks = [json.loads((folder / "compare.json").read_text())["peak_memory_mb"] for folder in folders]
        assert float(row["peak_memory_mb"]) == pytest.approx(max(peaks))
        assert int(row["params"]) > 0 and float(row["seconds_per_epoch_mean"]) > 0
        # one block with one step: Euler evaluates the layer once, Heun twice
        assert int(row["evaluations_per_forward"]) == {"euler": 1, "heun": 2}[row["method"]]
    summaries = [json.loads((out / "runs" / f"euler-double-steps1-w4-4-seed{k}" / "summary.json").read_text())
                 for k in (0, 1)]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(sum(s["test_acc"] for s in summaries) / 2)
    report = (out / "report.md").read_text()
    assert "rknet compare --data circles --methods euler,heun --layers double,doublesym" in report
    assert "| method | layer | steps | control steps | widths | seeds | test accuracy (%) |" in report
    assert report.count("| euler | double | 1 | state grid | 4-4 | 2 |") == 1
    assert "## Results" in report and "## What this shows" not in report  # the table, not prose restating it
    assert "ru_maxrss" in report
    import matplotlib.image

    for name in PLOTS:
        assert f"]({name})" in report
        path = out / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, channels = matplotlib.image.imread(path).shape
        assert width >= 400 and height >= 300 and channels in (3, 4)


@pytest.mark.slow  # the grid
def test_interrupted_run_is_resumed(grid):
    out, _, results, lines = grid
    folder = out / "runs" / INTERRUPTED
    assert any(line.endswith(f"resumed {INTERRUPTED}") or f"resumed {INTERRUPTED}:" in line for line in lines)
    assert "resuming" in (folder / "compare.log").read_text()
    assert [r["epoch"] for r in read_metrics(folder)] == [1, 2]
    assert json.loads((folder / "compare.json").read_text())["resumed"] is True
    assert [o.status for o in results.outcomes if o.run.name == INTERRUPTED] == ["resumed"]


@pytest.mark.slow  # the grid
def test_rerun_skips_complete_runs_and_rewrites_the_report(grid, capsys):
    out, argv, _, _ = grid
    summaries = sorted((out / "runs").glob("*/summary.json"))
    assert len(summaries) == 8
    before = {path: path.stat().st_mtime_ns for path in summaries}
    (out / "report.md").unlink()
    code, stdout = compare(argv, capsys)
    assert code == 0
    assert "8 already complete" in stdout
    assert stdout.count("(already complete)") == 8 and stdout.count("skipped") == 8
    assert {path: path.stat().st_mtime_ns for path in summaries} == before
    assert (out / "report.md").exists()
    assert "8 skipped (already complete)" in (out / "report.md").read_text()


@pytest.mark.slow  # the grid
def test_without_matplotlib_the_report_is_written_without_plots(grid, capsys, monkeypatch):
    out, argv, _, _ = grid
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, stdout = compare(argv, capsys)
    assert code == 0
    assert "plots need matplotlib" in stdout and "the report will have no plots" in stdout
    report = (out / "report.md").read_text()
    assert "No plots: matplotlib is not installed. `pip install 'rknet[plots]'`" in report
    assert not any(f"]({name})" in report for name in PLOTS)


@pytest.mark.slow  # the grid
def test_rerun_with_other_options_is_refused_before_training(grid):
    out, _, results, _ = grid
    spec = CompareSpec(**{**results.spec.__dict__, "options": {**results.spec.options, "epochs": 3}})
    with pytest.raises(ValueError, match="holds a run with other options .epochs 2 there, 3 now"):
        run_grid(spec, log=lambda line: None)


def test_bad_method_fails_before_any_run(tmp_path, capsys):
    out = tmp_path / "bad"
    with pytest.raises(ValueError, match="unknown method 'rk5'"):
        compare([*TINY, "--methods", "euler,rk5", "--out", str(out)], capsys)
    assert not out.exists()


def test_cli_error_is_one_line_with_exit_code_2(tmp_path, capsys):
    from rknet.cli.main import main

    code = main(["compare", *TINY, "--layers", "resnet", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown layer 'resnet'" in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("spec", "message"), [
    ({"options": {"method": "rk4"}}, "'method' is set by the grid; give it as the compare option 'methods'"),
    ({"options": {"t_states": [0, 1]}}, "not supported by compare"),
    ({"options": {"lr": -1.0}}, "lr must be a finite number > 0, got -1.0"),
    ({"options": {"lerning_rate": 0.1}}, "unknown option 'lerning_rate'"),
    ({"widths": [[4]]}, "widths must be at least 2 positive integers"),
    ({"steps": [0]}, "steps must be a positive integer, got 0"),
    ({"seeds": 0}, "seeds must be a positive count"),
    ({"data": "mnist"}, "unknown data set 'mnist'"),
    ({"data": "npz:/no/such/file.npz"}, "does not exist"),
])
def test_bad_specs_fail_early(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message):
        run_grid({"out": tmp_path / "bad", **spec}, log=lambda line: None)
    assert not (tmp_path / "bad").exists()


def test_command_line_parsing_and_the_equivalent_command():
    args = parser().parse_args(["compare", "--methods", "Euler,rk4,euler", "--widths", "4,4;8,8", "--widths",
                                "16,16", "--control-steps", "state,2", "--seeds", "3", "--lr", "0.05",
                                "--nesterov", "--threads", "3", "--out", "o"])
    spec = CompareSpec.coerce(spec_from_args(args))
    assert spec.methods == ["euler", "rk4"] and spec.control_steps == [None, 2] and spec.seed_list() == [0, 1, 2]
    assert spec.widths == [(4, 4), (8, 8), (16, 16)] and spec.options == {"lr": 0.05, "nesterov": True}
    assert spec.threads == 3 and "--threads 3" in spec.command()
    assert len(spec.settings()) == 2 * 2 * 3
    again = parser().parse_args(spec.command().split()[1:])
    assert CompareSpec.coerce(spec_from_args(again)) == spec
    assert spec.settings()[1].name == "rk4-doublesym-steps4-w4-4"
    assert spec.settings()[2].name == "euler-doublesym-steps4-controls2-w4-4"


@pytest.mark.parametrize("seeds", [[0, 3], [5]])
def test_explicit_seeds_survive_the_equivalent_command(seeds):
    spec = CompareSpec.coerce({"out": "o", "seeds": seeds})
    again = parser().parse_args(spec.command().split()[1:])
    assert CompareSpec.coerce(spec_from_args(again)).seed_list() == seeds


def test_a_fast_run_saved_by_train_is_recognised_on_rerun(tmp_path):
    """train saves the resolved configuration (--fast spelled out); the rerun check compares like with like and
    takes the run as complete (skipped), not as one with other options."""
    spec = {"out": tmp_path / "fast", "data": "circles", "widths": [[4, 4]], "seeds": 1,
            "options": {"fast": True, "device": "cpu"}}
    _, (run,) = plan(spec)
    saved = []

    def stop_after_configuration(line):  # logged (verbose) once config.json is written; compiling takes a minute
        if line.startswith("configuration:"):
            saved.append((run.folder / "config.json").read_text())
            raise Interrupt

    with pytest.raises(Interrupt):
        train(run.config, show_progress=False, log=stop_after_configuration, verbose=True)
    config = json.loads(saved[0])
    assert config["compile"] and config["channels_last"] and not config["fast"]  # spelled out by train
    run.folder.mkdir(parents=True)  # (train removed what a run stopped before its first epoch wrote)
    (run.folder / "config.json").write_text(saved[0])  # the run as it stands once finished
    (run.folder / "summary.json").write_text("{}")
    _, (rerun,) = plan(spec)  # raised "holds a run with other options (channels_last ...)" before
    assert rerun.folder == run.folder and rerun.state == "complete"


def test_threads_come_from_the_option_then_omp_num_threads_then_the_cores():
    cores = machine.cores()
    assert machine.resolve_threads(2, 3, {"OMP_NUM_THREADS": "5"}) == machine.Threads(3, "--threads")
    assert machine.resolve_threads(2, None, {"OMP_NUM_THREADS": "5"}) == machine.Threads(5, "OMP_NUM_THREADS")
    assert machine.resolve_threads(2, None, {"OMP_NUM_THREADS": " 4,2 "}).per_worker == 4  # OpenMP's nested form
    assert machine.resolve_threads(2, None, {}) == machine.Threads(max(1, cores // 2), "cores // workers")
    assert machine.resolve_threads(cores + 1, None, {"OMP_NUM_THREADS": ""}).per_worker == 1
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a positive integer, got 'all'; fix or unset it"):
        machine.resolve_threads(1, None, {"OMP_NUM_THREADS": "all"})
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        machine.resolve_threads(1, 0, {})


def test_load_sampler_keeps_the_peak_of_the_load_average(monkeypatch):
    loads = [1.0, 7.5, 2.0]
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (loads.pop(0) if loads else 0.5, 0.0, 0.0))
    with machine.LoadSampler(interval=0.01) as sampler:
        deadline = time.monotonic() + 10
        while loads and time.monotonic() < deadline:  # the thread samples the rest while we wait
            time.sleep(0.01)
    assert not loads and sampler.peak == 7.5


def _set_load(folder, load):
    sidecar = json.loads((folder / "compare.json").read_text())
    (folder / "compare.json").write_text(json.dumps({**sidecar, "load_peak": load}))


@pytest.mark.slow  # runs grids in worker processes
def test_compare_honours_omp_num_threads_and_threads_and_warns_under_contention(tmp_path, capsys, monkeypatch):
    """Each run's compare.json records the torch threads its worker really had."""
    cores = machine.cores()
    one = ["--data", "circles", "--methods", "euler", "--layers", "double", "--steps", "1", "--widths", "2,2",
           "--epochs", "1", "--batch-size", "512", "--device", "cpu", "--out", str(tmp_path)]
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 1))
    code, stdout = compare([*one, "--seeds", "0,"], capsys)
    assert code == 0 and f"1 worker x {cores + 1} torch threads (OMP_NUM_THREADS)" in stdout
    assert f"1 x {cores + 1} threads exceed the {cores} cores" in stdout
    runs = tmp_path / "runs"
    first, second = runs / "euler-double-steps1-w2-2-seed0", runs / "euler-double-steps1-w2-2-seed1"
    sidecar = json.loads((first / "compare.json").read_text())
    assert sidecar["threads"] == cores + 1 and sidecar["threads_source"] == "OMP_NUM_THREADS"
    assert sidecar["machine_cores"] >= 1 and (sidecar["load_peak"] is None or sidecar["load_peak"] >= 0)
    assert "**More threads than cores.**" in (tmp_path / "report.md").read_text()

    code, stdout = compare([*one, "--seeds", "0,1", "--threads", str(cores + 2)], capsys)  # seed 0 is skipped
    assert code == 0 and f"{cores + 2} torch threads (--threads)" in stdout
    assert json.loads((second / "compare.json").read_text())["threads"] == cores + 2
    report = (tmp_path / "report.md").read_text()
    assert f"the runs trained with {cores + 1} (1 run), {cores + 2} (1 run) threads" in report

    # the report reads contention from the sidecars: one run above the machine's cores, one well below
    _set_load(first, 0.0)
    _set_load(second, sidecar["machine_cores"] + 0.5)
    code, stdout = compare([*one, "--seeds", "0,1", "--threads", "1"], capsys)
    assert code == 0
    report = (tmp_path / "report.md").read_text()
    assert "**Timings taken under contention.** While 1 of 2 runs trained, the 1-minute load average exceeded" \
        in report
    assert "| euler | double | 1 | state grid | 2-2 | 2 |" in report and "†" in report.split("## Results")[1]
    assert "**More threads than cores.**" not in report
    _set_load(second, 0.0)
    compare([*one, "--seeds", "0,1", "--threads", "1"], capsys)
    report = (tmp_path / "report.md").read_text()
    assert "under contention" not in report and "†" not in report


def test_accuracy_vs_params_keeps_true_counts_and_spreads_methods_on_the_page(monkeypatch):
    pytest.importorskip("matplotlib")
    from rknet.compare import plots
    from rknet.compare.plan import Setting
    from rknet.compare.results import SettingResult

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.setdefault("figure", figure))
    results = [SettingResult(Setting(method, "double", 4, None, (4, 4)), seeds=[0], test_acc=[accuracy],
                             params=1234, wall_seconds=[1.0]) for method, accuracy in (("euler", 0.9), ("rk4", 0.8))]
    plots.plot_accuracy_vs_params(results, "unused.png")
    ax = drawn["figure"].axes[0]
    markers = [line for line in ax.lines if line.get_marker() not in (None, "None", "")]
    assert [list(line.get_xdata()) for line in markers] == [[1234], [1234]]  # the true count, not offset in x
    pixels = [line.get_transform().transform((1234, 85))[0] for line in markers]
    assert pixels[1] - pixels[0] == pytest.approx(plots.DODGE_POINTS * drawn["figure"].dpi / 72)
    assert any(list(line.get_xdata()) == [1234, 1234] and line.get_linestyle() == ":" for line in ax.lines)
    assert "1,234" in [text.get_text() for text in ax.texts]
    assert "spread sideways around the dotted line" in ax.get_title()


def test_compare_takes_a_config_file_and_the_command_line_wins(tmp_path):
    from rknet.cli.compare import spec_from_args

    config = tmp_path / "grid.yaml"
    config.write_text("methods: euler,heun\nlayers: [double]\nwidths: '4,4'\nseeds: 1\nepochs: 2\nlr: 0.2\n"
                      f"out: {tmp_path / 'from-file'}\n")
    spec = spec_from_args(parser().parse_args(["compare", "--config", str(config), "--lr", "0.05"]))
    assert spec.methods == ["euler", "heun"] and spec.layers == ["double"] and spec.widths == [(4, 4)]
    assert spec.options == {"epochs": 2, "lr": 0.05} and spec.out == tmp_path / "from-file"
    toml = tmp_path / "grid.toml"
    toml.write_text('methods = ["rk4"]\nsteps = [1, 2]\n')
    with pytest.raises(ValueError, match="give the output folder"):
        spec_from_args(parser().parse_args(["compare", "--config", str(toml)]))
    spec = spec_from_args(parser().parse_args(["compare", "--config", str(toml), "--out", str(tmp_path / "x")]))
    assert spec.steps == [1, 2] and spec.methods == ["rk4"] and spec.layers == [rknet.DEFAULTS.layer]
