"""Refinement tasks: a frozen base policy proposes, a trained refiner rewrites, a reward model gates.

The setting (after the patent application US 2025/0265471 A1, "Reinforcement learning for refinement
models"): context S; frozen base policy π₀(A₁|S); trainable refiner π_θ(A₂|S, A₁), whose state is
x = (S, A₁); hidden gold reward R*(S, A), used only to simulate annotators and to evaluate; learned
reward model R_φ(S, A), fitted on simulated Bradley–Terry / Plackett–Luce annotations under a budget and
the only reward the training algorithms see; a deployment gate that chooses A₁ or a refinement by R_φ.

* :mod:`envs.refine.config`        the settings (``RefineTabularConfig``);
* :mod:`envs.refine.tabular`       the tabular scale: tables, sampling, exact metrics;
* :mod:`envs.refine.reward_model`  simulated annotators and the R_φ fit;
* :mod:`envs.refine.gate`          the gate: exact deployed distribution and a sampler.

Like every task package it never imports ``algorithms`` or the harness.
"""
from envs.refine.config import RefineTabularConfig

__all__ = ["RefineTabularConfig"]
