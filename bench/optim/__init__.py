"""Optimizers for the sequence tasks: Muon, AdamW-Nesterov and named parameter splits."""
from bench.optim.adamw_nesterov import AdamWNesterov
from bench.optim.muon import EPS, LEGACY_EPS, NS_COEFFS, Muon, matrix_shape, muon_scale, newton_schulz
from bench.optim.split import SPLITS, SplitOptimizer, assign, build_optimizer, parameter_roles, parameter_views

__all__ = ["AdamWNesterov", "EPS", "LEGACY_EPS", "Muon", "NS_COEFFS", "SPLITS", "SplitOptimizer", "assign",
           "build_optimizer", "matrix_shape", "muon_scale", "newton_schulz", "parameter_roles", "parameter_views"]
