"""The paper's qualitative claims as data, and the few generic checks that evaluate them.

Claims live in ``results/published/claims.csv`` (beside the published numbers), one per line::

    experiment, claim, text, kind, table, metric, across, subjects, versus, settings, threshold, source

* ``experiment``: ``conf/experiment/<name>.yaml``; ``claim``: an id unique within the experiment;
  ``text``: the paper's claim in one short sentence; ``source``: where the paper makes it
  (e.g. "TPO paper §3.4, Table 1").
* ``table``: a table of ``TABLES[experiment]`` (:mod:`bench.report.tables`); several tables
  separated by ``|`` (the claim must hold in each); ``metric``: each table's metric, in the same order.
* ``across``: the cell key whose values are compared (default ``algorithm.name``: methods;
  e.g. ``algorithm.eta`` to compare temperatures). ``subjects``: the values of ``across`` the claim
  is about (``|``-separated, e.g. ``tpo|dg``); ``versus``: the values they are compared with
  (empty: every other value in the same group of cells); for ``closest``, the one reference.
* ``settings``: which cells count, ``key=v1|v2`` joined by ``;`` (e.g. ``env.matching=prompt``);
  empty: all. The cells are grouped by the table's keys other than ``across`` ("at each H"); the
  claim must hold in every group.
* ``threshold``: the bound of ``below``/``above`` (display units of the table, e.g. % or steps) or
  the fraction of ``decays``/``persists``.

Kinds (:data:`KINDS`): ``lowest`` / ``highest`` (each subject below / above every compared
cell), ``ordering`` (every subject below every ``versus`` cell: ``a < b``), ``closest`` (each
subject nearer the reference than every other cell), ``below`` / ``above`` (each subject's value
against ``threshold``), ``decays`` / ``persists`` (per seed, the metric's mean over the last 10 %
of its logged steps divided by its peak over all steps, below / above ``threshold``).

Verdicts (:data:`VERDICTS`). Each claim reduces to comparisons "x < y" of two numbers with standard
errors (a threshold has s.e. 0; a step count has none, taken as 0; "never reached" is +∞, and a
subject that never reaches a threshold does not reach it first). With d = y − x and
s = √(s.e.ₓ² + s.e.ᵧ²), one comparison is

* ``missing``: a cell has no value (no completed record at this scale or setting, or the run
  stopped on NaN);
* ``not enough seeds``: a cell has fewer than 2 seeds, or |d| ≤ s with s > 0 (the difference is
  within the combined s.e.);
* ``holds``: d > s; ``fails``: d < −s, or d = 0 with s = 0 (a tie).

A claim is ``fails`` if any comparison fails, else ``missing`` if any is missing (or there is no
cell to compare at all), else ``not enough seeds`` if any is, else ``holds``.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from bench.report import published as P
from bench.report import reduce as R
from bench.report.published import method_label
from bench.report.tables import Table, TableSpec, key_text

CLAIMS_FILE = "claims.csv"
COLUMNS = ("experiment", "claim", "text", "kind", "table", "metric", "across", "subjects", "versus", "settings",
           "threshold", "source")
KINDS = ("lowest", "highest", "ordering", "closest", "below", "above", "decays", "persists")
"""The checkable forms of a claim (see the module docstring)."""
HOLDS, FAILS, NOT_ENOUGH_SEEDS, MISSING = "holds", "fails", "not enough seeds", "missing"
VERDICTS = (HOLDS, FAILS, NOT_ENOUGH_SEEDS, MISSING)
"""Claim verdicts, in the order a claim's comparisons are combined (:func:`combine`)."""
DEFAULT_ACROSS = "algorithm.name"
END_FRACTION = 0.1
"""``decays``/``persists``: the end of a curve is the mean over its last 10 % of logged steps (at least one)."""
_NEEDS_THRESHOLD = ("below", "above", "decays", "persists")
_NEEDS_VERSUS = ("ordering", "closest")


class ClaimsError(ValueError):
    """A line of the claims file is not valid; the message names the line, field and allowed values."""


@dataclass(frozen=True)
class Claim:
    """One line of the claims file, parsed (fields as in the module docstring)."""

    experiment: str
    id: str
    text: str
    kind: str
    tables: tuple[str, ...]
    metrics: tuple[str, ...]
    across: str
    subjects: tuple[str, ...]
    versus: tuple[str, ...] = ()
    settings: tuple[tuple[str, tuple[str, ...]], ...] = ()
    threshold: Optional[float] = None
    source: str = ""

    @property
    def line(self) -> str:
        """The claim as printed in a report: "Claim (source): text"."""
        return f"Claim ({self.source}): {self.text}" if self.source else f"Claim: {self.text}"


class ClaimCheck(str):
    """One checked claim: the printed line (a ``str``) with its parts as attributes.

    ``claim`` (:class:`Claim`), ``text`` (:attr:`Claim.line`), ``status`` (one of :data:`VERDICTS`),
    ``reason`` (for a claim that does not hold: the deciding comparison), ``numbers`` (the cells
    behind it), ``detail`` (reason and numbers, as printed).
    """

    claim: Claim
    text: str
    status: str
    reason: str
    numbers: str
    detail: str

    def __new__(cls, claim: Claim, status: str, reason: str, numbers: str) -> "ClaimCheck":
        detail = "; ".join(p for p in (reason, numbers) if p)
        line = super().__new__(cls, f"{claim.line} — {status}" + (f" ({detail})" if detail else ""))
        line.claim, line.text, line.status = claim, claim.line, status
        line.reason, line.numbers, line.detail = reason, numbers, detail
        return line


# -- the file -----------------------------------------------------------------------------------
def _split(text: str, sep: str = "|") -> tuple[str, ...]:
    return tuple(p.strip() for p in str(text or "").split(sep) if p.strip())


def _settings(text: str, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for part in _split(text, ";"):
        key, eq, values = part.partition("=")
        if not eq or not key.strip() or not _split(values):
            raise ClaimsError(f"{where}: settings={text!r}; expected key=v1|v2 joined by ';' "
                              "(e.g. env.matching=prompt)")
        out.append((key.strip(), tuple(key_text(v) for v in _split(values))))
    return tuple(out)


def parse_claim(row: Mapping[str, str], where: str) -> Claim:
    """One claims-file row -> :class:`Claim`; raises :class:`ClaimsError` naming ``where``, the field and
    the allowed values."""
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ClaimsError(f"{where}: missing columns {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    kind = str(row["kind"]).strip()
    if kind not in KINDS:
        raise ClaimsError(f"{where}: kind={kind!r}; valid: {', '.join(KINDS)}")
    for field in ("experiment", "claim", "text", "table", "metric", "subjects"):
        if not str(row[field] or "").strip():
            raise ClaimsError(f"{where}: {field} is empty")
    tables, metrics = _split(row["table"]), _split(row["metric"])
    if len(tables) != len(metrics):
        raise ClaimsError(f"{where}: table names {len(tables)} tables but metric names {len(metrics)}; "
                          "one metric per table")
    versus = _split(row["versus"])
    if kind in _NEEDS_VERSUS and not versus:
        what = "reference" if kind == "closest" else "cells"
        raise ClaimsError(f"{where}: kind {kind!r} needs versus (the compared {what})")
    if kind == "closest" and len(versus) != 1:
        raise ClaimsError(f"{where}: versus={row['versus']!r}; 'closest' takes exactly one reference")
    threshold = None
    if str(row["threshold"] or "").strip():
        try:
            threshold = float(row["threshold"])
        except ValueError:
            raise ClaimsError(f"{where}: threshold={row['threshold']!r}; expected a number") from None
    if kind in _NEEDS_THRESHOLD and threshold is None:
        raise ClaimsError(f"{where}: kind {kind!r} needs a threshold")
    if kind in ("decays", "persists") and not 0.0 < threshold <= 1.0:
        raise ClaimsError(f"{where}: threshold={threshold:g}; a fraction of the peak in (0, 1] for {kind!r}")
    return Claim(experiment=row["experiment"].strip(), id=row["claim"].strip(), text=row["text"].strip(), kind=kind,
                 tables=tables, metrics=metrics, across=str(row["across"] or "").strip() or DEFAULT_ACROSS,
                 subjects=tuple(key_text(s) for s in _split(row["subjects"])),
                 versus=tuple(key_text(v) for v in versus), settings=_settings(row["settings"], where),
                 threshold=threshold, source=str(row["source"] or "").strip())


def load_claims(root: Optional[Path] = None) -> list[Claim]:
    """Every claim of ``<root>/claims.csv`` (default root: ``results/published``); ``[]`` when the
    file does not exist. Raises :class:`ClaimsError` for an invalid line or a repeated id."""
    path = Path(root or P.PUBLISHED_DIR) / CLAIMS_FILE
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    claims, seen = [], set()
    for i, row in enumerate(rows, start=2):
        claim = parse_claim(row, f"{path}:{i}")
        if (claim.experiment, claim.id) in seen:
            raise ClaimsError(f"{path}:{i}: claim={claim.id!r} repeats an id of experiment {claim.experiment!r}")
        seen.add((claim.experiment, claim.id))
        claims.append(claim)
    return claims


# -- one comparison ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Value:
    """A number to compare: ``value`` (display units; +∞ = never reached), ``se`` (NaN: none),
    ``n`` seeds, ``label`` for the detail, ``ok`` (False: no value)."""

    label: str
    value: float = math.nan
    se: float = math.nan
    n: int = 0
    ok: bool = True
    text: str = ""

    @staticmethod
    def bound(threshold: float, label: str = "") -> "Value":
        return Value(label or f"{threshold:g}", float(threshold), 0.0, 10 ** 9, True, f"{threshold:g}")


def less(x: Value, y: Value) -> str:
    """The verdict of "x < y" (module docstring)."""
    if not (x.ok and y.ok):
        return MISSING
    if min(x.n, y.n) < 2:
        return NOT_ENOUGH_SEEDS
    if math.isinf(x.value) and math.isinf(y.value) and x.value == y.value:
        return FAILS                                    # both never reached: a tie
    d = y.value - x.value
    s = math.sqrt(sum(0.0 if math.isnan(e) else e * e for e in (x.se, y.se)))
    if d > s:
        return HOLDS
    if d < -s or s == 0.0:
        return FAILS
    return NOT_ENOUGH_SEEDS


def combine(verdicts: Iterable[str]) -> str:
    """``fails`` > ``missing`` > ``not enough seeds`` > ``holds``; no comparison at all is ``missing``."""
    found = set(verdicts)
    for verdict in (FAILS, MISSING, NOT_ENOUGH_SEEDS):
        if verdict in found:
            return verdict
    return HOLDS if found else MISSING


# -- cells of a table ---------------------------------------------------------------------------------
def _isnan(x: object) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def cell_value(spec: TableSpec, row: pd.Series, label: str) -> Value:
    """A table cell as a :class:`Value` (step counts: "never" = +∞, no s.e.)."""
    n = 0 if _isnan(row.get("n")) else int(row.get("n"))
    if spec.is_steps and bool(row.get("never")) and not bool(row.get("missing")):
        return Value(label, math.inf, math.nan, n, True, f"− (n={n})")
    value = row.get("value")
    if _isnan(value) or bool(row.get("missing")):
        why = "missing" if bool(row.get("missing")) or not int(row.get("nan_runs") or 0) else "NaN"
        return Value(label, ok=False, text=why)
    se = math.nan if _isnan(row.get("se")) else float(row["se"])
    text = spec.fmt(value) + ("" if math.isnan(se) else f" ± {spec.fmt(se)}") + f" (n={n})"
    return Value(label, float(value), se, n, True, text)


def _matches(row: pd.Series, settings: Sequence[tuple[str, tuple[str, ...]]]) -> bool:
    return all(key in row and key_text(row[key]) in values for key, values in settings)


def _label(key: str, value: str) -> str:
    return method_label(value) if key == DEFAULT_ACROSS else f"{key.split('.')[-1]}={value}"


def _group_label(keys: Sequence[str], values: Sequence[object]) -> str:
    from bench.report.render import setting_label
    named = [(k, v) for k, v in zip(keys, values) if k != DEFAULT_ACROSS]
    text = setting_label([k for k, _ in named], [v for _, v in named])
    methods = [method_label(key_text(v)) for k, v in zip(keys, values) if k == DEFAULT_ACROSS]
    return " ".join([*methods, text]).strip()


def _groups(claim: Claim, table: Table) -> Optional[list[tuple[str, dict[str, Value]]]]:
    """(group label, across value -> Value) per group of cells; ``None`` when ``across`` is not a key."""
    spec = table.spec
    if claim.across not in spec.keys:
        return None
    cells = table.cells
    if len(cells):
        cells = cells[[_matches(r, claim.settings) for _, r in cells.iterrows()]]
    rest = [k for k in spec.keys if k != claim.across]
    out = []
    groups = cells.groupby([cells[k].map(key_text) for k in rest], sort=False, dropna=False) if rest and len(cells) \
        else ([((), cells)] if len(cells) else [])
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = {key_text(r[claim.across]): cell_value(spec, r, _label(claim.across, key_text(r[claim.across])))
                  for _, r in group.iterrows()}
        out.append((_group_label(rest, key), values))
    return out


def _compare_cells(claim: Claim, values: dict[str, Value]) -> list[tuple[str, Value, Value]]:
    """The comparisons (verdict, x, y) meaning "x < y" of one group."""
    subjects = [values.get(s, Value(_label(claim.across, s), ok=False, text="missing")) for s in claim.subjects]
    if claim.kind in ("below", "above"):
        bound = Value.bound(claim.threshold)
        pairs = [(s, bound) if claim.kind == "below" else (bound, s) for s in subjects]
    elif claim.kind == "closest":
        ref_name = claim.versus[0]
        ref = values.get(ref_name, Value(_label(claim.across, ref_name), ok=False, text="missing"))
        others = [v for k, v in values.items() if k != ref_name and k not in claim.subjects]
        if not others:
            return [(MISSING, s, ref) for s in subjects]
        pairs = []
        for s in subjects:
            for o in others:
                ok = s.ok and o.ok and ref.ok
                gap = (lambda v: abs(v.value - ref.value) if ok else math.nan)
                pairs.append((Value(f"|{s.label} − {ref.label}|", gap(s), s.se, min(s.n, ref.n), ok),
                              Value(f"|{o.label} − {ref.label}|", gap(o), o.se, min(o.n, ref.n), ok)))
    else:
        names = claim.versus or tuple(k for k in values if k not in claim.subjects)
        versus = [values.get(v, Value(_label(claim.across, v), ok=False, text="missing")) for v in names]
        if not versus:
            return [(MISSING, s, Value("another cell", ok=False)) for s in subjects]
        pairs = [(s, v) if claim.kind in ("lowest", "ordering") else (v, s) for s in subjects for v in versus]
    return [(less(x, y), x, y) for x, y in pairs]


def _reason(verdict: str, x: Value, y: Value, where: str) -> str:
    at = f" at {where}" if where else ""
    if verdict == MISSING:
        gone = [v.label for v in (x, y) if not v.ok]
        return f"no value for {', '.join(gone)}{at}"
    if verdict == NOT_ENOUGH_SEEDS and min(x.n, y.n) < 2:
        return f"fewer than 2 seeds{at}"
    relation = {FAILS: "not below", NOT_ENOUGH_SEEDS: "within the combined s.e. of"}.get(verdict, "below")
    return f"{x.label} {relation} {y.label}{at}"


def _cells_text(values: dict[str, Value], wanted: Sequence[str]) -> str:
    return ", ".join(f"{v.label} {v.text}" for k, v in values.items() if not wanted or k in wanted)


def check_table_claim(claim: Claim, table: Optional[Table]) -> tuple[str, str, str]:
    """(verdict, reason, numbers) of a cell-comparing claim (every kind but ``decays``/``persists``) on one table."""
    if table is None:
        return MISSING, "table not built", ""
    groups = _groups(claim, table)
    if groups is None:
        return MISSING, f"`{claim.across}` is not a key of table {table.spec.name}", ""
    if not groups:
        where = "; ".join(f"{k}={'|'.join(v)}" for k, v in claim.settings)
        return MISSING, "no cells" + (f" at {where}" if where else ""), ""
    verdicts, parts, reason = [], [], ""
    shown = () if claim.kind in ("lowest", "highest", "closest") or not claim.versus else \
        (*claim.subjects, *claim.versus)
    if claim.kind in ("below", "above"):
        shown = claim.subjects
    for where, values in groups:
        found = _compare_cells(claim, values)
        verdicts += [v for v, _, _ in found]
        parts.append((f"{where}: " if where else "") + _cells_text(values, shown))
        group_verdict = combine(v for v, _, _ in found)
        if not reason and group_verdict != HOLDS:
            reason = next(_reason(v, x, y, where) for v, x, y in found if v == group_verdict)
    verdict = combine(verdicts)
    return verdict, reason if verdict != HOLDS else "", "; ".join(parts)


# -- decays / persists --------------------------------------------------------------------------------
def end_to_peak(tidy: pd.DataFrame, spec: TableSpec, claim: Claim) -> pd.DataFrame:
    """``keys + [run_id, seed, value]``: per seed, the mean of the last :data:`END_FRACTION` of
    ``spec.metric``'s logged values divided by its maximum (seeds whose peak is ≤ 0 are left out)."""
    keys = list(spec.keys)
    rows = R.usable(tidy, spec.metric) if len(tidy) and "metric" in tidy else pd.DataFrame()
    if rows.empty or any(k not in rows for k in keys):
        return pd.DataFrame(columns=[*keys, *R.SEED, "value"])
    for key, values in claim.settings:
        rows = rows[rows[key].map(key_text).isin(values)] if key in rows else rows.iloc[0:0]
    out = []
    for key, group in rows.sort_values("step").groupby([*keys, *R.SEED], observed=True, sort=True):
        values = group["value"].to_numpy(dtype=float)
        peak = float(values.max())
        tail = values[-max(1, math.ceil(END_FRACTION * len(values))):]
        if peak > 0:
            out.append({**dict(zip([*keys, *R.SEED], key)), "value": float(np.mean(tail)) / peak})
    return pd.DataFrame(out, columns=[*keys, *R.SEED, "value"])


def check_curve_claim(claim: Claim, spec: Optional[TableSpec], tidy: Optional[pd.DataFrame]) -> tuple[str, str, str]:
    """(verdict, reason, numbers) of a ``decays``/``persists`` claim: the per-seed end/peak ratio's
    mean ± s.e. against ``threshold`` (below it: decays; above it: persists)."""
    if spec is None:
        return MISSING, "table not built", ""
    if claim.across not in spec.keys:
        return MISSING, f"`{claim.across}` is not a key of table {spec.name}", ""
    ratios = end_to_peak(tidy if tidy is not None else pd.DataFrame(), spec, claim)
    stats = R.mean_se(ratios, spec.keys) if len(ratios) else pd.DataFrame(columns=[*spec.keys, "mean", "se", "n"])
    bound = Value.bound(claim.threshold)
    verdicts, parts, reason = [], [], ""
    for subject in claim.subjects:
        rows = stats[stats[claim.across].map(key_text) == subject] if len(stats) else stats
        label = _label(claim.across, subject)
        if rows.empty:
            verdicts.append(MISSING)
            reason = reason or f"no values of `{spec.metric}` for {label}"
            continue
        for _, r in rows.iterrows():
            v = Value(f"{label} end/peak", float(r["mean"]), float(r["se"]), int(r["n"]))
            x, y = (v, bound) if claim.kind == "decays" else (bound, v)
            verdicts.append(less(x, y))
            if verdicts[-1] != HOLDS and not reason:
                reason = _reason(verdicts[-1], x, y, "")
            se = "" if math.isnan(v.se) else f" ± {v.se:.2g}"
            parts.append(f"{label}: end/peak {v.value:.3g}{se} (n={v.n})")
    verdict = combine(verdicts)
    return verdict, reason if verdict != HOLDS else "", "; ".join(parts)


# -- a claim, an experiment ----------------------------------------------------------------------------
def check_claim(claim: Claim, tables: Mapping[str, Table], tidy: Optional[pd.DataFrame] = None) -> ClaimCheck:
    """Evaluate one claim on an experiment's built tables (``tidy``: its records, for ``decays``/``persists``)."""
    verdicts, reasons, numbers = [], [], []
    for name in claim.tables:
        table = tables.get(name)
        if claim.kind in ("decays", "persists"):
            verdict, reason, nums = check_curve_claim(claim, table.spec if table else None, tidy)
        else:
            verdict, reason, nums = check_table_claim(claim, table)
        prefix = f"{name}: " if len(claim.tables) > 1 else ""
        verdicts.append(verdict)
        reasons += [(verdict, prefix + reason)] if reason else []
        numbers += [prefix + nums] if nums else []
    status = combine(verdicts)
    reason = next((r for v, r in reasons if v == status), "") if status != HOLDS else ""
    return ClaimCheck(claim, status, reason, " | ".join(numbers))


def check_claims(experiment: str, tables: Mapping[str, Table], tidy: Optional[pd.DataFrame] = None,
                 claims: Optional[Sequence[Claim]] = None) -> list[ClaimCheck]:
    """Every claim of ``experiment`` (``claims`` default: :func:`load_claims`), checked in file order."""
    claims = load_claims() if claims is None else claims
    return [check_claim(c, tables, tidy) for c in claims if c.experiment == experiment]
