"""``build_report``: records of one experiment -> tables, figures and a Markdown report.

Where it writes: always to an output directory that git ignores, by default beside the records,
``<runs_root>/<experiment>/<scale>/report/`` (ad-hoc sweeps: ``<runs_root>/adhoc/<scale>/report/<sweep>/``)::

    <table>.md          one table with its provenance header, notes, claims, runs not included
    <table>.csv         the table's numeric cells (machine readable)
    curves_<metric>.png learning curves (seed mean ± s.e.), one per distinct metric and grouping
    profile_<metric>.png performance profile (tables with a per-seed spread threshold)
    report.md           every table under one provenance header, plus the comparison with the
                        committed tables (the returned text)

The committed tables in ``<results_root>/<experiment>/<scale>/`` are only written with
``publish=True``; a table from an incomplete grid does not replace a committed one unless
``force=True``. The report always knows the experiment's expected grid (:mod:`bench.report.grid`):
missing runs are marked in the tables and named in the header.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from bench.report import render
from bench.report.claims import ClaimCheck, check_claims, load_claims
from bench.report.collect import Collected, collect
from bench.report.compare import compare_tables, render_comparison
from bench.report.figures import FIGURES, TradeoffSpec, plot_figures, plot_tradeoffs
from bench.report.grid import ExpectedRun, GridError, differences, expected_grid, is_shared_matching, matches
from bench.report.published import load_published, method_label, published_for
from bench.report.tables import ADHOC_ROW, TABLES, Table, adhoc_specs, build_table, key_text, specs_for

ADHOC = "adhoc"
"""The experiment name of runs made without ``experiment=`` (:class:`bench.schema.BenchConfig`)."""
JOB_RUN_FILE = "bench_run.json"
"""Written into each Hydra job directory of a sweep: the identity hash of the run the job used."""


class ReportError(RuntimeError):
    """A report cannot be built (no runs, ambiguous scale); the message says what to do."""


class NoRunsError(ReportError, FileNotFoundError):
    """No run directories where the report looked."""


@dataclass
class ReportResult:
    """What :func:`build_report` produced.

    ``out_dir``: where the files were written; ``expected``: the grid (``None`` when unknown);
    ``missing``: labels of expected runs without a completed record; ``differences``: one line per
    grid point whose record differs from the experiment file (e.g. ``run.steps: 20 (experiment file:
    1000)``); ``comparisons``: table name
    -> cell-by-cell comparison with the committed table (:mod:`bench.report.compare`);
    ``published``: whether ``results/`` was written; ``publish_note``: what happened on publish;
    ``published_root``: where the published numbers and claims were read from (``None``: the default).
    """

    experiment: str
    scale: str
    markdown: str
    paths: list[Path] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    claims: list[ClaimCheck] = field(default_factory=list)
    runs: Optional[pd.DataFrame] = None
    out_dir: Optional[Path] = None
    expected: Optional[list[ExpectedRun]] = None
    missing: list[str] = field(default_factory=list)
    comparisons: dict[str, pd.DataFrame] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    published: bool = False
    publish_note: str = ""
    published_root: Optional[Path] = None

    @property
    def complete(self) -> bool:
        """Every expected run has a completed record (true when the grid is unknown)."""
        return not self.missing


def _root_options(runs_root: Optional[Path]) -> tuple[str, str]:
    """(`` --runs DIR``, `` run.root=DIR``) for a runs root other than the default ``runs/`` of the working
    directory, so that a suggested command reads and writes the same records; ("", "") otherwise."""
    if runs_root is None or Path(runs_root).resolve() == Path("runs").resolve():
        return "", ""
    return f" --runs {runs_root}", f" run.root={runs_root}"


def _no_runs(where: Path, experiment: str, scale: Optional[str] = None,
             runs_root: Optional[Path] = None) -> NoRunsError:
    root = _root_options(runs_root)[1]
    hint = f"bench -m algorithm=...{root} (an ad-hoc sweep)" if experiment == ADHOC else \
        f"bench experiment={experiment}" + (f" scale={scale}" if scale else "") + root
    return NoRunsError(f"no runs of experiment '{experiment}' in {where}; produce them with: {hint}")


def _off_grid(sel: Selection, runs_root: Path, experiment: str, scale: str) -> NoRunsError:
    """No record at any point of the expected grid, only runs off it: say so (and how to show them,
    ``sel.off_grid_shows``) rather than write an all-missing table over a report."""
    hints = sorted(set(sel.off_grid_shows))
    show = f"; to show them: {' or '.join(hints)}" if hints else ""
    return NoRunsError(f"no run of the expected grid of '{experiment}' ({scale}) in {runs_root / experiment / scale}: "
                       f"its {len(sel.runs)} records are not grid points{show}; run the grid with: bench "
                       f"experiment={experiment} scale={scale}{_root_options(runs_root)[1]}")


def resolve_scale(runs_root: Path, experiment: str, scale: Optional[str]) -> str:
    """The scale to report: the given one, else the only scale directory holding runs."""
    exp_dir = Path(runs_root) / experiment
    if scale:
        return scale
    scales = sorted(p.name for p in exp_dir.iterdir() if p.is_dir() and any(p.rglob("config.yaml"))) \
        if exp_dir.is_dir() else []
    if not scales:
        raise _no_runs(exp_dir, experiment, runs_root=runs_root)
    if len(scales) > 1:
        raise ReportError(f"runs of '{experiment}' exist at several scales ({', '.join(scales)}) in {exp_dir}; "
                          "pick one with --scale")
    return scales[0]


def _needed_metrics(experiment: str) -> Optional[set[str]]:
    specs = TABLES.get(experiment)
    return {s.metric for s in specs} if specs else None


def default_out_dir(runs_root: Path, experiment: str, scale: str, sweep: Optional[Path] = None) -> Path:
    """``<runs_root>/<experiment>/<scale>/report`` (ad-hoc sweep: ``.../report/<sweep dir name>``)."""
    out = Path(runs_root) / experiment / scale / "report"
    if sweep is not None:
        parts = Path(sweep).resolve().parts
        out = out / "_".join(parts[-2:])
    return out


# -- selecting the runs of a table -----------------------------------------------------------
@dataclass
class Selection:
    """The runs a report uses: ``runs`` (every record, with ``included``/``reason`` updated),
    ``table_runs`` (those the tables are built from), ``tidy`` (their values), ``missing``
    (labels), ``missing_configs`` (flattened configs of the missing runs), ``differences``,
    ``off_grid_shows`` (the ``bench-report --set`` commands that show completed records off the grid)."""

    runs: pd.DataFrame
    table_runs: pd.DataFrame
    tidy: pd.DataFrame
    missing: list[str] = field(default_factory=list)
    missing_configs: list[dict] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    off_grid_shows: list[str] = field(default_factory=list)


def _row_dict(row: pd.Series) -> dict:
    return {k: v for k, v in row.items() if "." in str(k)}


def select_grid(data: Collected, grid: Sequence[ExpectedRun], experiment: str, scale: str,
                runs_root: Optional[Path] = None) -> Selection:
    """Match records to grid points (:func:`bench.report.grid.matches`).

    At each grid point the completed configuration closest to the experiment file is used (fewest
    differing identity-relevant values, then the most recent); every other record is left out with
    a reason: a different configuration of the same grid point, or not a grid point at all (with the
    ``bench-report --set`` command that shows a completed one; ``runs_root``, when not the default, goes into it).
    """
    runs = data.runs.copy()
    live = runs[~runs["superseded"]]
    axes = sorted({k for e in grid for k in e.coords})
    used: set[str] = set()          # the completed record chosen at each grid point
    unfinished: set[str] = set()    # records of grid points that have no completed one (NaN cells)
    at_point: set[str] = set()
    missing, missing_configs, diffs, shows = [], [], [], []
    for expected in grid:
        here = [r for _, r in live.iterrows() if matches(_row_dict(r), expected)]
        at_point.update(r["run_id"] for r in here)
        done = [r for r in here if r["included"]]
        if not done:
            missing.append(expected.label)
            missing_configs.append(dict(expected.config))
            unfinished.update(r["run_id"] for r in here)
            continue
        diff_of = {r["run_id"]: differences(expected.config, _row_dict(r), is_shared_matching(_row_dict(r)))
                   for r in done}
        done.sort(key=lambda r: (len(diff_of[r["run_id"]]), -float(r["recency"])))
        best = done[0]["run_id"]
        used.add(best)
        if diff_of[best]:
            diffs.append(f"{expected.label}: {'; '.join(diff_of[best])}")
        for other in done[1:]:
            if other["run_id"] not in used:
                runs.loc[runs["run_id"] == other["run_id"], "reason"] = (
                    f"another configuration of {expected.label} (differs from the experiment file in: "
                    f"{'; '.join(diff_of[other['run_id']]) or 'nothing'}); a closer or newer record is used")
    for idx, row in live.iterrows():
        if row["run_id"] in used:
            continue
        if row["run_id"] not in at_point:
            where = ", ".join(f"{k}={row.get(k)}" for k in axes)
            off = [f"--set {k.removesuffix('.name')}={key_text(row.get(k))}" for k in axes
                   if key_text(row.get(k)) not in {e.coords.get(k) for e in grid}]
            show = f"bench-report {experiment} --scale {scale}{_root_options(runs_root)[0]} {' '.join(off)}"
            hint = ""
            if off and row["included"]:   # a completed record at an axis value the grid lacks
                hint = f"; to show it: {show}"
                shows.append(show)
            runs.loc[idx, "reason"] = f"not a grid point of {experiment}/{scale} ({where}){hint}" + (
                f"; {row['reason']}" if row["reason"] else "")
        runs.loc[idx, "included"] = False
    table_runs = runs[runs["run_id"].isin(used | unfinished) & ~runs["superseded"]]
    tidy = data.tidy[data.tidy["run_id"].isin(table_runs["run_id"])]
    return Selection(runs, table_runs, tidy, missing, missing_configs, diffs, shows)


def sweep_members(sweep: Path, runs: pd.DataFrame) -> set[str]:
    """Run ids of the runs a Hydra sweep used: records it wrote (``provenance.json`` ``sweep``) and
    records its jobs reused (``<sweep>/<job>/bench_run.json``: the identity hash)."""
    sweep = Path(sweep).resolve()
    hashes = set()
    for path in sweep.glob(f"*/{JOB_RUN_FILE}"):
        try:
            hashes.add(json.loads(path.read_text(encoding="utf-8"))["config_hash"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    own = runs["sweep_dir"].map(lambda d: isinstance(d, str) and Path(d) == sweep) if "sweep_dir" in runs else False
    return set(runs.loc[own | runs["config_hash"].isin(hashes), "run_id"])


def select_adhoc(data: Collected, sweep: Optional[Path]) -> Selection:
    """Ad-hoc runs (of one sweep, when given): one table row per configuration (identity hash)."""
    runs = data.runs
    if sweep is not None:
        runs = runs[runs["run_id"].isin(sweep_members(sweep, runs))]
    live = runs[~runs["superseded"]] if len(runs) else runs
    tidy = data.tidy[data.tidy["run_id"].isin(live["run_id"])]
    config_of = dict(zip(live["run_id"], live["config_hash"]))
    tidy = tidy.assign(**{ADHOC_ROW: tidy["run_id"].map(config_of).astype(object)})
    tidy = tidy.drop_duplicates(["run_id", "seed", "step", "metric"])  # no copies under other matching values
    return Selection(runs, live.assign(**{ADHOC_ROW: live["config_hash"]}), tidy)


# -- the report ------------------------------------------------------------------------------
def build_report(experiment: str, scale: Optional[str], runs_root: Path, results_root: Path,
                 command: Optional[str] = None, *, report_date: Optional[str] = None,
                 published_root: Optional[Path] = None, figures: bool = True, out_dir: Optional[Path] = None,
                 publish: bool = False, force: bool = False, overrides: Sequence[str] = (),
                 expected: Optional[Sequence[ExpectedRun]] = None, sweep: Optional[Path] = None,
                 compare: bool = True) -> ReportResult:
    """Build every table of ``experiment`` from ``runs_root/<experiment>/<scale>`` and write them.

    ``out_dir`` (default :func:`default_out_dir`) receives the files; ``publish`` also writes them
    to ``results_root/<experiment>/<scale>/`` unless the grid is incomplete and a committed table
    is there (then only with ``force``). ``overrides`` are extra command-line overrides used to
    compose the expected grid (e.g. ``run.seeds=30``); ``expected`` replaces the composed grid.
    ``sweep`` (a Hydra sweep directory) limits an ad-hoc report to that sweep's runs. ``compare``
    appends a cell-by-cell comparison with the committed table when one exists. ``command`` and
    ``report_date`` (ISO date) go into the provenance header; ``published_root`` overrides where
    the published CSVs are read from. Raises :class:`NoRunsError` when there are no runs, or none at a point of
    the expected grid (nothing is written then).
    """
    runs_root, results_root = Path(runs_root), Path(results_root)
    scale = resolve_scale(runs_root, experiment, scale)
    data = collect(runs_root, experiment, scale, metrics=_needed_metrics(experiment))
    if data.runs.empty:
        raise _no_runs(runs_root / experiment / scale, experiment, scale, runs_root)
    command = command or f"bench-report {experiment} --scale {scale}"
    notes: list[str] = []
    if experiment == ADHOC:
        sel = select_adhoc(data, sweep)
        if sel.table_runs.empty:
            raise _no_runs(Path(sweep) if sweep else runs_root / experiment / scale, experiment, scale, runs_root)
        specs = adhoc_specs(sel.tidy, sel.table_runs)
        grid = None
    else:
        grid = list(expected) if expected is not None else _grid_or_note(experiment, scale, overrides, notes)
        if grid:
            sel = select_grid(data, grid, experiment, scale, runs_root)
            if sel.table_runs.empty:
                raise _off_grid(sel, runs_root, experiment, scale)
        else:
            sel = Selection(data.runs, data.runs, data.tidy)
        specs = specs_for(experiment, sel.tidy, sel.table_runs)
    tables = {s.name: build_table(sel.tidy, s, sel.table_runs, published_root, sel.missing_configs) for s in specs}
    claims = check_claims(experiment, tables, sel.tidy, load_claims(published_root))
    provenance = render.provenance_lines(sel.runs if experiment != ADHOC else sel.table_runs, experiment, scale,
                                         command, report_date, len(grid) if grid else None, sel.missing,
                                         sel.differences)
    provenance += [f"- {n}" for n in notes]
    if sweep is not None:
        provenance.insert(3, f"- sweep: `{sweep}`")
    excluded = render.excluded_lines(sel.runs)
    out_dir = Path(out_dir) if out_dir else default_out_dir(runs_root, experiment, scale, sweep)
    committed_dir = results_root / experiment / scale
    comparisons = compare_tables(tables, committed_dir) if compare and experiment != ADHOC else {}
    context = f"{experiment} ({scale})"
    body = _combined(experiment, scale, tables, provenance, excluded, claims)
    markdown = body
    if comparisons:
        markdown += "\n" + "\n".join(render_comparison(tables, comparisons, _shown(committed_dir))).rstrip("\n") + "\n"
    paths = _write(tables, sel.tidy, out_dir, provenance, excluded, claims, figures, context, markdown,
                   FIGURES.get(experiment, ()))
    result = ReportResult(experiment, scale, markdown, paths, tables, claims, sel.runs, out_dir, grid, sel.missing,
                          comparisons, differences=list(sel.differences), published_root=published_root)
    if publish:
        _publish(result, committed_dir, force, lambda d: _write(tables, sel.tidy, d, provenance, excluded, claims,
                                                                figures, context, body, FIGURES.get(experiment, ())))
    return result


def _grid_or_note(experiment: str, scale: str, overrides: Sequence[str], notes: list[str]) -> Optional[list]:
    try:
        return expected_grid(experiment, scale, overrides)
    except GridError as exc:
        notes.append(f"{exc}; missing runs are not detected.")
        return None


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def _publish(result: ReportResult, committed_dir: Path, force: bool, write) -> None:
    """Write the tables into ``results/`` unless an incomplete grid, or runs whose settings differ from the
    experiment file (e.g. fewer steps), would replace a committed table (``force`` overrides both)."""
    if result.experiment == ADHOC:
        result.publish_note = "not published: ad-hoc sweeps have no committed table (results/ holds experiments)"
        return
    committed = committed_dir.is_dir() and any(committed_dir.glob("*.csv"))
    if result.missing and committed and not force:
        result.publish_note = (
            f"not published: {len(result.missing)} of {len(result.expected or [])} expected runs are missing "
            f"({render.some_of(result.missing)}); {_shown(committed_dir)} keeps its committed tables. Finish the sweep "
            f"(bench experiment={result.experiment} scale={result.scale}) or pass --force.")
        return
    if result.differences and committed and not force:
        result.publish_note = (
            f"not published: {len(result.differences)} runs differ from the experiment file "
            f"({'; '.join(result.differences[:3])}{'; …' if len(result.differences) > 3 else ''}); "
            f"{_shown(committed_dir)} keeps its committed tables. Rerun with the experiment's settings or pass --force.")
        return
    for name in result.tables:   # figures of the earlier layout (one PNG per table) would go stale
        (committed_dir / f"{name}.png").unlink(missing_ok=True)
    result.paths += write(committed_dir)
    result.published = True
    result.publish_note = f"published to {_shown(committed_dir)}" + (
        f" (incomplete: {len(result.missing)} expected runs missing)" if result.missing else "")


def _write(tables: dict[str, Table], tidy: pd.DataFrame, out_dir: Path, provenance: list[str],
           excluded: list[str], claims: list[str], figures: bool, context: str, markdown: str,
           tradeoffs: Sequence[TradeoffSpec] = ()) -> list[Path]:
    """Write ``<name>.md`` and ``<name>.csv`` per table, the figures (learning curves, and the experiment's x-y
    figures ``tradeoffs``) and ``report.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, table in tables.items():
        md = out_dir / f"{name}.md"
        md.write_text(render.render_markdown(table, provenance, excluded, claims), encoding="utf-8")
        paths += [md, render.write_csv(table, out_dir / f"{name}.csv")]
    if figures:
        paths += plot_figures(tidy, [t.spec for t in tables.values()], out_dir, context)
        paths += plot_tradeoffs(tidy, tradeoffs, out_dir, context)
    report = out_dir / "report.md"
    report.write_text(markdown, encoding="utf-8")
    return [*paths, report]


def _combined(experiment: str, scale: str, tables: dict[str, Table], provenance: list[str],
              excluded: list[str], claims: list[str]) -> str:
    """All tables under one provenance header, then the claims and the runs not included."""
    parts = [f"# Report: {experiment} ({scale})", "", *provenance, ""]
    parts += [render.render_markdown(t, (), ()) for t in tables.values()]
    if claims:
        parts += ["## Paper claims", "", *[f"- {c}" for c in claims], ""]
    if excluded:
        parts += [*excluded, ""]
    return "\n".join(parts).rstrip("\n") + "\n"


# -- for a report across experiments ---------------------------------------------------------
FIDELITY_COLUMNS = ("experiment", "scale", "kind", "table", "method", "setting", "item", "text", "published", "ours",
                    "n", "verdict", "detail", "commit", "source")
"""Columns of :func:`fidelity_rows` (and of the fidelity table, :mod:`bench.report.fidelity`)."""
CELL_VERDICTS = {"✓": "holds", "better": "fails", "worse": "fails", "n/a": "missing"}
"""A published cell's verdict (:func:`bench.report.tables.verdict`) as a fidelity verdict."""


def commit_of(runs: Optional[pd.DataFrame]) -> str:
    """Short git SHA(s) of the included runs, ``+dirty`` when the tree was dirty ("" when unknown)."""
    if runs is None or runs.empty or "git_sha" not in runs:
        return ""
    inc = runs[runs["included"] & ~runs["superseded"]] if "included" in runs else runs
    pairs = sorted({(str(s)[:12], bool(d) if isinstance(d, (bool, int)) else None)
                    for s, d in zip(inc["git_sha"], inc.get("git_dirty", [None] * len(inc)))
                    if isinstance(s, str) and s})
    return ", ".join(sha + ("+dirty" if dirty else "") for sha, dirty in pairs)


def _ours(spec, cell: pd.Series) -> tuple[str, int]:
    """Our cell as "mean ± s.e. (n=k)" (steps: "58 (n=k)", "− (n=k)"), and n."""
    n = 0 if pd.isna(cell.get("n")) else int(cell["n"])
    if bool(cell.get("missing")) is True:
        return render.MISSING, 0
    if pd.isna(cell.get("value")) and not (spec.is_steps and bool(cell.get("never"))):
        text = render.format_cell(spec, cell)
        return text or render.MISSING, n
    if spec.is_steps:
        return f"{render.format_cell(spec, cell)} (n={n})", n
    return render.format_value(spec, cell["value"], cell.get("se", float("nan")), None) + f" (n={n})", n


def _cell_verdict(cell: pd.Series, n: int) -> tuple[str, str]:
    """(fidelity verdict, detail) of a cell with a published number."""
    raw = str(cell["verdict"])
    if raw == "n/a" or bool(cell.get("missing")) is True:
        return "missing", "no completed run" if bool(cell.get("missing")) is True else "no value"
    if n < 2:
        return "not enough seeds", f"fewer than 2 seeds (one seed reads {raw})"
    return CELL_VERDICTS.get(raw, raw), {"better": "ours better than the paper", "worse": "ours worse than the paper",
                                         "✓": "agrees"}.get(raw, "")


def _published_rows(spec, root: Optional[Path]) -> dict[tuple[str, ...], pd.Series]:
    """Published rows of a table's CSV by cell key (empty when the spec or file has none)."""
    if not spec.published:
        return {}
    try:
        frame = published_for(load_published(spec.published, root), spec.metric, spec.reduction,
                              spec.published_threshold)
    except FileNotFoundError:
        return {}
    frame = frame.rename(columns={"method": spec.rows}) if spec.rows == "algorithm.name" else frame
    if any(k not in frame for k in spec.keys):
        return {}
    return {tuple(key_text(r[k]) for k in spec.keys): r for _, r in frame.iterrows()}


def _paper_text(spec, value: float, never: bool, note: str) -> str:
    if never:
        return render.NEVER + (f" {note}" if note else "")
    return spec.fmt(value) + ("" if spec.is_steps else spec.unit)


def _run_keys(runs: Optional[pd.DataFrame], keys: Sequence[str]) -> set[tuple[str, ...]]:
    """Cell keys of the included runs (empty when a key is not a config column)."""
    if runs is None or runs.empty or any(k not in runs for k in keys):
        return set()
    inc = runs[runs["included"]] if "included" in runs else runs
    return {tuple(key_text(r[k]) for k in keys) for _, r in inc.iterrows()}


def fidelity_rows(result: ReportResult) -> pd.DataFrame:
    """One row per paper claim and per published number of one report, in the shape of every
    experiment (:data:`FIDELITY_COLUMNS`); concatenate over experiments for a fidelity table.

    Claims (``kind="claim"``): ``item`` = claim id, ``text`` = the claim, ``ours`` = the cells behind it,
    ``verdict`` (:data:`bench.report.claims.VERDICTS`), ``detail`` = the deciding comparison.
    Published numbers (``kind="cell"``): ``published`` = the paper's value, ``ours`` = "mean ± s.e. (n=k)"
    (steps: the count), ``verdict``: ``holds`` (agrees: :func:`bench.report.tables.verdict` ✓),
    ``fails`` (better or worse than the paper), ``not enough seeds`` (n < 2), ``missing`` (no value,
    e.g. a run that ends before the step read, or the paper's setting is not a point of this scale's grid).
    """
    commit = commit_of(result.runs)
    base = {"experiment": result.experiment, "scale": result.scale, "commit": commit}
    rows = []
    for check in result.claims:
        claim = getattr(check, "claim", None)
        rows.append({**base, "kind": "claim", "table": "|".join(claim.tables) if claim else "",
                     "method": "|".join(claim.subjects) if claim else "", "setting": "",
                     "item": claim.id if claim else "", "text": claim.text if claim else str(check), "published": "",
                     "ours": getattr(check, "numbers", ""), "n": None, "verdict": getattr(check, "status", ""),
                     "detail": getattr(check, "reason", ""), "source": claim.source if claim else ""})
    for name, table in result.tables.items():
        spec = table.spec
        paper = _published_rows(spec, result.published_root)
        if not paper:
            continue
        seen = set()
        condition = next((n for n in table.notes if n.startswith("Paper values at")), "")
        for _, c in table.cells.iterrows():
            key = tuple(key_text(c[k]) for k in spec.keys)
            if key not in paper:
                continue
            seen.add(key)
            setting = render.setting_label(spec.columns, [c[k] for k in spec.columns]) if spec.columns else ""
            ours, n = _ours(spec, c)
            verdict, detail = _cell_verdict(c, n)
            if condition and pd.isna(c.get("published")) and not bool(c.get("published_never", False)):
                verdict, detail = "missing", f"not the paper's setting: {condition}"   # e.g. another H
            p = paper[key]
            rows.append({**base, "kind": "cell", "table": name, "method": key[0], "setting": setting,
                         "item": " ".join(x for x in (name + ":", method_label(key[0]), setting) if x),
                         "text": spec.title, "published": _paper_text(spec, p["value"], bool(p["never"]), p["note"]),
                         "ours": ours, "n": n, "verdict": verdict, "detail": detail, "source": p["source"]})
        run_keys = _run_keys(result.runs, spec.keys)
        for key, p in paper.items():
            if key in seen:
                continue
            why = "no value in its runs" if key in run_keys else f"not a point of the {result.scale} grid"
            setting = render.setting_label(spec.columns, key[1:]) if spec.columns else ""
            rows.append({**base, "kind": "cell", "table": name, "method": key[0], "setting": setting,
                         "item": " ".join(x for x in (name + ":", method_label(key[0]), setting) if x),
                         "text": spec.title, "published": _paper_text(spec, p["value"], bool(p["never"]), p["note"]),
                         "ours": "", "n": 0, "verdict": "missing",
                         "detail": why, "source": p["source"]})
    return pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))
