"""A comparison grid: methods x layers x steps x control grids x widths x seeds on one data set.

`CompareSpec` says what to vary and which other training options to use; `plan` expands it into one
`Run` per (setting, seed), each a complete, validated `TrainConfig` with its own folder
`OUT/runs/<setting name>-seed<k>`. Nothing is trained here and nothing is written.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rknet.common import limits
from rknet.compare.axes import baseline, fixed_options, names, positive_ints, seeds, sequence, widths_lists
from rknet.compare.resources import LAUNCHERS, Resources
from rknet.data.datasets import parse_data_spec
from rknet.io.layout import CHECKPOINT, CONFIG, RUNS, SUMMARY
from rknet.methods.registry import is_tableau_file
from rknet.network.spec import DEFAULTS
from rknet.training.config import TrainConfig
from rknet.training.trainer import resolve_device


@dataclass(frozen=True)
class Setting:
    """One point of the grid (everything but the seed)."""

    method: str
    layer: str
    steps: int
    control_steps: int | None
    widths: tuple[int, ...]

    @property
    def name(self) -> str:
        """Folder-friendly name, e.g. `heun-double-steps4-controls2-w16-32-64-64`."""
        controls = "" if self.control_steps is None else f"-controls{self.control_steps}"
        return f"{self.method_label}-{self.layer}-steps{self.steps}{controls}-w{widths_text(self.widths)}"

    @property
    def method_label(self) -> str:
        return method_label(self.method)

    @property
    def controls_text(self) -> str:
        return "state grid" if self.control_steps is None else str(self.control_steps)

    @property
    def steps_phrase(self) -> str:
        return plural(self.steps, "step")

    @property
    def controls_phrase(self) -> str:
        return "controls on states" if self.control_steps is None else plural(self.control_steps, "control step")


@dataclass
class Run:
    """One training run of the grid: a setting, a seed, its configuration and its folder."""

    setting: Setting
    seed: int
    config: TrainConfig
    folder: Path

    @property
    def name(self) -> str:
        return f"{self.setting.name}-seed{self.seed}"

    @property
    def state(self) -> str:
        """`complete` (summary.json exists), `interrupted` (a checkpoint but no summary) or `new`."""
        if (self.folder / SUMMARY).is_file():
            return "complete"
        if (self.folder / CHECKPOINT).is_file():
            return "interrupted"
        return "new"


@dataclass
class CompareSpec:
    """What `run_grid` trains: every combination of the axis values, for every seed, on `data`.

    `control_steps` values of None put the controls on the state grid. `seeds` is a count n (seeds
    0 .. n-1) or explicit seeds. `options` holds any other TrainConfig options (epochs, lr,
    batch_size, norm, ...), the same for every run. `workers` runs that many trainings at a time, each
    with `threads` torch threads (None: OMP_NUM_THREADS if set, else the cores shared out). `launcher`
    says where runs train (`local`, `slurm`, `ray`); `resources` what each run asks a cluster for
    (a `Resources` or a dict of its fields; cluster launchers only). `baseline`: a method of `methods`
    that every other method is compared with, seed by seed (paired differences; needs at least 2 seeds).
    """

    out: str | Path
    data: str = TrainConfig.data
    methods: Sequence[str] = (DEFAULTS.method_name,)
    layers: Sequence[str] = (DEFAULTS.layer,)
    steps: Sequence[int] = (DEFAULTS.num_steps,)
    control_steps: Sequence[int | None] = (None,)
    widths: Sequence[Sequence[int]] = (DEFAULTS.widths,)
    seeds: int | Sequence[int] = 2
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    threads: int | None = None
    launcher: str = "local"
    resources: Resources | dict[str, Any] = field(default_factory=Resources)
    baseline: str | None = None

    @classmethod
    def coerce(cls, spec: CompareSpec | dict[str, Any]) -> CompareSpec:
        """A normalised copy: lists without repeats, names in lower case; ValueError for bad shapes."""
        if isinstance(spec, dict):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(spec) - known)
            if unknown:
                raise ValueError(f"unknown compare option {unknown[0]!r}; valid: {', '.join(sorted(known))}")
            spec = cls(**spec)
        if not isinstance(spec, cls):
            raise TypeError(f"expected a CompareSpec or a dict, got {type(spec).__name__}")
        if spec.out is None or str(spec.out) == "":
            raise ValueError("out must name the output folder of the comparison")
        if not isinstance(spec.data, str) or not spec.data.strip():
            raise ValueError(f"data must be a data set name, got {spec.data!r}")
        launcher = spec.launcher.strip().lower() if isinstance(spec.launcher, str) else spec.launcher
        if launcher not in LAUNCHERS:
            raise ValueError(f"unknown launcher {spec.launcher!r}; valid: {', '.join(LAUNCHERS)}")
        resources = Resources.coerce(spec.resources)
        resources.check(launcher)
        if launcher != "local" and spec.workers != 1:
            raise ValueError(f"workers applies to --launcher local; with {launcher}, limit the runs at a time "
                             "with --max-parallel")
        methods = names("methods", spec.methods, keep_case=is_tableau_file)
        spec = dataclasses.replace(
            spec,
            out=Path(spec.out),
            data=spec.data.strip(),
            methods=methods,
            layers=names("layers", spec.layers),
            steps=list(dict.fromkeys(positive_ints("steps", s) for s in sequence("steps", spec.steps))),
            control_steps=list(dict.fromkeys(None if c is None else positive_ints("control_steps", c)
                                             for c in sequence("control_steps", spec.control_steps))),
            widths=list(dict.fromkeys(widths_lists(spec.widths))),
            seeds=seeds(spec.seeds),
            options=fixed_options(spec.options),
            workers=positive_ints("workers", spec.workers),
            threads=None if spec.threads is None else limits.THREADS.check("threads",
                                                                           positive_ints("threads", spec.threads)),
            launcher=launcher,
            resources=resources,
        )
        seed_count = spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds)
        limits.RUNS.check("the grid", seed_count * len(spec.methods) * len(spec.layers) * len(spec.steps)
                   * len(spec.control_steps) * len(spec.widths))
        spec.baseline = baseline(spec.baseline, spec.methods, seed_count, is_tableau_file)
        return spec

    @property
    def baseline_label(self) -> str | None:
        """The baseline as tables and legends name it (a tableau file by its name)."""
        return None if self.baseline is None else method_label(self.baseline)

    def settings(self) -> list[Setting]:
        """Every grid point; the method varies fastest, so rows of one layer and grid sit together."""
        return [Setting(method, layer, steps, controls, tuple(widths)) for layer, widths, steps, controls, method
                in itertools.product(self.layers, self.widths, self.steps, self.control_steps, self.methods)]

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["out"] = str(self.out)
        return json.loads(json.dumps(values))

    def command(self) -> str:
        """The `rknet compare` command line that trains this grid."""
        parts = ["rknet", "compare", "--data", self.data, "--methods", ",".join(self.methods),
                 "--layers", ",".join(self.layers), "--steps", ",".join(map(str, self.steps))]
        if list(self.control_steps) != [None]:
            parts += ["--control-steps", ",".join("state" if c is None else str(c) for c in self.control_steps)]
        for widths in self.widths:
            parts += ["--widths", ",".join(map(str, widths))]
        seeds = self.seed_list()
        explicit = ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")  # "5," is seed 5, "5" a count
        parts += ["--seeds", str(len(seeds)) if seeds == list(range(len(seeds))) else explicit]
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, (list, tuple)):
                parts += [flag, ",".join(map(str, value))]
            elif value is not None:
                parts += [flag, str(value)]
        if self.workers != 1:
            parts += ["--workers", str(self.workers)]
        if self.threads is not None:
            parts += ["--threads", str(self.threads)]
        if self.baseline is not None:
            parts += ["--baseline", self.baseline]
        if self.launcher != "local":
            parts += ["--launcher", self.launcher, *Resources.coerce(self.resources).flags()]
        parts += ["--out", str(self.out)]
        return shlex.join(parts)


def method_label(method: str) -> str:
    """A method as folders, tables and legends name it: its name, or a tableau file's name without folder and
    suffix (`heun3` for `tableaus/heun3.toml`)."""
    return Path(method).stem if is_tableau_file(method) else method


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def widths_text(widths: Sequence[int]) -> str:
    return "-".join(str(w) for w in widths)


def varying_phrases(settings: Sequence[Setting]) -> Callable[[Setting], list[str]]:
    """A setting's phrases for the axes other than method and layer that take several values in `settings`
    (steps, control grid, widths): what tells settings of one method and layer apart."""
    phrases: list[Callable[[Setting], str]] = []
    if len({s.steps for s in settings}) > 1:
        phrases.append(lambda s: s.steps_phrase)
    if len({s.control_steps for s in settings}) > 1:
        phrases.append(lambda s: s.controls_phrase)
    if len({s.widths for s in settings}) > 1:
        phrases.append(lambda s: "widths " + widths_text(s.widths))
    return lambda setting: [phrase(setting) for phrase in phrases]


def plan(spec: CompareSpec | dict[str, Any]) -> tuple[CompareSpec, list[Run]]:
    """The normalised spec and its runs (seed-major order), every configuration validated.

    Raises ValueError naming the first bad value, or a run folder that holds a run with other options,
    before anything is trained. The device is checked here only for the local launcher (a cluster's
    device is not this machine's).
    """
    spec = CompareSpec.coerce(spec)
    check_data(spec.data)
    runs = []
    for seed in spec.seed_list():
        for setting in spec.settings():
            options = dict(spec.options, data=spec.data, method=setting.method, layer=setting.layer,
                           steps=setting.steps, control_steps=setting.control_steps,
                           widths=list(setting.widths), seed=seed)
            if options.get("logger") and not options.get("logger_group"):  # the grid's runs, grouped
                options["logger_group"] = Path(spec.out).resolve().name
            folder = run_folder(spec.out, setting, seed)
            runs.append(Run(setting, seed, TrainConfig.from_dict(dict(options, out=str(folder))).validate(),
                            folder))
    if spec.launcher == "local":
        resolve_device(runs[0].config.device)
    for run in runs:
        check_existing(run)
    return spec, runs


def run_folder(out: str | Path, setting: Setting, seed: int) -> Path:
    """OUT/runs/<setting name>-seed<k>: where one run of a grid writes."""
    return Path(out) / RUNS / f"{setting.name}-seed{seed}"


def check_data(data: str) -> None:
    """The data set name is known and a file source's path exists (the data are read by each run)."""
    _, path = parse_data_spec(data)
    if path is not None and not Path(path).expanduser().exists():
        raise ValueError(f"data path {path} does not exist")


def check_existing(run: Run) -> None:
    """A folder that holds a run to reuse (complete or resumable) must hold one with the same options."""
    if run.state == "new" or not (run.folder / CONFIG).is_file():
        return
    try:
        saved = json.loads((run.folder / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{run.folder / CONFIG} is unreadable ({error}); delete {run.folder} to retrain it") \
            from error
    wanted = json.loads(json.dumps(run.config.resolved().to_dict()))  # as `train` saves it
    for key in sorted(set(saved) | set(wanted)):
        if key not in ("out", "logger", "logger_group") and saved.get(key) != wanted.get(key):  # not results
            raise ValueError(f"{run.folder} holds a run with other options ({key} {saved.get(key)!r} there, "
                             f"{wanted.get(key)!r} now); use another --out or delete that folder")
