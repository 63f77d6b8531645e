"""Torch threads follow the user, then OMP_NUM_THREADS, then the cores other work leaves free."""

import json
import os
import subprocess
import sys

import pytest
import torch

import rknet
from rknet.common import cpu
from rknet.training import config
from rknet.training.config import TrainConfig


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_explicit_threads_win(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu.use_threads(1) == (1, "--threads") and torch.get_num_threads() == 1


@pytest.mark.slow  # starts a fresh Python (torch reads OMP_NUM_THREADS at start-up)
def test_omp_num_threads_is_respected():
    """In a fresh process started with OMP_NUM_THREADS=1 (torch reads it at start-up), a run keeps torch's one
    thread and says why, where 4 cores (2 of them idle, both faked) would have given it more."""
    probe = ("import torch; from rknet.common import cpu; cpu.cores = lambda: 4; cpu.free_cores = lambda: 2; "
             "print(cpu.use_threads(None), torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(1,", "'OMP_NUM_THREADS')", "1"]


@pytest.mark.parametrize(("idle", "expected"), [(4.0, 4), (2.8, 3), (1.4, 1), (0.1, 1)])
def test_without_a_setting_a_run_takes_the_idle_cores(restore_threads, monkeypatch, idle, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "cores", lambda: 4)
    monkeypatch.setattr(cpu, "idle_cores", lambda: idle)
    torch.set_num_threads(4)  # torch's own default: one per core
    threads, source = cpu.use_threads(None)
    assert threads == expected == torch.get_num_threads() and source == "the idle cores of 4"


@pytest.mark.parametrize(("load", "expected"), [(0.0, 4), (1.2, 3), (9.0, 1)])
def test_without_proc_stat_the_load_average_decides(monkeypatch, load, expected):
    monkeypatch.setattr(cpu, "cores", lambda: 4)
    monkeypatch.setattr(cpu, "idle_cores", lambda: None)
    monkeypatch.setattr(cpu, "load_average", lambda: load)
    assert cpu.free_cores() == expected


def test_idle_cores_sees_a_busy_core(tmp_path, monkeypatch):
    # /proc/stat's first line: user nice system idle iowait irq softirq steal (jiffies of all cores together)
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 0 100 20 0 0 0 0 0\ncpu0 ...\n")
    later = "cpu  150 0 0 140 30 0 0 0 0 0\ncpu0 ...\n"  # 50 busy, 50 idle (40 + 10 waiting for I/O)
    monkeypatch.setattr(cpu, "_PROC_STAT", stat)
    monkeypatch.setattr(cpu.time, "sleep", lambda seconds: stat.write_text(later))
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 2)
    assert cpu.idle_cores() == pytest.approx(1.0)  # half of 2 cores idle: another process keeps one busy
    stat.write_text("not a stat file")
    assert cpu.idle_cores() is None


def test_threads_are_an_option_and_recorded(tmp_path, restore_threads):
    result = rknet.train({"data": "circles", "widths": [2, 2], "steps": 1, "epochs": 1, "threads": 1,
                          "out": str(tmp_path / "run")}, log=lambda line: None)
    assert json.loads((result.out / "summary.json").read_text())["threads"] == 1
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        rknet.train({"threads": 0})


@pytest.mark.parametrize("flags, expected", [("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu avx2 avx512f avx512bw", False)])
def test_bf16_units_are_read_from_the_cpu_flags(tmp_path, monkeypatch, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    monkeypatch.setattr(cpu, "_PROC_CPUINFO", info)
    assert cpu.has_bf16_units() is expected
    monkeypatch.setattr(config, "has_bf16_units", lambda: expected)
    fast = TrainConfig(fast=True, device="cpu").resolved()
    assert fast.compile and fast.channels_last and fast.precision == ("bf16" if expected else "fp32")
    assert TrainConfig(fast=True, device="cuda").resolved().precision == "bf16"


def test_without_cpuinfo_no_bf16_units_are_assumed(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "_PROC_CPUINFO", tmp_path / "missing")
    assert cpu.has_bf16_units() is False


def test_cpu_model_and_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2\n\n"
                    "processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2\n")
    monkeypatch.setattr(cpu, "_PROC_CPUINFO", info)
    assert cpu.cpu_model() == "Some CPU 9000" and cpu.cpu_flags() == {"fpu", "avx2"}
    monkeypatch.setattr(cpu, "_PROC_CPUINFO", tmp_path / "missing")
    assert cpu.cpu_model() and cpu.cpu_flags() == set()
