import os

import pytest
import torch
from hypothesis import settings

# Fuzz tests draw the same examples on every run (reproducible CI); HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_cli(args, capsys) -> tuple[int, str, str]:
    """`rknet ARGS` in this process: (exit code, stdout, stderr)."""
    from rknet.cli.main import main

    try:
        code = main([str(arg) for arg in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli(capsys):
    """`cli(*args)`: `run_cli` with this test's captured output."""
    return lambda *args: run_cli(args, capsys)

