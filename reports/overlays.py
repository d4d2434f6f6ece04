"""Fig. 5: the side network's activation maps over the frames, without and with the SME-Adapter.

Reads what `python -m experiments.run fig5` saved under runs/figures/fig5-<preset>-<key>/: the
clips' centre frames, each row's maps (maps.npz) and the method and box mass per row
(summary.json). For each of the first clips: a row of frames, then one row of overlays per model,
each model's maps scaled to its own range over the clip; the object's box (known on the
synthetic data) is drawn on every panel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reports.charts import save
from reports.grid import FigureRef
from reports.tables import TableView

CLIPS, MAX_FRAMES = 2, 8
BOX = "#39ff14"


def _box(ax, box: np.ndarray) -> None:
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    if not np.isnan(x0) and x1 > x0 and y1 > y0:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=BOX, linewidth=1.0))


def _scaled(maps: np.ndarray) -> np.ndarray:
    low, high = float(maps.min()), float(maps.max())
    return (maps - low) / (high - low) if high > low else np.zeros_like(maps)


def activation_maps(view: TableView, out: Path) -> FigureRef | None:
    """The overlay figure, or None when Fig. 5's maps have not been computed."""
    from matplotlib.figure import Figure

    summary, path = view.extra.get("summary"), view.extra.get("maps")
    if not summary or not isinstance(path, Path) or not path.exists():
        return None
    rows = list(summary.get("rows", {}).items())
    with np.load(path) as data:
        frames, boxes = data["frames"], data["boxes"]
        maps = {name: data[info["array"]] for name, info in rows}
    clips, length = min(CLIPS, len(frames)), frames.shape[1]
    ts = np.unique(np.linspace(0, length - 1, min(MAX_FRAMES, length)).round().astype(int))
    lines = clips * (1 + len(rows))
    fig = Figure(figsize=(1.15 * len(ts) + 1.6, 1.15 * lines + 0.6), dpi=110, layout="constrained")
    axes = np.asarray(fig.subplots(lines, len(ts), squeeze=False))
    for clip in range(clips):
        base = clip * (1 + len(rows))
        scaled = {name: _scaled(m[clip]) for name, m in maps.items()}
        for col, t in enumerate(ts):
            grey = frames[clip, t].mean(axis=-1)
            axes[base, col].imshow(frames[clip, t], interpolation="nearest")
            for k, (name, _) in enumerate(rows, 1):
                ax = axes[base + k, col]
                ax.imshow(grey, cmap="gray", interpolation="nearest")
                ax.imshow(scaled[name][t], cmap="inferno", alpha=0.6, vmin=0, vmax=1, interpolation="bilinear")
            for k in range(1 + len(rows)):
                _box(axes[base + k, col], boxes[clip, t])
            axes[base, col].set_title(f"t={t + 1}", fontsize=8)
        axes[base, 0].set_ylabel(f"clip {clip + 1}\nframes", fontsize=8)
        for k, (name, info) in enumerate(rows, 1):
            axes[base + k, 0].set_ylabel(f"{name}\nbox mass {info.get('box_mass', float('nan')):.3f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(view.title, fontsize=11)
    masses = ", ".join(f"{name} {info.get('box_mass', float('nan')):.3f}" for name, info in rows)
    caption = (
        f"{view.title} (preset {view.preset}). Method: {summary.get('method', 'not recorded')}; each model's "
        f"maps scaled to their range over the clip. Green: the moving object's box. Share of the map inside "
        f"the box, mean over {len(frames)} clips: {masses}."
    )
    return save(fig, out, view.name, caption)
