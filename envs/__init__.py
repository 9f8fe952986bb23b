"""Tasks. ``ENVS`` is the one registry of environments; the harness looks an
environment up once, at build time. This package never imports
``algorithms`` or the harness."""
from __future__ import annotations

from dataclasses import dataclass

from envs.mnist import MnistBanditConfig
from envs.offline.config import OfflineConfig
from envs.refine.config import RefineTabularConfig
from envs.refine.llm import RefineLLMConfig
from envs.refine.sequence import RefineSequenceConfig
from envs.reversal import ReversalConfig
from envs.rlvr.config import RLVRConfig
from envs.tabular import TabularMultiConfig, TabularSingleConfig


@dataclass(frozen=True)
class EnvSpec:
    """name: registry key; config: frozen dataclass of the task settings
    (field ``name`` first); family: which harness family runs it; summary: one line."""

    name: str
    config: type
    family: str
    summary: str


ENVS: dict[str, EnvSpec] = {
    "tabular_single": EnvSpec("tabular_single", TabularSingleConfig, "tabular",
                              "single-context sampled bandit, 100 arms (paper Fig. 2)"),
    "tabular_multi": EnvSpec("tabular_multi", TabularMultiConfig, "tabular",
                             "multi-context exact-update bandit, 100 contexts x 10 actions (paper Fig. 3)"),
    "mnist": EnvSpec("mnist", MnistBanditConfig, "mnist",
                     "MNIST contextual bandit, 784-50-50-10 MLP, one sampled class per image (paper Fig. 4)"),
    "reversal": EnvSpec("reversal", ReversalConfig, "sequence",
                        "token reversal: H prompt tokens in [0, V), copy/flip/reverse targets, "
                        "bag/sequential/terminal rewards (paper Tables 1-3, 5)"),
    "offline": EnvSpec("offline", OfflineConfig, "offline",
                       "offline RL on a D4RL-format dataset (real D4RL/Minari files or `bench-data` generated), "
                       "evaluated in gymnasium"),
    "rlvr": EnvSpec("rlvr", RLVRConfig, "rlvr",
                    "LLM RLVR: a Hugging Face causal LM on verifiable tasks (reasoning-gym, GSM8K files, built-in "
                    "arithmetic), K completions per prompt (paper §3.8, App. G)"),
    "refine_tabular": EnvSpec("refine_tabular", RefineTabularConfig, "refine",
                              "refinement, tabular: frozen base pi0(A1|S), refiner table pi(A2|S,A1) trained on a "
                              "reward model fitted to simulated BT/PL annotations, R_phi-gated deployment, exact "
                              "gold metrics"),
    "refine_sequence": EnvSpec("refine_sequence", RefineSequenceConfig, "refine_sequence",
                               "refinement, token reversal: frozen partially trained transformer pi0(A1|x), transformer "
                               "refiner pi(A2|x,A1), transformer R_phi fitted to simulated BT/PL annotations, R_phi-gated "
                               "deployment, Monte-Carlo gold metrics"),
    "refine_llm": EnvSpec("refine_llm", RefineLLMConfig, "refine_llm",
                          "refinement, LLM answer revision on an RLVR task: frozen SFT model pi0(A1|S), LM refiner "
                          "pi(A2|S,A1) prompted with the problem and A1, LM reward model fitted to simulated BT/PL "
                          "annotations, R_phi-gated deployment, verifier gold reward, Monte-Carlo metrics"),
}


def get_env(name: str) -> EnvSpec:
    """Registry lookup; an unknown name raises KeyError listing the valid ones."""
    try:
        return ENVS[name]
    except KeyError:
        raise KeyError(f"unknown env {name!r}; valid envs: {', '.join(sorted(ENVS))}") from None
