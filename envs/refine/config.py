"""Settings of the refinement task family (tabular scale).

A frozen base policy π₀(A₁|S) proposes, a trainable refiner π_θ(A₂|S, A₁) rewrites, and a gate that
reads the learned reward model R_φ chooses what is deployed. The hidden gold reward R* is used only to
simulate annotators and to evaluate. Field comments give units and ranges; :mod:`envs.refine` explains
the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

GATE_RULES = ("softmax", "two_way")            # RefineTabularConfig.gate_rule (envs.refine.gate)
ANNOTATION_POLICIES = ("base", "uniform")      # which actions annotators are shown
REWARD_MODELS = ("fitted", "gold")             # R_φ fitted on annotations, or the oracle R_φ = R*
REFERENCES = ("initial", "copy")               # the reference refiner π_ref of KL terms and metrics
VALUE_INITS = ("reward_model", "zero")         # learned V(x) at the start: R_φ(S, A₁) or 0

#: Largest number of multisets of K′ − 1 refinements the exact softmax gate may enumerate per state
#: (C(M + K′ − 2, K′ − 1); e.g. M = 10, K′ = 6 gives 2,002): beyond it, lower gate_k or n_actions.
MAX_GATE_MULTISETS = 20_000


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """ValueError naming ``env.<name>``, the value and the valid choices unless value is one of them."""
    if value not in choices:
        raise ValueError(f"env.{name}={value!r}; valid: {', '.join(choices)}")


def gate_multisets(n_actions: int, gate_k: int) -> int:
    """Multisets of K′ − 1 refinements over M actions, C(M + K′ − 2, K′ − 1): the terms of the exact
    softmax-gate expectation per state (:func:`envs.refine.gate.gate_distribution`)."""
    return comb(n_actions + gate_k - 2, gate_k - 1)


@dataclass(frozen=True)
class RefineTabularConfig:
    """Tabular refinement task: N contexts × M actions, refiner state x = (S, A₁) (N·M states).

    Base policy π₀(·|s) = softmax(g_s/τ₀), g ~ N(0, 1) (stream "base"); gold reward R*(s, a) ~ N(0, σ*²)
    (stream "gold"); contexts uniform. The refiner is an [N, M, M] logit table z[s, a₁, a₂] started at
    copy_bias·1[a₂ = a₁] + init_std·N(0, 1) (stream "init").
    """

    name: str = "refine_tabular"
    n_contexts: int = field(default=20, metadata={"ge": 1})          # N contexts S, uniform
    n_actions: int = field(default=8, metadata={"ge": 2})            # M actions (A₁, A₂ ∈ [0, M))
    base_temperature: float = field(default=1.0, metadata={"gt": 0})  # τ₀ of π₀ = softmax(g/τ₀)
    gold_std: float = field(default=1.0, metadata={"gt": 0})         # σ* of R* ~ N(0, σ*²)
    # -- refiner and reference ---------------------------------------------------------------
    copy_bias: float = field(default=2.0, metadata={"ge": 0})        # initial logit bonus of A₂ = A₁
    init_std: float = field(default=0.0, metadata={"ge": 0})         # std of the initial logit noise
    # π_ref of the KL terms (GRPO kl_to=reference, DRO-V reference=initial, KTO) and of eval/kl_ref:
    # "initial" = the initial refiner, "copy" = softmax(reference_copy_bias·1[a₂ = a₁])
    reference: str = field(default="initial", metadata={"choices": REFERENCES})
    reference_copy_bias: float = field(default=2.0, metadata={"ge": 0})
    # -- simulated annotations and the reward model R_φ ----------------------------------------
    reward_model: str = field(default="fitted", metadata={"choices": REWARD_MODELS})
    # annotation budget: number of annotated lists (pairs when list_size = 2), drawn per seed from its
    # "annotations" stream; 0 = unlimited: R_φ minimises the expected (population) BT loss
    annotations: int = field(default=1000, metadata={"ge": 0})
    list_size: int = field(default=2, metadata={"ge": 2})            # 2: Bradley–Terry pairs; > 2: Plackett–Luce
    annotator_beta: float = field(default=1.0, metadata={"gt": 0})   # β_ann of P(A ≻ B) = σ(β_ann(R*(A) − R*(B)))
    annotation_policy: str = field(default="base", metadata={"choices": ANNOTATION_POLICIES})
    # λ: Gaussian prior R_φ ~ N(0, 1/λ) (MAP fit). 0.1 (default): a weak prior, a fit close to maximum
    # likelihood as reward models are fitted in practice; λ = 1/σ*² is the matched prior, whose posterior-mode
    # estimates are shrunk enough to hide most of the winner's curse that over-optimisation feeds on
    rm_l2: float = field(default=0.1, metadata={"ge": 0})
    rm_steps: int = field(default=200, metadata={"ge": 1})           # L-BFGS iterations of the fit (per seed)
    # -- rollouts -------------------------------------------------------------------------------
    batch_size: int = field(default=32, metadata={"ge": 1})          # B states x = (S, A₁) per step
    k: int = field(default=4, metadata={"ge": 1})                    # K rewrites per state (group losses)
    keep_candidate: bool = False   # group losses, sampled candidates: add A₁ itself as candidate K + 1 (Δ = 0)
    value_init: str = field(default="reward_model", metadata={"choices": VALUE_INITS})
    # -- deployment gate (envs.refine.gate) ---------------------------------------------------------
    gate_p: float = field(default=1.0, metadata={"ge": 0, "le": 1})  # probability of consulting the refiner
    # T of exp(T·Δ) / σ(T·Δ), Δ in R_φ units; finite (1e6 already deploys the R_φ-best candidate for gaps > 1e-4)
    gate_T: float = field(default=10.0, metadata={"ge": 0, "le": 1e9})
    gate_k: int = field(default=4, metadata={"ge": 1})               # K′ refinements drawn at deployment
    gate_rule: str = field(default="softmax", metadata={"choices": GATE_RULES})
    eval_every: int = field(default=10, metadata={"ge": 1})          # exact evaluation before steps 0, n, 2n, …

    def __post_init__(self) -> None:
        for name, choices in (("reference", REFERENCES), ("reward_model", REWARD_MODELS),
                              ("annotation_policy", ANNOTATION_POLICIES), ("value_init", VALUE_INITS),
                              ("gate_rule", GATE_RULES)):
            check_choice(name, getattr(self, name), choices)
        if self.annotations == 0 and self.list_size != 2 and self.reward_model == "fitted":
            raise ValueError(f"env.list_size={self.list_size}: unlimited annotations (env.annotations=0) fit the "
                             "population Bradley-Terry loss, which needs env.list_size=2")
        n = gate_multisets(self.n_actions, self.gate_k)
        if self.gate_rule == "softmax" and n > MAX_GATE_MULTISETS:
            raise ValueError(f"env.gate_k={self.gate_k}: the exact softmax gate enumerates C(M+K'-2, K'-1) = {n} "
                             f"multisets per state with M = env.n_actions = {self.n_actions}; must be <= "
                             f"{MAX_GATE_MULTISETS} (lower env.gate_k or env.n_actions)")
