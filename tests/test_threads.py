"""Torch threads follow the user, then OMP_NUM_THREADS, then the cores other work leaves free."""

import json

import pytest
import torch

import rknet
from rknet import cpu


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_explicit_threads_win(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu.use_threads(1) == (1, "--threads") and torch.get_num_threads() == 1


def test_omp_num_threads_is_respected(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # as torch does at start-up when the variable is set
    assert cpu.use_threads(None) == (1, "OMP_NUM_THREADS")


@pytest.mark.parametrize(("load", "expected"), [(0.0, 4), (1.2, 3), (2.6, 1), (9.0, 1)])
def test_without_a_setting_a_run_takes_the_free_cores(restore_threads, monkeypatch, load, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "cores", lambda: 4)
    monkeypatch.setattr(cpu, "load_average", lambda: load)
    torch.set_num_threads(4)  # torch's own default: one per core
    threads, source = cpu.use_threads(None)
    assert threads == expected == torch.get_num_threads() and source.startswith("free cores of 4")


def test_a_thread_count_set_by_the_calling_process_is_kept(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "cores", lambda: 4)
    torch.set_num_threads(3)  # e.g. a compare worker given 3 threads
    assert cpu.use_threads(None) == (3, "set by the calling process")


def test_threads_are_an_option_and_recorded(tmp_path, restore_threads):
    result = rknet.train({"data": "circles", "widths": [2, 2], "steps": 1, "epochs": 1, "threads": 1,
                          "out": str(tmp_path / "run")}, log=lambda line: None)
    assert json.loads((result.out / "summary.json").read_text())["threads"] == 1
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        rknet.train({"threads": 0})
