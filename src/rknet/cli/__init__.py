"""The command line: `rknet train | eval | compare | stability | spectrum | trajectories | gradients`."""

from rknet.cli.main import main

__all__ = ["main"]
