"""Settings of the LLM RLVR family (``env=rlvr``): which task, and its settings. The task side is
:mod:`envs.rlvr`; :func:`build_task` turns this config into an :class:`~envs.rlvr.tasks.RLVRTask`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from envs.rlvr.tasks import RLVRTask, make_task

__all__ = ["RLVRConfig", "SFTSettings", "build_task"]


@dataclass(frozen=True)
class SFTSettings:
    """The supervised fine-tune (SFT) that warm-starts the tiny random-init model before RL
    (:func:`bench.families.rlvr_sft.warm_start`). A random-init model never earns a reward, so RL starts from
    a short fine-tune on generated solutions; some demonstrations are deliberately wrong or truncated so the
    warm start stays well below the task's ceiling and RL has room to improve. A checkpoint (``model.path``)
    skips it.

    steps:              optimizer steps (0 = no SFT).
    lr:                 AdamW learning rate (Loshchilov & Hutter 2019).
    batch_size:         demonstrations per step.
    wrong_fraction:     share of demonstrations whose answer is wrong (the gold number ± a nonzero offset).
    truncated_fraction: share whose gold text is cut before its end, with no end-of-sequence token.
                        ``wrong_fraction + truncated_fraction <= 1``; the rest are gold.
    weight_decay:       AdamW decoupled weight decay.

    Defaults: chosen on the tiny ``model=lm`` (hidden 64, 2 layers) and ``arithmetic_small`` (max_operand 9,
    n_terms 2), where they give a held-out greedy accuracy of about 0.5 (0.3 at temperature 1) after about
    3 s on one CPU thread; without wrong or truncated demonstrations, 1000 steps reach 1.0.
    """

    steps: int = field(default=200, metadata={"ge": 0})
    lr: float = field(default=3e-3, metadata={"gt": 0})
    batch_size: int = field(default=32, metadata={"ge": 1})
    wrong_fraction: float = field(default=0.2, metadata={"ge": 0, "le": 1})
    truncated_fraction: float = field(default=0.1, metadata={"ge": 0, "le": 1})
    weight_decay: float = field(default=0.0, metadata={"ge": 0})

    @staticmethod
    def _is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    @staticmethod
    def _is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def __post_init__(self) -> None:
        _is_int, _is_number = self._is_int, self._is_number
        for name, ok, allowed in (
                ("steps", _is_int(self.steps) and self.steps >= 0, "an integer >= 0 (0 = no SFT)"),
                ("lr", _is_number(self.lr) and self.lr > 0, "a number > 0"),
                ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
                ("wrong_fraction", _is_number(self.wrong_fraction) and 0 <= self.wrong_fraction <= 1,
                 "a number >= 0 and <= 1"),
                ("truncated_fraction", _is_number(self.truncated_fraction) and 0 <= self.truncated_fraction <= 1,
                 "a number >= 0 and <= 1"),
                ("weight_decay", _is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")):
            if not ok:
                raise ValueError(f"env.sft.{name}={getattr(self, name)!r}: must be {allowed}")
        if self.wrong_fraction + self.truncated_fraction > 1:
            raise ValueError(f"env.sft.wrong_fraction + env.sft.truncated_fraction = "
                             f"{self.wrong_fraction} + {self.truncated_fraction}: must be <= 1")


@dataclass(frozen=True)
class RLVRConfig:
    """LLM reinforcement learning with verifiable rewards on one task.

    task:      a name of :data:`envs.rlvr.tasks.TASKS` (``arithmetic_small``, ``chain_sum``, ``gsm8k``, ...).
    settings:  that task's settings, passed to :func:`envs.rlvr.tasks.make_task`: common ones are
               ``instruction``, ``extract`` (extractor chain) and ``reward`` (name or {name: weight});
               ``max_operand``/``n_terms``/``eval_fraction`` for ``arithmetic_small``; ``difficulty``
               (reasoning-gym dataset config fields) for the reasoning-gym tasks; ``data_dir`` for ``gsm8k``.
    sft:       the warm start of a random-init model (:class:`SFTSettings`; skipped for ``model.path``).
    prompts_per_step: G, prompts per RL step (group methods: G groups of K completions; single-completion
               methods: G·K prompts with one completion each, the same number of completions per step).
    k:         K, completions per prompt (TPO paper App. G: 16).
    max_new_tokens, temperature, top_p: sampling (temperature > 0; greedy is used for evaluation only).
    micro_batch_groups: groups per forward/backward (gradient accumulation; 0 = all groups at once): memory then
               grows with micro_batch_groups·K, not G·K.
    eval_every: held-out evaluation every this many steps (and after the last step).
    eval_size: held-out problems per evaluation (the same problems every time).
    eval_sampled: also report the held-out accuracy of one sampled completion per problem.
    log_kl:    log the KL to the reference policy (the SFT start, or the checkpoint with LoRA adapters off) even
               when the loss has no KL term (full fine-tuning then keeps one frozen copy of the weights).
    """

    name: str = "rlvr"
    task: str = "arithmetic_small"
    settings: dict[str, Any] = field(default_factory=dict)
    sft: SFTSettings = field(default_factory=SFTSettings)
    prompts_per_step: int = field(default=16, metadata={"ge": 1})
    k: int = field(default=16, metadata={"ge": 1})
    max_new_tokens: int = field(default=8, metadata={"ge": 1})
    temperature: float = field(default=1.0, metadata={"gt": 0})
    top_p: float = field(default=1.0, metadata={"gt": 0, "le": 1})
    micro_batch_groups: int = field(default=0, metadata={"ge": 0})
    eval_every: int = field(default=10, metadata={"ge": 1})
    eval_size: int = field(default=200, metadata={"ge": 1})
    eval_sampled: bool = True
    log_kl: bool = True


def build_task(cfg: RLVRConfig) -> RLVRTask:
    """``make_task(cfg.task, **cfg.settings)``; errors are those of :func:`~envs.rlvr.tasks.make_task`."""
    return make_task(cfg.task, **dict(cfg.settings))
