"""Refinement family, sequence scale (``env=refine_sequence``; :mod:`envs.refine.sequence`).

The token reversal task. Per seed, three networks of the ``model=transformer`` architecture
(:class:`bench.models.transformer.TransformerPolicy` blocks):

* **π₀**, the frozen base: trained by token cross-entropy on the reversal targets (Adam, ``env.base_lr``,
  ``env.base_batch`` fresh prompts per step) until its sampled token accuracy on ``env.base_eval_prompts``
  held-out prompts reaches ``env.base_accuracy`` (checked every ``env.base_eval_every`` steps; at most
  ``env.base_max_steps``) — a partially trained reversal policy. Trained once per seed and cached
  (:func:`load_or_train`, kind ``refine_base``); its measured token accuracy, exact-match rate, training
  steps and whether it came from the cache are logged as ``diag/base_token_accuracy``,
  ``diag/base_exact_match``, ``diag/base_steps`` and ``diag/base_cached``.
* **R_φ** (``env.reward_model=fitted``): :class:`SequenceScorer` fitted by the Plackett–Luce / Bradley–Terry
  NLL of :func:`envs.refine.reward_model.pl_nll_ranked` on ``env.annotations`` simulated lists (AdamW,
  ``env.rm_lr``, weight decay ``env.rm_l2``, ``env.rm_steps`` steps of ``env.rm_batch`` lists), cached too
  (kind ``refine_rm``). ``reward_model=gold``: R_φ = R*.
* **the refiner** π_θ(A₂|x, A₁), trained: a TransformerPolicy over the buffer [x, A₁, A₂] (3H positions; its
  position table has 2·⌈3H/2⌉ rows) whose logits at answer step t get ``env.copy_bias``·1[v = A₁_t]. Seeds
  are stacked: decoding runs through :class:`bench.families.sequence.StackedPolicy` (batched matmuls over the
  seed axis), the training forward and R_φ under ``torch.func.vmap``.

Cache: ``$XDG_CACHE_HOME/tpo-bench/<kind>/<key>.pt`` (else ``~/.cache/tpo-bench/...``), key = the first 16
hex digits of SHA-256 over the canonical JSON of everything the weights depend on
(:func:`bench.families.rlvr_sft.sft_key`), written atomically; a file that does not fit is retrained.

Batches (Δ = R_φ(x, A₂) − R_φ(x, A₁)):

* ``group``/``sampled`` (TPO, GRPO, RLOO, Group PG): B states x = (prompt, A₁ ~ π₀) × K rewrites,
  GroupBatch [B, K, H], scores Δ; ``env.keep_candidate`` adds A₁ as candidate K + 1 (Δ = 0).
* ``trajectory``/``single`` (PG, PPO, DRO-V, KTO, REINFORCE-LB, DG): B·K states, one rewrite each,
  TrajectoryBatch [B·K, H]: ``rewards`` R_φ(x, A₂) on every token, ``baseline`` R_φ(x, A₁) on every token
  (sequence-level advantage Δ for ``baseline="expected"``), ``scores`` R_φ(x, A₂) (KTO: Δ, label 1[Δ > 0];
  :func:`bench.families.refine_common.single_scores`), ``values`` V(x) = R_φ(x, A₁)·1[value_init=reward_model]
  + an MLP on the one-hot [x, A₁] whose output weights start at 0 (:func:`bench.families.sequence.value_init`).

``logp_ref``: the reference refiner (``env.reference``: the initial refiner, or the per-token copy policy
softmax(reference_copy_bias·1[v = A₁_t])) or the rollout snapshot, by
:func:`bench.families.refine_common.refine_reference_kind`.

Evaluation (before steps 0, ``eval_every``, … and after the last): ``env.eval_prompts`` held-out prompts and
their A₁ (fixed per seed), ``env.gate_k`` refinements per state drawn from a stream of (seed, step), the
metrics of :func:`envs.refine.sequence.gate_metrics`; ``eval/kl_ref`` = Σ_t KL(π_θ(·|x, A₂<t) ‖ π_ref(·|x,
A₂<t)) along the drawn A₂ (an unbiased, non-negative estimate of the sequence KL).
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from bench import metrics as M
from bench import rollout as R
from bench.families.refine_common import (EVAL_METRICS, check_batch, fit_ranked_lists, refine_reference_kind,
                                          reward_model_metrics, single_scores)
from bench.families.rlvr_sft import CACHE_ENV_VAR, _save, canonical_json, sft_key
from bench.families.sequence import (StackedPolicy, needs_value, stacked_init, transformer_config, value_forward,
                                     value_init)
from bench.models.transformer import Block, TransformerConfig, TransformerPolicy, lecun_normal_
from bench.schema import ConfigError
from bench.seeding import generators, stream_seed
from envs.refine.sequence import RefineSequenceConfig, edit_fraction, gate_metrics, gold_reward, pairwise_accuracy, \
    rank_lists
from envs.reversal import ReversalTask

CACHE_FORMAT = 1
"""Version of the cached networks' recipe and file layout; part of every cache key."""


# -- cache ------------------------------------------------------------------------------------------
def cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/tpo-bench/<kind>``, else ``~/.cache/tpo-bench/<kind>``."""
    xdg = os.environ.get(CACHE_ENV_VAR)
    return (Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()) / "tpo-bench" / kind


def cache_key(kind: str, parts: Mapping[str, Any]) -> str:
    """16 hex digits identifying ``parts`` (with ``kind`` and :data:`CACHE_FORMAT`)."""
    return sft_key({**parts, "kind": kind, "format": CACHE_FORMAT})


def _load(path: Path, module: nn.Module, key: str) -> dict[str, float]:
    """Stored info of the cache file at ``path`` after loading its weights into ``module``; the file is checked
    in full (key, format, names, shapes, dtypes) before the module is touched (ValueError otherwise)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("key") != key or payload.get("format") != CACHE_FORMAT:
        raise ValueError("not a cache file of this key and format")
    state, info = payload.get("state_dict"), payload.get("info")
    own = module.state_dict()
    if not isinstance(state, dict) or not isinstance(info, dict) or set(state) != set(own):
        raise ValueError("state_dict or info missing or different from the module's")
    for name, value in own.items():
        if not isinstance(state[name], Tensor) or state[name].shape != value.shape or state[name].dtype != value.dtype:
            raise ValueError(f"parameter {name} has a different shape or dtype")
    module.load_state_dict(state, strict=True)
    return {k: float(v) for k, v in info.items()}


def load_or_train(kind: str, parts: Mapping[str, Any], module: nn.Module,
                  train: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
    """Load ``module``'s weights from ``cache_dir(kind)/<cache_key>.pt`` or ``train`` it in place and save it.

    Returns the info ``train`` returned (floats) plus ``cached``: 1.0 when loaded, else 0.0. An unreadable or
    foreign file is retrained and overwritten (one notice line on stderr)."""
    key = cache_key(kind, parts)
    path = cache_dir(kind) / f"{key}.pt"
    if path.exists():
        try:
            return {**_load(path, module, key), "cached": 1.0}
        except Exception as exc:  # a torn or foreign file: retrain (the module is untouched)
            print(f"{kind} cache file {path} unusable ({str(exc)[:200] or type(exc).__name__}); retraining",
                  file=sys.stderr)
    info = {k: float(v) for k, v in train(module).items()}
    _save(path, {"key": key, "format": CACHE_FORMAT, "info": info, "parts": canonical_json({**parts, "kind": kind}),
                 "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}})
    return {**info, "cached": 0.0}


# -- the frozen base policy π₀ ---------------------------------------------------------------------------
def base_parts(cfg: RefineSequenceConfig, tcfg: TransformerConfig, seed: int) -> dict[str, Any]:
    """Everything π₀'s weights depend on (its cache key parts)."""
    return {"horizon": cfg.horizon, "vocab": cfg.vocab, "logic": cfg.logic, "model": tcfg, "seed": int(seed),
            "base": {k: getattr(cfg, k) for k in ("base_accuracy", "base_max_steps", "base_lr", "base_batch",
                                                  "base_eval_every", "base_eval_prompts")}}


@torch.no_grad()
def sampled_accuracy(model: TransformerPolicy, task: ReversalTask, prompts: Tensor, seed: int) -> tuple[float, float]:
    """(token accuracy, exact-match rate) of one answer per prompt sampled at temperature 1 (stream "base_eval")."""
    g = torch.Generator().manual_seed(stream_seed(seed, "base_eval_sample"))
    c = task.correct(prompts, R.sample_single(model, prompts, g).answers)
    return float(c.mean()), float(c.prod(-1).mean())


def train_base(model: TransformerPolicy, cfg: RefineSequenceConfig, seed: int) -> dict[str, float]:
    """Supervised training of π₀ in place until its sampled token accuracy ≥ ``cfg.base_accuracy`` (module doc).
    Returns {"token_accuracy", "exact_match", "steps"}."""
    task = cfg.task()
    data = torch.Generator().manual_seed(stream_seed(seed, "base_data"))
    held = task.sample_prompts(torch.Generator().manual_seed(stream_seed(seed, "base_eval")), cfg.base_eval_prompts)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.base_lr)
    acc, exact = sampled_accuracy(model, task, held, seed)
    steps = 0
    while acc < cfg.base_accuracy and steps < cfg.base_max_steps:
        for _ in range(min(cfg.base_eval_every, cfg.base_max_steps - steps)):
            x = task.sample_prompts(data, cfg.base_batch)
            y = task.targets(x)
            loss = -R.answer_log_probs(model, x, y).gather(-1, y[..., None]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        acc, exact = sampled_accuracy(model, task, held, seed)
    return {"token_accuracy": acc, "exact_match": exact, "steps": float(steps)}


# -- the reward model R_φ -------------------------------------------------------------------------------
class SequenceScorer(nn.Module):
    """R_φ(x, A): a causal transformer over the 2H tokens [x, A] (blocks of :mod:`bench.models.transformer`,
    same initialisation) and a scalar head on the final LayerNorm of the last position. tokens [..., 2H] →
    scores [...]."""

    def __init__(self, vocab: int, horizon: int, cfg: TransformerConfig, generator: Optional[torch.Generator] = None):
        super().__init__()
        d = cfg.d_model
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Parameter(torch.empty(2 * horizon, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d, eps=cfg.ln_eps)
        self.head = nn.Linear(d, 1)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    lecun_normal_(m.weight, generator)
                    m.bias.zero_()
            self.tok_emb.weight.normal_(0.0, 1.0 / math.sqrt(d), generator=generator)
            self.pos_emb.normal_(0.0, 0.02, generator=generator)

    def forward(self, tokens: Tensor) -> Tensor:
        lead = tokens.shape[:-1]
        flat = tokens.reshape(-1, tokens.shape[-1])
        h = self.tok_emb(flat) + self.pos_emb[:flat.shape[-1]]
        for block in self.blocks:
            h, _ = block(h)
        return self.head(self.ln_f(h[:, -1]))[..., 0].reshape(lead)


def pair_tokens(x: Tensor, a: Tensor) -> Tensor:
    """[x, a] [..., 2H] for prompts x [n, H] (broadcast over a's middle axes) and answers a [n, ..., H]."""
    x = x.reshape(x.shape[:1] + (1,) * (a.dim() - x.dim()) + x.shape[1:]).expand(a.shape)
    return torch.cat([x, a], -1)


def annotated_answers(cfg: RefineSequenceConfig, base: TransformerPolicy, prompts: Tensor, n_items: int,
                      generator: torch.Generator) -> Tensor:
    """[n, L, H] answers shown to the annotators: π₀ samples (``annotation_policy=base``) or uniform sequences."""
    if cfg.annotation_policy == "base":
        return R.sample_grouped(base, prompts, n_items, generator).answers
    return torch.randint(cfg.vocab, (prompts.shape[0], n_items, cfg.horizon), generator=generator)


def fit_scorer(scorer: SequenceScorer, cfg: RefineSequenceConfig, base: TransformerPolicy,
               seed: int) -> dict[str, float]:
    """Fit R_φ in place on ``cfg.annotations`` simulated lists (module doc); returns {"rm_loss": last NLL per list}."""
    task = cfg.task()
    g = torch.Generator().manual_seed(stream_seed(seed, "annotations"))
    x = task.sample_prompts(g, cfg.annotations)
    items = annotated_answers(cfg, base, x, cfg.list_size, g)
    ranked = rank_lists(items, gold_reward(task, x, items, cfg.gold), cfg.annotator_beta, g)
    tokens = pair_tokens(x, ranked)                                                  # [n, L, 2H]
    return fit_ranked_lists(lambda idx: scorer(tokens[idx]), scorer.parameters(), cfg.annotations, cfg, seed)


def rm_parts(cfg: RefineSequenceConfig, tcfg: TransformerConfig, seed: int) -> dict[str, Any]:
    """Everything R_φ's weights depend on (π₀'s parts included)."""
    return {"base": base_parts(cfg, tcfg, seed), "gold": cfg.gold,
            "rm": {k: getattr(cfg, k) for k in ("annotations", "list_size", "annotator_beta", "annotation_policy",
                                                "rm_steps", "rm_lr", "rm_batch", "rm_l2")}}


def stack(modules: list[nn.Module], device: str) -> dict[str, Tensor]:
    """{name: [S, ...]} frozen parameters of per-seed modules."""
    named = [dict(m.named_parameters()) for m in modules]
    return {n: torch.stack([p[n].detach() for p in named]).to(device) for n in named[0]}


# -- refiner ------------------------------------------------------------------------------------------
def refiner_horizon(horizon: int) -> int:
    """The ``horizon`` argument of the refiner's TransformerPolicy: its 2·h positions hold the 3H-token buffer."""
    return (3 * horizon + 1) // 2


def decode_refinements(policy: StackedPolicy, context: Tensor, a1: Tensor, copy_bias: float, K: int,
                       noise: Tensor) -> tuple[Tensor, Tensor]:
    """K refinements per state: context [N, 2H] (= [x, A₁], seed-major rows), a1 [N, H], noise [N·K, H, V]
    Gumbel → answers [N, K, H] (long) and their sampling-time log-probs [N, K, H]. Temperature 1; the logits of
    step t get copy_bias·1[v = A₁_t]."""
    N, H = a1.shape
    logits, cache = policy.prefill(context)
    step = logits[:, -1].repeat_interleave(K, 0)
    cache = tuple((k.repeat_interleave(K, 0), v.repeat_interleave(K, 0)) for k, v in cache)
    bias = copy_bias * nn.functional.one_hot(a1.repeat_interleave(K, 0), step.shape[-1]).to(torch.float32)
    tokens, logps = [], []
    for t in range(H):
        lp = torch.log_softmax(step.float() + bias[:, t], -1)
        a = torch.argmax(lp + noise[:, t], -1)
        tokens.append(a)
        logps.append(lp.gather(-1, a[:, None])[:, 0])
        if t < H - 1:
            step, cache = policy.decode(a[:, None], cache)
            step = step[:, -1]
    return torch.stack(tokens, 1).reshape(N, K, H), torch.stack(logps, 1).reshape(N, K, H)


@dataclass
class RefineRollout:
    """One step's frozen data (leading seed axis S): prompts x, base answers a1 [S, n, H]; rewrites a2
    [S, n, K', H] (K' = K, K + 1 with the keep candidate, or 1 for single rewrites); logp_old / logp_ref like a2;
    R_φ of A₁ [S, n] and of the rewrites [S, n, K']."""

    x: Tensor
    a1: Tensor
    a2: Tensor
    logp_old: Tensor
    proxy_a1: Tensor
    proxy_a2: Tensor
    logp_ref: Optional[Tensor] = None


class RefineSequenceTask:
    """The sequence-scale refinement task as a :class:`bench.loop.Task` (module doc)."""

    def __init__(self, settings: Any, seeds: list[int], batch_kind: str):
        cfg, algo, params = settings.env, settings.algorithm, settings.loss_params
        check_batch(cfg.name, batch_kind, algo.candidates, _BUILDERS, cfg.k, algo.name)
        self.cfg, self.seeds, self.steps = cfg, list(seeds), settings.run.steps
        self.kind, self.loss = batch_kind, algo.loss
        self.device = device = settings.run.device
        self.task = cfg.task()
        H, V = cfg.horizon, cfg.vocab
        tcfg = transformer_config(settings.model)
        # π₀, per seed, trained once and cached
        bases, infos = [], []
        for seed in self.seeds:
            init_gen = torch.Generator().manual_seed(stream_seed(seed, "base_init"))
            model = TransformerPolicy(V, H, tcfg, generator=init_gen)
            infos.append(load_or_train("refine_base", base_parts(cfg, tcfg, seed), model,
                                       lambda m, seed=seed: train_base(m, cfg, seed)))
            bases.append(model.requires_grad_(False))
        self.base_models = bases
        self.base_template = TransformerPolicy(V, H, tcfg, generator=torch.Generator().manual_seed(0))
        self.base_template.requires_grad_(False).to(device)
        self.base = StackedPolicy(self.base_template, stack(bases, device))
        self.base_info = {M.diag(f"base_{k}"): torch.tensor([i[k] for i in infos], device=device)
                          for k in ("token_accuracy", "exact_match", "steps", "cached")}
        # R_φ
        self.scorer: Optional[dict[str, Tensor]] = None
        rm_cached = []
        if cfg.reward_model == "fitted":
            scorers = []
            for seed, base in zip(self.seeds, bases):
                sc = SequenceScorer(V, H, tcfg, generator=torch.Generator().manual_seed(stream_seed(seed, "rm_init")))
                info = load_or_train("refine_rm", rm_parts(cfg, tcfg, seed), sc,
                                     lambda m, seed=seed, base=base: fit_scorer(m, cfg, base, seed))
                rm_cached.append(info["cached"])
                scorers.append(sc.requires_grad_(False))
            self.scorer_template = SequenceScorer(V, H, tcfg).requires_grad_(False).to(device)
            self.scorer = stack(scorers, device)
            self._score = vmap(lambda p, t: functional_call(self.scorer_template, p, (t,)))
        self.rm_cached = torch.tensor(rm_cached or [0.0] * len(self.seeds), device=device)
        self.rm_accuracy = self._heldout_accuracy()
        # the refiner (stacked, trained) and its reference
        self.template = TransformerPolicy(V, refiner_horizon(H), tcfg, generator=torch.Generator().manual_seed(0))
        self.template.requires_grad_(False).to(device)
        init = stacked_init(V, refiner_horizon(H), tcfg, generators(self.seeds, "init"), device)
        self.policy = {k: v.clone().requires_grad_(True) for k, v in init.items()}
        self.initial = init
        self.reference = refine_reference_kind(algo.loss, params)
        self.value: dict[str, Tensor] = {}
        if needs_value(algo.loss, params):
            v0 = value_init(2 * H * V, settings.model.value_hidden, generators(self.seeds, "value_init"), device)
            self.value = {k: v.requires_grad_(True) for k, v in v0.items()}
        self.prompt_gens = generators(self.seeds, "prompts")
        self.base_gens = generators(self.seeds, "base_sample")
        self.sample_gens = generators(self.seeds, "sample")
        # held-out evaluation states (fixed per seed)
        self.eval_x = self._prompts(generators(self.seeds, "eval_prompts"), cfg.eval_prompts)
        self.eval_a1 = self.sample_base(self.eval_x, generators(self.seeds, "eval_base"))
        self.eval_gold_a1 = self.gold(self.eval_x, self.eval_a1)
        self.eval_proxy_a1 = self.proxy(self.eval_x, self.eval_a1)
        S = len(self.seeds)
        self._constants = {M.diag("rollouts_per_step"): torch.full((S,), float(cfg.batch_size * cfg.k), device=device)}

    # -- parameters and state ------------------------------------------------------------------------
    def parameters(self) -> list[Tensor]:
        return [*self.policy.values(), *self.value.values()]

    def state_dict(self) -> dict[str, Any]:
        return {"policy": {k: v.detach().clone() for k, v in self.policy.items()},
                "value": {k: v.detach().clone() for k, v in self.value.items()},
                "gens": [[g.get_state() for g in gens]
                         for gens in (self.prompt_gens, self.base_gens, self.sample_gens)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, v in self.policy.items():
                v.copy_(state["policy"][k])
            for k, v in self.value.items():
                v.copy_(state["value"][k])
        for gens, saved in zip((self.prompt_gens, self.base_gens, self.sample_gens), state["gens"]):
            for g, s in zip(gens, saved):
                g.set_state(s)

    # -- the networks ------------------------------------------------------------------------------------
    def _prompts(self, gens: list[torch.Generator], n: int) -> Tensor:
        return torch.stack([self.task.sample_prompts(g, n) for g in gens]).to(self.device)

    def _noise(self, gens: list[torch.Generator], shape: tuple[int, ...]) -> Tensor:
        return torch.cat([R.gumbel_noise(shape, g, torch.device(self.device)) for g in gens])

    @torch.no_grad()
    def sample_base(self, x: Tensor, gens: list[torch.Generator]) -> Tensor:
        """A₁ ~ π₀(·|x): x [S, n, H] → [S, n, H] (seed s from ``gens[s]``)."""
        S, n, H = x.shape
        out = R.sample_single(self.base, x.reshape(S * n, H), None, noise=self._noise(gens, (n, H, 1, self.cfg.vocab)))
        return out.answers.reshape(S, n, H)

    def gold(self, x: Tensor, a: Tensor) -> Tensor:
        """R*(x, A): x [S, n, H], a [S, n, ..., H] → [S, n, ...]."""
        return torch.stack([gold_reward(self.task, x[s], a[s], self.cfg.gold) for s in range(x.shape[0])])

    @torch.no_grad()
    def proxy(self, x: Tensor, a: Tensor) -> Tensor:
        """R_φ(x, A) (R* when ``reward_model=gold``): x [S, n, H], a [S, n, ..., H] → [S, n, ...]."""
        if self.scorer is None:
            return self.gold(x, a)
        return self._score(self.scorer, vmap(pair_tokens)(x, a))

    def proxy_rewrites(self, x: Tensor, a1: Tensor, proxy_a1: Tensor, a2: Tensor) -> Tensor:
        """R_φ(x, A₂) [S, n, K] for rewrites a2 [S, n, K, H], equal to ``proxy_a1`` [S, n] exactly where A₂ = A₁
        (so a copy has Δ = 0, whatever the float rounding of a differently shaped forward)."""
        same = (a2 == a1[:, :, None]).all(-1)
        return torch.where(same, proxy_a1[..., None], self.proxy(x, a2))

    def _heldout_accuracy(self) -> Tensor:
        """R_φ's pairwise accuracy [S] on ``env.rm_heldout`` fresh pairs from the annotation policy."""
        gens = generators(self.seeds, "rm_heldout")
        x = self._prompts(gens, self.cfg.rm_heldout)
        items = torch.stack([annotated_answers(self.cfg, b, x[s].cpu(), 2, g)
                             for s, (b, g) in enumerate(zip(self.base_models, gens))]).to(self.device)
        gold, proxy = self.gold(x, items), self.proxy(x, items)
        return pairwise_accuracy(proxy[..., 0], proxy[..., 1], gold[..., 0], gold[..., 1])

    def _dists(self, p: dict[str, Tensor], x: Tensor, a1: Tensor, y: Tensor) -> Tensor:
        """log π(·|x, A₁, y_<t) [S, n, K, H, V] for stacked ``p``, x, a1 [S, n, H], y [S, n, K, H]."""
        H = x.shape[-1]
        ctx = torch.cat([x, a1], -1)[:, :, None].expand(*y.shape[:3], 2 * H)
        logits = StackedPolicy(self.template, p)(torch.cat([ctx, y[..., :-1]], -1))[..., 2 * H - 1:, :]
        bias = self.cfg.copy_bias * nn.functional.one_hot(a1, self.cfg.vocab).to(logits.dtype)[:, :, None]
        return torch.log_softmax(logits.float() + bias, -1)

    def refiner_logp(self, params: dict[str, Tensor], x: Tensor, a1: Tensor, y: Tensor) -> Tensor:
        """Per-token log π(y_t | x, A₁, y_<t) [S, n, K, H] for y [S, n, K, H] (with grad through ``params``)."""
        return self._dists(params, x, a1, y).gather(-1, y[..., None])[..., 0]

    def reference_dists(self, x: Tensor, a1: Tensor, y: Tensor) -> Tensor:
        """log π_ref(·|x, A₁, y_<t) [S, n, K, H, V]: the initial refiner, or the per-token copy policy."""
        if self.cfg.reference == "initial":
            return self._dists(self.initial, x, a1, y)
        logits = self.cfg.reference_copy_bias * nn.functional.one_hot(a1, self.cfg.vocab).to(torch.float32)
        return torch.log_softmax(logits, -1)[:, :, None].expand(*y.shape, self.cfg.vocab)

    @torch.no_grad()
    def sample_refinements(self, x: Tensor, a1: Tensor, K: int, gens: list[torch.Generator]) -> tuple[Tensor, Tensor]:
        """K refinements per state from the current refiner: x, a1 [S, n, H] → (a2, logp_old) [S, n, K, H]."""
        S, n, H = x.shape
        policy = StackedPolicy(self.template, {k: v.detach() for k, v in self.policy.items()})
        a2, lp = decode_refinements(policy, torch.cat([x, a1], -1).reshape(S * n, 2 * H), a1.reshape(S * n, H),
                                    self.cfg.copy_bias, K, self._noise(gens, (n * K, H, self.cfg.vocab)))
        return a2.reshape(S, n, K, H), lp.reshape(S, n, K, H)

    # -- Task protocol ------------------------------------------------------------------------------------
    def rollout(self, step: int) -> tuple[RefineRollout, dict[str, Tensor]]:
        logged = self.evaluate(step) if step % self.cfg.eval_every == 0 and step != self.steps - 1 else {}
        cfg = self.cfg
        with torch.no_grad():
            group = self.kind == "group"
            n = cfg.batch_size if group else cfg.batch_size * cfg.k
            x = self._prompts(self.prompt_gens, n)
            a1 = self.sample_base(x, self.base_gens)
            a2, logp_old = self.sample_refinements(x, a1, cfg.k if group else 1, self.sample_gens)
            proxy_a1 = self.proxy(x, a1)
            proxy_a2 = self.proxy_rewrites(x, a1, proxy_a1, a2)
            logged[M.REWARD] = proxy_a2.flatten(1).mean(-1)
            if group and cfg.keep_candidate:
                a2 = torch.cat([a2, a1[:, :, None]], 2)
                logp_old = torch.cat([logp_old, self.refiner_logp(self.policy, x, a1, a1[:, :, None])], 2)
                proxy_a2 = torch.cat([proxy_a2, proxy_a1[..., None]], -1)
            ro = RefineRollout(x, a1, a2, logp_old, proxy_a1, proxy_a2)
            if self.reference == "snapshot":
                ro.logp_ref = logp_old
            elif self.reference == "reference":
                ro.logp_ref = self.reference_dists(x, a1, a2).gather(-1, a2[..., None])[..., 0]
        logged.update(self._constants)
        return ro, logged

    def batch_fields(self, ro: RefineRollout) -> dict[str, Tensor]:
        return _BUILDERS[(self.kind, "sampled" if self.kind == "group" else "single")](
            self, ro, self.refiner_logp(self.policy, ro.x, ro.a1, ro.a2))

    def grad_metrics(self, ro: Any) -> dict[str, Tensor]:
        return {}

    def after_step(self, step: int) -> dict[str, Tensor]:
        return self.evaluate(step + 1) if step == self.steps - 1 else {}

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, Tensor]:
        """Monte-Carlo metrics of the current refiner on the held-out states (module doc), each [S]."""
        cfg = self.cfg
        x, a1 = self.eval_x, self.eval_a1
        a2, _ = self.sample_refinements(x, a1, cfg.gate_k, generators(self.seeds, f"eval_sample_{step}"))
        logq = self._dists({k: v.detach() for k, v in self.policy.items()}, x, a1, a2)
        logr = self.reference_dists(x, a1, a2)
        kl = (logq.exp() * (logq - logr)).sum((-1, -2)).mean(-1)                     # [S, n]
        out = gate_metrics(cfg, self.eval_gold_a1, self.eval_proxy_a1, self.gold(x, a2),
                           self.proxy_rewrites(x, a1, self.eval_proxy_a1, a2),
                           (a2 == a1[:, :, None]).all(-1), edit_fraction(a2, a1[:, :, None]), kl)
        logged = {EVAL_METRICS[k]: v for k, v in out.items()}
        logged.update(reward_model_metrics(cfg, out["lift"], self.rm_accuracy))
        logged.update(self.base_info)
        logged[M.diag("rm_cached")] = self.rm_cached
        return logged


# -- batch builders: (task, rollout, logp [S, n, K', H] with grad) -> fields --------------------------------
def _sampled_group(task: RefineSequenceTask, ro: RefineRollout, logp: Tensor) -> dict[str, Tensor]:
    fields = {"logp": logp, "logp_old": ro.logp_old, "scores": ro.proxy_a2 - ro.proxy_a1[..., None]}
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref
    return fields


def _single(task: RefineSequenceTask, ro: RefineRollout, logp: Tensor) -> dict[str, Tensor]:
    H = ro.x.shape[-1]
    reward, base = ro.proxy_a2[..., 0], ro.proxy_a1                                   # [S, n]
    scores = single_scores(task.loss, reward, reward - base)
    fields = {"logp": logp[:, :, 0], "logp_old": ro.logp_old[:, :, 0],
              "rewards": reward[..., None].expand(*reward.shape, H),
              "baseline": base[..., None].expand(*base.shape, H),
              # R_φ(A₂) unless KTO: the sequence score a learned V regresses on
              "scores": reward if scores is None else scores}
    if task.value:
        v = value_forward(task.value, torch.cat([ro.x, ro.a1], -1), task.cfg.vocab)
        fields["values"] = v + base if task.cfg.value_init == "reward_model" else v
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref[:, :, 0]
    return fields


_BUILDERS: dict[tuple[str, str], Callable[..., dict[str, Tensor]]] = {
    ("group", "sampled"): _sampled_group,
    ("trajectory", "single"): _single,
}


def build_refine_sequence(settings: Any, seeds: list[int], batch_kind: str) -> RefineSequenceTask:
    """``FAMILIES["refine_sequence"]``: the sequence-scale refinement task (model must be ``transformer``)."""
    if settings.model.name != "transformer":
        raise ConfigError(f"env={settings.env.name} needs model=transformer, got model={settings.model.name}")
    return RefineSequenceTask(settings, seeds, batch_kind)
