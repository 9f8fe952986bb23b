"""Refinement at the LLM scale: answer revision on one task of the LLM RLVR family (:mod:`envs.rlvr`).

Context S = a problem of the task (``arithmetic_small`` by default: prompt ``"3+4+5="``); base answer
A₁ ~ π₀(·|S), the RLVR family's supervised warm start (or a checkpoint), frozen; refinement
A₂ ~ π_θ(·|S, A₁), a causal LM that reads the revision prompt :func:`revision_prompt` — ``env.template`` with
the problem's prompt and A₁'s text filled in (default ``"{prompt}{answer}="``: ``"3+4+5=11="``) — and writes a
new answer. Gold reward R*(S, A) = the task's verifier (:meth:`envs.rlvr.tasks.RLVRTask.score` with the task's
reward; for ``arithmetic_small`` exact match of the extracted number: 1 if correct, else 0), so
max_A R*(S, A) = 1 and the best-response lift is 1 − E[R*(S, A₁)], as at the sequence scale.

Annotations: a prompt S, L answers sampled from π₀, ranked by the Plackett–Luce draw of
:func:`envs.refine.reward_model.plackett_luce_order` with weights exp(β_ann·R*) (Bradley–Terry for L = 2): two
answers with equal R* (both right or both wrong) are ordered by a fair coin, the BT noise model at
R*(A) − R*(B) = 0. R_φ(S, A) is a causal LM with a scalar head (the harness holds it:
:mod:`bench.families.refine_llm`) fitted by the same PL / BT negative log-likelihood.

Metrics: the names and Monte-Carlo estimators of the sequence scale (:func:`envs.refine.sequence.gate_metrics`,
reused as is), with text answers: a draw is a copy when its text equals A₁'s, and ``edit_distance`` is the
Levenshtein distance between the two texts over the longer one's length (:func:`edit_fraction`).
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from envs.refine.config import GATE_RULES, REWARD_MODELS, VALUE_INITS, check_choice
from envs.rlvr.config import SFTSettings

LLM_REFERENCES = ("initial",)     # RefineLLMConfig.reference: the initial refiner (no copy policy over texts)
REFINER_INITS = ("base", "scratch")   # the refiner starts as π₀'s weights, or from the model's own random init
TEMPLATE_FIELDS = ("answer", "prompt")


@dataclass(frozen=True)
class RefineLLMConfig:
    """LLM-scale refinement task (answer revision; module doc).

    π₀: the ``model=lm`` model warm-started by the RLVR family's supervised fine-tune on ``task`` (``sft``;
    :func:`bench.families.rlvr_sft.warm_start`, the same cache file as ``env=rlvr`` with the same model, task,
    settings, SFT settings and seed), or the checkpoint of ``model.path``; frozen. The refiner: a copy of π₀'s
    weights (``refiner_init=base``) trained by the registry losses. R_φ: π₀'s decoder with a scalar head on the
    last token's hidden state, fitted on ``annotations`` lists.
    """

    name: str = "refine_llm"
    task: str = "arithmetic_small"       # a name of envs.rlvr.tasks.TASKS
    settings: dict[str, Any] = field(default_factory=dict)   # the task's settings (envs.rlvr.tasks.make_task)
    sft: SFTSettings = field(default_factory=SFTSettings)    # π₀'s warm start (skipped with model.path)
    template: str = "{prompt}{answer}="  # the refiner's revision prompt ({prompt}: S's text, {answer}: A₁'s)
    max_new_tokens: int = field(default=6, metadata={"ge": 1})     # longest answer A₁ or A₂, in tokens
    base_temperature: float = field(default=1.0, metadata={"gt": 0})   # A₁ ~ π₀ at this temperature
    # -- refiner and reference ---------------------------------------------------------------------------
    refiner_init: str = field(default="base", metadata={"choices": REFINER_INITS})
    reference: str = field(default="initial", metadata={"choices": LLM_REFERENCES})   # π_ref = initial refiner
    # -- simulated annotations and R_φ ------------------------------------------------------------------
    reward_model: str = field(default="fitted", metadata={"choices": REWARD_MODELS})
    annotations: int = field(default=500, metadata={"ge": 1})     # annotated lists per seed
    list_size: int = field(default=2, metadata={"ge": 2})         # 2: BT pairs; > 2: PL lists
    annotator_beta: float = field(default=5.0, metadata={"gt": 0})   # β_ann; R* ∈ {0, 1}: σ(5) = 0.993
    rm_steps: int = field(default=200, metadata={"ge": 1})        # AdamW steps of the R_φ fit
    rm_lr: float = field(default=3e-3, metadata={"gt": 0})
    rm_batch: int = field(default=64, metadata={"ge": 1})         # annotated lists per fit step
    rm_l2: float = field(default=0.01, metadata={"ge": 0})        # AdamW decoupled weight decay
    rm_heldout: int = field(default=200, metadata={"ge": 1})      # held-out pairs of eval/rm_accuracy
    # -- rollouts ----------------------------------------------------------------------------------------
    batch_size: int = field(default=8, metadata={"ge": 1})        # B states (S, A₁) per step
    k: int = field(default=4, metadata={"ge": 1})                 # K rewrites per state
    keep_candidate: bool = False       # group losses: add A₁ itself as candidate K + 1 (Δ = 0)
    value_init: str = field(default="reward_model", metadata={"choices": VALUE_INITS})
    # -- deployment gate (envs.refine.gate) ---------------------------------------------------------------
    gate_p: float = field(default=1.0, metadata={"ge": 0, "le": 1})
    gate_T: float = field(default=10.0, metadata={"ge": 0, "le": 1e9})
    gate_k: int = field(default=4, metadata={"ge": 1})            # K′ refinements per held-out state
    gate_rule: str = field(default="softmax", metadata={"choices": GATE_RULES})
    eval_every: int = field(default=10, metadata={"ge": 1})
    eval_prompts: int = field(default=128, metadata={"ge": 1})    # held-out states per evaluation

    def __post_init__(self) -> None:
        for name, choices in (("refiner_init", REFINER_INITS), ("reference", LLM_REFERENCES),
                              ("reward_model", REWARD_MODELS), ("value_init", VALUE_INITS),
                              ("gate_rule", GATE_RULES)):
            check_choice(name, getattr(self, name), choices)
        if isinstance(self.sft, dict):   # built from a plain mapping (tests, scripts)
            object.__setattr__(self, "sft", SFTSettings(**self.sft))
        check_template(self.template)


def check_template(template: str, alphabet: Optional[Sequence[str]] = None) -> None:
    """ValueError (one line naming ``env.template``) unless the template holds exactly the fields {prompt} and
    {answer} (each once) and, when ``alphabet`` is given (the tiny model's character tokenizer), only characters
    of it outside the fields."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"env.template={template!r}: {exc}") from None
    names = sorted(name for _, name, _, _ in parsed if name is not None)
    if names != list(TEMPLATE_FIELDS):
        raise ValueError(f"env.template={template!r}: must hold the fields {{prompt}} and {{answer}} once each "
                         f"(found: {', '.join('{' + n + '}' for n in names) or 'none'})")
    if alphabet is not None:
        literal = "".join(text for text, _, _, _ in parsed)
        bad = sorted(set(literal) - set(alphabet))
        if bad:
            raise ValueError(f"env.template={template!r}: characters {''.join(bad)!r} are not in the task's "
                             f"alphabet {''.join(alphabet)!r} (the tiny model's tokenizer); use only those")


def revision_prompt(template: str, prompt: str, answer: str) -> str:
    """The refiner's input text: ``template`` with {prompt} and {answer} filled in."""
    return template.format(prompt=prompt, answer=answer)


def gold_rewards(task: Any, problems: Sequence[Any], texts: Sequence[str], k: int = 1) -> Tensor:
    """R*(S, A) [n, k] float32: the task's verifier score of ``texts`` (n·k answers, problem i's at rows
    i·k … i·k + k − 1) for ``problems`` (n)."""
    if len(texts) != len(problems) * k:
        raise ValueError(f"gold_rewards: {len(texts)} texts for {len(problems)} problems x k={k}")
    return torch.tensor([task.score(problems[i // k], t) for i, t in enumerate(texts)],
                        dtype=torch.float32).reshape(len(problems), k)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions; Levenshtein 1966) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def edit_fraction(a2: Sequence[str], a1: Sequence[str]) -> Tensor:
    """Levenshtein(A₂, A₁) / max(|A₂|, |A₁|, 1) per pair [n] float32 (0: a copy, 1: nothing in common)."""
    return torch.tensor([levenshtein(x, y) / max(len(x), len(y), 1) for x, y in zip(a2, a1, strict=True)],
                        dtype=torch.float32)
