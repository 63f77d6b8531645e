"""Experiment trackers, for real and offline: W&B in offline mode (its transaction log read back with W&B's
own protobuf records) and MLflow with a local file store (read back with its client). Each test skips when
its tracker's package is not installed."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

import rknet
from rknet.compare import CompareSpec, plan
from rknet.training.metrics import MetricsLog, read_metrics

TINY = {"data": "circles", "epochs": 2, "widths": [4, 4], "steps": 1, "batch_size": 256}


def wandb_records(path: Path) -> list:
    """The protobuf records of a W&B transaction log (.wandb): a 7-byte file header, then 32 KiB blocks of
    records, each a 7-byte header (CRC-32, length, kind: 1 full, 2 first, 3 middle, 4 last) and its bytes."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, records, parts = 7, 32768, [], b""
    while position + 7 <= len(data):
        room = block - position % block
        length, kind = struct.unpack("<HB", data[position + 4:position + 7]) if room >= 7 else (0, 0)
        if room < 7 or kind == 0:
            position += room  # block trailer or padding
            continue
        parts += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


@pytest.mark.slow  # W&B
def test_wandb_offline_log_holds_config_every_epoch_and_summary(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = rknet.train(dict(TINY, logger="wandb", logger_group="grid-a", out=str(tmp_path / "run")),
                         log=lambda line: None)
    (log,) = (result.out / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(log)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_group == "grid-a" and run.display_name == "run" and run.project == "rknet"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    saved = json.loads((result.out / "config.json").read_text())
    assert {key: config[key] for key in saved} == saved
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    logged = read_metrics(result.out)
    assert [h["epoch"] for h in history] == [1, 2]
    for epoch, metrics in zip(history, logged):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert epoch[key] == pytest.approx(metrics[key], rel=1e-12), key
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({item.key: json.loads(item.value_json) for item in r.summary.update})
    assert summary["test_acc"] == pytest.approx(result.test_acc) and summary["params"] == result.params


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch):
    """A local MLflow file store (MLflow 3 keeps it in maintenance mode, behind this opt-in)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    return mlflow.MlflowClient()


@pytest.mark.slow  # MLflow
def test_mlflow_file_store_holds_config_every_epoch_and_summary(tmp_path: Path, mlflow_store) -> None:
    result = rknet.train(dict(TINY, logger="mlflow", logger_group="grid-b", out=str(tmp_path / "run")),
                         log=lambda line: None)
    experiment = mlflow_store.get_experiment_by_name("grid-b")
    (run,) = mlflow_store.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run" and run.data.tags["group"] == "grid-b"
    saved = json.loads((result.out / "config.json").read_text())
    assert run.data.params == {key: str(value) for key, value in saved.items()}
    logged = read_metrics(result.out)
    for key in ("train_loss", "val_acc", "lr"):
        history = mlflow_store.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r[key])) for r in logged], key
    assert run.data.metrics["summary/test_acc"] == pytest.approx(result.test_acc)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert json.loads((artifacts / "config.json").read_text()) == saved
    assert json.loads((artifacts / "summary.json").read_text())["test_acc"] == pytest.approx(result.test_acc)


@pytest.mark.slow  # MLflow
def test_resumed_run_logs_its_whole_history_to_a_new_tracker_run(tmp_path: Path, mlflow_store) -> None:
    out = tmp_path / "run"
    rknet.train(dict(TINY, epochs=1, logger="mlflow", out=str(out)), log=lambda line: None)
    rknet.train(resume=out, epochs=2, log=lambda line: None)
    experiment = mlflow_store.get_experiment_by_name("rknet")
    runs = sorted(mlflow_store.search_runs([experiment.experiment_id]), key=lambda run: run.info.start_time)
    assert [run.info.status for run in runs] == ["FINISHED", "FINISHED"]
    steps = [[m.step for m in mlflow_store.get_metric_history(run.info.run_id, "train_loss")] for run in runs]
    assert steps == [[1], [1, 2]]
    assert runs[1].data.params["epochs"] == "2"


@pytest.mark.slow  # MLflow
def test_mlflow_run_closed_before_its_summary_is_failed(tmp_path: Path, mlflow_store) -> None:
    log = MetricsLog(tmp_path, [{"epoch": 1, "train_loss": 0.5}], {"logger": "mlflow", "epochs": 3})
    log.close()  # as when training stops on an error
    (run,) = mlflow_store.search_runs([mlflow_store.get_experiment_by_name("rknet").experiment_id])
    assert run.info.status == "FAILED"
    assert [m.value for m in mlflow_store.get_metric_history(run.info.run_id, "train_loss")] == [0.5]


def test_missing_tracker_package_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    with pytest.raises(ValueError, match=r"--logger wandb needs the wandb package: pip install 'rknet\[wandb\]'"):
        rknet.train(dict(TINY, logger="wandb", out=str(tmp_path / "run")), log=lambda line: None)


def test_compare_groups_its_runs_under_the_comparison_name(tmp_path: Path) -> None:
    options = {"epochs": 1, "logger": "mlflow"}
    _, runs = plan(CompareSpec(out=tmp_path / "grid-c", data="circles", methods=["euler", "heun"], seeds=1,
                               options=options))
    assert [run.config.logger_group for run in runs] == ["grid-c", "grid-c"]
    _, runs = plan(CompareSpec(out=tmp_path / "grid-c", data="circles", seeds=1, options={"epochs": 1}))
    assert runs[0].config.logger is None and runs[0].config.logger_group is None


def test_unknown_logger_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown logger 'neptune'; valid: wandb, mlflow"):
        rknet.TrainConfig(logger="neptune").validate()
