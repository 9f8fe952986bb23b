"""Markdown and CSV output with the paper's conventions.

* cells read "mean ± s.e." (s.e. = std ddof 1 / √n; "mean (n=1)" for one seed), or
  "IQM [low, high]" / "mean [low, high]" with a 95 % stratified-bootstrap interval
  (:attr:`TableSpec.cell`), or a step count for steps-to-threshold tables;
* "missing" = an expected run of the experiment's grid has no completed record;
* the best cell of each column is **bold** (lowest when ``lower_is_better``; ties all bold;
  compared at the printed precision);
* "−" = threshold never reached (in published columns also "> bound", see the notes);
* a run that stopped on a non-finite value shows "NaN (k/n seeds)";
* each table carries a provenance header and a "runs not included" note.

The CSV is the numeric ``cells`` frame of :class:`bench.report.tables.Table` (one row per
cell, machine readable), not the formatted strings.
"""
from __future__ import annotations

import math
from datetime import date as _date
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from bench.report.published import method_label
from bench.report.robust import BOOTSTRAP_REPS, BOOTSTRAP_SEED
from bench.report.tables import Table, TableSpec, key_text

NEVER = "−"
SETTING_LABELS = {"env.vocab": "V", "env.horizon": "H", "env.matching": "", "env.eta": "η", "algorithm.eta": "η",
                  "algorithm.epochs": "E", "algorithm.k": "K"}
VALUE_LABELS = {("env.matching", "prompt"): "P", ("env.matching", "interaction"): "I"}


# -- cells -----------------------------------------------------------------------------------
def setting_label(columns: Sequence[str], values: Sequence[object]) -> str:
    """Column header of one setting, e.g. ``("env.matching", "env.horizon"), ("prompt", 7) -> "P H=7"``."""
    parts = []
    for col, val in zip(columns, values):
        text = key_text(val)
        short = SETTING_LABELS.get(col, col.split(".")[-1])
        parts.append(VALUE_LABELS.get((col, text), f"{short}={text}" if short else text))
    return " ".join(parts)


def _isnan(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def format_value(spec: TableSpec, value: float, se: float = math.nan, n: Optional[int] = None) -> str:
    """"12.3 ± 0.4" (value tables) or "58" (steps); se NaN with n == 1 -> "12.3 (n=1)"."""
    if spec.is_steps or not _isnan(se):
        return spec.fmt(value) if spec.is_steps else f"{spec.fmt(value)} ± {spec.fmt(se)}"
    return spec.fmt(value) + (" (n=1)" if n == 1 else "")


MISSING = "missing"


def format_interval(spec: TableSpec, point: float, low: float, high: float, n: Optional[int] = None) -> str:
    """"12.3 [10.1, 14.0]"; one seed -> "12.3 (n=1)"."""
    if n == 1 or _isnan(low) or _isnan(high):
        return spec.fmt(point) + (" (n=1)" if n == 1 else "")
    return f"{spec.fmt(point)} [{spec.fmt(low)}, {spec.fmt(high)}]"


def format_cell(spec: TableSpec, row: pd.Series) -> str:
    """Our cell: numbers (:attr:`TableSpec.cell`), "−" (never reached), "NaN (k/n seeds)",
    "missing" (expected run without a completed record) or "" (no value)."""
    if not _isnan(row.get("value")):
        if spec.cell == "iqm_ci" and not spec.is_steps and not _isnan(row.get("iqm")):
            return format_interval(spec, row["iqm"], row.get("iqm_low"), row.get("iqm_high"), row.get("n"))
        if spec.cell == "mean_ci" and not spec.is_steps and not _isnan(row.get("mean_low")):
            return format_interval(spec, row["value"], row.get("mean_low"), row.get("mean_high"), row.get("n"))
        return format_value(spec, row["value"], row.get("se", math.nan), row.get("n"))
    if bool(row.get("missing")) is True:
        return MISSING
    if bool(row.get("never")):
        return NEVER
    if int(row.get("nan_runs") or 0) > 0:
        return f"NaN ({int(row['nan_seeds'])}/{int(row['nan_of'])} seeds)"
    return ""


def format_published(spec: TableSpec, row: pd.Series) -> str:
    """Published cell: number at the table's precision, "−" for never, "" for none."""
    if bool(row.get("published_never")):
        return NEVER
    value = row.get("published")
    if _isnan(value):
        return ""
    return spec.fmt(value)


def best_mask(spec: TableSpec, cells: pd.DataFrame) -> pd.Series:
    """True for the best cell(s) of each column setting (at printed precision)."""
    mask = pd.Series(False, index=cells.index)
    point = spec.point if spec.point in cells else "value"
    has = cells[~cells[point].isna()]
    if has.empty or spec.rows == "config" or not spec.bold:
        return mask
    groups = has.groupby(list(spec.columns), dropna=False) if spec.columns else [((), has)]
    for _, group in groups:
        rounded = group[point].map(lambda v: float(spec.fmt(v)))
        best = rounded.min() if spec.lower_is_better else rounded.max()
        mask.loc[rounded.index[rounded == best]] = True
    return mask


def wide_table(table: Table) -> pd.DataFrame:
    """Formatted Method × setting table; with published numbers, "paper" and "verdict" columns follow each setting."""
    spec, cells = table.spec, table.cells
    with_paper = bool(spec.published)
    bold = best_mask(spec, cells)
    rows: dict[str, dict[str, str]] = {}
    headers: list[str] = []
    for idx, row in cells.iterrows():
        label = setting_label(spec.columns, [row[c] for c in spec.columns]) if spec.columns else _value_header(spec)
        ours = format_cell(spec, row)
        ours = f"**{ours}**" if bold.loc[idx] else ours
        entry = rows.setdefault(_row_label(spec, row[spec.rows]), {})
        for col in spec.row_labels:
            entry.setdefault(_short(col), key_text(row[col]) if col in row and not _isnan(row[col]) else "")
        entry[label] = ours
        names = [label]
        if with_paper:
            entry[f"{label} paper"] = format_published(spec, row)
            names.append(f"{label} paper")
            if spec.verdicts:
                entry[f"{label} verdict"] = row["verdict"]
                names.append(f"{label} verdict")
        headers += [h for h in names if h not in headers]
    # a setting with no published number anywhere (e.g. a generated dataset) gets no paper/verdict columns
    empty = {h for h in headers if h.endswith((" paper", " verdict")) and not any(v.get(h) for v in rows.values())}
    headers = [h for h in headers if h not in empty]
    first = _first_header(spec)
    labels = [_short(c) for c in spec.row_labels]
    frame = pd.DataFrame([{first: name, **{h: v.get(h, "") for h in [*labels, *headers]}} for name, v in rows.items()],
                         columns=[first, *labels, *headers])
    return frame


def _first_header(spec: TableSpec) -> str:
    return {"algorithm.name": "Method", "config": "Config"}.get(spec.rows, spec.rows)


def _short(col: str) -> str:
    """A config column as a table header (``algorithm.name`` -> ``algorithm``)."""
    return col[:-len(".name")] if col.endswith(".name") else col


def _value_header(spec: TableSpec) -> str:
    if spec.is_steps:
        return f"steps to {spec.threshold * spec.scale:g}{spec.unit}" if spec.unit else f"steps to {spec.threshold:g}"
    return f"{spec.metric} ({spec.unit})" if spec.unit else spec.metric


def _row_label(spec: TableSpec, value: object) -> str:
    return method_label(value) if spec.rows == "algorithm.name" else key_text(value)


def _distinct(values: Sequence[object]) -> list[str]:
    return sorted({str(v) for v in values if not _isnan(v) and v != ""})


def _pivot(spec: TableSpec, cells: pd.DataFrame, text_of) -> pd.DataFrame:
    """One row per table row, one column per setting: ``text_of(cell row)`` in each cell."""
    rows: dict[str, dict[str, str]] = {}
    headers: list[str] = []
    for _, row in cells.iterrows():
        label = setting_label(spec.columns, [row[c] for c in spec.columns]) if spec.columns else _value_header(spec)
        rows.setdefault(_row_label(spec, row[spec.rows]), {})[label] = text_of(row)
        headers += [label] if label not in headers else []
    first = _first_header(spec)
    return pd.DataFrame([{first: k, **{h: v.get(h, "") for h in headers}} for k, v in rows.items()],
                        columns=[first, *headers])


def spread_table(table: Table) -> Optional[pd.DataFrame]:
    """Per-seed spread "min / median / max (k/n < t)" per cell, or ``None`` if the spec shows none."""
    spec, cells = table.spec, table.cells
    if not spec.spread or spec.is_steps or "min" not in cells:
        return None

    def text(row: pd.Series) -> str:
        out = " / ".join(spec.fmt(row[k]) for k in ("min", "median", "max"))
        if spec.spread_threshold is not None:
            out += f" ({int(row['n_below'])}/{int(row['n'])} < {spec.spread_threshold:g})"
        return out

    return _pivot(spec, cells.dropna(subset=["value"]), text)


def gap_table(table: Table) -> Optional[pd.DataFrame]:
    """Optimality gap to the spread threshold with its 95 % bootstrap CI per cell, or ``None``."""
    spec, cells = table.spec, table.cells
    if "gap" not in cells or spec.spread_threshold is None:
        return None
    return _pivot(spec, cells.dropna(subset=["gap"]),
                  lambda row: format_interval(spec, row["gap"], row["gap_low"], row["gap_high"], row.get("n")))


def mean_table(table: Table) -> Optional[pd.DataFrame]:
    """Seed mean ± s.e. per cell for a table whose cells show another statistic and that is
    compared with published (mean) numbers; ``None`` otherwise."""
    spec, cells = table.spec, table.cells
    if spec.cell == "mean_se" or spec.is_steps or not spec.published:
        return None
    return _pivot(spec, cells.dropna(subset=["value"]),
                  lambda row: format_value(spec, row["value"], row.get("se", math.nan), row.get("n")))


def commit_text(runs: pd.DataFrame) -> str:
    """Distinct git SHAs (first 12 hex) with their dirty flag, e.g. "`0123456789ab` (dirty)"."""
    pairs = sorted({(str(s)[:12], d) for s, d in zip(runs["git_sha"], runs["git_dirty"]) if not _isnan(s)},
                   key=lambda p: (p[0], str(p[1])))
    if not pairs:
        return "unknown (no git SHA recorded)"
    state = {True: "dirty", False: "clean"}
    return ", ".join(f"`{sha}` ({state.get(dirty, 'dirty flag unknown')})" for sha, dirty in pairs)


def seeds_text(runs: pd.DataFrame) -> str:
    """Seeds per run and their range, e.g. "3 per run (seeds 0–2)"."""
    counts = _distinct(runs["n_seeds"])
    seeds = sorted({int(s) for lst in runs["seeds"] if isinstance(lst, list) for s in lst})
    if not seeds:
        return "none"
    return f"{'/'.join(counts)} per run (seeds {seeds[0]}–{seeds[-1]})"


def hardware_text(runs: pd.DataFrame) -> str:
    """Distinct "device (device_name, N CPUs)" strings."""
    items = {f"{d} ({n}, {'?' if _isnan(c) else int(c)} CPUs)"
             for d, n, c in zip(runs["device"], runs["device_name"], runs["cpu_count"]) if not _isnan(d)}
    return "; ".join(sorted(items)) or "unknown"


def some_of(names: Sequence[str], limit: int = 12) -> str:
    """``names`` joined by commas, the first ``limit`` only and then "… and k more" (a header line stays
    readable for a large grid; the tables mark every missing cell)."""
    shown = ", ".join(names[:limit])
    return shown + (f", … and {len(names) - limit} more" if len(names) > limit else "")


def provenance_lines(runs: pd.DataFrame, experiment: str, scale: str, command: str,
                     report_date: Optional[str] = None, expected: Optional[int] = None,
                     missing: Sequence[str] = (), differences: Sequence[str] = ()) -> list[str]:
    """The provenance header (Markdown bullet lines) of every table of a report.

    ``expected`` is the number of runs in the experiment's grid (``None``: unknown); ``missing``
    names the expected runs without a completed record; ``differences`` are lines saying where an
    included run's config differs from the experiment file.
    """
    live = runs[~runs["superseded"]] if "superseded" in runs else runs
    inc = live[live["included"]] if len(live) else live
    src = inc if len(inc) else live
    superseded = int(runs["superseded"].sum()) if len(runs) else 0
    wall = float(inc["wall_time_s"].sum()) if len(inc) else 0.0
    counts = f"{len(inc)} included, {len(live) - len(inc)} not included"
    if expected is not None:
        counts = f"{expected - len(missing)} of {expected} expected included, {len(live) - len(inc)} records not included"
    if superseded:
        counts += f", {superseded} superseded duplicate record(s) ignored"
    return [
        f"- command: `{command}`",
        f"- commit: {commit_text(src)}",
        f"- experiment / scale: {experiment} / {scale}",
        f"- seeds: {seeds_text(src)}",
        f"- hardware: {hardware_text(src)}",
        f"- torch: {', '.join(_distinct(src['torch'])) or 'unknown'}",
        f"- report date: {report_date or _date.today().isoformat()}",
        f"- runs: {counts}",
        *([f"- missing: {len(missing)} of {expected} runs: {some_of(missing)}"] if missing else []),
        *[f"- differs from the experiment file: {d}" for d in differences],
        f"- total wall time of included runs: {wall:.1f} s",
    ]


def excluded_lines(runs: pd.DataFrame) -> list[str]:
    """"Runs not included" note: one line per non-completed run with its status and error."""
    live = runs[~runs["superseded"] & ~runs["included"]] if len(runs) else runs
    if live.empty:
        return []
    lines = [f"Runs not included ({len(live)}):", ""]
    for _, r in live.sort_values("run_id").iterrows():
        algo = r.get("algorithm.name")
        who = f" ({method_label(algo)})" if not _isnan(algo) else ""
        lines.append(f"- `{r['run_id']}`{who}: {r['reason']}")
    return lines


def table_notes(table: Table) -> list[str]:
    """Conventions that apply to this table, plus the builder's notes."""
    spec, cells = table.spec, table.cells
    notes = []
    if spec.is_steps:
        notes.append(f"Steps = first logged step whose seed-mean `{spec.metric}` is below {spec.threshold:g}; "
                     f"{NEVER} = never reached.")
    else:
        reading = f"value at step {spec.at_step} (first logged step ≥ {spec.at_step}) of" \
            if spec.reduction == "at_step" else spec.reduction
        what = f"the {reading} `{spec.metric}`{f' (×{spec.scale:g}, {spec.unit})' if spec.scale != 1 or spec.unit else ''}"
        notes.append({
            "mean_se": f"Cells: mean ± s.e. over seeds of {what}; s.e. = std (ddof 1) / √n.",
            "iqm_ci": f"Cells: IQM over seeds of {what} [95% CI]: interquartile mean (middle 50% of seeds), "
                      f"stratified bootstrap (rliable, {BOOTSTRAP_REPS} resamples, seed {BOOTSTRAP_SEED}).",
            "mean_ci": f"Cells: mean over seeds of {what} [95% CI]: stratified bootstrap "
                       f"(rliable, {BOOTSTRAP_REPS} resamples, seed {BOOTSTRAP_SEED}).",
        }[spec.cell])
    if (cells.get("missing", pd.Series(dtype=bool)) == True).any():  # noqa: E712 - object column
        notes.append(f"{MISSING} = an expected run of the experiment's grid has no completed record.")
    if spec.published and (cells["published"].notna().any() or cells["published_never"].any()):
        notes.append(_verdict_note(spec))   # only when some cell shows a published number
    if (cells["nan_runs"] > 0).any():
        notes.append("NaN (k/n seeds): the run stopped on a non-finite value; k of its n seeds logged one "
                     "(k = n when none was logged).")
    return notes + list(spec.notes) + table.notes


def _verdict_note(spec: TableSpec) -> str:
    ref = f"{spec.reference}, " if spec.reference else ""
    if spec.is_steps:
        rule = f"✓ = within {spec.rel_tolerance:.0%} of the paper's step count; better = fewer steps"
    else:
        ours = "our seed mean" if spec.cell == "mean_se" else "our seed mean (the \"Seed mean ± s.e.\" table)"
        rule = (f"✓ = {ours} within max(2·s.e., {spec.tolerance:g}{spec.unit}) of the paper; better/worse otherwise")
    bound = f"; paper {NEVER} = > {spec.never_above:g}{spec.unit}" if spec.never_above is not None else \
        f"; paper {NEVER} = never reached"
    if not spec.verdicts:
        return f"Paper: {ref}`results/published/{spec.published}` (shown beside ours, no verdict)."
    return f"Paper: {ref}`results/published/{spec.published}`. {rule}{bound}."


def render_markdown(table: Table, provenance: Sequence[str], excluded: Sequence[str],
                    claims: Sequence[str] = ()) -> str:
    """One table as Markdown: title, provenance, table, spread, notes, claims, runs not included."""
    spec = table.spec
    parts = [f"## {spec.title}", ""] + ([*provenance, ""] if provenance else [])
    if table.cells.empty:
        parts += [f"_No values of `{spec.metric}` in the included runs._", ""]
    else:
        parts += [to_markdown(wide_table(table)), ""]
    spread = spread_table(table)
    if spread is not None and len(spread):
        parts += ["Per-seed spread (min / median / max, seeds below threshold):", "", to_markdown(spread), ""]
    gaps = gap_table(table)
    if gaps is not None and len(gaps):
        parts += [f"Optimality gap to {spec.spread_threshold:g}{spec.unit} (mean over seeds of the excess "
                  f"{'above' if spec.lower_is_better else 'below'} it, rliable) [95% CI]:", "", to_markdown(gaps), ""]
    means = mean_table(table)
    if means is not None and len(means):
        parts += ["Seed mean ± s.e. (what the paper comparison uses):", "", to_markdown(means), ""]
    parts += [f"- {n}" for n in table_notes(table)] + [""]
    if claims:
        parts += [f"- {c}" for c in claims] + [""]
    if excluded:
        parts += [*excluded, ""]
    return "\n".join(parts)


def to_markdown(frame: pd.DataFrame) -> str:
    """GitHub-style Markdown table; strings are printed verbatim."""
    return frame.to_markdown(index=False, disable_numparse=True, tablefmt="github")


def write_csv(table: Table, path: Path) -> Path:
    """Write the numeric cells frame (plus a ``method`` label column) to ``path``."""
    cells = table.cells.copy()
    cells.insert(0, "method", [_row_label(table.spec, v) for v in cells[table.spec.rows]])
    cells.insert(1, "metric", table.spec.metric)
    cells.insert(2, "reduction", table.spec.reduction)
    path.parent.mkdir(parents=True, exist_ok=True)
    cells.to_csv(path, index=False, float_format="%.6g")
    return path
