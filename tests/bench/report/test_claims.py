"""Claims as data: the claims file parses, names what exists, and each kind's evaluator gives holds /
fails / not enough seeds / missing on hand-made cells."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bench import metrics as M
from bench.report import claims as C
from bench.report import tables as T
from bench.report.fidelity import conf_experiments
from bench.report.grid import expected_grid
from bench.report.published import PUBLISHED_DIR, load_published
from bench.report.tables import key_text

REPO = Path(__file__).resolve().parents[3]


# -- the claims file ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper_grids() -> dict[str, list[dict]]:
    """Experiment -> the flattened configs of its paper-scale grid points (composed by Hydra)."""
    return {e: [dict(p.config) for p in expected_grid(e, "paper")] for e in conf_experiments()}


def _values(points: list[dict], key: str) -> set[str]:
    return {key_text(p[key]) for p in points if key in p}


def test_claims_file_names_experiments_tables_metrics_and_methods_that_exist(paper_grids):
    claims = C.load_claims()
    assert len(claims) >= 20
    # every claim the report checked in code before is still there
    ids = {(c.experiment, c.id) for c in claims}
    assert {("tabular_single", "tpo_dg_below_pg_grpo"), ("tabular_single", "tpo_lowest_misalignment"),
            ("tabular_multi", "tpo_closest_to_ce_error"), ("tabular_multi", "tpo_closest_to_ce_misalignment")} <= ids
    algorithms = {p.stem for p in (REPO / "conf" / "algorithm").glob("*.yaml")}
    for claim in claims:
        where = f"{claim.experiment}/{claim.id}"
        assert claim.experiment in paper_grids, where
        specs = {s.name: s for s in T.TABLES[claim.experiment]}
        points = paper_grids[claim.experiment]
        for table, metric in zip(claim.tables, claim.metrics):
            assert table in specs, where
            assert specs[table].metric == metric, where
            assert claim.across in specs[table].keys, where
        assert claim.subjects and set(claim.subjects) | set(claim.versus) <= _values(points, claim.across), where
        if claim.across == "algorithm.name":
            assert set(claim.subjects) | set(claim.versus) <= algorithms, where
        for key, values in claim.settings:
            assert set(values) <= _values(points, key), where
        assert claim.source.startswith("TPO paper "), where


def test_published_rows_are_points_of_their_experiments_paper_grid(paper_grids):
    for path in sorted(PUBLISHED_DIR.glob("*.csv")):
        if path.name == C.CLAIMS_FILE:
            continue
        frame = load_published(path.name)
        settings = [c for c in frame.columns if "." in c]
        for _, row in frame.iterrows():
            points = paper_grids[row["experiment"]]
            want = {"algorithm.name": row["method"], **{k: row[k] for k in settings}}
            assert any(all(key_text(p.get(k)) == key_text(v) for k, v in want.items()) for p in points), \
                f"{path.name}: {dict(want)} is not a grid point of {row['experiment']}"
            paper = ("Tarasov et al. 2023, CORL, " if row["experiment"] == "offline_baselines"
                     else "Feng, Tang, Wang & Chen 2026, Generative Trajectory Policies, arXiv 2510.11499 "
                     if row["experiment"].startswith("gtp_")
                     else "Kaddour 2026, Target Policy Optimization, arXiv 2604.06159, ")
            assert row["source"].startswith(paper)


def test_transcribed_values_of_the_new_csvs():
    t2 = load_published("table2_variations").set_index(["method", "env.reward", "env.logic"])
    assert len(t2) == 32 and set(t2["env.matching"]) == {"prompt"}
    assert t2.loc[("tpo_token", "sequential", "reverse_copy"), "value"] == 159
    assert t2.loc[("grpo_token", "sequential", "flip"), "never"] and t2.loc[("ppo", "bag", "reverse_copy"), "never"]
    assert int(t2["never"].sum()) == 9
    t5 = load_published("table5_eta").set_index(["algorithm.eta", "reduction"])["value"]
    assert t5[("4", "steps_to_threshold")] == 260 and t5[("0.5", "final")] == 0.0 and t5[("1", "final")] == 0.7
    k = load_published("sweep_k").set_index(["method", "env.k"])["value"]
    assert (k[("tpo", "64")], k[("grpo", "64")], k[("grpo", "8")]) == (0.36, 5.6, 19.8)
    e = load_published("sweep_epochs").set_index(["method", "algorithm.epochs"])["value"]
    assert (e[("grpo", "2")], e[("tpo", "1")], len(e)) == (37.6, 0.02, 7)
    masking = load_published("grpo_masking").set_index("method")["value"]
    assert masking.to_dict() == {"grpo": 6.3, "grpo_masked": 29.7, "tpo": 0.05}
    diag = load_published("diagnostics_sparse").set_index(["method", "reduction"])
    assert diag.loc[("tpo_1ep", "at_step"), ["value", "threshold"]].tolist() == [1.1, 400.0]
    assert load_published("mnist_mechanism")["value"].tolist() == [0.073]
    assert load_published("ablation_anchor")["value"].tolist() == [7.4]


@pytest.mark.parametrize("field, value, message", [
    ("kind", "smallest", "kind='smallest'; valid: lowest, highest, ordering, closest, below, above, decays, persists"),
    ("threshold", "", "kind 'below' needs a threshold"),
    ("threshold", "abc", "threshold='abc'; expected a number"),
    ("metric", "train/error|train/reward", "table names 1 tables but metric names 2"),
    ("settings", "env.vocab", "settings='env.vocab'; expected key=v1|v2"),
    ("subjects", "", "subjects is empty"),
])
def test_a_bad_claims_line_is_one_clear_error(tmp_path, field, value, message):
    row = {"experiment": "x", "claim": "c", "text": "t", "kind": "below", "table": "final", "metric": "train/error",
           "across": "", "subjects": "tpo", "versus": "", "settings": "", "threshold": "1", "source": "s"}
    row[field] = value
    (tmp_path / "claims.csv").write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    with pytest.raises(C.ClaimsError) as err:
        C.load_claims(tmp_path)
    assert str(err.value) == f"{tmp_path / 'claims.csv'}:2: {message}" or message in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_closest_takes_one_reference_and_ids_are_unique(tmp_path):
    head = ",".join(C.COLUMNS)
    (tmp_path / "claims.csv").write_text(f"{head}\nx,c,t,closest,error,train/error,,tpo,ce|pg,,,s\n")
    with pytest.raises(C.ClaimsError, match="'closest' takes exactly one reference"):
        C.load_claims(tmp_path)
    (tmp_path / "claims.csv").write_text(f"{head}\nx,c,t,lowest,error,train/error,,tpo,,,,s\n"
                                         f"x,c,t,lowest,error,train/error,,tpo,,,,s\n")
    with pytest.raises(C.ClaimsError, match="repeats an id"):
        C.load_claims(tmp_path)
    assert C.load_claims(tmp_path / "nowhere") == []


# -- one comparison -------------------------------------------------------------------------------------
V = C.Value


@pytest.mark.parametrize("x, y, verdict", [
    (V("a", 1.0, 0.1, 5), V("b", 2.0, 0.1, 5), "holds"),
    (V("a", 2.0, 0.1, 5), V("b", 1.0, 0.1, 5), "fails"),
    (V("a", 1.0, 0.5, 5), V("b", 1.6, 0.5, 5), "not enough seeds"),     # |d| = 0.6 <= √0.5 = 0.71
    (V("a", 1.0, 0.1, 1), V("b", 9.0, 0.1, 5), "not enough seeds"),     # one seed
    (V("a", 1.0, math.nan, 3), V("b", 1.0, math.nan, 3), "fails"),      # a tie of step counts
    (V("a", 50.0, math.nan, 3), V("b", math.inf, math.nan, 3), "holds"),  # b never reached
    (V("a", math.inf, math.nan, 3), V("b", math.inf, math.nan, 3), "fails"),  # neither reached
    (V("a", ok=False), V("b", 1.0, 0.1, 5), "missing"),
])
def test_less(x, y, verdict):
    assert C.less(x, y) == verdict


def test_combine_order():
    assert C.combine(["holds", "not enough seeds", "missing", "fails"]) == "fails"
    assert C.combine(["holds", "not enough seeds", "missing"]) == "missing"
    assert C.combine(["holds", "not enough seeds"]) == "not enough seeds"
    assert C.combine(["holds"]) == "holds" and C.combine([]) == "missing"


# -- each kind on hand-made cells -----------------------------------------------------------------------
SPEC = T.TableSpec("final", "final", M.ERROR, columns=("env.vocab",), scale=100, unit="%", decimals=2)
STEPS = T.TableSpec("steps", "steps", M.ERROR, reduction="steps_to_threshold", threshold=0.01, columns=("env.vocab",))


def _table(cells: dict[tuple[str, str], tuple], spec: T.TableSpec = SPEC) -> T.Table:
    """(method, V) -> (value, se, n) or (None, None, n) for never reached; rows of a built table."""
    rows = [{"algorithm.name": m, "env.vocab": v, "value": math.nan if x is None else x,
             "se": math.nan if se is None else se, "n": n, "never": x is None, "missing": False, "nan_runs": 0}
            for (m, v), (x, se, n) in cells.items()]
    return T.Table(spec, pd.DataFrame(rows))


def _claim(kind: str, subjects: str, versus: str = "", threshold: str = "", settings: str = "",
           table: str = "final", across: str = "") -> C.Claim:
    row = {"experiment": "x", "claim": "c", "text": "t", "kind": kind, "table": table, "metric": M.ERROR,
           "across": across, "subjects": subjects, "versus": versus, "settings": settings, "threshold": threshold,
           "source": "s"}
    return C.parse_claim(row, "test")


BASE = {("tpo", "2"): (1.0, 0.1, 5), ("dg", "2"): (3.0, 0.1, 5), ("pg", "2"): (9.0, 0.1, 5),
        ("tpo", "4"): (2.0, 0.1, 5), ("dg", "4"): (4.0, 0.1, 5), ("pg", "4"): (8.0, 0.1, 5)}


@pytest.mark.parametrize("claim, change, verdict", [
    (_claim("lowest", "tpo"), {}, "holds"),
    (_claim("lowest", "tpo"), {("tpo", "4"): (5.0, 0.1, 5)}, "fails"),
    (_claim("lowest", "tpo"), {("tpo", "4"): (3.9, 0.3, 5)}, "not enough seeds"),   # 0.1 <= √(0.3² + 0.1²)
    (_claim("lowest", "tpo"), {("tpo", "4"): (2.0, 0.1, 1)}, "not enough seeds"),   # one seed
    (_claim("lowest", "tpo", settings="env.vocab=2"), {("tpo", "4"): (50.0, 0.1, 5)}, "holds"),
    (_claim("highest", "pg"), {}, "holds"),
    (_claim("highest", "pg"), {("pg", "2"): (2.0, 0.1, 5)}, "fails"),
    (_claim("highest", "pg", "dg"), {("pg", "2"): (3.1, 0.1, 5)}, "not enough seeds"),
    (_claim("ordering", "tpo|dg", "pg"), {}, "holds"),
    (_claim("ordering", "pg", "tpo"), {}, "fails"),
    (_claim("ordering", "tpo", "dg"), {("dg", "4"): (2.05, 0.2, 5)}, "not enough seeds"),
    (_claim("ordering", "tpo", "grpo"), {}, "missing"),                              # no GRPO cell
    (_claim("closest", "dg", "tpo"), {}, "holds"),                                   # |3 − 1| < |9 − 1|
    (_claim("closest", "pg", "tpo"), {}, "fails"),
    (_claim("closest", "dg", "tpo"), {("pg", "2"): (3.1, 0.5, 5)}, "not enough seeds"),
    (_claim("below", "tpo|dg", threshold="5"), {}, "holds"),
    (_claim("below", "pg", threshold="5"), {}, "fails"),
    (_claim("below", "tpo", threshold="2.05"), {}, "not enough seeds"),              # 2.0 ± 0.1 at V=4
    (_claim("above", "pg", threshold="7"), {}, "holds"),
    (_claim("above", "tpo", threshold="1.5"), {}, "fails"),
    (_claim("above", "pg", threshold="8.05"), {}, "not enough seeds"),
    (_claim("below", "tpo", threshold="5", settings="env.vocab=16"), {}, "missing"),  # no such setting here
])
def test_each_kind_on_hand_made_cells(claim, change, verdict):
    check = C.check_claim(claim, {"final": _table({**BASE, **change})})
    assert check.status == verdict, check
    assert (check.reason == "") == (verdict == "holds")


def test_step_counts_never_reached_and_across_another_key():
    steps = _table({("tpo", "2"): (50, None, 3), ("dg", "2"): (None, None, 3), ("tpo", "4"): (90, None, 3),
                    ("dg", "4"): (80, None, 3)}, STEPS)
    assert C.check_claim(_claim("lowest", "tpo", settings="env.vocab=2", table="steps"), {"steps": steps}).status \
        == "holds"
    check = C.check_claim(_claim("lowest", "tpo", table="steps"), {"steps": steps})
    assert check.status == "fails" and check.reason == "TPO not below DG at V=4"
    # compare settings instead of methods: TPO's V = 4 is slower than its V = 2
    slow = C.check_claim(_claim("highest", "4", across="env.vocab", settings="algorithm.name=tpo", table="steps"),
                         {"steps": steps})
    assert slow.status == "holds" and slow.numbers == "TPO: vocab=2 50 (n=3), vocab=4 90 (n=3)"
    assert C.check_claim(_claim("below", "dg", threshold="100", table="steps"), {"steps": steps}).status == "fails"
    assert C.check_claim(_claim("lowest", "tpo", across="env.horizon"), {"final": _table(BASE)}).status == "missing"


def _curves(ends: dict[str, list[float]], peak: float = 1.0) -> pd.DataFrame:
    """A tidy frame of diag/grad_norm: per method and seed, 10 steps rising to ``peak`` then falling to ``end``."""
    rows = []
    for algo, per_seed in ends.items():
        for seed, end in enumerate(per_seed):
            curve = [0.2, 0.6, peak, 0.8, 0.5, 0.3, 0.2, end, end, end]
            rows += [{"run_id": algo, "status": "completed", "algorithm.name": algo, "seed": seed, "step": s,
                      "metric": M.GRAD_NORM, "value": v} for s, v in enumerate(curve)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("kind, ends, verdict", [
    ("decays", [0.01, 0.02, 0.03], "holds"),
    ("decays", [0.5, 0.6, 0.7], "fails"),
    ("decays", [0.01, 0.25, 0.02], "not enough seeds"),   # mean 0.093, s.e. 0.078: within 0.1 ± s.e.
    ("decays", [0.01], "not enough seeds"),               # one seed
    ("persists", [0.5, 0.6, 0.7], "holds"),
    ("persists", [0.01, 0.02, 0.03], "fails"),
])
def test_decays_and_persists_on_hand_made_curves(kind, ends, verdict):
    spec = T.TableSpec("grad_norm", "g", M.GRAD_NORM, reduction="mean_over_steps", lower_is_better=False)
    tidy = _curves({"tpo": ends})
    claim = _claim(kind, "tpo", threshold="0.1", table="grad_norm")
    check = C.check_claim(claim, {"grad_norm": T.build_table(tidy, spec)}, tidy)
    assert check.status == verdict, check
    assert check.numbers.startswith("TPO: end/peak ")
    assert C.check_claim(_claim(kind, "grpo", threshold="0.1", table="grad_norm"),
                         {"grad_norm": T.build_table(tidy, spec)}, tidy).status == "missing"


def test_end_to_peak_uses_the_last_tenth_of_the_curve():
    tidy = _curves({"tpo": [0.05]}, peak=2.0)
    spec = T.TableSpec("grad_norm", "g", M.GRAD_NORM, reduction="mean_over_steps")
    ratio = C.end_to_peak(tidy, spec, _claim("decays", "tpo", threshold="0.1", table="grad_norm"))
    assert ratio["value"].tolist() == [pytest.approx(0.05 / 2.0)]


def test_registered_sequence_claims_on_hand_made_tables():
    """Table 1's "TPO_token reaches 1% first at every V" and §4.2's masking claim, read from the real file."""
    t1 = {s.name: s for s in T.TABLES["table1_vocab"]}["table1"]
    cells = {("tpo_token", "2"): (58, None, 2), ("grpo_token", "2"): (904, None, 2), ("dg", "2"): (199, None, 2),
             ("ppo", "2"): (872, None, 2), ("tpo_token", "4"): (74, None, 2), ("grpo_token", "4"): (141, None, 2),
             ("dg", "4"): (273, None, 2), ("ppo", "4"): (None, None, 2)}
    rows = [{"algorithm.name": m, "env.vocab": v, "value": math.nan if x is None else x, "se": math.nan, "n": n,
             "never": x is None, "missing": False, "nan_runs": 0} for (m, v), (x, _, n) in cells.items()]
    checks = C.check_claims("table1_vocab", {"table1": T.Table(t1, pd.DataFrame(rows))})
    assert [c.status for c in checks] == ["holds"]
    mask = {s.name: s for s in T.TABLES["grpo_masking"]}["final_error"]
    rows = [{"algorithm.name": m, "value": v, "se": se, "n": 30, "never": False, "missing": False, "nan_runs": 0}
            for m, v, se in (("grpo", 6.3, 1.0), ("grpo_masked", 29.7, 3.0), ("tpo", 0.05, 0.02))]
    checks = C.check_claims("grpo_masking", {"final_error": T.Table(mask, pd.DataFrame(rows))})
    assert [(c.claim.id, c.status) for c in checks] == [("masking_hurts_grpo", "holds"), ("tpo_lowest", "holds")]


def _diagnostics_tidy() -> pd.DataFrame:
    """Synthetic §4 diagnostics: 3 seeds per method, a value every 50 steps up to step 500."""
    final = {"tpo": 0.0005, "tpo_1ep": 0.0008, "grpo": 0.127, "grpo_nokl": 0.5, "ppo": 0.3, "dg": 0.14}
    at400 = {"tpo": 0.002, "tpo_1ep": 0.011}
    grad_end = {"tpo": 0.01, "tpo_1ep": 0.02, "grpo": 0.5, "grpo_nokl": 0.6, "ppo": 0.4, "dg": 0.3}
    all_fail = {"tpo": 0.1, "tpo_1ep": 0.15, "grpo": 0.3, "grpo_nokl": 0.6, "ppo": 0.5, "dg": 0.5}
    rows = []
    for algo in final:
        for seed in range(3):
            noise = 1 + 0.01 * (seed - 1)
            for step in range(0, 501, 50):
                error = at400.get(algo, final[algo]) if step == 400 else (0.9 if step < 400 else final[algo])
                grad = 1.0 if step == 100 else (0.5 if step < 300 else grad_end[algo])
                for metric, value in ((M.ERROR, error), (M.GRAD_NORM, grad), (M.diag("all_fail_frac"), all_fail[algo])):
                    rows.append({"run_id": algo, "status": "completed", "algorithm.name": algo, "seed": seed,
                                 "step": step, "metric": metric, "value": value * noise})
    return pd.DataFrame(rows)


def test_registered_diagnostics_claims_and_published_numbers_on_synthetic_records():
    tidy = _diagnostics_tidy()
    tables = {s.name: T.build_table(tidy, s) for s in T.TABLES["diagnostics_sparse"]}
    at400 = tables["error_at_400"].cells.set_index("algorithm.name")
    assert at400.loc["tpo", "value"] == pytest.approx(0.2) and at400.loc["tpo_1ep", "value"] == pytest.approx(1.1)
    assert (at400.loc["tpo", "published"], at400.loc["tpo", "verdict"]) == (0.2, "✓")
    assert (at400.loc["tpo_1ep", "published"], at400.loc["tpo_1ep", "verdict"]) == (1.1, "✓")
    final = tables["final_error"].cells.set_index("algorithm.name")
    assert final.loc["grpo", ["published", "verdict"]].tolist() == [12.7, "✓"]
    assert final.loc["dg", ["published", "verdict"]].tolist() == [14.0, "✓"]
    checks = C.check_claims("diagnostics_sparse", tables, tidy)
    assert [(c.claim.id, c.status) for c in checks] == [
        ("tpo_grad_norm_decays", "holds"), ("grpo_grad_norm_persists", "holds"),
        ("tpo_fewer_all_fail_than_grpo", "holds"), ("grpo_fewer_all_fail_than_nokl", "holds"),
        ("tpo_4ep_ahead_at_400", "holds"), ("tpo_both_epochs_below_01", "holds")]
    # a record that ends before step 400 has no value there: the claim is missing, not read at its last step
    short = tidy[tidy["step"] < 400]
    early = {s.name: T.build_table(short, s) for s in T.TABLES["diagnostics_sparse"]}
    assert early["error_at_400"].cells.empty
    ahead = next(c for c in C.check_claims("diagnostics_sparse", early, short) if c.claim.id == "tpo_4ep_ahead_at_400")
    assert ahead.status == "missing"
