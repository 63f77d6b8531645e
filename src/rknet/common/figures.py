"""Matplotlib figures for rknet's plots: imported only when a figure is drawn, saved atomically."""

from __future__ import annotations

import os
from pathlib import Path

DPI = 120
PLOTS_EXTRA = "pip install 'rknet[plots]'"


class PlotsUnavailable(ImportError):
    """matplotlib, the optional dependency of every figure, is not installed."""


def require_matplotlib() -> None:
    """Raise PlotsUnavailable, naming the extra to install, when matplotlib cannot be imported; plotting
    commands call it first, so they refuse before any other work."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as error:
        raise PlotsUnavailable(f"plots need matplotlib, which is not installed: {PLOTS_EXTRA} "
                               "(or pip install matplotlib)") from error


def agg_figure(size: tuple[float, float]):
    """A constrained-layout figure on an Agg canvas (no display needed); PlotsUnavailable naming the fix
    when matplotlib is missing."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Save to a temporary file beside `path`, then rename it over `path`; folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".tmp" + path.suffix)
    figure.savefig(temporary, dpi=dpi)
    temporary.replace(path)
    return path
