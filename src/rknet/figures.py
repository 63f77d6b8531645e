"""Matplotlib figures for rknet's plots: imported only when a figure is drawn, saved atomically."""

from __future__ import annotations

import os
from pathlib import Path

DPI = 120


def agg_figure(size: tuple[float, float]):
    """A constrained-layout figure on an Agg canvas (no display needed); an ImportError naming the fix
    when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("rknet plots need matplotlib, which is not installed: pip install matplotlib "
                          "(or pip install 'rknet[plots]')") from error
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
