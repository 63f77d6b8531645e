"""Experiment trackers (`--logger wandb|mlflow`): the resolved configuration, every epoch's metrics and the
final summary, on top of metrics.jsonl and TensorBoard. The tracker's package is imported only when it is
chosen, and installed through an extra (`rknet[wandb]`, `rknet[mlflow]`).

Where the records go is the tracker's own business, set by its environment variables: W&B's `WANDB_MODE`
(`offline` writes OUT/wandb/offline-run-*/, for `wandb sync` later), `WANDB_PROJECT` (default `rknet`),
MLflow's `MLFLOW_TRACKING_URI` (default: MLflow's own, `sqlite:///mlflow.db` since MLflow 3, which needs the
sqlalchemy and alembic of `rknet[mlflow]`; without them, as with mlflow-skinny alone in `rknet[dev]`, the run is
refused in one line before it starts: give a server, or a folder with `MLFLOW_ALLOW_FILE_STORE=true`).
Runs of one group (`logger_group`, which
`rknet compare` sets to the comparison's folder name) are a W&B group, and one MLflow experiment.
A resumed run starts a new tracker run and logs the whole history again, as metrics.jsonl is rewritten.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Protocol

TRACKERS = ("wandb", "mlflow")
PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}
DEFAULT_PROJECT = "rknet"


class Tracker(Protocol):
    """What the metrics log asks of a tracker."""

    def log_epoch(self, record: dict[str, Any]) -> None: ...
    def log_summary(self, summary: dict[str, Any]) -> None: ...
    def close(self, finished: bool) -> None: ...


def scalars(record: dict[str, Any]) -> dict[str, int | float]:
    """The finite numbers of `record` (None, text, tables, lists and non-finite values left out)."""
    return {key: value for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def _package(name: str) -> Any:
    try:
        return importlib.import_module(PACKAGES[name])
    except ImportError:
        raise ValueError(f"--logger {name} needs the {PACKAGES[name]} package: pip install 'rknet[{name}]'") \
            from None


def _mlflow_store_ready(mlflow: Any) -> None:
    """MLflow's store must be usable before a run starts: its default since MLflow 3 (sqlite:///mlflow.db),
    and any database URI, needs sqlalchemy and alembic, which the `rknet[mlflow]` extra installs and
    mlflow-skinny alone (as in `rknet[dev]`) lacks; ValueError in one line saying what to do otherwise."""
    uri = mlflow.get_tracking_uri()
    database = uri.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql", "mssql")
    missing = [name for name in ("sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    if database and missing:
        raise ValueError(f"--logger mlflow: the tracking store {uri} needs {' and '.join(missing)} (not installed "
                         "here): pip install 'rknet[mlflow]', or set MLFLOW_TRACKING_URI to a server "
                         "(http://...), or to a folder (file:./mlruns) with MLFLOW_ALLOW_FILE_STORE=true")


def check_tracker(name: str) -> None:
    """Refuse in one line (ValueError), before any run starts, a tracker that cannot start here."""
    if name not in TRACKERS:
        raise ValueError(f"unknown logger {name!r}; valid loggers: {', '.join(TRACKERS)}")
    package = _package(name)
    if name == "mlflow":
        _mlflow_store_ready(package)


class WandbTracker:
    """One W&B run per training run, named after the run folder, its files in OUT/wandb/."""

    def __init__(self, config: dict[str, Any], folder: Path, group: str | None) -> None:
        wandb = _package("wandb")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT), group=group,
                              name=folder.name, dir=str(folder), config=config, job_type="train",
                              settings=wandb.Settings(console="off", silent=True))

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.run.log(scalars(record), step=int(record["epoch"]))

    def log_summary(self, summary: dict[str, Any]) -> None:
        self.run.summary.update(scalars(summary))

    def close(self, finished: bool) -> None:
        self.run.finish(exit_code=0 if finished else 1)


class MlflowTracker:
    """One MLflow run per training run, in the experiment named after the group (else `rknet`); the
    configuration as parameters and as config.json, the summary as metrics and as summary.json."""

    def __init__(self, config: dict[str, Any], folder: Path, group: str | None) -> None:
        self.mlflow = _package("mlflow")
        _mlflow_store_ready(self.mlflow)
        try:
            self.mlflow.set_experiment(group or os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_PROJECT))
            self.run = self.mlflow.start_run(run_name=folder.name,
                                             tags={"group": group or "", "folder": str(folder)})
        except Exception as error:  # MLflow's own exceptions: one line, not its stack
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"--logger mlflow could not start a run at {self.mlflow.get_tracking_uri()}: "
                             f"{first}") from error
        self.mlflow.log_params({key: str(value) for key, value in config.items()})
        self.mlflow.log_dict(config, "config.json")

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_mlflow_names(scalars(record)), step=int(record["epoch"]))

    def log_summary(self, summary: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_mlflow_names({f"summary/{k}": v for k, v in scalars(summary).items()}))
        self.mlflow.log_dict(summary, "summary.json")

    def close(self, finished: bool) -> None:
        self.mlflow.end_run(status="FINISHED" if finished else "FAILED")


def _mlflow_names(values: dict[str, int | float]) -> dict[str, int | float]:
    """MLflow refuses some characters in metric names; gradient norms' module paths keep theirs."""
    return {"".join(c if c.isalnum() or c in "_-./ " else "_" for c in key): value for key, value in values.items()}


def open_tracker(name: str, config: dict[str, Any], folder: Path, group: str | None = None) -> Tracker:
    """The tracker `name` (one of TRACKERS) for the run in `folder`, with `config` logged."""
    check_tracker(name)
    return (WandbTracker if name == "wandb" else MlflowTracker)(config, Path(folder), group)
