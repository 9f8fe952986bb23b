"""Table specs, builder, verdict rule, the registered claims, and the transcribed published numbers."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from bench import metrics as M
from bench.records import RunWriter
from bench.report import claims as C
from bench.report import tables as T
from bench.report.collect import collect
from bench.report.published import METHOD_LABELS, PUBLISHED_DIR, load_published, published_for

from report_fixtures import EXPERIMENT, SCALE

VALUE = T.TableSpec("v", "v", M.ERROR, scale=100, unit="%", tolerance=1.0, never_above=95.0)
STEPS = T.TableSpec("s", "s", M.ERROR, reduction="steps_to_threshold", threshold=0.01, rel_tolerance=0.25)


@pytest.mark.parametrize("ours, se, paper, expected", [
    (10.0, 0.1, 10.9, "✓"),     # within the 1.0 tolerance
    (10.0, 2.0, 13.9, "✓"),     # within 2·s.e. = 4.0
    (10.0, 2.0, 14.1, "better"),
    (10.0, 0.1, 8.5, "worse"),
    (10.0, math.nan, 11.5, "better"),  # s.e. NaN counts as 0
])
def test_verdict_values(ours, se, paper, expected):
    assert T.verdict(VALUE, ours, se, False, paper, False) == expected


def test_verdict_value_higher_is_better():
    spec = T.TableSpec("r", "r", M.REWARD, lower_is_better=False)
    assert T.verdict(spec, 0.9, 0.0, False, 0.5, False) == "better"


def test_verdict_paper_never_for_values():
    assert T.verdict(VALUE, 97.0, 1.0, False, math.nan, True) == "✓"
    assert T.verdict(VALUE, 50.0, 1.0, False, math.nan, True) == "better"


@pytest.mark.parametrize("ours, never, paper, paper_never, expected", [
    (110.0, False, 100.0, False, "✓"),
    (126.0, False, 100.0, False, "worse"),
    (74.0, False, 100.0, False, "better"),
    (math.nan, True, 100.0, False, "worse"),
    (math.nan, True, math.nan, True, "✓"),
    (500.0, False, math.nan, True, "better"),
])
def test_verdict_steps(ours, never, paper, paper_never, expected):
    assert T.verdict(STEPS, ours, math.nan, never, paper, paper_never) == expected


def test_verdict_without_published_or_ours():
    assert T.verdict(VALUE, 1.0, 0.1, False, math.nan, False) == ""
    assert T.verdict(VALUE, math.nan, math.nan, False, 3.0, False) == "n/a"


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown reduction"):
        T.TableSpec("x", "x", M.ERROR, reduction="median")
    with pytest.raises(ValueError, match="needs a threshold"):
        T.TableSpec("x", "x", M.ERROR, reduction="steps_to_threshold")


def test_build_table_cells(runs_root, published_root, fixture_tables):
    data = collect(runs_root, EXPERIMENT, SCALE)
    table = T.build_table(data.tidy, fixture_tables[0], data.runs, published_root)
    cells = table.cells.set_index(["algorithm.name", "env.vocab"])
    assert list(cells.index) == [("tpo", "2"), ("tpo", "4"), ("dg", "2"), ("dg", "4"), ("pg", "2"), ("pg", "4"),
                                 ("ppo", "2")]
    assert cells.loc[("tpo", "2"), "value"] == pytest.approx(0.5)  # (0.004 + 0.001·seed)·100, mean over 3 seeds
    assert cells.loc[("tpo", "2"), "se"] == pytest.approx(0.1 / math.sqrt(3))
    assert cells.loc[("tpo", "2"), "verdict"] == "✓"
    assert cells.loc[("dg", "2"), "verdict"] == "better"
    assert bool(cells.loc[("pg", "2"), "published_never"])
    assert (cells.loc[("ppo", "2"), "nan_seeds"], cells.loc[("ppo", "2"), "nan_of"]) == (1, 3)
    assert math.isnan(cells.loc[("ppo", "2"), "value"])


def test_build_table_steps(runs_root, published_root, fixture_tables):
    data = collect(runs_root, EXPERIMENT, SCALE)
    cells = T.build_table(data.tidy, fixture_tables[1], data.runs, published_root).cells
    cells = cells.set_index(["algorithm.name", "env.vocab"])
    assert cells.loc[("tpo", "2"), "value"] == 3
    assert bool(cells.loc[("dg", "2"), "never"]) and cells.loc[("dg", "2"), "verdict"] == "✓"
    assert cells.loc[("pg", "2"), "verdict"] == "worse"


def test_pooled_configs_are_noted(runs_root, published_root, fixture_tables):
    from report_fixtures import make_config, pinned_provenance, run_dir
    config = make_config("tpo", 2, lr=0.5)
    with RunWriter(run_dir(runs_root, config), config, [0], extra_provenance=pinned_provenance("2026-01-01T10:00:00+0000")) as rec:
        rec.log([{"step": 3, "seed": 0, M.ERROR: 0.02}])
    data = collect(runs_root, EXPERIMENT, SCALE)
    table = T.build_table(data.tidy, fixture_tables[0], data.runs, published_root)
    assert any("pooling seeds of several configs" in n and "tpo/2" in n for n in table.notes)


def test_fixture_claims_hold_fail_and_miss(runs_root, published_root, fixture_tables):
    data = collect(runs_root, EXPERIMENT, SCALE)
    tables = {s.name: T.build_table(data.tidy, s, data.runs, published_root) for s in fixture_tables}
    checks = C.check_claims(EXPERIMENT, tables, data.tidy, C.load_claims(published_root))
    assert [c.claim.id for c in checks] == ["tpo_below_dg_pg", "pg_below_tpo", "tpo_lowest", "tpo_first", "v8"]
    assert [c.status for c in checks] == ["holds", "fails", "missing", "holds", "missing"]
    assert checks[0].startswith("Claim (fixture): TPO ends below DG and PG — holds (V=2: TPO 0.50 ± 0.06 (n=3), ")
    assert checks[1].reason == "PG not below TPO at V=2"
    assert checks[2].reason == "no value for PPO at V=2"          # the NaN run
    assert checks[4].reason == "no cells at env.vocab=8"


def test_generic_specs_for_unregistered_experiment(runs_root):
    data = collect(runs_root, EXPERIMENT, SCALE)
    specs = T.specs_for("not_registered", data.tidy, data.runs)
    assert [s.metric for s in specs] == [M.ERROR, M.REWARD]
    assert all(s.reduction == "final" and s.columns == ("env.vocab",) for s in specs)
    assert [(s.scale, s.unit) for s in specs] == [(100, "%"), (1.0, "")]   # the error rate in %, as experiment tables
    assert specs[0].title == "train/error (%) at the last step"


def _steps_run(root, algo, vocab, curve):
    config = {"experiment": "table1_vocab", "scale": "quick", "algorithm": {"name": algo},
              "env": {"name": "reversal", "vocab": vocab}, "run": {"seeds": 2}}
    with RunWriter(root / "table1_vocab" / "quick" / f"{algo}-{vocab}", config, [0, 1]) as rec:
        rec.log({"step": step, "seed": s, M.ERROR: v} for step, v in curve for s in (0, 1))


def test_registered_table1_against_checked_in_csv(tmp_path):
    """The real Table 1 spec and transcribed CSV: TPO_token at V=2 reaches 1% at step 58 as published."""
    root = tmp_path / "runs"
    _steps_run(root, "tpo_token", 2, [(0, 0.5), (50, 0.02), (58, 0.005)])
    _steps_run(root, "dg", 2, [(0, 0.5), (999, 0.2)])
    _steps_run(root, "ppo", 4, [(0, 0.5), (100, 0.009)])
    data = collect(root, "table1_vocab", "quick")
    spec = next(sp for sp in T.TABLES["table1_vocab"] if sp.name == "table1")
    cells = T.build_table(data.tidy, spec, data.runs).cells.set_index(["algorithm.name", "env.vocab"])
    assert (cells.loc[("tpo_token", "2"), "value"], cells.loc[("tpo_token", "2"), "verdict"]) == (58, "✓")
    assert (cells.loc[("dg", "2"), "published"], cells.loc[("dg", "2"), "verdict"]) == (199, "worse")
    assert cells.loc[("ppo", "4"), "verdict"] == "better"  # 100 < 181·0.75


def test_published_csvs_transcription():
    t1 = load_published("table1_vocab.csv")
    assert len(t1) == 16 and t1.set_index(["method", "env.vocab"]).loc[("grpo_token", "2"), "value"] == 904
    t3 = load_published("table3_terminal")
    assert len(t3) == 40 and int(t3["never"].sum()) == 10
    assert t3["note"][t3["never"]].str.contains(">95%").all()
    row = t3[(t3["method"] == "tpo") & (t3["env.matching"] == "interaction") & (t3["env.horizon"] == "10")]
    assert row["value"].item() == 19.0
    mnist = load_published("mnist").set_index(["method", "reduction"])["value"]
    assert mnist[("tpo", "final")] == 2.9 and mnist[("group_pg", "final")] == 7.2
    assert mnist[("dg", "steps_to_threshold")] == 2200
    for frame in (t1, t3):
        assert set(frame["method"]) <= set(METHOD_LABELS)


def test_every_registered_published_spec_finds_its_numbers():
    for specs in T.TABLES.values():
        for spec in specs:
            if spec.published:
                rows = published_for(load_published(spec.published, PUBLISHED_DIR), spec.metric, spec.reduction,
                                     spec.threshold)
                assert len(rows) > 0, spec.name
                assert all(c in rows.columns for c in spec.columns), spec.name


def test_missing_published_file_is_named(tmp_path, runs_root, fixture_tables):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_published("nope", tmp_path)
    data = collect(runs_root, EXPERIMENT, SCALE)
    table = T.build_table(data.tidy, fixture_tables[0], data.runs, tmp_path)
    assert table.cells["verdict"].eq("").all()
    assert any(str(tmp_path / "fixture.csv") in n and "no comparison" in n for n in table.notes)


def _final_tidy(finals: dict[str, float], metric: str = M.ERROR) -> pd.DataFrame:
    """Two seeds per algorithm whose last-step values average to ``finals[algo]``."""
    rows = []
    for algo, value in finals.items():
        for seed, v in enumerate((value - 0.001, value + 0.001)):
            rows += [{"run_id": algo, "status": "completed", "algorithm.name": algo, "seed": seed, "step": step,
                      "metric": metric, "value": x} for step, x in ((0, 0.9), (1, v))]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("finals, verdict", [
    ({"pg": 0.1, "dg": 0.02, "tpo": 0.01, "grpo": 0.3}, "holds"),
    ({"pg": 0.1, "dg": 0.2, "tpo": 0.01, "grpo": 0.3}, "fails"),
])
def test_registered_tabular_single_claim(finals, verdict):
    spec = {t.name: t for t in T.TABLES["tabular_single"]}["error"]
    lines = C.check_claims("tabular_single", {"error": T.build_table(_final_tidy(finals), spec)})
    assert lines[0].startswith("Claim (TPO paper §3.1, Fig. 2a): TPO and DG end below PG and GRPO in error — "
                               + verdict + " (")
    assert lines[1].status == "missing"   # no misalignment table given


def test_registered_tabular_multi_claims():
    specs = {t.name: t for t in T.TABLES["tabular_multi"]}
    err, mis = specs["error"], specs["misalignment_mean"]
    tables = {"error": T.build_table(_final_tidy({"ce": 0.01, "tpo": 0.02, "dg": 0.2, "pg": 0.1, "grpo": 0.05}), err),
              "misalignment_mean": T.build_table(_final_tidy({"ce": 0.0, "tpo": 0.3, "dg": 0.2, "pg": 0.5, "grpo": 0.4},
                                                        M.MISALIGNMENT), mis)}
    error_line, mis_line = C.check_claims("tabular_multi", tables)
    assert "closest to CE in error — holds" in error_line
    assert "closest to CE in misalignment (mean over steps) — fails" in mis_line
    assert mis_line.reason == "|TPO − CE| not below |DG − CE|"


def test_published_rows_apply_only_at_the_papers_fixed_settings():
    """A non-key setting column of a published CSV (env.horizon) is a condition on the table's runs."""
    import pandas as pd

    from bench.report.tables import TableSpec, _matching_conditions

    spec = TableSpec(name="t", title="t", metric="train/error", columns=("env.vocab",))
    paper = pd.DataFrame({"algorithm.name": ["tpo", "tpo"], "env.vocab": ["2", "4"], "env.horizon": ["10", "10"],
                          "metric": "train/error", "reduction": "final", "threshold": None, "value": [1.0, 2.0],
                          "unit": "%", "note": "", "source": "", "experiment": "x", "table": "T"})
    notes: list[str] = []
    at_10 = pd.DataFrame({"included": [True], "env.horizon": [10]})
    assert len(_matching_conditions(paper, spec, at_10, notes)) == 2 and notes == []
    at_5 = pd.DataFrame({"included": [True, False], "env.horizon": [5, 10]})
    assert _matching_conditions(paper, spec, at_5, notes).empty
    assert notes == ["Paper values at `env.horizon` = 10 are not shown: these runs have `env.horizon` = 5."]
