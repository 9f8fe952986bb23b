"""Declarative table specs per experiment, one small builder and the verdict rule.

``TABLES[experiment]`` lists :class:`TableSpec` s; :func:`build_table` turns the tidy frame
and one spec into a :class:`Table` whose ``cells`` frame has one row per (row key, column
setting) with the reduced numbers, the published number (if any) and a verdict.
The paper's qualitative claims about those cells are data (``results/published/claims.csv``),
checked by :mod:`bench.report.claims`.
An experiment without specs gets :func:`generic_specs` (final value of every ``train/`` and
``eval/`` metric per algorithm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from bench import metrics as M
from bench.report import reduce as R
from bench.report.published import load_published, published_for, setting_columns


CELL_FORMATS = ("mean_se", "iqm_ci", "mean_ci")
"""Cell formats of a value table (see :class:`TableSpec`)."""


@dataclass(frozen=True)
class TableSpec:
    """What one table shows.

    name:            file stem (``results/<experiment>/<scale>/<name>.md|.csv|.png``).
    title:           heading printed above the table.
    metric:          metric name from :mod:`bench.metrics`.
    reduction:       ``"final"``, ``"best"``, ``"mean_over_steps"``, ``"at_step"`` or ``"steps_to_threshold"``
                     (:data:`reduce.REDUCTIONS`).
    threshold:       raw-metric threshold for ``steps_to_threshold`` (e.g. 0.01 = 1 % error).
    at_step:         the step read by the ``at_step`` reduction (e.g. 400 for "error at episode 400").
    rows:            config column giving the table rows (usually ``algorithm.name``).
    columns:         config columns whose value combinations give the table columns.
    row_order:       preferred row order (other rows follow, sorted).
    scale:           display factor applied to metric values (100 -> percent).
    unit:            display unit of the (scaled) values.
    decimals:        digits after the point in "mean ± s.e." cells (significant digits with ``number_format="g"``).
    number_format:   ``"f"`` (fixed point) or ``"g"`` (significant digits; for values spanning decades).
    lower_is_better: direction for bold-best and verdicts.
    bold:            mark the best cell of each column (False where neither direction is better, e.g. an
                     acceptance rate, or where every method shares the value by construction).
    published:       CSV file name under ``results/published`` or ``None``.
    tolerance:       absolute verdict tolerance in display units (value reductions).
    rel_tolerance:   relative verdict tolerance for steps-to-threshold.
    never_above:     a published "−" in a value table means "above this" (display units).
    spread:          also show the per-seed spread (min / median / max, seeds below).
    spread_threshold: "below" threshold for the spread, in display units.
    reference:       where in the paper the table comes from.
    cell:            what a cell shows (:data:`CELL_FORMATS`): ``"mean_se"`` (mean ± s.e.),
                     ``"iqm_ci"`` (IQM [95 % stratified-bootstrap CI], for bimodal per-seed outcomes)
                     or ``"mean_ci"`` (mean [95 % bootstrap CI]); steps-to-threshold cells are step counts.
    row_labels:      config columns printed beside each row (ad-hoc tables: a row is one configuration).
    notes:           lines printed under the table (what its numbers are normalised by, comparability).
    verdicts:        print a verdict beside each published number (False: the paper's number only, e.g. timings
                     from other hardware).
    """

    name: str
    title: str
    metric: str
    reduction: str = "final"
    threshold: Optional[float] = None
    at_step: Optional[int] = None
    rows: str = "algorithm.name"
    columns: tuple[str, ...] = ()
    row_order: tuple[str, ...] = ()
    scale: float = 1.0
    unit: str = ""
    decimals: int = 3
    number_format: str = "f"
    lower_is_better: bool = True
    bold: bool = True
    published: Optional[str] = None
    tolerance: float = 0.0
    rel_tolerance: float = 0.25
    never_above: Optional[float] = None
    spread: bool = False
    spread_threshold: Optional[float] = None
    reference: str = ""
    cell: str = "mean_se"
    row_labels: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    verdicts: bool = True

    def __post_init__(self) -> None:
        if self.cell not in CELL_FORMATS:
            raise ValueError(f"table {self.name!r}: cell={self.cell!r}; valid: {', '.join(CELL_FORMATS)}")
        if self.reduction not in R.REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduction!r}; choose from {R.REDUCTIONS}")
        if self.number_format not in ("f", "g"):
            raise ValueError(f"table {self.name!r}: number_format must be 'f' or 'g'")
        if self.reduction == "steps_to_threshold" and self.threshold is None:
            raise ValueError(f"table {self.name!r}: steps_to_threshold needs a threshold")
        if (self.reduction == "at_step") != (self.at_step is not None):
            raise ValueError(f"table {self.name!r}: at_step={self.at_step!r} goes with reduction 'at_step' only "
                             f"(reduction={self.reduction!r})")

    @property
    def published_threshold(self) -> Optional[float]:
        """The ``threshold`` column of its published rows: the threshold of ``steps_to_threshold``,
        the step of ``at_step`` (``None`` otherwise)."""
        return float(self.at_step) if self.reduction == "at_step" else self.threshold

    @property
    def keys(self) -> list[str]:
        """Row key followed by the column keys."""
        return [self.rows, *self.columns]

    @property
    def is_steps(self) -> bool:
        return self.reduction == "steps_to_threshold"

    @property
    def needs_bootstrap(self) -> bool:
        """Whether the cells need bootstrap intervals (a CI cell format or a per-seed spread)."""
        return not self.is_steps and (self.cell != "mean_se" or (self.spread and self.spread_threshold is not None))

    @property
    def point(self) -> str:
        """The ``cells`` column a cell shows and bold-best compares: ``value`` (mean, steps) or ``iqm``."""
        return "iqm" if self.cell == "iqm_ci" and not self.is_steps else "value"

    def fmt(self, value: float) -> str:
        """A number at the table's printed precision (steps as integers)."""
        if self.is_steps:
            return str(int(round(value)))
        return f"{value:.{self.decimals}{self.number_format}}"


@dataclass
class Table:
    """A built table: the spec, the reduced ``cells`` frame, and notes to print under it."""

    spec: TableSpec
    cells: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# -- specs -------------------------------------------------------------------------------
_SINGLE = dict(row_order=("pg", "dg", "tpo", "grpo"))
_MULTI = dict(row_order=("ce", "tpo", "dg", "pg", "grpo"))
_MNIST_ROWS = ("tpo", "dg", "pg", "grpo", "group_pg", "dro_v", "reinforce_lb", "ce")
_MECH_BINS = ("[0, .25)", "[.25, .5)", "[.5, .75)", "[.75, 1]")
TABLES: dict[str, list[TableSpec]] = {
    "tabular_single": [
        TableSpec("error", "Tabular single-context bandit: error at the last step", M.ERROR,
                  scale=100, unit="%", decimals=3, number_format="g", reference="paper Fig. 2", **_SINGLE),
        TableSpec("misalignment", "Tabular single-context bandit: misalignment at the last step", M.MISALIGNMENT,
                  decimals=3, number_format="g", reference="paper Fig. 2", **_SINGLE),
        TableSpec("misalignment_mean", "Tabular single-context bandit: misalignment averaged over all steps",
                  M.MISALIGNMENT, reduction="mean_over_steps", decimals=3, number_format="g",
                  reference="paper Fig. 2", **_SINGLE),
    ],
    "tabular_multi": [
        TableSpec("error", "Tabular multi-context bandit: error at the last step", M.ERROR,
                  scale=100, unit="%", decimals=3, number_format="g", reference="paper Fig. 3", **_MULTI),
        TableSpec("misalignment", "Tabular multi-context bandit: misalignment to CE at the last step",
                  M.MISALIGNMENT, decimals=3, number_format="g", reference="paper Fig. 3", **_MULTI),
        TableSpec("misalignment_mean", "Tabular multi-context bandit: misalignment to CE averaged over all steps",
                  M.MISALIGNMENT, reduction="mean_over_steps", decimals=3, number_format="g",
                  reference="paper Fig. 3", **_MULTI),
    ],
    "table1_vocab": [
        TableSpec("table1", "Table 1: steps to 1% error (bag-of-tokens reverse copy, token candidates)", M.ERROR,
                  reduction="steps_to_threshold", threshold=0.01, columns=("env.vocab",),
                  row_order=("tpo_token", "grpo_token", "dg", "ppo"), published="table1_vocab.csv",
                  rel_tolerance=0.25, reference="paper Table 1"),
    ],
    "table3_terminal": [
        TableSpec("table3", "Table 3: exact-match error (%) at the last step, terminal reward", M.ERROR,
                  columns=("env.matching", "env.horizon"), scale=100, unit="%", decimals=1,
                  row_order=("tpo", "grpo", "grpo_nokl", "ppo", "dg", "dro_v", "reinforce_lb"),
                  published="table3_terminal.csv", tolerance=2.0, never_above=95.0, spread=True,
                  spread_threshold=50.0, reference="paper Table 3", cell="iqm_ci"),
    ],
    "mnist": [
        TableSpec("final_error", "MNIST contextual bandit: test error (%) at the last step", M.EVAL_ERROR,
                  scale=100, unit="%", decimals=1, row_order=_MNIST_ROWS,
                  published="mnist.csv", tolerance=0.5, reference="paper, MNIST contextual bandit"),
        TableSpec("steps_to_5pct", "MNIST contextual bandit: steps to 5% test error", M.EVAL_ERROR,
                  reduction="steps_to_threshold", threshold=0.05, row_order=_MNIST_ROWS,
                  published="mnist.csv", rel_tolerance=0.25, reference="paper, MNIST contextual bandit"),
    ],
    # Fig. 4b / App. C: rows = the policy being trained; one table per (direction, bin); last step = step 2,000 at paper scale
    "mnist_mechanism": [
        TableSpec(f"surplus_{m}_bin{i}", f"MNIST mechanism: first-order surplus in p_y of the expected {m} update "
                  f"over its one-vs-rest surrogate, misclassified test examples with concentration in {b} "
                  "(rows: the algorithm training the policy)",
                  M.diag(f"mech_surplus_{m}_bin{i}"), decimals=3, number_format="g", lower_is_better=False,
                  row_order=("tpo", "pg"), reference="paper Fig. 4b, App. C",
                  # §3.3: TPO's surplus (on the TPO-trained policy) is 0.073 in the highest-concentration bin
                  **(dict(published="mnist_mechanism.csv", tolerance=0.02) if (m, i) == ("tpo", 3) else {}))
        for m in ("tpo", "pg", "dg", "group_pg") for i, b in enumerate(_MECH_BINS)
    ],
}
"""Experiment name (``conf/experiment/<name>.yaml``) -> its table specs."""

# -- token reversal family (bench/families/sequence.py): Tables 1-3, 5, Fig. 8, §3 diagnostics and sweeps --
# -- offline RL family (bench/families/offline.py) --
_OFFLINE_ROWS = ("bc", "td3_bc", "iql")
_OFFLINE_NOTES = (
    "Normalised score = 100·(R − R_random)/(R_expert − R_random) of the final evaluation (never the best over "
    "training): D4RL's reference returns (d4rl/infos.py) for real D4RL datasets; the generator's recorded "
    "random/expert returns (file metadata) for generated `*-gen` datasets.",
    "Generated `*-gen` datasets are collected and evaluated in gymnasium v5 MuJoCo / PointMaze v3 envs: not comparable "
    "with published D4RL numbers, which are shown only beside real D4RL ids.",
)
TABLES["offline_baselines"] = [
    TableSpec("normalised_score", "Offline baselines: normalised score of the final evaluation", M.EVAL_SCORE,
              columns=("env.dataset",), decimals=1, lower_is_better=False, row_order=_OFFLINE_ROWS,
              published="offline_baselines.csv", tolerance=5.0, reference="CORL (Tarasov et al. 2023), final scores",
              notes=_OFFLINE_NOTES),
    TableSpec("return", "Offline baselines: undiscounted return of the final evaluation", M.EVAL_RETURN,
              columns=("env.dataset",), decimals=1, lower_is_better=False, row_order=_OFFLINE_ROWS,
              reference="raw env return", notes=_OFFLINE_NOTES[1:]),
]

# -- generative policies for offline RL (GTP paper, Feng, Tang, Wang & Chen, arXiv 2510.11499, ICML 2026) --
_GTP_REF = "GTP paper (Feng, Tang, Wang & Chen 2026)"
_GTP_ORDER_NOTE = ("On generated `*-gen` datasets no published number applies: compare the methods' ordering only, "
                   "with the paper's ordering on D4RL.")


def _offline_scores(experiment: str, title: str, rows: tuple[str, ...], reference: str,
                    published: Optional[str]) -> list[TableSpec]:
    """Normalised score and raw return of the final evaluation per method × dataset (the offline tables' layout)."""
    return [TableSpec("normalised_score", f"{title}: normalised score of the final evaluation", M.EVAL_SCORE,
                      columns=("env.dataset",), decimals=1, lower_is_better=False, row_order=rows,
                      published=published, tolerance=5.0, reference=reference,
                      notes=(*_OFFLINE_NOTES, _GTP_ORDER_NOTE)),
            TableSpec("return", f"{title}: undiscounted return of the final evaluation", M.EVAL_RETURN,
                      columns=("env.dataset",), decimals=1, lower_is_better=False, row_order=rows,
                      reference="raw env return", notes=_OFFLINE_NOTES[1:])]


_STEP_MS = dict(metric=M.STEP_TIME, reduction="mean_over_steps", scale=1000.0, unit="ms", decimals=3,
                number_format="g")
_HW_NOTE = ("Times are this machine's (see the run provenance); the paper's are an RTX 4090's (hours for 2M steps "
            "divided by 2M): compare the methods' ordering and ratios, not the absolute numbers.")
TABLES["gtp_bc"] = _offline_scores("gtp_bc", "Generative BC (GTP paper Table 1 layout)",
                                   ("bc", "td3_bc", "ddpm_bc", "consistency_bc", "flow_bc", "gtp_bc"),
                                   f"{_GTP_REF}, Table 1", "gtp_bc.csv")
TABLES["gtp_offline"] = _offline_scores("gtp_offline", "Offline RL with generative policies (GTP paper Table 2 layout)",
                                        ("bc", "td3_bc", "iql", "diffusion_ql", "consistency_ac", "fql", "gtp",
                                         "tpo_offline"),
                                        f"{_GTP_REF}, Table 2 (FQL: its ICML-version table; BC, TD3+BC: Table 1)",
                                        "gtp_offline.csv")
TABLES["gtp_ablation"] = [
    *_offline_scores("gtp_ablation", "GTP ablation", ("gtp", "gtp_ode_teacher", "gtp_shortcut", "gtp_k2"),
                     f"{_GTP_REF}, ablation study (hopper-medium-expert)", "gtp_ablation.csv")[:1],
    TableSpec("step_ms", "GTP ablation: training time per gradient step (ms, mean over the run)",
              columns=("env.dataset",), row_order=("gtp", "gtp_ode_teacher", "gtp_shortcut", "gtp_k2"),
              published="gtp_ablation.csv", reference=f"{_GTP_REF}, ablation study (hours)",
              notes=(_HW_NOTE,), verdicts=False, **_STEP_MS),
]
_EFF_ROWS = ("diffusion_ql", "consistency_ac", "fql", "gtp", "gtp_k2", "tpo_offline")
TABLES["gtp_efficiency"] = [
    TableSpec("step_ms", "Efficiency: training time per gradient step (ms, batch 256, mean over the run)",
              row_order=_EFF_ROWS, published="gtp_efficiency.csv", reference=f"{_GTP_REF}, efficiency table",
              notes=(_HW_NOTE,), verdicts=False, **_STEP_MS),
    TableSpec("act_ms_b1", "Efficiency: inference time per action at batch 1 (ms, last evaluation)", M.act_ms(1),
              row_order=_EFF_ROWS, published="gtp_efficiency.csv", scale=1.0, unit="ms", decimals=3,
              number_format="g", reference=f"{_GTP_REF}, efficiency table (batch size not stated)",
              notes=(_HW_NOTE,), verdicts=False),
    TableSpec("act_ms_b256", "Efficiency: inference time per action within a batch of 256 states (ms)", M.act_ms(256),
              row_order=_EFF_ROWS, scale=1.0, unit="ms", decimals=3, number_format="g",
              reference="this suite (the paper reports one inference time)", notes=(_HW_NOTE,)),
]

# -- LLM RLVR family (bench/families/rlvr.py): TPO paper §3.8, Fig. 9 --
_RLVR_ROWS = ("tpo", "grpo", "rloo", "dr_grpo", "dro_v")
_RLVR_REF = "TPO paper §3.8, Fig. 9 (App. G settings)"
_RLVR_NOTES = (
    "Held-out accuracy: the mean task score of one greedy completion on the task's held-out problems (the same "
    "problems at every evaluation); the start is the evaluation before the first RL step (after the shared SFT warm "
    "start of a random-init model).",
    "The paper's stated outcomes (Fig. 9): on GSM8K with Qwen3-1.7B, TPO reaches 50 % accuracy about 10 steps before "
    "GRPO and both end at ≈ 85-87 %; on graph colouring TPO ≈ 0.96 vs GRPO ≈ 0 (Qwen3-1.7B) and ≈ 0.81 "
    "(R1-Distill-Qwen-1.5B). The built-in arithmetic_small task of the quick scale has no published number.",
)
TABLES["llm_rlvr"] = [
    TableSpec("accuracy_start", "LLM RLVR: held-out accuracy at the start (after SFT)", "eval/accuracy",
              reduction="at_step", at_step=0, columns=("env.task",), scale=100, unit="%", decimals=1,
              lower_is_better=False, row_order=_RLVR_ROWS, reference=_RLVR_REF, notes=_RLVR_NOTES[:1]),
    TableSpec("accuracy_final", "LLM RLVR: held-out accuracy at the end", "eval/accuracy", columns=("env.task",),
              scale=100, unit="%", decimals=1, lower_is_better=False, row_order=_RLVR_ROWS, reference=_RLVR_REF,
              notes=_RLVR_NOTES),
    TableSpec("accuracy_sampled_final", "LLM RLVR: held-out accuracy of one sampled completion at the end",
              "eval/accuracy_sampled", columns=("env.task",), scale=100, unit="%", decimals=1, lower_is_better=False,
              row_order=_RLVR_ROWS, reference=_RLVR_REF),
    TableSpec("train_score_final", "LLM RLVR: train mean score at the last step", M.REWARD, columns=("env.task",),
              scale=100, unit="%", decimals=1, lower_is_better=False, row_order=_RLVR_ROWS, reference=_RLVR_REF),
    TableSpec("steps_to_50pct", "LLM RLVR: steps to 50 % held-out accuracy (seed-mean curve)", M.EVAL_ERROR,
              reduction="steps_to_threshold", threshold=0.5, columns=("env.task",), row_order=_RLVR_ROWS,
              reference=_RLVR_REF),
]

_SEQ_TOKEN_ROWS = ("tpo_token", "grpo_token", "dg", "ppo")
_SEQ_GRID = ("env.matching", "env.reward", "env.logic")
_DIAG_ROWS = ("tpo", "tpo_1ep", "grpo", "grpo_nokl", "ppo", "dg")


def _final_and_steps(title: str, columns: tuple[str, ...], reference: str, *, decimals: int = 1,
                     published_final: Optional[str] = None, tolerance: float = 0.0,
                     published_steps: Optional[str] = None, **kw) -> list[TableSpec]:
    """Final error (%) with the per-seed spread, and steps to 1 % (seed-mean curve); each compared with
    its published CSV when one is named (``tolerance``: percentage points, final error)."""
    return [TableSpec("final_error", f"{title}: error (%) at the last step", M.ERROR, columns=columns, scale=100,
                      unit="%", decimals=decimals, spread=True, spread_threshold=50.0, reference=reference,
                      cell="iqm_ci", published=published_final, tolerance=tolerance, **kw),
            TableSpec("steps_to_1pct", f"{title}: steps to 1% error", M.ERROR, reduction="steps_to_threshold",
                      threshold=0.01, columns=columns, reference=reference, published=published_steps, **kw)]


TABLES["table1_vocab"] = [*TABLES["table1_vocab"], TableSpec(
    "final_error", "Table 1 setting: token error (%) at the last step (per-seed spread)", M.ERROR,
    columns=("env.vocab",), scale=100, unit="%", decimals=2, spread=True, spread_threshold=1.0,
    row_order=_SEQ_TOKEN_ROWS, reference="paper Table 1 setting", cell="iqm_ci")]
TABLES.update({
    "table2_variations": [
        TableSpec("table2", "Table 2: steps to 1% error, target logic x reward x matching (token candidates)",
                  M.ERROR, reduction="steps_to_threshold", threshold=0.01, columns=_SEQ_GRID,
                  row_order=_SEQ_TOKEN_ROWS, published="table2_variations.csv", rel_tolerance=0.25,
                  reference="paper Table 2"),
        TableSpec("final_error", "Table 2 setting: error (%) at the last step (per-seed spread)", M.ERROR,
                  columns=_SEQ_GRID, scale=100, unit="%", decimals=2, spread=True, spread_threshold=1.0,
                  row_order=_SEQ_TOKEN_ROWS, reference="paper Table 2 setting", cell="iqm_ci"),
    ],
    "ablation_anchor": _final_and_steps("Anchor ablation (terminal reward, prompt-matched)", ("env.horizon",),
                                        "paper §3.7, Fig. 8", published_final="ablation_anchor.csv", tolerance=2.0,
                                        row_order=("tpo", "tpo_no_anchor", "group_pg", "grpo", "grpo_nokl")),
    "table5_eta": _final_and_steps("Table 5: TPO temperature η", ("algorithm.eta",), "paper App. D, Table 5",
                                   published_final="table5_eta.csv", tolerance=0.5, published_steps="table5_eta.csv"),
    "sweep_k": _final_and_steps("Sparse reward, sweep over K", ("env.k",), "paper §4.2, Fig. 12", decimals=2,
                                published_final="sweep_k.csv", tolerance=1.0),
    "sweep_epochs": _final_and_steps("Sparse reward, sweep over epochs", ("algorithm.epochs",), "paper §4.3, Fig. 15",
                                     decimals=2, published_final="sweep_epochs.csv", tolerance=1.0),
    "grpo_masking": _final_and_steps("Sparse reward, GRPO zero-variance masking", (), "paper §4.2, Fig. 13",
                                     decimals=2, published_final="grpo_masking.csv", tolerance=1.0,
                                     row_order=("grpo", "grpo_masked", "tpo")),
    "diagnostics_sparse": [
        TableSpec("final_error", "Sparse-reward diagnostics: exact-match error (%) at the last step", M.ERROR,
                  scale=100, unit="%", decimals=2, spread=True, row_order=_DIAG_ROWS, published="diagnostics_sparse.csv",
                  tolerance=2.0, reference="paper §4.1, §4.3, Fig. 10, Fig. 14"),
        TableSpec("error_at_400", "Sparse-reward diagnostics: exact-match error (%) at episode 400", M.ERROR,
                  reduction="at_step", at_step=400, scale=100, unit="%", decimals=2, spread=True,
                  row_order=_DIAG_ROWS, published="diagnostics_sparse.csv", tolerance=0.5,
                  reference="paper §4.3, Fig. 14"),
    ] + [
        TableSpec(name, f"Sparse-reward diagnostics: {title}, mean over all steps", metric,
                  reduction="mean_over_steps", decimals=3, number_format="g", lower_is_better=lower, spread=True,
                  row_order=_DIAG_ROWS, reference="paper §4.1–4.3, Figs. 10, 11, 14")
        for name, title, metric, lower in (
            ("error", "exact-match error", M.ERROR, True),
            ("grad_norm", "first-epoch gradient L2 norm", M.GRAD_NORM, False),
            ("all_fail", "fraction of all-fail groups", M.diag("all_fail_frac"), True),
            ("any_success", "fraction of prompts with >= 1 success", M.diag("any_success_frac"), False),
            ("q_success", "TPO mean target mass on successful candidates", M.diag("q_success"), False),
            ("q_fail", "TPO mean target mass on failed candidates", M.diag("q_fail"), True),
            ("a_success", "GRPO mean advantage on successful candidates", M.diag("a_success"), False),
            ("a_fail", "GRPO mean advantage on failed candidates", M.diag("a_fail"), True))
    ],
})


# -- refinement family, tabular scale (bench/families/refine.py; envs/refine): exact metrics of the deployed gate --
_REFINE = dict(columns=("env.annotations", "env.gate_T"),
               row_order=("tpo", "grpo", "pg", "ppo", "reinforce_lb", "dro_v", "kto"),
               reference="refinement family (patent application US 2025/0265471 A1 setting); no published numbers")
_REFINE_NOTES = (
    "Exact expectations over every context, base action A1 and refinement (no sampling error within a seed); the "
    "gate sees only R_phi, fitted once per seed on `env.annotations` simulated Bradley-Terry pairs; R* is never "
    "seen by training. The ceiling of the lift, E_s[max_b R*(s, b)] - E[R*(S, A1)], is eval/best_response_lift "
    "in the records.",
    "Over-optimisation: curves_eval_proxy_gold_gap.png and curves_eval_kl_ref.png plot the gap and KL(pi_theta || "
    "pi_ref) over training steps (seed mean +- s.e.), one panel per budget x T.",
)
def _refine_tables(scale: str, notes: tuple[str, ...], kl: str, kl_decimals: int, rm_pairs: str) -> list[TableSpec]:
    """The refinement family's tables at one scale (``scale`` names it in the titles)."""
    t = f"Refinement ({scale})"
    return [
        TableSpec("lift", f"{t}: gold lift J - E[R*(S, A1)] of the deployed output at the last step",
                  M.REFINE_LIFT, decimals=3, lower_is_better=False, notes=notes, **_REFINE),
        TableSpec("harm_rate", f"{t}: harm rate P(deployed refinement is gold-worse than A1), %",
                  M.REFINE_HARM, scale=100, unit="%", decimals=1, **_REFINE),
        TableSpec("proxy_gold_gap", f"{t}: proxy-gold gap E[R_phi(A2) - R_phi(A1)] - E[R*(A2) - R*(A1)] of the "
                  "refiner's proposals (over-optimisation of R_phi) at the last step", M.REFINE_GAP, decimals=3,
                  **_REFINE),
        TableSpec("kl_ref", f"{t}: KL(pi_theta || pi_ref) to the initial refiner ({kl}) at the last step",
                  M.REFINE_KL_REF, decimals=kl_decimals, **_REFINE),
        TableSpec("acceptance_rate", f"{t}: acceptance rate P(deployed output != A1), %",
                  M.REFINE_ACCEPT, scale=100, unit="%", decimals=1, lower_is_better=False, bold=False, **_REFINE),
        TableSpec("rm_accuracy", f"{t}: R_phi pairwise accuracy on {rm_pairs}, % (fitted before RL: the same for "
                  "every method of a seed)", M.REFINE_RM_ACCURACY, scale=100, unit="%", decimals=1,
                  lower_is_better=False, bold=False, **_REFINE),
    ]


TABLES["refine_tabular"] = _refine_tables("tabular", _REFINE_NOTES, "nats", 3, "unlimited held-out pairs")


# -- refinement family, sequence scale (bench/families/refine_sequence.py): Monte-Carlo metrics on held-out states --
_GAP_UNITS = ("Units: R_phi is fitted with Bradley-Terry logits beta_ann * R_phi (env.annotator_beta), so its "
              "differences estimate differences of R* and the proxy-gold gap is in R*'s units. Columns differing only "
              "in gate T train identically (same seeds; the gate acts only at deployment), so their gap and KL cells are "
              "equal by construction.")

_REFINE_SEQ_NOTES = (
    "Token reversal (H x V in the records); seed means of Monte-Carlo estimates on `env.eval_prompts` held-out "
    "states (x, A1) with `env.gate_k` refinements each (the gate's choice among them exact); R_phi, a transformer "
    "fitted once per seed on `env.annotations` simulated Bradley-Terry pairs, is the only reward training and the "
    "gate see. The ceiling of the lift, 1 - E[R*(S, A1)], is eval/best_response_lift; pi0's measured accuracy is "
    "diag/base_token_accuracy in the records.",
    "Over-optimisation: overoptimisation.png plots the proxy-gold gap against KL(pi_theta || pi_ref) over training "
    "(seed means), one panel per budget x T.",
    _GAP_UNITS,
)
TABLES["refine_sequence"] = _refine_tables("sequence", _REFINE_SEQ_NOTES, "nats, sequence", 2,
                                              "held-out pairs from pi0")


# -- refinement family, LLM scale (bench/families/refine_llm.py): answer revision, Monte-Carlo on held-out problems --
_REFINE_LLM_NOTES = (
    "Answer revision on an RLVR task (env.task in the records); seed means of Monte-Carlo estimates on "
    "`env.eval_prompts` held-out problems with their A1 from pi0 (the RLVR family's SFT model, frozen) and "
    "`env.gate_k` refinements each (the gate's choice among them exact); R* is the task's verifier (0/1), R_phi an LM "
    "scorer fitted once per seed on `env.annotations` simulated Bradley-Terry pairs of pi0 answers, the only reward "
    "training and the gate see. The ceiling of the lift, 1 - E[R*(S, A1)], is eval/best_response_lift; pi0's sampled "
    "accuracy is diag/base_accuracy in the records. KL is a sampled estimate of the sequence KL (nats).",
    "Over-optimisation: overoptimisation.png plots the proxy-gold gap against KL(pi_theta || pi_ref) over training "
    "(seed means), one panel per budget x T.",
    _GAP_UNITS,
)
TABLES["refine_llm"] = _refine_tables("LLM", _REFINE_LLM_NOTES, "nats, sequence, sampled", 2, "held-out pairs from pi0")


def generic_specs(tidy: pd.DataFrame, runs: Optional[pd.DataFrame] = None) -> list[TableSpec]:
    """Final value of every ``train/`` and ``eval/`` metric per algorithm.

    Columns are the ``env.*`` config keys that vary across the included runs.
    """
    names = sorted(str(m) for m in pd.unique(tidy["metric"]) if str(m).startswith((M.TRAIN, M.EVAL)))
    columns: tuple[str, ...] = ()
    if runs is not None and len(runs):
        inc = runs[runs["included"]]
        columns = tuple(c for c in runs.columns if c.startswith("env.") and inc[c].astype(str).nunique() > 1)
    return [TableSpec(m.replace("/", "_"), f"{_titled(m)} at the last step", m, columns=columns, decimals=4,
                      number_format="g", **_units(m)) for m in names]


def _units(metric: str) -> dict[str, object]:
    """Display scale and unit of a metric in the generic and ad-hoc tables: the rates of ``M.PERCENT`` in %
    (as every experiment table prints them), anything else as logged."""
    return {"scale": 100, "unit": "%"} if metric in M.PERCENT else {}


def _titled(metric: str) -> str:
    """``train/error (%)`` for a rate shown in percent, else the metric's name."""
    return f"{metric} (%)" if metric in M.PERCENT else metric


ADHOC_ROW = "config"
"""Row key of ad-hoc tables: the run's identity hash (``summary.json`` ``config_hash``), one row per configuration."""
_NOT_DISTINGUISHING = ("experiment", "scale", "env.data_dir", "logger", "run.root", "run.progress",
                       "run.checkpoint_every", "run.seeds_per_batch")


def distinguishing_keys(runs: pd.DataFrame) -> tuple[str, ...]:
    """Config columns that tell the configurations in ``runs`` apart (identity-relevant keys only).

    ``algorithm.name`` and ``env.name`` always; then every other key whose value varies
    (``run.steps`` of a 100-step and a 50-step run), except ``algorithm.*`` and ``env.*`` keys that
    vary only with the algorithm or env (each algorithm's own defaults): those are shown when they
    vary between configurations of the same algorithm and env.
    """
    fixed = [k for k in ("algorithm.name", "env.name") if k in runs]
    if runs.empty:
        return tuple(fixed)
    per_config = runs.drop_duplicates("config_hash")
    group_by = fixed or None
    shown = []
    for c in sorted(runs.columns):
        if "." not in c or c in fixed or any(c == p or c.startswith(p + ".") for p in _NOT_DISTINGUISHING):
            continue
        if per_config[c].map(key_text).nunique() < 2:
            continue
        if not group_by or not c.startswith(("algorithm.", "env.")) or \
                any(g[c].map(key_text).nunique() > 1 for _, g in per_config.groupby(group_by, dropna=False)):
            shown.append(c)
    return tuple(fixed + shown)


def adhoc_specs(tidy: pd.DataFrame, runs: pd.DataFrame) -> list[TableSpec]:
    """Ad-hoc runs: the final value of every ``train/`` and ``eval/`` metric, one row per configuration
    (never pooling two configurations), with the configurations' distinguishing values as columns."""
    names = sorted(str(m) for m in pd.unique(tidy["metric"]) if str(m).startswith((M.TRAIN, M.EVAL)))
    labels = distinguishing_keys(runs[runs["included"]] if "included" in runs else runs)
    return [TableSpec(m.replace("/", "_"), f"{_titled(m)} at the last step, one row per configuration", m,
                      rows=ADHOC_ROW, decimals=4, number_format="g", row_labels=labels, **_units(m)) for m in names]


def specs_for(experiment: str, tidy: pd.DataFrame, runs: Optional[pd.DataFrame] = None) -> list[TableSpec]:
    """The registered specs of ``experiment``, else :func:`generic_specs`."""
    return TABLES.get(experiment) or generic_specs(tidy, runs)


# -- verdicts ------------------------------------------------------------------------------
def verdict(spec: TableSpec, ours: Optional[float], se: Optional[float], never: bool,
            paper: Optional[float], paper_never: bool) -> str:
    """Compare one of our cells with the published one (all in display units).

    Returns ``""`` when there is no published number, ``"n/a"`` when we have no number.

    * Steps to threshold (relative tolerance): both never → ``"✓"``; paper never, ours
      reached → ``"better"``; ours never → ``"worse"``; |ours − paper| ≤ rel_tolerance · paper
      → ``"✓"``; otherwise fewer steps → ``"better"``, more → ``"worse"``.
    * Values (final/best): paper "−" with ``never_above`` b: ours > b → ``"✓"``, else
      ``"better"`` (``"worse"`` if higher is better). Otherwise ``"✓"`` when
      |ours − paper| ≤ max(2·s.e., tolerance) (s.e. NaN counts as 0); else ``"better"`` or
      ``"worse"`` by ``lower_is_better``.
    """
    if not paper_never and (paper is None or math.isnan(paper)):
        return ""
    if spec.is_steps:
        if never:
            return "✓" if paper_never else "worse"
        if ours is None or (isinstance(ours, float) and math.isnan(ours)):
            return "n/a"
        if paper_never:
            return "better"
        if abs(ours - paper) <= spec.rel_tolerance * paper:
            return "✓"
        return "better" if ours < paper else "worse"
    if ours is None or math.isnan(ours):
        return "n/a"
    if paper_never:
        bound = spec.never_above
        if bound is not None and ours > bound:
            return "✓"
        return "better" if spec.lower_is_better else "worse"
    allowed = max(2 * (0.0 if se is None or math.isnan(se) else se), spec.tolerance)
    if abs(ours - paper) <= allowed:
        return "✓"
    return "better" if (ours < paper) == spec.lower_is_better else "worse"


# -- builder -------------------------------------------------------------------------------
def key_text(value: object) -> str:
    """Normalised text of a config value used to match cells (``2.0`` and ``2`` -> ``"2"``)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _key(row: pd.Series, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(key_text(row[k]) for k in keys)


def per_seed_values(tidy: pd.DataFrame, spec: TableSpec, keys: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """``keys + [run_id, seed, value]``: the spec's per-seed reduction (raw metric units; not for
    ``steps_to_threshold``, which reduces the seed-mean curve). ``keys`` default to ``spec.keys``."""
    keys = list(spec.keys if keys is None else keys)
    if spec.reduction == "at_step":
        return R.per_seed_at_step(tidy, keys, spec.metric, int(spec.at_step))
    return R.PER_SEED[spec.reduction](tidy, keys, spec.metric, spec.lower_is_better)


def _reduce(tidy: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Numbers of our completed runs: keys + value, se, n, never, spread columns."""
    keys = spec.keys
    if spec.is_steps:
        out = R.steps_to_threshold(tidy, keys, spec.metric, spec.threshold)
        out["never"] = out["steps"].map(lambda s: s is None)
        out["value"] = out["steps"].map(lambda s: math.nan if s is None else float(s))
        out["se"] = math.nan
        return out.drop(columns="steps")
    per_seed = per_seed_values(tidy, spec, keys)
    per_seed["value"] = per_seed["value"] * spec.scale
    stats = R.mean_se(per_seed, keys).rename(columns={"mean": "value"})
    stats["never"] = False
    spread = R.spread(per_seed, keys, spec.spread_threshold).drop(columns="n")
    stats = stats.merge(spread, on=keys, how="left")
    if spec.needs_bootstrap and len(per_seed):
        wanted = ("mean",) if spec.cell == "mean_ci" else ("iqm",)
        stats = stats.merge(R.robust(per_seed, keys, intervals=wanted).drop(columns="median"), on=keys, how="left")
        if spec.spread_threshold is not None:
            stats = stats.merge(R.optimality_gap(per_seed, keys, spec.spread_threshold, spec.lower_is_better),
                                on=keys, how="left")
    return stats


def _nan_cells(runs: Optional[pd.DataFrame], spec: TableSpec) -> pd.DataFrame:
    """keys + nan_runs, nan_seeds, nan_of (seed counts) for runs that stopped on NaN."""
    cols = [*spec.keys, "nan_runs", "nan_seeds", "nan_of", "nan_step"]
    if runs is None or runs.empty:
        return pd.DataFrame(columns=cols)
    nan = runs[(runs["status"] == "nan") & ~runs["superseded"]]
    if nan.empty or any(k not in nan for k in spec.keys):
        return pd.DataFrame(columns=cols)
    nan = nan.assign(_k=nan["nan_seeds"].where(nan["nan_seeds"] > 0, nan["n_seeds"]))
    grouped = nan.groupby(spec.keys, dropna=False)
    out = grouped.agg(nan_runs=("run_id", "count"), nan_seeds=("_k", "sum"), nan_of=("n_seeds", "sum"),
                      nan_step=("last_step", "max")).reset_index()
    return out[cols]


def _as_text_keys(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Key columns as normalised text (:func:`key_text`) so frames from different sources merge."""
    frame = frame.copy()
    for k in keys:
        frame[k] = frame[k].map(key_text).astype(object)
    return frame


def _published(spec: TableSpec, root: Optional[Path], notes: list[str],
               runs: Optional[pd.DataFrame] = None) -> dict[tuple[str, ...], tuple[float, bool]]:
    """Published (value, never) by cell key; empty (with a note) when the spec has none or the CSV is missing.

    A setting column of the CSV that is not a table key (e.g. ``env.horizon`` where the paper fixes H) is a
    condition: a published row is used only when the table's included runs have that value, so a quick-scale
    table at another H shows no paper column (a note says why) rather than comparing different tasks.
    """
    if not spec.published:
        return {}
    try:
        frame = load_published(spec.published, root)
    except FileNotFoundError as exc:
        notes.append(f"{exc}; no comparison made.")
        return {}
    frame = published_for(frame, spec.metric, spec.reduction, spec.published_threshold)
    frame = frame.rename(columns={"method": spec.rows}) if spec.rows == "algorithm.name" else frame
    missing = [k for k in spec.keys if k not in frame]
    if missing:
        raise ValueError(f"{spec.published}: missing setting columns {missing} needed by table {spec.name!r}")
    frame = _matching_conditions(frame, spec, runs, notes)
    return {_key(r, spec.keys): (r["value"], bool(r["never"])) for _, r in frame.iterrows()}


def _matching_conditions(frame: pd.DataFrame, spec: TableSpec, runs: Optional[pd.DataFrame],
                         notes: list[str]) -> pd.DataFrame:
    """Published rows whose non-key setting columns match the values of the table's included runs."""
    if runs is None or runs.empty:
        return frame
    included = runs[runs["included"]] if "included" in runs else runs
    for col in [c for c in setting_columns(frame) if c not in spec.keys and c in included]:
        ours = {key_text(v) for v in included[col].dropna()}
        keep = frame[col].map(key_text).isin(ours)
        if not keep.all():
            paper = ", ".join(sorted({key_text(v) for v in frame.loc[~keep, col]}))
            notes.append(f"Paper values at `{col}` = {paper} are not shown: these runs have "
                         f"`{col}` = {', '.join(sorted(ours))}.")
        frame = frame[keep]
    return frame


def _order(cells: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Rows in ``spec.row_order`` first, then the rest sorted (by their ``row_labels`` values where the rows
    have them, e.g. an ad-hoc table's algorithm, env and swept values); settings sorted numerically if possible."""
    rank = {name: i for i, name in enumerate(spec.row_order)}
    labels = [c for c in spec.row_labels if c in cells]
    sort_keys = [cells.apply(lambda r: (rank.get(key_text(r[spec.rows]), len(rank)),
                                        *(_natural(r[c]) for c in labels), key_text(r[spec.rows])), axis=1)
                 if len(cells) else cells[spec.rows]]
    for col in spec.columns:
        sort_keys.append(cells[col].map(_natural))
    order = sorted(range(len(cells)), key=lambda i: tuple(s.iloc[i] for s in sort_keys))
    return cells.iloc[order].reset_index(drop=True)


def _natural(value: object) -> tuple:
    text = key_text(value)
    try:
        number = float(text)
    except ValueError:
        return (1, 0.0, text)
    return (0, number, text) if not math.isnan(number) else (1, 0.0, text)


def _pooled_note(tidy: pd.DataFrame, runs: Optional[pd.DataFrame], spec: TableSpec) -> list[str]:
    """A note for cells that pool runs of different configs (e.g. a sweep axis not in the table)."""
    if runs is None or runs.empty:
        return []
    inc = runs[runs["included"]]
    if any(k not in inc for k in spec.keys):
        return []
    counts = inc.groupby(spec.keys, dropna=False)["config_hash"].nunique()
    pooled = counts[counts > 1]
    if pooled.empty:
        return []
    where = ", ".join("/".join(key_text(v) for v in (k if isinstance(k, tuple) else (k,))) for k in pooled.index)
    return [f"Cells pooling seeds of several configs (a varied setting not shown as a column): {where}."]


def build_table(tidy: pd.DataFrame, spec: TableSpec, runs: Optional[pd.DataFrame] = None,
                published_root: Optional[Path] = None, missing: Sequence[Mapping[str, object]] = ()) -> Table:
    """(tidy frame, spec) -> :class:`Table`.

    ``cells`` columns: the spec keys, ``value`` (mean, or steps), ``se``, ``n`` (seeds),
    ``never`` (threshold never reached), spread columns (``min, median, max, n_below,
    frac_below``; value reductions), with bootstrap (:attr:`TableSpec.needs_bootstrap`) also
    ``iqm, iqm_low, iqm_high, mean_low, mean_high`` and, given a spread threshold, the
    optimality gap ``gap, gap_low, gap_high``; ``nan_runs, nan_seeds, nan_of, nan_step``
    (runs stopped on NaN), ``missing`` (an expected run without a completed record: a
    ``missing`` entry is the flattened config of such a run), ``published``,
    ``published_never``, ``verdict`` (see :func:`verdict`).
    """
    notes: list[str] = []
    tidy = tidy.copy()
    for col in spec.keys:
        if col not in tidy:
            notes.append(f"Config column `{col}` not found in the runs; shown as n/a.")
            tidy[col] = "n/a"
    ours = _as_text_keys(_reduce(tidy, spec), spec.keys)
    nan = _as_text_keys(_nan_cells(runs, spec), spec.keys)
    cells = ours.merge(nan, on=spec.keys, how="outer") if len(nan) else ours.assign(
        nan_runs=0, nan_seeds=0, nan_of=0, nan_step=None)
    cells = _with_missing(cells, spec, missing)
    cells = _with_row_labels(cells, spec, runs)
    cells["nan_runs"] = cells["nan_runs"].fillna(0).astype(int)
    cells["never"] = cells["never"].astype("boolean").fillna(False).astype(bool)
    paper = _published(spec, published_root, notes, runs)
    found = [paper.get(_key(r, spec.keys), (math.nan, False)) for _, r in cells.iterrows()]
    cells["published"] = [v for v, _ in found]
    cells["published_never"] = [n for _, n in found]
    cells["verdict"] = [verdict(spec, r["value"], r["se"], r["never"], r["published"], r["published_never"])
                        for _, r in cells.iterrows()]
    return Table(spec, _order(cells, spec), notes + _pooled_note(tidy, runs, spec) + _data_note(runs, spec))


def _with_row_labels(cells: pd.DataFrame, spec: TableSpec, runs: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Add the ``row_labels`` config values of each row key (from the per-run frame)."""
    labels = [c for c in spec.row_labels if c not in cells]
    if not labels or runs is None or runs.empty or spec.rows not in runs:
        return cells
    per_row = _as_text_keys(runs.drop_duplicates(spec.rows), [spec.rows])
    per_row = per_row[[spec.rows, *[c for c in labels if c in per_row]]]
    return cells.merge(per_row, on=spec.rows, how="left")


def _with_missing(cells: pd.DataFrame, spec: TableSpec, missing: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """Add a ``missing`` row for each expected run's cell that has no row yet (no completed record)."""
    cells = cells.assign(missing=False)
    have = {tuple(key_text(r[k]) for k in spec.keys) for _, r in cells.iterrows()}
    rows = []
    for config in missing:
        key = tuple(key_text(config.get(k, "n/a")) for k in spec.keys)
        if key not in have:
            have.add(key)
            rows.append({**dict(zip(spec.keys, key)), "value": math.nan, "se": math.nan, "n": 0, "never": False,
                         "nan_runs": 0, "missing": True})
    if not rows:
        return cells
    extra = pd.DataFrame(rows)
    return pd.concat([cells, extra], ignore_index=True) if len(cells) else extra


def _data_note(runs: Optional[pd.DataFrame], spec: TableSpec) -> list[str]:
    """Which data the included runs used (``env.resolved_source``, e.g. the MNIST source "auto" picked)."""
    col = "env.resolved_source"
    if runs is None or runs.empty or col not in runs:
        return []
    inc = runs[runs["included"]] if "included" in runs else runs
    used = sorted({str(v) for v in inc[col].dropna()})
    if not used:
        return []
    caveat = (" Published MNIST numbers are for the four standard IDX files (`mnist`) at paper scale;"
              " verdicts for other data are not a like-for-like comparison.") if spec.published and used != ["mnist"] else ""
    return [f"Data source (`{col}`): {', '.join(used)}.{caveat}"]
