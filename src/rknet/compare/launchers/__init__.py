"""Launchers: where a grid's runs train. `local` (worker processes here), `slurm` (jobs through submitit),
`ray` (tasks on a Ray cluster); the engines are optional extras, imported only when chosen."""

from __future__ import annotations

from pathlib import Path

from rknet.compare.launchers.base import Launcher, require
from rknet.compare.machine import Threads
from rknet.compare.resources import Resources

ENGINES = {"slurm": "submitit", "ray": "ray"}


def make_launcher(name: str, resources: Resources, workers: int, threads: Threads, out: Path) -> Launcher:
    """The launcher called `name`; a ValueError naming the extra to install when its engine is missing."""
    if name == "local":
        from rknet.compare.launchers.local import LocalLauncher

        return LocalLauncher(workers, threads)
    require(ENGINES[name], name)
    if name == "slurm":
        from rknet.compare.launchers.slurm import SlurmLauncher

        return SlurmLauncher(resources, out / "slurm")
    from rknet.compare.launchers.ray import RayLauncher

    return RayLauncher(resources)


__all__ = ["ENGINES", "Launcher", "make_launcher"]
