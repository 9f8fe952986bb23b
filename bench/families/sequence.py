"""Transformer sequence family: the token reversal tasks (TPO paper §3.4–3.7 and §4, Tables 1–3 and 5,
Figs. 8 and 10–15; docs/paper-map.md §5).

All seeds of a configuration run in one process. Every policy parameter is
stacked with a leading seed axis S (seed s initialised from its own ``"init"``
stream, :func:`bench.seeding.generators`) and evaluated by
:func:`~bench.models.transformer.stacked_run` — the
:class:`~bench.models.transformer.TransformerPolicy` forward with batched
matmuls over that axis (no ``vmap``: a step issues about the same operators for
any S) — for the KV-cache decoder and for the training forward alike. Per-seed random streams:

    "init"        policy weights                 (common random numbers:
    "value_init"  learned-baseline head weights   the same for every algorithm
    "prompts"     the prompt stream               for a given seed)
    "sample"      the sampler's Gumbel noise (drawn once per rollout per seed)

so a seed run inside a batch of seeds draws exactly what it draws alone, and
for a given seed every algorithm starts from the same weights and sees the same
prompts (``n`` prompts per step: B, or B·K for interaction-matched
single-answer methods — then the first B prompts of a step are the grouped
methods' prompts only at step 0).

The loop is :func:`bench.loop.train`: ``rollout`` = sample → score → freeze
(the old log-probs are the sampling-time ones); ``batch_fields`` recomputes the
log-probs with one forward pass of the ``[x, y_<H]`` buffer per epoch.

Batches (leading seed axis S on every field), by (batch kind, ``candidates``):

* ``("group", "sampled")`` — K full answers per prompt: GroupBatch [B, K, H];
  score = mean_t r_t (bag / sequential) or the exact-match bit (terminal).
* ``("group", "token")``   — one behaviour answer per prompt; at every prefix K
  next-token candidates (candidate 0 = the behaviour token): GroupBatch
  [B·H, K, 1], scored 1{cand = y_t} (bag) or alive_t·1{cand = y_t}
  (sequential). Dense rewards only: terminal raises ``ValueError``.
* ``("trajectory", "single")`` — one answer per prompt: TrajectoryBatch [n, H]
  with per-token rewards r_t. Terminal reward: the exact-match bit is put on
  *every* token (so A_t = r − mean_B r is the same for all tokens of an answer,
  i.e. sequence-level REINFORCE/PPO/DG). ``scores`` = the sequence score;
  for DRO-V and KTO normalised over the batch (mean 0, variance 1; a batch of
  equal scores gives 0), as in the DRO paper.

Learned baseline V(x) (DRO-V, REINFORCE with ``baseline=learned``, PPO with
``value_coef > 0``): a separate small MLP on the flattened one-hot prompt,
``V(x) = w₂ᵀ tanh(W₁ onehot(x) + b₁) + b₂`` with ``model.value_hidden`` units
(W₁ LeCun normal, w₂ and biases 0, so V ≡ 0 at the start), stacked per seed
and trained through the loss (optimizer role ``value`` → AdamW in both Muon
splits). Reference policy (``logp_ref``): the rollout snapshot by default
(= ``logp_old``); ``dro_v``'s ``reference: initial`` and GRPO's
``kl_to: reference`` use the initial policy (frozen copy of the initial
weights, evaluated at rollout time).

Matching (``env.matching``) — derived numbers come from the named functions
:func:`prompts_per_step`, :func:`rollouts_per_step`, :func:`interactions` and
:func:`effective_lr`, are logged every step as ``diag/…`` metrics and reach the
optimizer through ``task.lr_multiplier`` (the config is never changed).

Metrics (on the step's training rollouts, before the update): ``train/error``
(token error for bag, 1 − mean_t Π_{j≤t} c_j for sequential, exact-match error
for terminal; on the behaviour answers for token candidates), ``train/reward``
(mean sequence score), ``diag/all_fail_frac`` (loss groups whose K scores are
all ≤ 0; single answers: answers with score ≤ 0), ``diag/any_success_frac``
(prompts with at least one exact-match answer among their rollouts). The loop
adds the first-epoch ``diag/grad_norm``; the losses add their own diagnostics
(TPO ``q_success``/``q_fail``, GRPO ``a_success``/``a_fail``, ...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.func import vmap

from algorithms import diagnostics
from algorithms.dro import normalise_scores
from bench import metrics as M
from bench import rollout as R
from bench.models.transformer import TransformerConfig, TransformerPolicy, lecun_normal_, stacked_run
from bench.seeding import generators, to_device
from envs.reversal import ReversalConfig, ReversalTask

GROUPED = ("sampled", "token")


# -- derived quantities (named, logged, never written into the config) ---------------------
def prompts_per_step(env: ReversalConfig, candidates: str) -> int:
    """Prompts drawn per step: B, or B·K for single-answer methods when interaction-matched."""
    if candidates == "single" and env.matching == "interaction":
        return env.batch_size * env.k
    return env.batch_size


def rollouts_per_step(env: ReversalConfig, candidates: str) -> int:
    """Full answers decoded per step: B·K (sampled groups), B behaviour answers (token
    candidates), one per prompt (single)."""
    return env.batch_size * env.k if candidates == "sampled" else prompts_per_step(env, candidates)


def interactions(env: ReversalConfig, candidates: str) -> int:
    """Scored candidates per step as the paper's matching counts them: B·K for grouped
    methods (K answers, or K next-token candidates per prefix group, per prompt) and one
    per prompt for single-answer methods — equal for all methods when interaction-matched."""
    return env.batch_size * env.k if candidates in GROUPED else prompts_per_step(env, candidates)


def effective_lr(env: ReversalConfig, candidates: str, lr: float) -> float:
    """lr·√K for single-answer methods when interaction-matched, else lr."""
    if candidates == "single" and env.matching == "interaction":
        return lr * math.sqrt(env.k)
    return lr


def derived(env: ReversalConfig, candidates: str, lr: float) -> dict[str, float]:
    """All derived quantities of a run (logged as ``diag/<name>``)."""
    return {"prompts_per_step": prompts_per_step(env, candidates),
            "rollouts_per_step": rollouts_per_step(env, candidates),
            "interactions": interactions(env, candidates),
            "effective_lr": effective_lr(env, candidates, lr)}


# -- stacked parameters --------------------------------------------------------------------
def transformer_config(model_cfg: Any) -> TransformerConfig:
    """Architecture of the schema's ``TransformerModelConfig``."""
    return TransformerConfig(d_model=model_cfg.d_model, n_layers=model_cfg.n_layers, n_heads=model_cfg.n_heads,
                             d_ff=model_cfg.d_ff, ln_eps=model_cfg.ln_eps)


def stacked_init(vocab: int, horizon: int, cfg: TransformerConfig, gens: list[torch.Generator],
                 device: str) -> dict[str, Tensor]:
    """{name: [S, ...]} initial weights, seed s from its own generator (as a lone policy would be)."""
    per_seed = [dict(TransformerPolicy(vocab, horizon, cfg, generator=g).named_parameters()) for g in gens]
    return {n: torch.stack([p[n].detach() for p in per_seed]).to(device) for n in per_seed[0]}


class StackedPolicy:
    """S policies (stacked parameters {name: [S, ...]}) seen as one decoder over seed-major rows.

    ``prefill``/``decode`` take tokens [S·N, T] (rows of seed s at s·N … s·N+N−1) and return logits
    [S·N, T, V] and a KV cache laid out like a single model's, rows first ([S·N, heads, T, d_head]) — the
    interface :func:`bench.rollout._decode` and :func:`bench.rollout.grouped_sequence_logp` expect (they may
    repeat cache rows). One :func:`~bench.models.transformer.stacked_run` per call: batched matmuls over the
    seed axis, no ``vmap``. ``__call__(tokens [S, ..., T])`` is the full forward → logits [S, ..., T, V].
    """

    def __init__(self, template: TransformerPolicy, params: dict[str, Tensor]) -> None:
        self.params, self.config = params, template.config
        self.S = next(iter(params.values())).shape[0]

    def _run(self, tokens: Tensor, cache=None):
        """tokens with the seed axis first or seed-major rows → (logits [S, rows per seed, T, V], cache)."""
        return stacked_run(self.params, self.config, tokens.reshape(self.S, -1, tokens.shape[-1]), cache)

    def __call__(self, tokens: Tensor) -> Tensor:
        return self._run(tokens)[0].reshape(*tokens.shape, -1)

    def prefill(self, tokens: Tensor):
        logits, cache = self._run(tokens)
        return logits.flatten(0, 1), cache

    def decode(self, tokens: Tensor, cache):
        logits, cache = self._run(tokens, cache)
        return logits.flatten(0, 1), cache


# -- learned baseline V(x) -------------------------------------------------------------------
def value_init(in_dim: int, hidden: int, gens: list[torch.Generator], device: str) -> dict[str, Tensor]:
    """{name: [S, ...]}: W₁ [S, hidden, in] LeCun normal, b₁ 0, w₂ [S, 1, hidden] 0, b₂ [S, 1] 0."""
    w1 = torch.stack([lecun_normal_(torch.empty(hidden, in_dim), g) for g in gens])
    S = len(gens)
    return {"value.fc1.weight": w1.to(device), "value.fc1.bias": torch.zeros(S, hidden, device=device),
            "value.fc2.weight": torch.zeros(S, 1, hidden, device=device), "value.fc2.bias": torch.zeros(S, 1, device=device)}


def value_forward(p: dict[str, Tensor], prompts: Tensor, vocab: int) -> Tensor:
    """V(x) [S, n] for prompts [S, n, H] (batched matmuls over the seed axis)."""
    x = nn.functional.one_hot(prompts, vocab).flatten(-2).to(p["value.fc1.weight"].dtype)   # [S, n, H·V]
    h = torch.tanh(x @ p["value.fc1.weight"].transpose(-1, -2) + p["value.fc1.bias"][:, None])
    return (h @ p["value.fc2.weight"].transpose(-1, -2))[..., 0] + p["value.fc2.bias"]


# -- the rollout ------------------------------------------------------------------------------
@dataclass
class SeqRollout:
    """Frozen data of one step (leading seed axis S).

    prompts [S, n, H]; answers [S, B, K, H] (sampled) or [S, n, H]; logp_old like answers,
    or [S, B, H, K] (token); candidates [S, B, H, K] (token only); scores [S, B, K] (sampled),
    [S, B, H, K] (token), [S, n] (single); rewards [S, n, H] (single only); logp_ref like
    logp_old or None.
    """

    prompts: Tensor
    answers: Tensor
    logp_old: Tensor
    scores: Tensor
    candidates: Optional[Tensor] = None
    rewards: Optional[Tensor] = None
    logp_ref: Optional[Tensor] = None


class SequenceTask:
    """Token reversal with a stacked-seed transformer policy (see module docstring)."""

    logs_on_cadence = True   # no evaluation: diagnostics only on the logged steps (bench.loop.train)

    def __init__(self, settings: Any, seeds: list[int], batch_kind: str) -> None:
        env, cand = settings.env, settings.algorithm.candidates
        self.env, self.candidates, self.seeds = env, cand, list(seeds)
        self.task: ReversalTask = env.task()
        key = (batch_kind, cand)
        if key not in _BUILDERS:
            valid = ", ".join(f"{k}/{c}" for k, c in _BUILDERS)
            raise ValueError(f"the sequence family has no {batch_kind} batch with candidates={cand!r} "
                             f"(algorithm {settings.algorithm.name}); valid batch/candidates: {valid}")
        if cand == "token" and not self.task.dense:
            raise ValueError(f"candidates=token (algorithm {settings.algorithm.name}) needs a dense reward "
                             f"(bag or sequential), got env.reward={env.reward!r}: a terminal reward scores whole "
                             "answers only — use a sampled-group method (tpo, grpo) or a single-answer one")
        self.fields, self._sample = _BUILDERS[key], _ROLLOUTS[cand]
        self.n_prompts = prompts_per_step(env, cand)
        lr = getattr(settings.optim, "lr", float("nan"))
        self.derived = derived(env, cand, lr)
        self.lr_multiplier = effective_lr(env, cand, 1.0)
        S, device = len(self.seeds), settings.run.device
        self.device = device
        cfg = transformer_config(settings.model)
        self.template = TransformerPolicy(env.vocab, env.horizon, cfg, generator=torch.Generator().manual_seed(0))
        self.template.requires_grad_(False).to(device)
        init = stacked_init(env.vocab, env.horizon, cfg, generators(self.seeds, "init"), device)
        self.policy = {k: v.clone().requires_grad_(True) for k, v in init.items()}
        params, loss = settings.loss_params, settings.algorithm.loss
        self.reference = reference_kind(loss, params)
        self.initial = init if self.reference == "initial" else None
        self.normalise_scores = loss in ("dro_v", "kto")
        self.score_params = params if self.normalise_scores else None   # DRO-V/KTO score normalisation
        self.value: dict[str, Tensor] = {}
        if needs_value(loss, params):
            v0 = value_init(env.horizon * env.vocab, settings.model.value_hidden,
                            generators(self.seeds, "value_init"), device)
            self.value = {k: v.requires_grad_(True) for k, v in v0.items()}
        self.prompt_gens = generators(self.seeds, "prompts")
        self.sample_gens = generators(self.seeds, "sample")
        self._constants = {M.diag(k): torch.full((S,), float(v), device=device) for k, v in self.derived.items()}

    # -- parameters (the optimizer's view) ----------------------------------------------------
    def parameters(self) -> list[Tensor]:
        return [*self.policy.values(), *self.value.values()]

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """(name, stacked tensor [S, ...]) — policy names are the template's."""
        return [*self.policy.items(), *self.value.items()]

    def parameter_roles(self) -> dict[str, str]:
        """Optimizer roles: the template's (attention/ffn/head/embedding/norm/bias) + ``value``."""
        return {**self.template.parameter_roles(), **{k: "value" for k in self.value}}

    def parameter_views(self) -> dict[str, tuple[int, int]]:
        """The template's reference matrix views (q/k/v biases as [heads, head_dim]); seed axis = batch."""
        return self.template.parameter_views()

    # -- randomness -----------------------------------------------------------------------------
    def draw_prompts(self) -> Tensor:
        """[S, n, H] prompts, seed s from its own "prompts" stream."""
        return to_device(torch.stack([self.task.sample_prompts(g, self.n_prompts) for g in self.prompt_gens]),
                         self.device)

    def noise(self, shape: tuple[int, ...]) -> Tensor:
        """[S·shape[0], ...] Gumbel noise of one rollout, seed-major, seed s from its "sample" stream."""
        return torch.cat([R.gumbel_noise(shape, g, torch.device(self.device)) for g in self.sample_gens])

    # -- Task protocol ---------------------------------------------------------------------------
    def rollout(self, step: int) -> tuple[SeqRollout, dict[str, Tensor]]:
        with torch.no_grad():
            policy = StackedPolicy(self.template, {k: v.detach() for k, v in self.policy.items()})
            ro, c, success, group_scores = self._sample(self, policy, self.draw_prompts())
            if self.reference == "snapshot":
                ro.logp_ref = ro.logp_old
            elif self.reference == "initial":
                ro.logp_ref = self._logp(self.initial, ro)
            if not diagnostics.enabled():   # a step the loop does not log
                return ro, {}
            logged = {M.ERROR: vmap(self.task.error)(c), M.REWARD: ro.scores.flatten(1).mean(-1) if
                      self.candidates != "token" else vmap(self.task.score)(c).mean(-1),
                      M.diag("all_fail_frac"): (group_scores <= 0).all(-1).flatten(1).to(c.dtype).mean(-1),
                      M.diag("any_success_frac"): success.flatten(1).to(c.dtype).mean(-1),
                      **self._constants}
        return ro, logged

    def _logp(self, params: dict[str, Tensor], ro: SeqRollout) -> Tensor:
        """Log-probs [S, ...] of the rollout's tokens under stacked ``params`` (with grad when they carry it)."""
        policy = StackedPolicy(self.template, params)
        if ro.candidates is not None:
            return R.token_candidate_logp(policy, ro.prompts, ro.answers, ro.candidates)
        if ro.answers.dim() == 4:   # K answers per prompt: encode each prompt once
            return R.grouped_sequence_logp(policy, ro.prompts.flatten(0, 1),
                                           ro.answers.flatten(0, 1)).reshape(ro.answers.shape)
        return R.sequence_logp(policy, ro.prompts, ro.answers)

    def batch_fields(self, ro: SeqRollout) -> dict[str, Tensor]:
        return self.fields(self, ro, self._logp(self.policy, ro))

    def grad_metrics(self, ro: SeqRollout) -> dict[str, Tensor]:
        return {}

    def after_step(self, step: int) -> dict[str, Tensor]:
        return {}


def needs_value(loss: str, params: Any) -> bool:
    """True when the loss reads a learned value V(x) (``values``): DRO-V, a learned baseline, PPO with a value
    coefficient. Shared by the on-policy families."""
    return loss == "dro_v" or getattr(params, "baseline", None) == "learned" or \
        (loss == "ppo" and getattr(params, "value_coef", 0.0) > 0)


def reference_kind(loss: str, params: Any) -> Optional[str]:
    """Which policy a loss's ``logp_ref`` holds: None (not read), "snapshot" (the rollout policy) or "initial"
    (a fixed reference: the initial / SFT policy) — DRO-V by its ``reference``, KTO the snapshot, GRPO with
    ``kl_to="reference"`` and TPO with ``kl_beta > 0`` the fixed one. Shared by the on-policy families."""
    if loss == "dro_v":
        return params.reference
    if loss == "kto":
        return "snapshot"
    if getattr(params, "kl_to", None) == "reference" or (loss == "tpo" and getattr(params, "kl_beta", 0.0) > 0):
        return "initial"
    return None


# -- rollouts per candidates mode: (task, policy, prompts [S, n, H]) ->
#    (rollout, correctness c [S, ...answers, H], exact-match success per prompt [S, n],
#     group scores [S, groups..., K] (single: [S, n, 1]))
def _roll_sampled(task: SequenceTask, policy: StackedPolicy, prompts: Tensor):
    S, B, H = prompts.shape
    K, V = task.env.k, task.env.vocab
    flat = prompts.reshape(S * B, H)
    out = R.sample_grouped(policy, flat, K, None, noise=task.noise((B * K, H, 1, V)))
    c = task.task.correct(flat, out.answers).reshape(S, B, K, H)
    scores = task.task.score(c)
    ro = SeqRollout(prompts, out.answers.reshape(S, B, K, H), out.logp.reshape(S, B, K, H), scores)
    return ro, c, c.prod(-1).amax(-1), scores


def _roll_token(task: SequenceTask, policy: StackedPolicy, prompts: Tensor):
    S, B, H = prompts.shape
    K, V = task.env.k, task.env.vocab
    flat = prompts.reshape(S * B, H)
    out = R.sample_token_candidates(policy, flat, K, None, noise=task.noise((B, H, K, V)))
    c = task.task.correct(flat, out.answers)
    scores = task.task.candidate_scores(out.candidates, c, flat).reshape(S, B, H, K)
    ro = SeqRollout(prompts, out.answers.reshape(S, B, H), out.logp.reshape(S, B, H, K), scores,
                    candidates=out.candidates.reshape(S, B, H, K))
    c = c.reshape(S, B, H)
    return ro, c, c.prod(-1), scores


def _roll_single(task: SequenceTask, policy: StackedPolicy, prompts: Tensor):
    S, n, H = prompts.shape
    flat = prompts.reshape(S * n, H)
    out = R.sample_single(policy, flat, None, noise=task.noise((n, H, 1, task.env.vocab)))
    c = task.task.correct(flat, out.answers).reshape(S, n, H)
    r = task.task.rewards(c)
    rewards = r if task.task.dense else r[..., None].expand(S, n, H)   # terminal: the bit on every token
    scores = task.task.score(c)
    ro = SeqRollout(prompts, out.answers.reshape(S, n, H), out.logp.reshape(S, n, H), scores, rewards=rewards)
    return ro, c, c.prod(-1), scores[..., None]


_ROLLOUTS: dict[str, Callable[..., tuple]] = {"sampled": _roll_sampled, "token": _roll_token, "single": _roll_single}


# -- batch builders: (task, rollout, logp with grad) -> fields with leading seed axis ---------------------
def _sampled_group(task: SequenceTask, ro: SeqRollout, logp: Tensor) -> dict[str, Tensor]:
    fields = {"logp": logp, "logp_old": ro.logp_old, "scores": ro.scores}
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref
    return fields


def _token_group(task: SequenceTask, ro: SeqRollout, logp: Tensor) -> dict[str, Tensor]:
    S, B, H, K = logp.shape
    fields = {"logp": logp.reshape(S, B * H, K, 1), "logp_old": ro.logp_old.reshape(S, B * H, K, 1),
              "scores": ro.scores.reshape(S, B * H, K)}
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref.reshape(S, B * H, K, 1)
    return fields


def _single_trajectories(task: SequenceTask, ro: SeqRollout, logp: Tensor) -> dict[str, Tensor]:
    fields = {"logp": logp, "logp_old": ro.logp_old, "rewards": ro.rewards,
              "scores": normalise_scores(ro.scores, task.score_params) if task.normalise_scores else ro.scores}
    if task.value:
        fields["values"] = value_forward(task.value, ro.prompts, task.env.vocab)
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref
    return fields


_BUILDERS: dict[tuple[str, str], Callable[[SequenceTask, SeqRollout, Tensor], dict[str, Tensor]]] = {
    ("group", "sampled"): _sampled_group,
    ("group", "token"): _token_group,
    ("trajectory", "single"): _single_trajectories,
}
