"""Cell-by-cell comparison of regenerated tables with the committed ones (``results/<experiment>/<scale>/<table>.csv``).

Each cell of a regenerated table is matched to the committed CSV row with the same keys and
classified (both in display units, the seed mean for value tables):

* ``same``: equal at the table's printed precision (and both "never reached" for step counts);
* ``agrees within s.e.``: |ours − committed| ≤ 2·√(s.e.² + s.e.²_committed) (value tables);
  ``agrees within r%``: step counts within the table's relative tolerance;
* ``differs``: otherwise (one reached the threshold and the other did not, or too far apart);
* ``missing here`` / ``not committed``: the cell exists on one side only;
* ``empty on both sides``: a grid cell with no value here and none committed (nothing was compared).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pandas as pd

from bench.report.tables import Table, TableSpec, key_text

SAME, AGREES, DIFFERS, MISSING_HERE, NOT_COMMITTED = "same", "agrees", "differs", "missing here", "not committed"
EMPTY = "empty on both sides"
STATUSES = (SAME, AGREES, DIFFERS, MISSING_HERE, NOT_COMMITTED, EMPTY)


def _num(value: object) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1")


def classify(spec: TableSpec, ours: float, ours_se: float, ours_never: bool,
             committed: float, committed_se: float, committed_never: bool) -> tuple[str, str]:
    """``(status, detail)`` of one cell (see the module docstring); values in display units."""
    ours_has = ours_never or not math.isnan(ours)
    committed_has = committed_never or not math.isnan(committed)
    if not ours_has and not committed_has:
        return EMPTY, ""
    if not ours_has:
        return MISSING_HERE, ""
    if not committed_has:
        return NOT_COMMITTED, ""
    if ours_never or committed_never:
        if ours_never and committed_never:
            return SAME, "never reached"
        return DIFFERS, f"{'−' if ours_never else spec.fmt(ours)} vs {'−' if committed_never else spec.fmt(committed)}"
    if spec.fmt(ours) == spec.fmt(committed):
        return SAME, ""
    detail = f"{spec.fmt(ours)} vs {spec.fmt(committed)}"
    if spec.is_steps:
        if abs(ours - committed) <= spec.rel_tolerance * committed:
            return AGREES, f"within {spec.rel_tolerance:.0%}: {detail}"
        return DIFFERS, detail
    bound = 2 * math.sqrt(sum(0.0 if math.isnan(s) else s * s for s in (ours_se, committed_se)))
    if abs(ours - committed) <= bound:
        return AGREES, f"within s.e.: {detail}"
    return DIFFERS, detail


def compare_table(table: Table, committed_csv: Path) -> Optional[pd.DataFrame]:
    """Our cells beside the committed CSV's: keys, ``ours``, ``ours_se``, ``committed``,
    ``committed_se``, ``status``, ``detail``; ``None`` when the committed CSV does not exist."""
    if not Path(committed_csv).exists():
        return None
    spec = table.spec
    old = pd.read_csv(committed_csv, dtype=str, keep_default_na=False)
    if any(k not in old for k in spec.keys):
        return None
    old_cells = {tuple(key_text(r[k]) for k in spec.keys): r for _, r in old.iterrows()}
    rows, seen = [], set()
    for _, r in table.cells.iterrows():
        key = tuple(key_text(r[k]) for k in spec.keys)
        seen.add(key)
        c = old_cells.get(key)
        committed = (_num(c["value"]), _num(c.get("se")), _truthy(c.get("never"))) if c is not None else \
            (math.nan, math.nan, False)
        status, detail = classify(spec, _num(r["value"]), _num(r.get("se")), bool(r.get("never")), *committed)
        rows.append({**dict(zip(spec.keys, key)), "ours": _num(r["value"]), "ours_se": _num(r.get("se")),
                     "committed": committed[0], "committed_se": committed[1], "status": status, "detail": detail})
    for key, c in old_cells.items():
        if key not in seen:
            rows.append({**dict(zip(spec.keys, key)), "ours": math.nan, "ours_se": math.nan,
                         "committed": _num(c["value"]), "committed_se": _num(c.get("se")), "status": MISSING_HERE,
                         "detail": ""})
    return pd.DataFrame(rows, columns=[*spec.keys, "ours", "ours_se", "committed", "committed_se", "status", "detail"])


def compare_tables(tables: dict[str, Table], committed_dir: Path) -> dict[str, pd.DataFrame]:
    """Table name -> :func:`compare_table` frame, for the tables that have a committed CSV."""
    out = {}
    for name, table in tables.items():
        frame = compare_table(table, Path(committed_dir) / f"{name}.csv")
        if frame is not None:
            out[name] = frame
    return out


def counts(comparisons: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Cells per status over all compared tables."""
    total = {s: 0 for s in STATUSES}
    for frame in comparisons.values():
        for status, n in frame["status"].value_counts().items():
            total[status] += int(n)
    return total


def agrees(comparisons: dict[str, pd.DataFrame]) -> bool:
    """No cell differs and none is missing on either side."""
    c = counts(comparisons)
    return bool(comparisons) and c[DIFFERS] == c[MISSING_HERE] == c[NOT_COMMITTED] == 0


def render_comparison(tables: dict[str, Table], comparisons: dict[str, pd.DataFrame], where: str) -> list[str]:
    """Markdown lines: a summary, then per table either "all N cells the same" or a grid of statuses."""
    from bench.report.render import _row_label, setting_label, to_markdown

    head = f"## Comparison with the committed tables (`{where}`)"
    if not comparisons:
        return [head, "", "_No committed table with the same name and keys to compare with._", ""]
    c = counts(comparisons)
    summary = ", ".join(f"{c[s]} {s}" for s in STATUSES if c[s])
    lines = [head, "", f"{sum(c.values())} cells: {summary}. Rule: same = equal at the printed precision; "
             "agrees = |Δ| ≤ 2·√(s.e.² + s.e.²) of the two seed means (step counts: within the table's "
             "relative tolerance); differs otherwise.", ""]
    for name, frame in comparisons.items():
        spec = tables[name].spec
        if frame["status"].isin((SAME, EMPTY)).all():
            empty = int((frame["status"] == EMPTY).sum())
            what = f"all {len(frame)} cells the same" if not empty else \
                f"{len(frame) - empty} cells the same, {empty} empty on both sides"
            lines += [f"- `{name}`: {what}", ""]
            continue
        rows: dict[str, dict[str, str]] = {}
        headers: list[str] = []
        for _, r in frame.iterrows():
            label = setting_label(spec.columns, [r[k] for k in spec.columns]) if spec.columns else spec.metric
            text = r["status"] + (f" ({r['detail']})" if r["detail"] else "")
            rows.setdefault(_row_label(spec, r[spec.rows]), {})[label] = text
            headers += [label] if label not in headers else []
        grid = pd.DataFrame([{"Method": k, **{h: v.get(h, "") for h in headers}} for k, v in rows.items()],
                            columns=["Method", *headers])
        lines += [f"`{name}` ({spec.title}):", "", to_markdown(grid), ""]
    return lines
