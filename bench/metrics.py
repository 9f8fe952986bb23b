"""The one metric namespace. Tables and figures refer to metrics through these
names only.

Prefixes: ``train/`` (measured on the step's training rollouts, before the
update), ``loss/``, ``diag/<name>`` (diagnostics returned by a loss, first
epoch), ``eval/`` (held-out evaluation), ``time/``.
"""
from __future__ import annotations

TRAIN = "train/"
LOSS = "loss/"
DIAG = "diag/"
EVAL = "eval/"
TIME = "time/"

ERROR = "train/error"                # task error before the update (tabular: 1 − π(correct))
MISALIGNMENT = "train/misalignment"  # 1 − cos(g, g*) to the oracle direction
REWARD = "train/reward"              # mean reward of the step's rollouts
LOSS_TOTAL = "loss/total"            # first-epoch loss value
GRAD_NORM = "diag/grad_norm"         # first-epoch gradient L2 norm
EVAL_ERROR = "eval/error"            # held-out (greedy) error
EVAL_RETURN = "eval/return"          # mean undiscounted evaluation episode return (offline RL)
EVAL_SCORE = "eval/normalised_score" # D4RL normalised score 100·(R − R_random)/(R_expert − R_random)
STEP_TIME = "time/step_s"            # wall seconds per step (mean over the log window)
ACT_MS = "time/act_ms_b"             # + batch size: offline policy inference, ms per action (env.latency_batches)

#: Rates in [0, 1] that every table prints in percent, the experiment tables and the generic / ad-hoc ones alike
#: (``eval/accuracy*``: the LLM RLVR family's held-out accuracy, bench/families/rlvr.py).
PERCENT = frozenset({ERROR, EVAL_ERROR, "eval/accuracy", "eval/accuracy_sampled"})

# refinement family (bench/families/refine.py; envs/refine/tabular.py): exact evaluations of the deployed gate
REFINE_GOLD_VALUE = "eval/gold_value"             # J = E[R*(S, A_final)] under the gate
REFINE_LIFT = "eval/lift"                         # J − E[R*(S, A₁)]
REFINE_BEST_RESPONSE_LIFT = "eval/best_response_lift"  # E_s[max_b R*(s, b)] − E[R*(S, A₁)]: the closed-form ceiling
REFINE_WIN = "eval/win_rate"                      # P(R*(A₂) > R*(A₁)), refiner proposal un-gated
REFINE_TIE = "eval/tie_rate"                      # P(R*(A₂) = R*(A₁)) (copies included)
REFINE_LOSS = "eval/loss_rate"                    # P(R*(A₂) < R*(A₁))
REFINE_HARM = "eval/harm_rate"                    # P(A_final ≠ A₁ ∧ R*(A_final) < R*(A₁))
REFINE_ACCEPT = "eval/acceptance_rate"            # P(A_final ≠ A₁)
REFINE_PROXY_LIFT = "eval/proxy_lift"             # E[R_φ(A₂) − R_φ(A₁)], proposal un-gated
REFINE_GOLD_REFINE_LIFT = "eval/gold_refine_lift" # E[R*(A₂) − R*(A₁)], proposal un-gated
REFINE_GAP = "eval/proxy_gold_gap"                # proxy_lift − gold_refine_lift (over-optimisation of R_φ)
REFINE_KL_REF = "eval/kl_ref"                     # E_x[KL(π_θ(·|x) ‖ π_ref(·|x))], nats
REFINE_COPY = "eval/copy_rate"                    # P(A₂ = A₁)
REFINE_EDIT_DISTANCE = "eval/edit_distance"        # mean fraction of A₂'s tokens that differ from A₁ (sequences)
REFINE_RM_ACCURACY = "eval/rm_accuracy"           # R_φ's pairwise accuracy on unlimited held-out pairs
REFINE_LIFT_PER_ANNOTATION = "eval/lift_per_annotation"  # lift / annotation budget


def act_ms(batch: int) -> str:
    """Metric name of the offline policy's inference time at ``batch`` states per call: ``time/act_ms_b<batch>``."""
    return f"{ACT_MS}{int(batch)}"


def diag(name: str) -> str:
    """Namespaced key for a loss diagnostic: ``diag('clip_frac') == 'diag/clip_frac'``."""
    return DIAG + name
