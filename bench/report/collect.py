"""Records -> DataFrames.

Two frames come out of a runs directory:

``runs`` (one row per run directory, index-free)
    ``run_id`` (path relative to the runs root), ``path``, ``experiment``,
    ``scale``, ``status`` (running/completed/failed/nan), ``included`` (bool),
    ``superseded`` (bool: an older record of the same config), ``reason``
    (why a run is not included, else ``""``), ``error``, ``config_hash``,
    ``n_seeds``, ``seeds`` (list), ``steps_done``, ``wall_time_s``,
    ``started_at``, ``nan_seeds`` (seeds with a non-finite logged value),
    ``sweep_dir`` (the Hydra sweep directory of the multirun that wrote the record, if any),
    the provenance fields ``git_sha``, ``git_dirty``, ``device``,
    ``device_name``, ``host``, ``cpu_count``, ``torch``, and the flattened
    config (``algorithm.name``, ``env.vocab``, ...).

``tidy`` (long format, one row per logged value)
    ``run_id, experiment, scale, status, seed, step, metric, value`` plus the
    flattened config columns. Values logged as ``null`` (non-finite) are
    kept as NaN. Superseded duplicates are dropped; every other run
    (including failed/NaN/running ones) is kept with its ``status`` so that
    reductions decide what to count.

Nothing here raises on a damaged run directory: :func:`bench.records.read_run`
and :func:`bench.records.read_metrics` already tolerate missing files and
torn lines; a corrupt ``summary.json`` reads as ``running`` and is reported.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import pandas as pd

from bench.records import NON_IDENTITY, SUMMARY, RunRecord, config_hash, find_runs, read_metrics, read_run

ID_COLUMNS = ["run_id", "experiment", "scale", "status", "seed", "step", "metric", "value"]
PROVENANCE_FIELDS = ("git_sha", "git_dirty", "device", "device_name", "host", "cpu_count")


@dataclass
class Collected:
    """The result of :func:`collect`: the tidy frame, the per-run frame and where they came from."""

    tidy: pd.DataFrame
    runs: pd.DataFrame
    root: Path


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b": value}``; lists/tuples become JSON strings (hashable, printable)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value), default=str)
        else:
            flat[name] = value
    return flat


def _timestamp(text: Any) -> Optional[float]:
    """Parse a ``%Y-%m-%dT%H:%M:%S%z`` stamp to epoch seconds; ``None`` if absent/unparsable."""
    if not isinstance(text, str) or not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


def recency(record: RunRecord) -> float:
    """When a run was made: provenance ``started_at``, else summary ``updated_at``, else dir mtime."""
    for stamp in (record.provenance.get("started_at"), record.summary.get("updated_at")):
        t = _timestamp(stamp)
        if t is not None:
            return t
    try:
        return os.path.getmtime(record.path)
    except OSError:
        return 0.0


def exclusion_reason(record: RunRecord) -> str:
    """Why a run's numbers are not used (``""`` for a completed run)."""
    status = record.status
    if status == "completed":
        return ""
    if status == "running":
        summary_file = Path(record.path) / SUMMARY
        if not summary_file.exists():
            return "no summary.json (killed before the first step?)"
        if set(record.summary) == {"status"}:
            return "unreadable summary.json"
        return f"incomplete (status running, {record.summary.get('steps_done', 0)} steps done; killed or still running)"
    error = record.summary.get("error")
    return f"{status}: {error}" if error else status


def run_row(record: RunRecord, root: Path) -> dict[str, Any]:
    """One row of the per-run frame (see module docstring)."""
    config, summary, prov = record.config, record.summary, record.provenance
    rel = Path(record.path).resolve().relative_to(root.resolve()) if _is_under(record.path, root) else Path(record.path)
    seeds = summary.get("seeds")
    if not isinstance(seeds, list):
        run_cfg = config.get("run", {}) if isinstance(config.get("run"), dict) else {}
        n = int(run_cfg.get("seeds", 0) or 0)
        seeds = list(range(int(run_cfg.get("seed0", 0) or 0), int(run_cfg.get("seed0", 0) or 0) + n))
    row = {
        "run_id": rel.as_posix(),
        "path": str(record.path),
        "experiment": str(config.get("experiment", rel.parts[0] if len(rel.parts) > 2 else "")),
        "scale": str(config.get("scale", rel.parts[1] if len(rel.parts) > 2 else "")),
        "status": record.status,
        "error": summary.get("error"),
        "reason": exclusion_reason(record),
        "config_hash": summary.get("config_hash") or config_hash(config),
        "seeds": seeds,
        "n_seeds": len(seeds),
        "steps_done": summary.get("steps_done"),
        "wall_time_s": float(summary.get("wall_time_s") or 0.0),
        "started_at": prov.get("started_at"),
        "recency": recency(record),
        "torch": (prov.get("versions") or {}).get("torch"),
        "sweep_dir": (prov.get("sweep") or {}).get("dir") if isinstance(prov.get("sweep"), dict) else None,
    }
    row.update({k: prov.get(k) for k in PROVENANCE_FIELDS})
    row.update(flatten(config))
    return row


def _is_under(path: Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def mark_duplicates(runs: pd.DataFrame) -> pd.DataFrame:
    """Flag all but one record per ``config_hash`` as ``superseded``.

    The kept record is the most recent *completed* one; if none completed, the
    most recent one of any status (so a lone failure is still reported).
    """
    runs = runs.copy()
    completed_first = runs.assign(_done=runs["status"].eq("completed"))
    keep = completed_first.sort_values(["_done", "recency"], ascending=False).drop_duplicates("config_hash").index
    runs["superseded"] = ~runs.index.isin(keep)
    runs["included"] = runs["status"].eq("completed") & ~runs["superseded"]
    return runs


def metrics_frame(run_id: str, path: Path, metrics: Optional[set[str]] = None) -> pd.DataFrame:
    """Long frame ``run_id, seed, step, metric, value`` of one run's ``metrics.jsonl``.

    A metric absent from a row yields no value; one logged as ``null`` yields NaN.
    """
    records = []
    for row in read_metrics(path):
        step, seed = row.get("step"), row.get("seed", 0)
        if not isinstance(step, (int, float)):
            continue
        for key, value in row.items():
            if key in ("step", "seed") or (metrics is not None and key not in metrics):
                continue
            records.append((int(step), int(seed or 0), key, value if isinstance(value, (int, float)) else None))
    long = pd.DataFrame.from_records(records, columns=["step", "seed", "metric", "value"])
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float)
    long.insert(0, "run_id", run_id)
    return long


def nan_seed_count(long: pd.DataFrame) -> int:
    """Seeds of one run with at least one logged non-finite (null) value."""
    return int(long.loc[long["value"].isna(), "seed"].nunique()) if len(long) else 0


def collect(root: Path, experiment: Optional[str] = None, scale: Optional[str] = None,
            metrics: Optional[Iterable[str]] = None) -> Collected:
    """Read every run directory under ``root`` (optionally only ``root/experiment[/scale]``).

    ``metrics`` limits the tidy frame to those metric names (memory); ``None`` keeps all.
    Runs whose config names another experiment/scale than asked for are skipped.
    """
    root = Path(root)
    base = root / experiment if experiment else root
    if experiment and scale:
        base = base / scale
    wanted = set(metrics) if metrics is not None else None
    rows, longs = [], []
    for path in find_runs(base):
        record = read_run(path)
        if record is None:
            continue
        row = run_row(record, root)
        if (experiment and row["experiment"] != experiment) or (scale and row["scale"] != scale):
            continue
        long = metrics_frame(row["run_id"], path, wanted)
        row["nan_seeds"] = nan_seed_count(long)
        row["last_step"] = int(long["step"].max()) if len(long) else None
        rows.append(row)
        longs.append(long)
    runs = mark_duplicates(pd.DataFrame(rows)) if rows else empty_runs()
    return Collected(tidy_frame(runs, longs), runs, root)


def empty_runs() -> pd.DataFrame:
    """A per-run frame with no rows (the columns the report relies on)."""
    cols = ["run_id", "experiment", "scale", "status", "included", "superseded", "reason", "error",
            "config_hash", "n_seeds", "seeds", "wall_time_s", "nan_seeds", "last_step", "torch", "sweep_dir",
            *PROVENANCE_FIELDS]
    return pd.DataFrame(columns=cols)


_NOT_CONFIG = ("env.matching", *NON_IDENTITY)


def share_matching(tidy: pd.DataFrame) -> pd.DataFrame:
    """Grouped methods (``algorithm.candidates`` other than ``single``) are not changed by
    prompt/interaction matching, so the suite runs them once (see ``bench.run.identity``);
    their rows are repeated under every ``env.matching`` value present in the frame for
    which the same configuration has no run of its own (older records may have both)."""
    if "env.matching" not in tidy or "algorithm.candidates" not in tidy:
        return tidy
    grouped = tidy.loc[tidy["algorithm.candidates"] != "single"]
    values = sorted(tidy["env.matching"].dropna().unique())
    if grouped.empty or len(values) < 2:
        return tidy
    keys = [c for c in tidy.columns if "." in c and not c.startswith(_NOT_CONFIG)]
    per_run = grouped.drop_duplicates("run_id").set_index("run_id")
    signature = per_run[keys].apply(lambda row: "|".join(map(str, row)), axis=1)
    present: dict[str, set] = {}
    for run_id, sig in signature.items():
        present.setdefault(sig, set()).add(per_run.at[run_id, "env.matching"])
    copies = []
    for run_id, rows in grouped.groupby("run_id", observed=True):
        missing = [v for v in values if v not in present[signature[run_id]]]
        copies += [rows.assign(**{"env.matching": v}) for v in missing]
        present[signature[run_id]].update(missing)
    return pd.concat([tidy, *copies], ignore_index=True) if copies else tidy


def tidy_frame(runs: pd.DataFrame, longs: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-run long frames, drop superseded runs, join the flattened config."""
    if not longs or runs.empty:
        return pd.DataFrame(columns=ID_COLUMNS)
    long = pd.concat([f for f in longs if len(f)], ignore_index=True) if any(len(f) for f in longs) else \
        pd.DataFrame(columns=["run_id", "seed", "step", "metric", "value"])
    kept = runs.loc[~runs["superseded"]]
    config_cols = [c for c in kept.columns if "." in c]
    meta = kept[["run_id", "experiment", "scale", "status", *config_cols]]
    tidy = long.merge(meta, on="run_id", how="inner")
    tidy = share_matching(tidy[ID_COLUMNS + config_cols])
    for col in ["run_id", "experiment", "scale", "status", "metric"]:
        tidy[col] = tidy[col].astype("category")
    return tidy.reset_index(drop=True)
