"""Optimizers for the sequence tasks: Muon, AdamW-Nesterov and named parameter splits."""
from bench.optim.adamw_nesterov import AdamWNesterov
from bench.optim.muon import NS_COEFFS, Muon, muon_scale, newton_schulz
from bench.optim.split import SPLITS, SplitOptimizer, assign, build_optimizer, parameter_roles

__all__ = ["AdamWNesterov", "Muon", "NS_COEFFS", "SPLITS", "SplitOptimizer", "assign", "build_optimizer",
           "muon_scale", "newton_schulz", "parameter_roles"]
