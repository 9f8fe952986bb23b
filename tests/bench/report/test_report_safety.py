"""Committed tables are never clobbered: the expected grid, missing runs, the ignored output
directory, publishing (refused for an incomplete grid unless forced) and the cell-by-cell
comparison with the committed tables."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import metrics as M
from bench.cli import compose
from bench.records import RunWriter
from bench.report import NoRunsError, build_report, compare as C
from bench.report import cli
from bench.report.grid import command_overrides, expected_grid, non_sweep, widen_axes
from bench.run import identity
from bench.schema import record_config

from report_fixtures import EXPERIMENT, SCALE, fixture_grid

REPO = Path(__file__).resolve().parents[3]


# -- the expected grid -------------------------------------------------------------------------
def test_grid_of_a_real_experiment_is_hydras_expansion():
    grid = expected_grid("tabular_multi", "paper")
    assert [e.label for e in grid] == ["ce-tabular_multi", "tpo-tabular_multi", "dg-tabular_multi",
                                       "pg-tabular_multi", "grpo-tabular_multi"]
    assert all(e.config["run.seeds"] == 100 and e.config["run.steps"] == 1000 for e in grid)
    assert grid[3].config["algorithm.baseline"] == "constant"  # algorithm_overrides merged into the point


def test_scale_file_replaces_the_grid_and_overrides_reach_every_point():
    grid = expected_grid("sweep_k", "quick", ["run.seeds=3"])
    assert [dict(e.coords) for e in grid][:3] == [{"algorithm.name": "tpo", "env.k": "4"},
                                                  {"algorithm.name": "tpo", "env.k": "8"},
                                                  {"algorithm.name": "tpo", "env.k": "16"}]
    assert len(grid) == 6 and {e.config["run.seeds"] for e in grid} == {3}
    assert expected_grid("adhoc", "quick") is None


def test_a_value_of_a_swept_key_joins_its_axis():
    """`bench experiment=sweep_k env.k=3` runs K = 3 only; its report's grid is the experiment's plus K = 3,
    so that run is a grid point and the other cells still show (a sweep of an axis joins it the same way)."""
    base = {dict(e.coords)["env.k"] for e in expected_grid("sweep_k", "quick")}
    grid = expected_grid("sweep_k", "quick", ["env.k=3", "run.seeds=3"])
    ks = [dict(e.coords)["env.k"] for e in grid]
    assert set(ks) == base | {"3"} and ks.count("3") == 2   # both algorithms at K = 3
    assert all(e.config["env.k"] == int(dict(e.coords)["env.k"]) for e in grid)
    assert {e.config["run.seeds"] for e in grid} == {3}
    swept = expected_grid("sweep_k", "quick", ["env.k=3,5", "algorithm.eta=1,2"])   # eta is no axis: ignored
    assert {dict(e.coords)["env.k"] for e in swept} == base | {"3", "5"}
    assert widen_axes({"env.horizon": "7,8", "algorithm": "tpo,pg"}, ["env.horizon=3", "algorithm=tpo", "x=1"]) \
        == {"env.horizon": "7,8,3", "algorithm": "tpo,pg"}
    assert command_overrides(["experiment=x", "scale=paper", "env.k=3,5", "hydra.job.chdir=true"]) == ["env.k=3,5"]


def test_non_sweep_keeps_plain_overrides_only():
    assert non_sweep(["experiment=x", "scale=paper", "algorithm=tpo,pg", "run.seeds=30",
                      "hydra.callbacks.report.publish=true", "run.progress=false"]) == ["run.seeds=30",
                                                                                        "run.progress=false"]


def _record(point: list[str], steps: int | None = None) -> tuple[dict, str]:
    config = record_config(compose(["experiment=tabular_multi", "scale=paper", *point]))
    if steps is not None:
        config["run"]["steps"] = steps
    return config, identity(config)


def write_tabular_multi(root: Path, algo: str, steps: int | None = None, offset: float = 0.0,
                        started_at: str = "2026-01-01T10:00:00+0000") -> Path:
    """A small completed record of one tabular_multi/paper grid point (3 seeds, 2 logged steps)."""
    config, ident = _record([f"algorithm={algo}"], steps)
    path = root / "tabular_multi" / "paper" / f"{algo}-tabular_multi-{ident}"
    with RunWriter(path, config, [0, 1, 2], identity=ident, extra_provenance={"started_at": started_at}) as rec:
        for step in (0, 1):
            rec.log({"step": step, "seed": s, M.ERROR: 0.5 / (step + 1) + 0.01 * s + offset,
                     M.MISALIGNMENT: 0.1 + 0.001 * s} for s in (0, 1, 2))
    return path


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    """A results root holding a copy of the committed tabular_multi/paper tables."""
    root = tmp_path / "results"
    shutil.copytree(REPO / "results" / "tabular_multi" / "paper", root / "tabular_multi" / "paper")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_half_finished_sweep_names_missing_runs_and_never_replaces_committed_tables(tmp_path, committed):
    runs = tmp_path / "runs"
    for algo in ("ce", "tpo"):
        write_tabular_multi(runs, algo)
    before = _snapshot(committed)
    result = build_report("tabular_multi", "paper", runs, committed, publish=True)
    assert result.missing == ["dg-tabular_multi", "pg-tabular_multi", "grpo-tabular_multi"]
    assert "- missing: 3 of 5 runs: dg-tabular_multi, pg-tabular_multi, grpo-tabular_multi" in result.markdown
    assert "- runs: 2 of 5 expected included" in result.markdown
    cells = result.tables["error"].cells.set_index("algorithm.name")
    assert list(cells.index) == ["ce", "tpo", "dg", "pg", "grpo"] and cells.loc["grpo", "missing"]
    assert "| GRPO     | missing" in result.markdown
    assert not result.published and "not published: 3 of 5 expected runs are missing" in result.publish_note
    assert _snapshot(committed) == before                       # byte for byte
    assert (runs / "tabular_multi" / "paper" / "report" / "error.csv").exists()

    forced = build_report("tabular_multi", "paper", runs, committed, publish=True, force=True)
    assert forced.published and _snapshot(committed) != before


def test_complete_grid_publishes_and_the_default_writes_nothing_under_results(tmp_path, committed):
    runs = tmp_path / "runs"
    for algo in ("ce", "tpo", "dg", "pg", "grpo"):
        write_tabular_multi(runs, algo)
    before = _snapshot(committed)
    build_report("tabular_multi", "paper", runs, committed)
    assert _snapshot(committed) == before
    result = build_report("tabular_multi", "paper", runs, committed, publish=True)
    assert result.published and result.complete
    out = committed / "tabular_multi" / "paper"
    assert (out / "curves_train_error.png").exists() and not (out / "error.png").exists()  # old per-table PNGs go
    assert "## Comparison with the committed" not in (out / "report.md").read_text()


def test_complete_grid_at_other_settings_never_replaces_committed_tables(tmp_path, committed):
    """A full grid run with fewer steps than the experiment file is not the committed table's configuration."""
    runs = tmp_path / "runs"
    for algo in ("ce", "tpo", "dg", "pg", "grpo"):
        write_tabular_multi(runs, algo, steps=2)
    before = _snapshot(committed)
    result = build_report("tabular_multi", "paper", runs, committed, publish=True)
    assert result.complete and len(result.differences) == 5
    assert not result.published and "not published: 5 runs differ from the experiment file" in result.publish_note
    assert "run.steps" in result.publish_note
    assert _snapshot(committed) == before
    forced = build_report("tabular_multi", "paper", runs, committed, publish=True, force=True)
    assert forced.published and _snapshot(committed) != before


def test_compare_says_when_runs_are_not_the_experiments_settings(tmp_path, committed, capsys):
    runs = tmp_path / "runs"
    for algo in ("ce", "tpo", "dg", "pg", "grpo"):
        write_tabular_multi(runs, algo, steps=2)
    rc = cli.main(["tabular_multi", "--scale", "paper", "--runs", str(runs), "--results", str(committed), "--compare"])
    out = capsys.readouterr().out
    assert rc == 1 and "not the experiment's settings: 5 runs differ from the experiment file" in out
    assert "run.steps" in out


def test_closest_configuration_is_used_and_differences_are_named(tmp_path):
    runs = tmp_path / "runs"
    write_tabular_multi(runs, "ce", steps=2, started_at="2026-02-01T10:00:00+0000")   # newer, but not the file's
    write_tabular_multi(runs, "ce", offset=0.25)
    write_tabular_multi(runs, "tpo", steps=2)
    result = build_report("tabular_multi", "paper", runs, tmp_path / "results")
    cells = result.tables["error"].cells.set_index("algorithm.name")
    # the 1000-step record (offset 0.25: final 0.50/0.51/0.52) is used, not the newer 2-step one (0.25/0.26/0.27)
    assert cells.loc["ce", "value"] == pytest.approx(51.0)
    assert "- differs from the experiment file: tpo-tabular_multi: run.steps: 2 (experiment file: 1000)" \
        in result.markdown
    assert "another configuration of ce-tabular_multi (differs from the experiment file in: run.steps: 2 " \
        "(experiment file: 1000))" in result.markdown


# -- comparison with the committed tables --------------------------------------------------------
@pytest.mark.parametrize("ours, se, never, committed, c_se, c_never, status", [
    (1.234, 0.1, False, 1.234, 0.1, False, C.SAME),
    (1.30, 0.05, False, 1.20, 0.03, False, C.AGREES),     # |Δ| = 0.1 <= 2·√(0.05² + 0.03²) = 0.117
    (1.40, 0.05, False, 1.20, 0.03, False, C.DIFFERS),
    (math.nan, math.nan, True, math.nan, math.nan, True, C.SAME),
    (math.nan, math.nan, True, 3.0, math.nan, False, C.DIFFERS),
    (math.nan, math.nan, False, 3.0, math.nan, False, C.MISSING_HERE),
    (3.0, 0.1, False, math.nan, math.nan, False, C.NOT_COMMITTED),
    (math.nan, math.nan, False, math.nan, math.nan, False, C.EMPTY),   # nothing compared: not counted as same
])
def test_classify_cells(ours, se, never, committed, c_se, c_never, status):
    from bench.report.tables import TableSpec
    spec = TableSpec("v", "v", M.ERROR, decimals=3)
    assert C.classify(spec, ours, se, never, committed, c_se, c_never)[0] == status


def test_cells_empty_on_both_sides_are_counted_apart_from_same():
    from bench.report.tables import Table, TableSpec
    spec = TableSpec("v", "v", M.ERROR, decimals=3)
    frame = pd.DataFrame({"algorithm.name": ["tpo", "dg"], "ours": [1.0, math.nan], "ours_se": [0.1, math.nan],
                          "committed": [1.0, math.nan], "committed_se": [0.1, math.nan],
                          "status": [C.SAME, C.EMPTY], "detail": ["", ""]})
    lines = C.render_comparison({"v": Table(spec, pd.DataFrame())}, {"v": frame}, "results/x/")
    assert lines[2].startswith("2 cells: 1 same, 1 empty on both sides.")
    assert "- `v`: 1 cells the same, 1 empty on both sides" in lines and C.agrees({"v": frame})


def test_step_counts_agree_within_relative_tolerance():
    from bench.report.tables import TableSpec
    spec = TableSpec("s", "s", M.ERROR, reduction="steps_to_threshold", threshold=0.01, rel_tolerance=0.25)
    assert C.classify(spec, 110, math.nan, False, 100, math.nan, False)[0] == C.AGREES
    assert C.classify(spec, 130, math.nan, False, 100, math.nan, False)[0] == C.DIFFERS


def test_regenerated_report_is_compared_cell_by_cell(runs_root, tmp_path, published_root, fixture_tables, capsys):
    results = tmp_path / "results"
    complete = [e for e in fixture_grid() if e.coords["algorithm.name"] in ("tpo", "dg", "pg")]
    first = build_report(EXPERIMENT, SCALE, runs_root, results, expected=complete, publish=True,
                         published_root=published_root)
    assert first.published and not first.comparisons      # nothing committed before
    again = build_report(EXPERIMENT, SCALE, runs_root, results, expected=complete, published_root=published_root)
    assert C.agrees(again.comparisons)
    assert "- `final`: all 6 cells the same" in again.markdown
    csv = results / EXPERIMENT / SCALE / "final.csv"
    csv.write_text(csv.read_text().replace("0.5,0.057735", "0.9,0.057735", 1))   # tpo V=2: 0.5 -> 0.9
    changed = build_report(EXPERIMENT, SCALE, runs_root, results, expected=complete, published_root=published_root)
    frame = changed.comparisons["final"].set_index(["algorithm.name", "env.vocab"])
    assert frame.loc[("tpo", "2"), "status"] == C.DIFFERS and frame.loc[("dg", "2"), "status"] == C.SAME
    assert "differs (0.50 vs 0.90)" in changed.markdown
    # the CLI: --compare prints only the comparison and fails when a cell differs
    rc = cli.main([EXPERIMENT, "--runs", str(runs_root), "--results", str(results), "--compare"])
    out = capsys.readouterr().out
    assert rc == 1 and out.startswith("## Comparison with the committed tables")


def test_cli_flag_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["tabular_multi", "--runs", str(tmp_path), "--force"]) == 2
    assert capsys.readouterr().err.strip() == "bench-report: --force only applies with --publish"
    assert cli.main(["adhoc", "--runs", str(tmp_path), "--publish"]) == 2
    assert "have no committed tables" in capsys.readouterr().err
    assert cli.main(["tabular_multi", "--runs", str(tmp_path), "--sweep", str(tmp_path)]) == 2
    assert "--sweep applies to 'adhoc' reports only" in capsys.readouterr().err


def test_grouped_method_record_serves_both_matching_columns():
    from bench.report.grid import ExpectedRun, matches
    point = ExpectedRun("grpo-reversal env.matching=interaction", (), {"algorithm.name": "grpo",
                                                                      "env.matching": "interaction"}, {})
    grouped = {"algorithm.name": "grpo", "algorithm.candidates": "sampled", "env.matching": "prompt"}
    single = {"algorithm.name": "grpo", "algorithm.candidates": "single", "env.matching": "prompt"}
    assert matches(grouped, point) and not matches(single, point)
    assert matches({**single, "env.matching": "interaction"}, point)


def test_claims_and_published_comparisons_collect_into_one_frame(runs_root, tmp_path, published_root,
                                                                 fixture_tables):
    from bench.report import fidelity_rows
    result = build_report(EXPERIMENT, SCALE, runs_root, tmp_path / "results", expected=fixture_grid(),
                          published_root=published_root, figures=False)
    rows = fidelity_rows(result)
    claims = rows[rows["kind"] == "claim"]
    assert list(claims["verdict"]) == ["holds", "fails", "missing", "holds", "missing"]
    assert claims["text"].iloc[0] == "TPO ends below DG and PG" and claims["item"].iloc[0] == "tpo_below_dg_pg"
    cells = rows[(rows["kind"] == "cell") & (rows["table"] == "final")].set_index(["method", "setting"])
    assert cells.loc[("tpo", "V=2"), ["ours", "published", "verdict"]].tolist() == ["0.50 ± 0.06 (n=3)", "0.50%",
                                                                                  "holds"]
    assert cells.loc[("dg", "V=2"), ["verdict", "detail"]].tolist() == ["fails", "ours better than the paper"]
    assert set(rows["commit"]) == {"0123456789ab"}


def test_an_engine_run_differs_from_the_native_default_by_name():
    from bench.report.grid import differences

    out = differences({"algorithm.name": "tpo"}, {"algorithm.name": "tpo", "engine.name": "trl"})
    assert out == ["engine.name: trl (experiment file: native)"]
    assert differences({"env.k": 4}, {"env.k": 4}) == []
    assert differences({"env.k": 4}, {}) == ["env.k: missing (experiment file: 4)"]


def test_a_remembered_job_config_is_the_grid_points_own():
    """The sweep keeps each job's composed config (hydra_plugins/tpo_bench/sweeper.py); the grid point read
    from it equals the one composed afresh, so the sweep-end report need not compose its grid again."""
    from bench.report import grid as grid_module

    fresh = expected_grid("tabular_multi", "paper", ["run.seeds=3"])
    overrides = ["experiment=tabular_multi", "scale=paper", "run.seeds=3", "algorithm=tpo"]
    with_hydra = compose_with_hydra(overrides)
    key = frozenset(overrides)
    try:
        grid_module.remember_job(overrides, with_hydra)
        assert grid_module._COMPOSED[key] == dict(fresh[1].config)   # the tpo point, composed with the hydra node
        grid_module._COMPOSED[key] = {**grid_module._COMPOSED[key], "marker": "remembered"}
        again = expected_grid("tabular_multi", "paper", ["run.seeds=3"])
    finally:
        grid_module._COMPOSED.pop(key, None)
    assert again[1].config["marker"] == "remembered"   # read from the sweep's configs, not composed again
    assert [e.config for e in again[:1] + again[2:]] == [e.config for e in fresh[:1] + fresh[2:]]
    grid_module.remember_job(["x=1"], object())   # not a config: not kept, no error
    assert frozenset(["x=1"]) not in grid_module._COMPOSED


def compose_with_hydra(overrides):
    from hydra import compose as hydra_compose, initialize_config_dir

    from bench.cli import CONF_DIR, register_all

    register_all()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def test_a_run_off_the_grid_is_shown_with_set(tmp_path):
    """A completed record at an axis value the grid lacks is left out with the command that shows it; with that
    --set the run is a grid point of the widened grid and fills its own column."""
    runs = tmp_path / "runs"
    write_tabular_multi(runs, "tpo")
    write_tabular_multi(runs, "rloo")   # not one of tabular_multi's five methods
    plain = build_report("tabular_multi", "paper", runs, tmp_path / "results", figures=False)
    assert f"to show it: bench-report tabular_multi --scale paper --runs {runs} --set algorithm=rloo" in plain.markdown
    widened = build_report("tabular_multi", "paper", runs, tmp_path / "results", figures=False,
                           overrides=["algorithm=rloo"])
    cells = widened.tables["error"].cells.set_index("algorithm.name")
    assert "rloo" in cells.index and not cells.loc["rloo", "missing"]
    assert "not a grid point" not in widened.markdown


def test_only_off_grid_runs_refuse_the_report_and_keep_the_last_one(tmp_path):
    """With no record at any grid point, the report says how to show the runs it has and writes nothing, so the
    report folder built with --set is not replaced by an all-missing table."""
    runs = tmp_path / "runs"
    write_tabular_multi(runs, "rloo")
    shown = build_report("tabular_multi", "paper", runs, tmp_path / "results", figures=False,
                         overrides=["algorithm=rloo"])
    before = {p.name: p.read_bytes() for p in shown.out_dir.iterdir()}
    with pytest.raises(NoRunsError, match=r"no run of the expected grid of 'tabular_multi' \(paper\) .*: its 1 records "
                                          r"are not grid points; to show them: bench-report tabular_multi --scale "
                                          rf"paper --runs {runs} --set algorithm=rloo; run the grid with: bench "
                                          rf"experiment=tabular_multi scale=paper run.root={runs}$"):
        build_report("tabular_multi", "paper", runs, tmp_path / "results", figures=False)
    assert {p.name: p.read_bytes() for p in shown.out_dir.iterdir()} == before


def test_a_long_missing_list_is_shortened_in_the_header():
    from bench.report.render import some_of
    names = [f"run-{i}" for i in range(41)]
    assert some_of(names) == ", ".join(names[:12]) + ", … and 29 more"   # the header's "- missing:" list
    assert some_of(names[:3]) == "run-0, run-1, run-2"
