"""The side-by-side benchmark's pieces: parsing the reference's output, reading the suite's records, the
same-work check, the table, and one clear line when the reference is missing."""
from __future__ import annotations

import json
import math

import pytest

from bench import perf, perf_reference as pr


def test_reference_final_errors_parses_the_driver_line():
    out = "Running...\nREFERENCE_FINAL " + json.dumps({"tpo": [0.01, 0.002], "pg": [0.5, 0.01]}) + "\n"
    assert pr.reference_final_errors(out) == {"tpo": (0.01, 0.002), "pg": (0.5, 0.01)}
    with pytest.raises(RuntimeError, match="no final errors"):
        pr.reference_final_errors("nothing here")


def test_ours_final_errors_reads_the_last_step_of_each_run(tmp_path):
    run = tmp_path / "runs" / "tabular_multi" / "paper" / "tpo-x"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("algorithm:\n  name: tpo\n")
    rows = [{"step": 0, "seed": s, "train/error": 0.9} for s in range(3)]
    rows += [{"step": 9, "seed": s, "train/error": e} for s, e in enumerate((0.1, 0.2, 0.3))]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    mean, se, n = pr.ours_final_errors(tmp_path, "tabular_multi")["tpo"]
    assert n == 3 and math.isclose(mean, 0.2) and math.isclose(se, 0.1 / math.sqrt(3))


def test_agreement_within_two_combined_standard_errors():
    ours = {"tpo": (0.10, 0.01, 100), "pg": (0.30, 0.01, 100)}
    ref = {"tpo": (0.12, 0.01), "pg": (0.40, 0.01), "dg": (0.2, 0.01)}
    rows = {r["algorithm"]: r for r in pr.agreement("tabular_single", ours, ref)}
    assert rows["tpo"]["agrees"] and math.isclose(rows["tpo"]["tolerance"], 2 * math.sqrt(2) * 0.01)
    assert not rows["pg"]["agrees"]                       # 0.1 apart, tolerance 0.028
    assert rows["dg"]["note"] == "missing" and not rows["dg"]["agrees"]
    assert rows["grpo"]["note"] == "missing"


def test_render_gives_ratio_of_medians_and_the_same_work_table():
    row = pr.Row("tabular_multi, per step", "step", ours=[2.0, 4.0, 3.0], ref=[1.0, 1.5, 2.0], note="(1000 − 200)")
    assert row.summary()["ratio"] == 3.0 / 1.5
    env = {"device_name": "x86_64", "cpu_count": 2, "date": "d", "torch": "t", "reference": "/r", "repeats": 3,
           "command": "bench-perf --reference /r"}
    checks = pr.agreement("tabular_single", {"tpo": (0.1, 0.01, 4)}, {"tpo": (0.1, 0.01)})
    text = pr.render([row], checks, env)
    assert "| 1.5 (1–2) | 3 (2–4) | s/step | **2.00** |" in text
    assert "| tabular_single | tpo | 0.1 ± 0.01 | 0.1 ± 0.01 | yes |" in text


def test_missing_reference_is_one_clear_line(tmp_path, capsys):
    assert perf.main(["--reference", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no src/tpo/cli.py" in err[0] and "git clone" in err[0]
    (tmp_path / "ref" / "src" / "tpo").mkdir(parents=True)
    (tmp_path / "ref" / "src" / "tpo" / "cli.py").write_text("")
    assert perf.main(["--reference", str(tmp_path / "ref")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reference-python" in err[0] and "pip install -e" in err[0]
