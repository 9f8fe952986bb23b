"""Figures: learning curves and performance profiles, one PNG per distinct thing plotted.

* ``curves_<metric>.png``: the seed mean ± 1 s.e. of a metric over training steps, one line per
  row key (algorithm), one panel per column setting. Several tables of one metric and grouping
  (e.g. "error at the last step" and "steps to 1 % error") share this one figure; their
  thresholds are drawn as dashed lines.
* ``profile_<metric>.png``: for tables with a per-seed spread threshold (bimodal outcomes), the
  performance profile of the per-seed value: the fraction of seeds better than τ for every τ,
  with 95 % stratified-bootstrap bands (rliable; :mod:`bench.report.robust`).

Only completed runs are drawn. Titles say what is plotted and are wrapped (and shrunk if need
be) so that they lie inside the image. Matplotlib's Agg backend is used: no display needed.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import metrics as M  # noqa: E402
from bench.report import reduce as R  # noqa: E402
from bench.report import robust as RB  # noqa: E402
from bench.report.published import method_label  # noqa: E402
from bench.report.render import setting_label  # noqa: E402
from bench.report.tables import TableSpec, _natural, key_text, per_seed_values  # noqa: E402

TITLE_SIZE = 10
MIN_TITLE_SIZE = 6


def slug(metric: str) -> str:
    """File-name form of a metric: ``train/error`` -> ``train_error``."""
    return metric.replace("/", "_")


def _facets(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not columns:
        return [((), frame)]
    groups = [((k if isinstance(k, tuple) else (k,)), g)
              for k, g in frame.groupby(list(columns), observed=True, dropna=False)]
    return sorted(groups, key=lambda kg: tuple(_natural(v) for v in kg[0]))


def _row_rank(spec: TableSpec, name: str) -> tuple:
    order = list(spec.row_order)
    return (order.index(name) if name in order else len(order), name)


def title_inside(fig, title) -> bool:
    """Whether the rendered bounding box of ``title`` (a Text) lies within the figure."""
    renderer = fig.canvas.get_renderer()
    box, frame = title.get_window_extent(renderer), fig.bbox
    return box.x0 >= frame.x0 - 0.5 and box.x1 <= frame.x1 + 0.5 and box.y0 >= frame.y0 - 0.5 \
        and box.y1 <= frame.y1 + 0.5


def fit_title(fig, text: str, size: float = TITLE_SIZE):
    """Set ``text`` as the figure title, wrapped to the figure width; shrink the font until it fits."""
    title = None
    while size >= MIN_TITLE_SIZE:
        chars = max(16, int(fig.get_figwidth() * 72 / (size * 0.6)))
        title = fig.suptitle("\n".join(textwrap.wrap(text, chars)), fontsize=size)
        fig.canvas.draw()
        if title_inside(fig, title):
            break
        size -= 1
    return title


def _subplots(n: int):
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.5 * ncols, 6.0), 3.2 * nrows + 0.8), squeeze=False,
                             sharey=True, layout="constrained")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, axes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _units(spec: TableSpec) -> str:
    return f" ({spec.unit})" if spec.unit else ""


def curve_title(spec: TableSpec, context: str) -> str:
    """What a curves figure shows, e.g. "tabular_multi (paper): train/error (%) over training steps, ..."."""
    panels = f"; one panel per {', '.join(spec.columns)}" if spec.columns else ""
    return (f"{context}: {spec.metric}{_units(spec)} over training steps, seed mean ± 1 s.e. "
            f"per {'method' if spec.rows == 'algorithm.name' else spec.rows}{panels}")


def plot_curves(tidy: pd.DataFrame, spec: TableSpec, path: Path, title: Optional[str] = None,
                thresholds: Sequence[float] = ()) -> Optional[Path]:
    """Write the learning-curve PNG of ``spec``'s metric and grouping to ``path``; ``None`` (nothing
    written) without data. ``thresholds`` (raw metric units) are drawn as dashed lines."""
    if any(c not in tidy for c in spec.keys):
        return None
    curve = R.seed_mean_curve(tidy, spec.keys, spec.metric)
    if curve.empty:
        return None
    facets = _facets(curve, spec.columns)
    fig, axes = _subplots(len(facets))
    for ax, (key, group) in zip(axes.flat, facets):
        _draw_curves(ax, group, spec, thresholds)
        ax.set_title(setting_label(spec.columns, key) if spec.columns else "", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fit_title(fig, title or curve_title(spec, spec.metric))
    return _save(fig, path)


def _draw_curves(ax, group: pd.DataFrame, spec: TableSpec, thresholds: Sequence[float]) -> None:
    """One panel: a line and a ±1 s.e. band per row key (algorithm)."""
    names = sorted({key_text(v) for v in group[spec.rows]}, key=lambda n: _row_rank(spec, n))
    for name in names:
        g = group[group[spec.rows].map(key_text) == name].sort_values("step")
        mean = g["mean"].to_numpy() * spec.scale
        se = np.nan_to_num(g["se"].to_numpy() * spec.scale)
        label = method_label(name) if spec.rows == "algorithm.name" else name
        ax.plot(g["step"], mean, label=label, lw=1.2)
        ax.fill_between(g["step"], mean - se, mean + se, alpha=0.25, lw=0)
    for t in thresholds:
        ax.axhline(t * spec.scale, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{spec.metric}{_units(spec)}")
    if spec.lower_is_better and (group["mean"] > 0).all() and group["mean"].max() / max(group["mean"].min(), 1e-12) > 100:
        ax.set_yscale("log")


def plot_profile(tidy: pd.DataFrame, spec: TableSpec, path: Path, title: Optional[str] = None,
                 points: int = 31) -> Optional[Path]:
    """Write the performance profile of ``spec``'s per-seed values to ``path`` (``None`` without data):
    per row key, the fraction of seeds below τ (above, if higher is better) for τ across the
    observed range, with its 95 % stratified-bootstrap band."""
    if spec.is_steps or any(c not in tidy for c in spec.keys):
        return None
    per_seed = per_seed_values(tidy, spec)
    if per_seed.empty:
        return None
    per_seed["value"] = per_seed["value"] * spec.scale
    lo, hi = float(per_seed["value"].min()), float(per_seed["value"].max())
    pad = 0.02 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    taus = np.linspace(lo - pad, hi + pad, points)
    facets = _facets(per_seed, spec.columns)
    fig, axes = _subplots(len(facets))
    for ax, (key, group) in zip(axes.flat, facets):
        names = sorted({key_text(v) for v in group[spec.rows]}, key=lambda n: _row_rank(spec, n))
        values = {n: group.loc[group[spec.rows].map(key_text) == n, "value"].to_numpy() for n in names}
        profile = RB.performance_profile(values, taus, spec.lower_is_better)
        for name in names:
            if name not in profile:
                continue
            frac, low, high = profile[name]
            ax.plot(taus, frac, label=method_label(name) if spec.rows == "algorithm.name" else name, lw=1.2,
                    drawstyle="steps-post")
            ax.fill_between(taus, low, high, alpha=0.2, lw=0, step="post")
        if spec.spread_threshold is not None:
            ax.axvline(spec.spread_threshold, ls="--", color="grey", lw=0.8)
        ax.set_title(setting_label(spec.columns, key) if spec.columns else "", fontsize=9)
        ax.set_xlabel(f"τ: {spec.reduction} {spec.metric}{_units(spec)}")
        ax.set_ylabel(f"fraction of seeds {'<' if spec.lower_is_better else '>'} τ")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(fontsize=8)
    fit_title(fig, title or profile_title(spec, spec.metric))
    return _save(fig, path)


def profile_title(spec: TableSpec, context: str) -> str:
    """What a performance-profile figure shows."""
    side = "below" if spec.lower_is_better else "above"
    panels = f"; one panel per {', '.join(spec.columns)}" if spec.columns else ""
    return (f"{context}: performance profile of the {spec.reduction} {spec.metric}{_units(spec)}, fraction of "
            f"seeds {side} τ with 95% stratified-bootstrap band{panels}")


def plot_figures(tidy: pd.DataFrame, specs: Sequence[TableSpec], out_dir: Path, context: str) -> list[Path]:
    """One curves figure per distinct (metric, row key, column keys) among ``specs`` and one
    performance profile per distinct (metric, reduction, keys) of the specs with a spread
    threshold; ``context`` (e.g. ``"tabular_multi (paper)"``) starts every title."""
    paths: list[Path] = []
    curves: dict[tuple, list[TableSpec]] = {}
    for spec in specs:
        curves.setdefault((spec.metric, tuple(spec.keys)), []).append(spec)
    names = {}
    for (metric, keys), group in curves.items():
        name = f"curves_{slug(metric)}"
        if name in names.values():
            name += "_by_" + "_".join(k.split(".")[-1] for k in keys)
        names[(metric, keys)] = name
        thresholds = sorted({s.threshold for s in group if s.threshold is not None})
        spec = group[0]
        png = plot_curves(tidy, spec, out_dir / f"{name}.png", curve_title(spec, context), thresholds)
        paths += [png] if png else []
    profiles: dict[tuple, TableSpec] = {}
    for spec in specs:
        if spec.spread and spec.spread_threshold is not None and not spec.is_steps:
            profiles.setdefault((spec.metric, spec.reduction, tuple(spec.keys)), spec)
    for (metric, reduction, keys), spec in profiles.items():
        name = f"profile_{slug(metric)}" + ("" if reduction == "final" else f"_{reduction}")
        png = plot_profile(tidy, spec, out_dir / f"{name}.png", profile_title(spec, context))
        paths += [png] if png else []
    return paths


@dataclass(frozen=True)
class TradeoffSpec:
    """A figure of one metric against another over training: per row key (method) and column setting, the seed
    means of ``x`` and ``y`` at every step where both are logged, joined in step order (a marker at the last
    step). name: file stem (``<name>.png``); rows / columns: as in :class:`TableSpec` (one panel per column
    setting). E.g. the over-optimisation curve, the proxy-gold gap against KL to the reference policy (Gao,
    Schulman & Hilton 2023, "Scaling Laws for Reward Model Overoptimization", §3)."""

    name: str
    x: str
    y: str
    rows: str = "algorithm.name"
    columns: tuple[str, ...] = ()
    what: str = ""


_OVEROPTIMISATION = dict(name="overoptimisation", x=M.REFINE_KL_REF, y=M.REFINE_GAP,
                         columns=("env.annotations", "env.gate_T"),
                         what="over-optimisation of R_phi: proxy-gold gap E[R_phi(A2)-R_phi(A1)] - E[R*(A2)-R*(A1)] "
                              "against KL(pi_theta || pi_ref) over training, seed means")
FIGURES: dict[str, list[TradeoffSpec]] = {
    "refine_tabular": [TradeoffSpec(**_OVEROPTIMISATION)],
    "refine_sequence": [TradeoffSpec(**_OVEROPTIMISATION)],
    "refine_llm": [TradeoffSpec(**_OVEROPTIMISATION)],
}
"""experiment → its x-y figures beside the learning curves (:func:`plot_tradeoffs`)."""


def plot_tradeoff(tidy: pd.DataFrame, spec: TradeoffSpec, path: Path, title: str) -> Optional[Path]:
    """Write the x-y PNG of ``spec`` to ``path``; ``None`` (nothing written) without data."""
    keys = [spec.rows, *spec.columns]
    if any(c not in tidy for c in keys):
        return None
    xs, ys = R.seed_mean_curve(tidy, keys, spec.x), R.seed_mean_curve(tidy, keys, spec.y)
    joined = xs.merge(ys, on=[*keys, "step"], suffixes=("_x", "_y"))
    if joined.empty:
        return None
    facets = _facets(joined, spec.columns)
    fig, axes = _subplots(len(facets))
    for ax, (key, group) in zip(axes.flat, facets):
        for name in sorted({key_text(v) for v in group[spec.rows]}):
            g = group[group[spec.rows].map(key_text) == name].sort_values("step")
            line, = ax.plot(g["mean_x"], g["mean_y"], lw=1.2, marker=".", ms=3,
                            label=method_label(name) if spec.rows == "algorithm.name" else name)
            ax.plot(g["mean_x"].iloc[-1:], g["mean_y"].iloc[-1:], marker="o", color=line.get_color())
        ax.axhline(0.0, ls="--", color="grey", lw=0.8)
        ax.set_xlabel(spec.x)
        ax.set_ylabel(spec.y)
        ax.set_title(setting_label(spec.columns, key) if spec.columns else "", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fit_title(fig, title)
    return _save(fig, path)


def plot_tradeoffs(tidy: pd.DataFrame, specs: Sequence[TradeoffSpec], out_dir: Path, context: str) -> list[Path]:
    """:func:`plot_tradeoff` of every spec, titled ``"<context>: <what>"``; the paths written."""
    paths = [plot_tradeoff(tidy, s, out_dir / f"{s.name}.png", f"{context}: {s.what or f'{s.y} against {s.x}'}")
             for s in specs]
    return [p for p in paths if p is not None]
