"""Bad options never pass silently: every one ends in exit 2 and one line naming it (command line), or a
ValueError naming it (Python), before anything is trained or written. The options part of the bad-input
suite (data, files, checkpoints: tests/test_bad_*.py, test_run_folders.py, test_divergence.py)."""

import math

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rknet
from bad_input import trained_run
from rknet.training.config import BOOLEANS, TrainConfig

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("args", "first_words"), [
    (["--lr", "nan"], "rknet train: error: lr must be a finite number > 0, got nan"),
    (["--lr", "inf"], "rknet train: error: lr must be a finite number > 0, got inf"),
    (["--momentum", "nan"], "rknet train: error: momentum must be a finite number >= 0, got nan"),
    (["--weight-decay", "inf"], "rknet train: error: weight_decay must be a finite number >= 0, got inf"),
    (["--time-reg", "nan"], "rknet train: error: time_reg must be a finite number >= 0, got nan"),
    (["--step-gamma", "nan"], "rknet train: error: step_gamma must be a finite number >= 0, got nan"),
    (["--warmup-epochs", "inf"], "rknet train: error: warmup_epochs must be a finite number >= 0, got inf"),
    (["--seed", "99999999999999999999999"], "rknet train: error: seed must be an integer from 0 to 2**63 - 1"),
    (["--epoch", "2"], "rknet: error: unrecognized arguments: --epoch 2"),
    (["--widths", "4,,4"], "rknet train: error: argument --widths: expected comma-separated integers, got '4,,4'"),
    (["--widths", "4"], "rknet train: error: widths must be at least 2 positive integers, got [4]"),
    (["--method", "rk5"], "rknet train: error: unknown method 'rk5'; valid: euler, midpoint"),
    (["--norm", "layer"], "rknet train: error: unknown norm 'layer'; valid norms: batch, tv, none"),
    (["--gradient", "reversible"], "rknet train: error: gradient 'reversible' does not apply to rk4 blocks"),
    (["--method", "leapfrog", "--t-controls", "0,4"], "rknet train: error: leapfrog blocks keep one control"),
    (["--layer-options", "gamma"], "rknet train: error: argument --layer-options: expected comma-separated"),
    (["--layer-options", "gamma=1"], "rknet train: error: unknown option 'gamma' for layer doublesym"),
    (["--device", "gpu"], "rknet train: error: unknown device 'gpu'; valid: auto, cpu, cuda"),
    (["--val-fraction", "1"], "rknet train: error: val_fraction must be in [0, 1), got 1.0"),
    (["--patience", "0"], "rknet train: error: patience must be a positive integer, got 0"),
])
def test_bad_command_line_options_exit_2_in_one_line(tmp_path, cli, args, first_words):
    code, _, err = cli("train", *args, "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(first_words), err
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize(("suffix", "text", "first_words"), [
    (".toml", 'compile = "false"', "compile must be true or false, got 'false'"),
    (".toml", "nesterov = 1", "nesterov must be true or false, got 1"),
    (".toml", "out = 5", "out must be a folder name, got 5"),
    (".toml", "seed = true", "seed must be an integer from 0 to 2**63 - 1, got True"),
    (".yaml", "lr: .nan", "lr must be a finite number > 0, got nan"),
    (".yaml", "epochs: 2.5", "epochs must be a positive integer, got 2.5"),
    (".yaml", "widths: '16,x'", "widths must be comma-separated positive integers, got '16,x'"),
    (".yaml", "- 1\n- 2", "config file"),
    (".toml", "lr = ", "config file"),
    (".toml", "epochs = 2\nepoch = 3", "unknown option 'epoch'"),
    (".txt", "epochs = 2", "config file"),
])
def test_bad_config_files_exit_2_in_one_line(tmp_path, cli, suffix, text, first_words):
    path = tmp_path / f"options{suffix}"
    path.write_text(text)
    out = [] if text.startswith("out") else ["--out", tmp_path / "run"]  # the command line would win over the file
    code, _, err = cli("train", "--config", path, *out)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rknet train: error: {first_words}"), err


def test_a_binary_config_file_is_named(tmp_path, cli):
    path = tmp_path / "options.toml"
    path.write_bytes(bytes(range(256)))
    code, _, err = cli("train", "--config", path)
    assert code == 2 and err.startswith(f"rknet train: error: config file {path} cannot be read as text")


def test_list_options_take_both_forms_in_files(tmp_path):
    for text in ("widths: '16,16'\nt_states: '0,1,2'\n", "widths: [16, 16]\nt_states: [0, 1, 2]\n"):
        (tmp_path / "o.yaml").write_text(text)
        config = TrainConfig.from_dict(rknet.training.read_config_file(tmp_path / "o.yaml")).validate()
        assert config.widths == [16, 16] and config.state_times() == (0.0, 1.0, 2.0)


@pytest.mark.parametrize(("options", "first_words"), [
    ({"fast": "0"}, "fast must be true or false"),
    ({"nesterov": "no"}, "nesterov must be true or false"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"epochs": True}, "epochs must be a positive integer"),
])
def test_python_options_are_type_checked(options, first_words):
    with pytest.raises(ValueError, match=f"^{first_words}"):
        rknet.train(options)


def test_train_with_a_data_set_name_says_what_it_takes():
    with pytest.raises(ValueError, match=r"^rknet.train takes a TrainConfig or a dict of options such as "):
        rknet.train("peaks")


def test_odenet_refuses_another_dtype_in_one_line():
    net = rknet.ODENet(2, 2, widths=(2, 2), dims=0)
    with pytest.raises(ValueError, match="^ODENet holds torch.float32 weights but got torch.float64 input"):
        net(torch.ones(3, 2, dtype=torch.float64))
    assert net.double()(torch.ones(3, 2, dtype=torch.float64)).dtype == torch.float64


NUMERIC = ("lr", "momentum", "weight_decay", "warmup_epochs", "step_gamma", "time_reg", "val_fraction", "final_time",
           "clip")
INTEGER = ("epochs", "batch_size", "steps", "step_epochs", "seed", "control_steps", "patience")
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70), st.booleans(),
                   st.text(max_size=5), st.none(), st.lists(st.integers(-3, 3), max_size=3))


@FUZZ
@given(name=st.sampled_from(NUMERIC + INTEGER + BOOLEANS), value=VALUES)
def test_any_option_value_is_accepted_only_when_valid(name, value):
    try:
        config = TrainConfig.from_dict({name: value}).validate()
    except ValueError as error:
        assert name in str(error).splitlines()[0]
        return
    accepted = getattr(config, name)
    if name in BOOLEANS:
        assert isinstance(accepted, bool)
    elif accepted is not None:
        assert not isinstance(accepted, bool) and isinstance(accepted, (int, float)) and math.isfinite(accepted)
        assert accepted >= 0 and (name not in INTEGER or isinstance(accepted, int))


COEFFICIENTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-3, 3),
                         st.sampled_from(["1/2", "1/0", "x", "", "-2/3"]), st.booleans())


@FUZZ
@given(size=st.integers(1, 3), data=st.data())
def test_any_tableau_is_accepted_only_when_consistent(size, data):
    a = data.draw(st.lists(st.lists(COEFFICIENTS, min_size=size, max_size=size), min_size=size, max_size=size))
    b = data.draw(st.lists(COEFFICIENTS, min_size=size, max_size=size))
    c = data.draw(st.lists(COEFFICIENTS, min_size=size, max_size=size))
    try:
        tableau = rknet.ButcherTableau(a, b, c)
    except ValueError as error:
        assert str(error).startswith("tableau")
        return
    assert all(math.isfinite(v) for v in (*tableau.b, *tableau.c, *(x for row in tableau.a for x in row)))
    assert abs(sum(tableau.b) - 1) <= 1e-8 and tableau.order >= 1


# Issue 26, principles 2 and 5: options asking for more than rknet allows, or values that cannot mean anything.
MEANING = [  # (command-line arguments, the words of the one-line refusal)
    (["--steps", "100000000"], "steps asks for 100000000 steps per block; at most 10,000: each step keeps"),
    (["--control-steps", "10000000"], "control_steps asks for 10000000 steps per block; at most 10,000"),
    (["--widths", ",".join(["4"] * 100_000)], "widths asks for 99999 blocks; at most 64"),
    (["--multilevel", "1,1000000"], "multilevel asks for 4000000 steps per block; at most 10,000"),
    (["--threads", "100000"], "threads asks for 100000 threads; at most 1,024"),
    (["--epochs", "1" + "0" * 30], "epochs asks for 1000000000000000000000000000000 epochs; at most 1,000,000"),
    (["--method", "sdirk2", "--solver", "max_krylov=3000"], "max_krylov asks for 3000 GMRES iterations; at most 200"),
    (["--method", "sdirk2", "--solver", "max_newton=1000000000"], "max_newton asks for 1000000000 Newton"),
    (["--method", "sdirk2", "--solver", "tol=0.99"], "tol must be a finite number > 0 and <= 0.01, got 0.99"),
    (["--method", "sdirk2", "--solver", "forcing=1"], "forcing must be a finite number > 0 and < 1, got 1"),
    (["--momentum", "1"], "momentum must be below 1 with sgd, got 1.0: the velocity would never decay"),
    (["--optimizer", "adam", "--momentum", "0.5"], "momentum must be left at its default with adam, got 0.5"),
    (["--optimizer", "adamw", "--nesterov"], "nesterov must be false with adamw, got True"),
    (["--step-gamma", "0"], "step_gamma must be in (0, 1], got 0.0: it multiplies the learning rate"),
    (["--step-gamma", "100"], "step_gamma must be in (0, 1], got 100.0"),
    (["--lr", "1e-300"], "lr must be at least 1e-10, got 1e-300: a smaller update is lost"),
    (["--warmup-epochs", "1e12"], "warmup_epochs must be at most the 12 epochs, got 1000000000000.0"),
    (["--compile-mode", "max-autotune"], "compile_mode must be 'default' unless compile or fast is on"),
]


@pytest.mark.parametrize(("args", "words"), MEANING)
def test_options_over_a_limit_or_without_meaning_exit_2_in_one_line(tmp_path, cli, args, words):
    code, _, err = cli("train", *args, "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1 and len(err) < 400, err
    assert err.startswith(f"rknet train: error: {words}"), err
    assert not (tmp_path / "run").exists()


SAME_REFUSAL = [{"momentum": 1.0}, {"step_gamma": 100.0}, {"lr": 1e-300}, {"threads": 100000}, {"steps": 10**8},
                {"warmup_epochs": 1e12}, {"method": "sdirk2", "solver": {"tol": 0.99}},
                {"optimizer": "adam", "momentum": 0.5}]


@pytest.mark.parametrize("options", SAME_REFUSAL)
def test_a_config_file_python_and_the_command_line_refuse_alike(tmp_path, cli, options):
    with pytest.raises(ValueError) as python:
        rknet.train(dict(options, out=str(tmp_path / "run")))
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options))
    code, _, err = cli("train", "--config", tmp_path / "options.yaml", "--out", tmp_path / "run")
    assert code == 2 and err.strip() == f"rknet train: error: {python.value}"
    flags = [part for name, value in options.items() for part in (
        f"--{name.replace('_', '-')}",
        ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value))]
    assert cli("train", *flags, "--out", tmp_path / "run")[2] == err
    assert not (tmp_path / "run").exists()


def test_compare_refuses_a_grid_of_a_billion_runs_and_a_hundred_thousand_threads(tmp_path, cli):
    for args, words in ((["--seeds", "1000000000"], "the grid asks for 1000000000 runs; at most 10,000"),
                        (["--threads", "100000"], "threads asks for 100000 threads; at most 1,024")):
        code, _, err = cli("compare", *args, "--out", tmp_path / "grid")
        assert code == 2 and err.startswith(f"rknet compare: error: {words}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "grid").exists()


def test_eval_refuses_tolerances_and_grids_that_mean_nothing(tmp_path, cli, capsys):
    run = trained_run(tmp_path / "run", capsys)
    for args, words in ((["--atol", "1e-3"], "--atol is the absolute tolerance of the adaptive solves --rtol asks"),
                        (["--rtol", "1e-3", "--atol", "inf"], "atol must be a finite number >= 0, got inf"),
                        (["--rtol", "inf"], "rtol must be a finite number >= 0 and < 1, got inf"),
                        (["--rtol", "nan"], "rtol must be a finite number >= 0 and < 1, got nan"),
                        (["--rtol", "2"], "rtol must be a finite number >= 0 and < 1, got 2.0"),
                        (["--steps", "100000000"], "steps asks for 100000000 steps per block; at most 10,000")):
        code, _, err = cli("eval", run, *args)
        assert code == 2 and err.startswith(f"rknet eval: error: {words}") and len(err.splitlines()) == 1, err
    assert not list(run.glob("eval-*"))  # nothing evaluated, nothing written


F, Y0, T = (lambda t, y: -y), torch.ones(2, dtype=torch.float64), torch.tensor([0.0, 1.0])
SOLVER_INPUTS = {  # name -> (call, error type, words)
    "odeint rtol inf": (lambda: rknet.odeint(F, Y0, T, rtol=math.inf), ValueError, "rtol must be a finite number"),
    "odeint atol inf": (lambda: rknet.odeint(F, Y0, T, atol=math.inf), ValueError, "atol must be a finite number"),
    "odeint rtol nan": (lambda: rknet.odeint(F, Y0, T, rtol=math.nan), ValueError, "rtol must be a finite number"),
    "odeint atol tensor inf": (lambda: rknet.odeint(F, Y0, T, atol=torch.tensor([1e-9, math.inf])), ValueError,
                               "atol must hold finite numbers >= 0"),
    "odeint rtol 1": (lambda: rknet.odeint(F, Y0, T, rtol=1.0), ValueError, "rtol must be .* < 1, got 1.0"),
    "odeint step_size inf": (lambda: rknet.odeint(F, Y0, T, method="rk4", options={"step_size": math.inf}),
                             ValueError, r"options\['step_size'\] must be a finite number > 0, got inf"),
    "odeint complex slope": (lambda: rknet.odeint(lambda t, y: 1j * y, Y0, T), TypeError,
                             r"func\(t, y\) returned a complex slope"),
    "integrate complex slope": (lambda: rknet.integrate(lambda t, y: 1j * y, Y0, [0.0, 1.0]), TypeError,
                                r"f\(t, y\) returned a complex slope"),
    "integrate adaptive complex slope": (lambda: rknet.integrate(lambda t, y: 1j * y, Y0, [0.0, 1.0], "dopri5",
                                                                 rtol=1e-6), TypeError, "complex slope"),
    "integrate rtol inf": (lambda: rknet.integrate(F, Y0, [0.0, 1.0], "dopri5", rtol=math.inf), ValueError,
                           "rtol must be a finite number"),
    "integrate atol nan": (lambda: rknet.integrate(F, Y0, [0.0, 1.0], "dopri5", atol=math.nan), ValueError,
                           "atol must be a finite number"),
    "integrate trajectory 'no'": (lambda: rknet.integrate(F, Y0, [0.0, 1.0], trajectory="no"), ValueError,
                                  "trajectory must be true or false, got 'no'"),
    "integrate adjoint 1": (lambda: rknet.integrate(F, Y0, [0.0, 1.0], adjoint=1), ValueError,
                            "adjoint must be true or false, got 1"),
    "NewtonKrylov tol 0.99": (lambda: rknet.NewtonKrylov(tol=0.99), ValueError, r"tol must be .* <= 0.01, got 0.99"),
    "NewtonKrylov tol nan": (lambda: rknet.NewtonKrylov(tol=math.nan), ValueError, "tol must be a finite number"),
}


@pytest.mark.parametrize("name", SOLVER_INPUTS)
def test_solver_arguments_without_meaning_are_refused_in_one_line(name):
    call, error_type, words = SOLVER_INPUTS[name]
    with pytest.raises(error_type, match=words) as error:
        call()
    assert "\n" not in str(error.value) and len(str(error.value)) < 300
