"""Learning curves: seed mean ± s.e. band per algorithm, one PNG per table spec.

Facets (one panel each) are the spec's column settings; a steps-to-threshold spec draws
its threshold as a dashed line. Only completed runs are drawn. Matplotlib's Agg backend
is used, so no display is needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report import reduce as R  # noqa: E402
from bench.report.published import method_label  # noqa: E402
from bench.report.render import setting_label  # noqa: E402
from bench.report.tables import TableSpec, _natural, key_text  # noqa: E402


def _facets(curve: pd.DataFrame, spec: TableSpec) -> list[tuple[tuple, pd.DataFrame]]:
    if not spec.columns:
        return [((), curve)]
    groups = [((k if isinstance(k, tuple) else (k,)), g)
              for k, g in curve.groupby(list(spec.columns), observed=True, dropna=False)]
    return sorted(groups, key=lambda kg: tuple(_natural(v) for v in kg[0]))


def _row_rank(spec: TableSpec, name: str) -> tuple:
    order = list(spec.row_order)
    return (order.index(name) if name in order else len(order), name)


def plot_curves(tidy: pd.DataFrame, spec: TableSpec, path: Path, title: Optional[str] = None) -> Optional[Path]:
    """Write the learning-curve PNG of ``spec`` to ``path``; ``None`` (nothing written) without data."""
    present = [c for c in spec.keys if c in tidy]
    if len(present) < len(spec.keys):
        return None
    curve = R.seed_mean_curve(tidy, spec.keys, spec.metric)
    if curve.empty:
        return None
    facets = _facets(curve, spec)
    ncols = min(4, len(facets))
    nrows = int(np.ceil(len(facets) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False, sharey=True)
    for ax, (key, group) in zip(axes.flat, facets):
        _draw_facet(ax, group, spec)
        ax.set_title(setting_label(spec.columns, key) if spec.columns else "", fontsize=9)
    for ax in list(axes.flat)[len(facets):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title or spec.title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_facet(ax, group: pd.DataFrame, spec: TableSpec) -> None:
    """One panel: a line and a ±1 s.e. band per row key (algorithm)."""
    names = sorted({key_text(v) for v in group[spec.rows]}, key=lambda n: _row_rank(spec, n))
    for name in names:
        g = group[group[spec.rows].map(key_text) == name].sort_values("step")
        mean = g["mean"].to_numpy() * spec.scale
        se = np.nan_to_num(g["se"].to_numpy() * spec.scale)
        label = method_label(name) if spec.rows == "algorithm.name" else name
        ax.plot(g["step"], mean, label=label, lw=1.2)
        ax.fill_between(g["step"], mean - se, mean + se, alpha=0.25, lw=0)
    if spec.is_steps and spec.threshold is not None:
        ax.axhline(spec.threshold * spec.scale, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{spec.metric}{f' ({spec.unit})' if spec.unit else ''}")
    if spec.lower_is_better and (group["mean"] > 0).all() and group["mean"].max() / max(group["mean"].min(), 1e-12) > 100:
        ax.set_yscale("log")
