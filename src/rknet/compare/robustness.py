"""Each trained network's test accuracy re-discretised at half and at twice its step size (`rknet eval
--steps`, i.e. `rknet.evaluate_run`): whether what a method learned depends on the grid it trained on.

The values are computed once per run and kept in its sidecar OUT/runs/NAME/compare.json, so rewriting a
report does not evaluate again.
"""

from __future__ import annotations

from pathlib import Path

from rknet.compare.runner import read_json
from rknet.io.atomic import write_json
from rknet.io.layout import COMPARE_SIDECAR
from rknet.training.evaluation import evaluate_run

KEY = "step_robustness"


def step_counts(steps: int) -> tuple[int, int | None]:
    """The state steps per block at half the step size (twice the steps) and at twice the step size (half
    the steps; None where the trained count is odd, so no grid of equal steps has twice the step)."""
    return 2 * steps, steps // 2 if steps % 2 == 0 else None


def step_robustness(folder: Path, steps: int, device: str = "auto") -> tuple[float | None, float | None]:
    """Test accuracy of the run in `folder` (trained with `steps` steps per block) at half and at twice its
    step size, read from its sidecar or evaluated there and stored; None where not available."""
    sidecar = read_json(folder / COMPARE_SIDECAR)
    counts = step_counts(steps)
    stored = (sidecar or {}).get(KEY)
    if stored and stored.get("steps") == list(counts):
        return stored["half_step_acc"], stored["twice_step_acc"]
    rows = evaluate_run(folder, steps=[c for c in counts if c is not None], device=device)
    accuracy = {row["steps"]: row["test_acc"] for row in rows}
    half, twice = accuracy.get(counts[0]), None if counts[1] is None else accuracy.get(counts[1])
    if sidecar is not None:
        write_json(folder / COMPARE_SIDECAR, dict(sidecar, **{KEY: {"steps": list(counts), "half_step_acc": half,
                                                                   "twice_step_acc": twice}}))
    return half, twice
