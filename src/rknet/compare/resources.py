"""Where a grid's runs train (the launcher) and what each run asks a cluster for (its resources).

`local` trains in worker processes on this machine (`--workers`); `slurm` submits each run as a job
through submitit; `ray` sends each run as a task to a Ray cluster. The resources are plain values,
checked here once, so that a bad one stops the command before anything is submitted; each launcher
module turns them into its engine's own parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rknet.common.checks import choice, finite_number, positive_int

LAUNCHERS = ("local", "slurm", "ray")
CLUSTER_LAUNCHERS = ("slurm", "ray")
THREADS_CPUS = "--cpus-per-run"  # where a cluster run's torch threads came from, by default
SUBMITIT_CLUSTERS = ("slurm", "local")  # submitit's local executor: the SLURM path tried on this machine
# Which launchers each resource applies to (the others refuse it rather than ignore it).
APPLIES: dict[str, tuple[str, ...]] = {
    "partition": ("slurm",), "gpus_per_run": CLUSTER_LAUNCHERS, "cpus_per_run": CLUSTER_LAUNCHERS,
    "mem_gb": CLUSTER_LAUNCHERS, "time_limit": ("slurm",), "max_parallel": CLUSTER_LAUNCHERS,
    "retries": CLUSTER_LAUNCHERS, "ray_address": ("ray",), "slurm_options": ("slurm",), "submitit_cluster": ("slurm",),
}


@dataclass(frozen=True)
class Resources:
    """What each run of a cluster grid asks for, and how the grid is spread.

    `gpus_per_run` None: none on SLURM, one on Ray when the cluster has GPUs. `time_limit` in minutes
    (SLURM's --time; a run that reaches it is requeued and resumes from its last checkpoint).
    `max_parallel`: runs at a time (SLURM array parallelism; Ray tasks in flight), None for no limit.
    `retries`: restarts of a run whose worker, node or job was lost (Ray task retries; SLURM requeues
    after the time limit). `ray_address` as `ray.init(address=...)` takes it (None: RAY_ADDRESS, else a
    new local instance). `slurm_options`: further sbatch options, e.g. {"account": "abc", "qos": "long"}.
    `submitit_cluster` "local" sends the jobs to submitit's local executor instead of SLURM: the same jobs,
    checkpointing and requeueing as processes on this machine, to try a grid before submitting it.
    """

    partition: str | None = None
    gpus_per_run: int | None = None
    cpus_per_run: int = 1
    mem_gb: float | None = None
    time_limit: int = 60
    max_parallel: int | None = None
    retries: int = 3
    ray_address: str | None = None
    slurm_options: dict[str, str] = field(default_factory=dict)
    submitit_cluster: str = "slurm"

    @classmethod
    def coerce(cls, values: Resources | dict[str, Any] | None) -> Resources:
        """Checked resources from a Resources or a dict (keys with - or _); ValueError naming a bad value."""
        if isinstance(values, cls):
            values = dataclasses.asdict(values)
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ValueError(f"resources must be a table of resource options, got {values!r}")
        values = {str(key).replace("-", "_"): value for key, value in values.items()}
        unknown = sorted(set(values) - set(APPLIES))
        if unknown:
            raise ValueError(f"unknown resource {unknown[0]!r}; valid: {', '.join(APPLIES)}")
        out = cls(**values)
        optional_int = lambda name, minimum=1: (None if getattr(out, name) is None  # noqa: E731
                                                else positive_int(name, getattr(out, name), minimum))
        return dataclasses.replace(
            out, partition=_text("partition", out.partition), ray_address=_text("ray_address", out.ray_address),
            gpus_per_run=optional_int("gpus_per_run", 0), cpus_per_run=positive_int("cpus_per_run", out.cpus_per_run),
            mem_gb=None if out.mem_gb is None else finite_number("mem_gb", out.mem_gb, 0, strict=True),
            time_limit=positive_int("time_limit", out.time_limit), max_parallel=optional_int("max_parallel"),
            retries=positive_int("retries", out.retries, 0), slurm_options=_options(out.slurm_options),
            submitit_cluster=choice("submitit_cluster", out.submitit_cluster, SUBMITIT_CLUSTERS))

    def given(self) -> dict[str, Any]:
        """The resources that differ from the defaults."""
        default = Resources()
        return {name: getattr(self, name) for name in APPLIES if getattr(self, name) != getattr(default, name)}

    def check(self, launcher: str) -> None:
        """ValueError when a resource is given that `launcher` does not use."""
        choice("launcher", launcher, LAUNCHERS)
        for name in self.given():
            if launcher not in APPLIES[name]:
                raise ValueError(f"{_flag(name)} applies to --launcher {' or '.join(APPLIES[name])}, not {launcher}")

    def flags(self) -> list[str]:
        """The command-line options that give these resources."""
        parts: list[str] = []
        for name, value in self.given().items():
            if name == "slurm_options":
                for key, option in value.items():
                    parts += ["--slurm-option", f"{key}={option}"]
            else:
                parts += [_flag(name), f"{value:g}" if isinstance(value, float) else str(value)]
        return parts


def _flag(name: str) -> str:
    return "--" + ("slurm-option" if name == "slurm_options" else name.replace("_", "-"))


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty name, got {value!r}")
    return value.strip()


def _options(options: Any) -> dict[str, str]:
    """sbatch options as {name: value}, also from the command line's ["account=abc", ...]."""
    if isinstance(options, (list, tuple)):
        pairs = [str(item).partition("=") for item in options]
        if any(not key.strip() or not sep for key, sep, _ in pairs):
            raise ValueError(f"slurm options must be NAME=VALUE, e.g. account=abc, got {list(options)!r}")
        options = {key.strip(): value.strip() for key, _, value in pairs}
    if not isinstance(options, dict) or not all(isinstance(k, str) and k.strip() for k in options):
        raise ValueError(f"slurm options must be a table of sbatch options (account = \"abc\"), got {options!r}")
    return {key.strip().replace("-", "_"): str(value) for key, value in options.items()}
