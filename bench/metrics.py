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


def act_ms(batch: int) -> str:
    """Metric name of the offline policy's inference time at ``batch`` states per call: ``time/act_ms_b<batch>``."""
    return f"{ACT_MS}{int(batch)}"


def diag(name: str) -> str:
    """Namespaced key for a loss diagnostic: ``diag('clip_frac') == 'diag/clip_frac'``."""
    return DIAG + name
