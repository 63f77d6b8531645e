"""Early stopping on validation accuracy (`--patience N`), as Keras' and Lightning's EarlyStopping do.

Training stops once no epoch has improved on the kept model for `patience` epochs, improvement meaning the
`best` rule of `rknet.training.selection` (higher validation accuracy, or the same with a validation loss no
higher); with `--select best` that model is the one tested and saved. The decision
depends only on the epoch and the best epoch, both in the checkpoint, so a resumed run stops where an
uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

PATIENCE = "patience"
EPOCHS = "epochs"


def check_patience(patience: int | None, validation_samples: int) -> None:
    """Patience needs a validation split to watch; a ValueError says how to get one."""
    if patience is not None and not validation_samples:
        raise ValueError(f"--patience {patience} stops on validation accuracy, but this run has no validation "
                         "split; give --val-fraction > 0 (or x_val and y_val in the npz file), or drop --patience")


def patience_exhausted(patience: int | None, epoch: int, best_epoch: int) -> bool:
    """Whether `patience` epochs have passed after epoch `best_epoch` (the best by validation so far)
    without a better one, counting up to `epoch`."""
    return patience is not None and epoch - best_epoch >= patience


def stop_record(patience: int | None, epochs: int, last_epoch: int, best: dict[str, Any]) -> dict[str, Any]:
    """Why and when training ended, for summary.json: `reason` is `patience` (stopped early) or `epochs` (all
    configured epochs ran); `epoch` is the last epoch trained, `best_epoch` the one whose model is kept."""
    record = {"reason": EPOCHS, "epoch": last_epoch, "best_epoch": best["epoch"], "patience": patience}
    if last_epoch < epochs and patience_exhausted(patience, last_epoch, best["epoch"]):
        accuracy = "" if best["val_acc"] is None else f" ({100 * best['val_acc']:.2f}%)"
        record.update(reason=PATIENCE, message=(
            f"stopped early after epoch {last_epoch} of {epochs}: validation accuracy has not improved for "
            f"{patience} epochs since epoch {best['epoch']}{accuracy}, the best by validation"))
    return record
