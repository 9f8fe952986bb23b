"""Refinement family, LLM scale (``env=refine_llm``; :mod:`envs.refine.llm`): answer revision on one RLVR task.

Per seed (each seed its own models, as in :mod:`bench.families.rlvr`: a Hugging Face model is not a functional
stack; the per-token tensors of all seeds are stacked before the loss):

* **π₀**, the frozen base: the ``model=lm`` model warm-started by the RLVR family's supervised fine-tune
  (:func:`bench.families.rlvr_sft.warm_start`, called with the RLVR family's own cache-key parts, so ``env=rlvr``
  and ``env=refine_llm`` with the same model, task, settings, ``env.sft`` and seed share one cache file), or the
  checkpoint of ``model.path`` (no SFT). A₁ is sampled from it at ``env.base_temperature``. Its SFT loss, whether
  it came from the cache and its sampled accuracy on the held-out states are ``diag/sft_loss``,
  ``diag/base_cached`` and ``diag/base_accuracy``.
* **R_φ** (``env.reward_model=fitted``): :class:`AnswerScorer`, a copy of π₀'s decoder with a scalar head on the
  last token's hidden state, over the text prompt + answer; fitted by
  :func:`bench.families.refine_common.fit_ranked_lists` (the PL / BT NLL of the other scales) on ``env.annotations``
  lists of ``env.list_size`` π₀ answers to train-split prompts, ranked by the simulated annotator
  (:func:`envs.refine.reward_model.plackett_luce_order`); trained once per seed and cached
  (:func:`bench.families.refine_sequence.load_or_train`, kind ``refine_llm_rm``). ``reward_model=gold``: R_φ = R*.
* **the refiner** π_θ(A₂|S, A₁): a copy of π₀'s weights (``env.refiner_init=base``; ``scratch``: the model's own
  random init) prompted with :func:`envs.refine.llm.revision_prompt`; every weight trains (only the adapters with
  ``model.lora.rank > 0``). Its reference π_ref (KL terms, ``eval/kl_ref``) is the initial refiner — with
  ``refiner_init=base`` that is π₀ itself (no extra copy), with LoRA the model with its adapters off.

Batches (Δ = R_φ(S, A₂) − R_φ(S, A₁); a rewrite whose text equals A₁'s gets R_φ(S, A₁) exactly, so Δ = 0):

* ``group``/``sampled`` (TPO, GRPO, RLOO, Group PG): B = ``env.batch_size`` states × K = ``env.k`` rewrites,
  GroupBatch [S, B, K, T] with the completion mask, scores Δ; ``env.keep_candidate`` adds A₁'s text (+ EOS) as
  candidate K + 1 (Δ = 0).
* ``trajectory``/``single`` (PG, PPO, DRO-V, KTO, REINFORCE-LB, DG): B·K states, one rewrite each,
  TrajectoryBatch [S, B·K, T]: ``rewards`` R_φ(S, A₂) and ``baseline`` R_φ(S, A₁) on every completion token,
  ``scores`` by :func:`bench.families.refine_common.single_scores`, ``values`` V(x) = R_φ(S, A₁)·1[value_init =
  reward_model] + :class:`bench.families.rlvr.PromptValue` on the revision prompt, its output layer started at 0.

``logp_ref``: the reference refiner or the rollout snapshot, by :func:`bench.families.refine_common.refine_reference_kind`.

Evaluation (before steps 0, ``eval_every``, … and after the last): ``env.eval_prompts`` held-out (eval-split)
problems and their A₁ (fixed per seed), ``env.gate_k`` refinements per state from a stream of (seed, step), the
metrics of :func:`envs.refine.sequence.gate_metrics`; ``eval/kl_ref`` = Σ_t log π_θ(y_t|·) − log π_ref(y_t|·) along
the drawn A₂, averaged over the draws (an unbiased estimate of the sequence KL; one draw can be negative).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from bench import metrics as M
from bench.families.refine_common import (EVAL_METRICS, check_batch, fit_ranked_lists, refine_reference_kind,
                                          reward_model_metrics, single_scores)
from bench.families.refine_sequence import load_or_train
from bench.families.sequence import needs_value
from bench.families.rlvr import PerSeedModels
from bench.schema import ConfigError
from bench.seeding import stream_seed
from envs.refine.llm import RefineLLMConfig, check_template, edit_fraction, gold_rewards, revision_prompt
from envs.refine.reward_model import plackett_luce_order
from envs.refine.sequence import gate_metrics, pairwise_accuracy

SEED_MOD = 2 ** 62   # task.prompts and sample_completions take seeds below this


# -- the reward model R_φ ---------------------------------------------------------------------------------
class AnswerScorer(nn.Module):
    """R_φ(S, A): a causal-LM decoder (a copy of π₀'s) and a linear head, started at 0, on the final hidden state
    of the last token of the left-padded text prompt + answer. ids, mask [N, L] → scores [N] float32."""

    def __init__(self, decoder: nn.Module, hidden: int):
        super().__init__()
        self.decoder = decoder
        self.head = nn.Linear(hidden, 1)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        from bench.models.lm import position_ids

        h = self.decoder(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                         use_cache=False).last_hidden_state
        return self.head(h[:, -1].float())[..., 0]


def trainable(model: nn.Module) -> nn.Module:
    """``model`` with gradients on for its LoRA adapters (when it has any) or for every weight; returned."""
    names = [n for n, _ in model.named_parameters()]
    lora = any("lora_" in n for n in names)
    for n, p in model.named_parameters():
        p.requires_grad_(not lora or "lora_" in n or n.startswith("head."))
    return model


def encode_texts(tokenizer: Any, texts: list[str], device: Any) -> tuple[Tensor, Tensor]:
    """Left-padded ids and mask [n, L] of plain texts (no chat template: R_φ reads the raw prompt + answer)."""
    from bench.models.lm_sampling import encode_prompts

    ids, mask = encode_prompts(tokenizer, texts, chat_template=False)
    return ids.to(device), mask.to(device)


def fit_scorer(scorer: AnswerScorer, cfg: RefineLLMConfig, task: Any, base: Any, tokenizer: Any, seed: int,
               device: Any) -> dict[str, float]:
    """Fit R_φ in place on ``cfg.annotations`` simulated lists of π₀ answers (module doc); {"rm_loss": ...}."""
    from bench.models.lm_sampling import sample_completions

    n, L = cfg.annotations, cfg.list_size
    problems = task.prompts("train", n, seed=stream_seed(seed, "annotation_prompts") % SEED_MOD)
    out = sample_completions(base, tokenizer, [p.prompt for p in problems], L, cfg.max_new_tokens,
                             temperature=cfg.base_temperature, seed=stream_seed(seed, "annotation_samples") % SEED_MOD)
    gold = gold_rewards(task, problems, out.texts, L)                                   # [n, L]
    order = plackett_luce_order(gold, cfg.annotator_beta, torch.Generator().manual_seed(stream_seed(seed, "annotations")))
    ranked = [problems[i].prompt + out.texts[i * L + int(j)] for i in range(n) for j in order[i]]
    ids, mask = encode_texts(tokenizer, ranked, device)
    ids, mask = ids.view(n, L, -1), mask.view(n, L, -1)
    scorer.train()
    info = fit_ranked_lists(lambda idx: scorer(ids[idx].flatten(0, 1), mask[idx].flatten(0, 1)).view(len(idx), L),
                            [p for p in scorer.parameters() if p.requires_grad], n, cfg, seed)
    scorer.eval()
    return info


# -- rollouts -------------------------------------------------------------------------------------------
def _pad_to(x: Tensor, width: int, value: float = 0.0) -> Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[-1]), value=value)


@dataclass
class SeedRewrites:
    """One seed's rewrites of n states, K' each (rows state-major: state i's at i·K' … i·K' + K' − 1):
    input_ids / attention_mask [n·K', P + T] (left-padded revision prompt, then the rewrite), prompt_ids [n·K', P],
    completion_mask and logp_old [n·K', T] (sampling-time log-probs), texts (n·K')."""

    input_ids: Tensor
    attention_mask: Tensor
    prompt_ids: Tensor
    completion_mask: Tensor
    logp_old: Tensor
    texts: list[str]


@dataclass
class LLMRefineRollout:
    """One step's frozen data: per seed (lists of length S) input_ids, attention_mask, prompt_ids as in
    :class:`SeedRewrites`; stacked over seeds and padded to the step's longest rewrite T: completion_mask, logp_old
    (and logp_ref) [S, n·K', T]; R_φ of A₁ [S, n] and of the rewrites [S, n, K']."""

    input_ids: list[Tensor]
    attention_mask: list[Tensor]
    prompt_ids: list[Tensor]
    completion_mask: Tensor
    logp_old: Tensor
    proxy_a1: Tensor
    proxy_a2: Tensor
    logp_ref: Optional[Tensor] = None


class RefineLLMTask(PerSeedModels):
    """The LLM-scale refinement task as a :class:`bench.loop.Task` (module doc)."""

    def __init__(self, settings: Any, seeds: list[int], batch_kind: str):
        from bench.families.rlvr import PromptValue
        from bench.families.rlvr_sft import warm_start
        from bench.models.lm import ModelNotFound, Reference, load_lm, make_reference
        from envs.rlvr.config import build_task
        from envs.rlvr.errors import RLVRError

        cfg, algo, params = settings.env, settings.algorithm, settings.loss_params
        check_batch(cfg.name, batch_kind, algo.candidates, _BUILDERS, cfg.k, algo.name)
        self.cfg, self.seeds, self.steps = cfg, list(seeds), settings.run.steps
        self.kind, self.loss = batch_kind, algo.loss
        self.device = device = settings.run.device
        try:
            self.task = build_task(cfg)
        except RLVRError as exc:
            raise ConfigError(f"env.task={cfg.task}: {exc}") from None
        alphabet = self.task.alphabet()
        if settings.model.path is None:
            try:
                check_template(cfg.template, alphabet)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.bases, self.models, self.references, self.scorers, sft, rm_cached = [], [], [], [], [], []
        for s in self.seeds:
            try:
                base, tok = load_lm(settings.model, alphabet=alphabet, seed=stream_seed(s, "init"), device=device)
            except ModelNotFound as exc:
                raise ConfigError(str(exc)) from None
            info = {"sft_loss": 0.0, "sft_cached": 0.0}
            if settings.model.path is None and cfg.sft.steps > 0:
                # the RLVR family's own key parts (bench.families.rlvr): its SFT cache file is π₀'s
                parts = {"model": settings.model, "task": cfg.task, "settings": cfg.settings}
                info = warm_start(base, tok, self.task, cfg.sft, s, parts, None)
            sft.append(info)
            if cfg.refiner_init == "base":
                refiner = copy.deepcopy(base)
            else:
                refiner, _ = load_lm(settings.model, alphabet=alphabet, seed=stream_seed(s, "refiner_init"),
                                     device=device)
            base.requires_grad_(False).eval()
            self.bases.append(base)
            self.models.append(trainable(refiner).train())
            if cfg.refiner_init == "base" and not hasattr(refiner, "disable_adapter"):
                self.references.append(Reference("frozen_copy", base))    # the initial refiner is π₀
            else:
                self.references.append(make_reference(refiner))
            if cfg.reward_model == "fitted":
                from bench.models.lm import causal_lm

                lm = causal_lm(base)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(stream_seed(s, "rm_init"))
                    scorer = AnswerScorer(copy.deepcopy(lm.get_decoder()), lm.config.hidden_size).to(device)
                trainable(scorer)
                key = {"model": settings.model, "task": cfg.task, "settings": cfg.settings, "sft": cfg.sft,
                       "seed": int(s), "rm": {k: getattr(cfg, k) for k in (
                           "annotations", "list_size", "annotator_beta", "rm_steps", "rm_lr", "rm_batch", "rm_l2",
                           "max_new_tokens", "base_temperature")}}
                got = load_or_train("refine_llm_rm", key, scorer,
                                    lambda m, s=s, base=base: fit_scorer(m, cfg, self.task, base, tok, s, device))
                rm_cached.append(got["cached"])
                self.scorers.append(scorer.requires_grad_(False).eval())
        self.tokenizer = tok
        self.pad = tok.pad_token_id
        self.reference = refine_reference_kind(algo.loss, params)
        self.values: list[nn.Module] = []
        if needs_value(algo.loss, params):
            for s in self.seeds:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(stream_seed(s, "value_init"))
                    v = PromptValue(len(tok)).to(device)
                with torch.no_grad():
                    v.mlp[-1].weight.zero_()
                    v.mlp[-1].bias.zero_()
                self.values.append(v)
        self.prompt_seeds = [stream_seed(s, "prompts") for s in self.seeds]
        self.base_gens = [torch.Generator(device=device).manual_seed(stream_seed(s, "base_sample")) for s in self.seeds]
        self.sample_gens = [torch.Generator(device=device).manual_seed(stream_seed(s, "sample")) for s in self.seeds]
        S = len(self.seeds)
        self.rm_cached = torch.tensor(rm_cached or [0.0] * S)
        self.rm_accuracy = self._heldout_accuracy()
        # held-out evaluation states (fixed per seed)
        self.eval_problems = self.task.prompts("eval", cfg.eval_prompts, seed=0)
        self.eval_a1 = [self.sample_base(i, self.eval_problems, stream_seed(s, "eval_base") % SEED_MOD)
                        for i, s in enumerate(self.seeds)]
        self.eval_gold_a1 = torch.stack([gold_rewards(self.task, self.eval_problems, a)[:, 0] for a in self.eval_a1])
        self.eval_proxy_a1 = torch.stack([self.proxy(i, self.eval_problems, a) for i, a in enumerate(self.eval_a1)])
        self.info = {M.diag("sft_loss"): torch.tensor([x["sft_loss"] for x in sft]),
                     M.diag("base_cached"): torch.tensor([x["sft_cached"] for x in sft]),
                     M.diag("base_accuracy"): self.eval_gold_a1.mean(-1), M.diag("rm_cached"): self.rm_cached}
        self._constants = {M.diag("rollouts_per_step"): torch.full((S,), float(cfg.batch_size * cfg.k))}

    # -- parameters and state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"models": [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.models],
                "values": [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.values],
                "gens": [[g.get_state() for g in gens] for gens in (self.base_gens, self.sample_gens)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for m, sd in zip(self.models, state["models"], strict=True):
            m.load_state_dict(sd)
        for v, sd in zip(self.values, state["values"], strict=True):
            v.load_state_dict(sd)
        for gens, saved in zip((self.base_gens, self.sample_gens), state["gens"], strict=True):
            for g, st in zip(gens, saved, strict=True):
                g.set_state(st)

    # -- the models ----------------------------------------------------------------------------------------
    def sample_base(self, i: int, problems: list, seed_or_gen: Any) -> list[str]:
        """A₁ ~ π₀ of seed i (temperature ``env.base_temperature``), one text per problem."""
        from bench.models.lm_sampling import sample_completions

        gen = seed_or_gen if isinstance(seed_or_gen, torch.Generator) else None
        return sample_completions(self.bases[i], self.tokenizer, [p.prompt for p in problems], 1,
                                  self.cfg.max_new_tokens, temperature=self.cfg.base_temperature,
                                  seed=None if gen is not None else seed_or_gen, generator=gen).texts

    @torch.no_grad()
    def proxy(self, i: int, problems: list, texts: list[str], k: int = 1) -> Tensor:
        """R_φ(S, A) of seed i (R* when ``reward_model=gold``): n problems, n·k texts → [n] (k = 1) or [n, k]."""
        if not self.scorers:
            out = gold_rewards(self.task, problems, texts, k)
        else:
            full = [problems[j // k].prompt + t for j, t in enumerate(texts)]
            ids, mask = encode_texts(self.tokenizer, full, self.device)
            out = self.scorers[i](ids, mask).float().cpu().view(len(problems), k)
        return out[:, 0] if k == 1 else out

    def proxy_rewrites(self, i: int, problems: list, a1: list[str], proxy_a1: Tensor, a2: list[str], k: int) -> Tensor:
        """R_φ(S, A₂) [n, k], equal to ``proxy_a1`` [n] exactly where A₂'s text is A₁'s (a copy has Δ = 0)."""
        same = torch.tensor([t == a1[j // k] for j, t in enumerate(a2)]).view(len(problems), k)
        return torch.where(same, proxy_a1[:, None], self.proxy(i, problems, a2, k))

    def _heldout_accuracy(self) -> Tensor:
        """R_φ's pairwise accuracy [S] on ``env.rm_heldout`` pairs of π₀ answers to held-out (eval-split) prompts."""
        from bench.models.lm_sampling import sample_completions

        out = []
        for i, s in enumerate(self.seeds):
            problems = self.task.prompts("eval", self.cfg.rm_heldout, seed=stream_seed(s, "rm_heldout") % SEED_MOD)
            texts = sample_completions(self.bases[i], self.tokenizer, [p.prompt for p in problems], 2,
                                       self.cfg.max_new_tokens, temperature=self.cfg.base_temperature,
                                       seed=stream_seed(s, "rm_heldout_samples") % SEED_MOD).texts
            gold, proxy = gold_rewards(self.task, problems, texts, 2), self.proxy(i, problems, texts, 2)
            out.append(pairwise_accuracy(proxy[:, 0], proxy[:, 1], gold[:, 0], gold[:, 1]))
        return torch.stack(out).float()

    def revisions(self, problems: list, a1: list[str]) -> list[str]:
        return [revision_prompt(self.cfg.template, p.prompt, a) for p, a in zip(problems, a1)]

    def rewrite(self, i: int, prompts: list[str], k: int, seed_or_gen: Any, keep: Optional[list[str]] = None
                ) -> SeedRewrites:
        """k rewrites per revision prompt from seed i's refiner (temperature 1), plus ``keep`` (one text per
        prompt, + EOS) as candidate k + 1 when given (its logp_old recomputed by the refiner)."""
        from bench.families.rlvr_sft import Demo, sft_batch
        from bench.models.lm import completion_logprobs
        from bench.models.lm_sampling import sample_completions

        gen = seed_or_gen if isinstance(seed_or_gen, torch.Generator) else None
        out = sample_completions(self.models[i], self.tokenizer, prompts, k, self.cfg.max_new_tokens,
                                 seed=None if gen is not None else seed_or_gen, generator=gen)
        rows = SeedRewrites(out.input_ids, out.attention_mask, out.prompt_ids, out.completion_mask, out.logp_old,
                            list(out.texts))
        if keep is None:
            return rows
        ids, am, cm = sft_batch(self.tokenizer, [Demo(p, t, "gold") for p, t in zip(prompts, keep)], self.device)
        P = out.prompt_ids.shape[1]
        with torch.no_grad():
            lp = completion_logprobs(self.models[i], ids, am, cm)
        n, T = len(prompts), max(out.completion_mask.shape[1], cm.shape[1])

        def join(sampled: Tensor, kept: Tensor, value: float) -> Tensor:
            a = _pad_to(sampled, T, value).view(n, k, T)
            return torch.cat([a, _pad_to(kept, T, value)[:, None]], 1).reshape(n * (k + 1), T)

        comp = join(out.completion_ids, ids[:, P:], self.pad)
        cmask = join(out.completion_mask, cm.float(), 0.0)
        prompt_ids = torch.cat([out.prompt_ids.view(n, k, P), ids[:, None, :P]], 1).reshape(n * (k + 1), P)
        prompt_mask = torch.cat([out.prompt_mask.view(n, k, P), am[:, None, :P]], 1).reshape(n * (k + 1), P)
        texts = [t for j in range(n) for t in (*out.texts[j * k:(j + 1) * k], keep[j])]
        return SeedRewrites(torch.cat([prompt_ids, comp], 1), torch.cat([prompt_mask, cmask.long()], 1), prompt_ids,
                            cmask, join(out.logp_old, lp, 0.0), texts)

    # -- Task protocol ------------------------------------------------------------------------------------
    def rollout(self, step: int) -> tuple[LLMRefineRollout, dict[str, Tensor]]:
        from bench.models.lm import reference_logprobs

        logged = self.evaluate(step) if step % self.cfg.eval_every == 0 and step != self.steps - 1 else {}
        cfg = self.cfg
        group = self.kind == "group"
        n, k = (cfg.batch_size, cfg.k) if group else (cfg.batch_size * cfg.k, 1)
        seeds_rows, proxy_a1s, proxy_a2s = [], [], []
        for i in range(len(self.seeds)):
            problems = self.task.prompts("train", n, seed=(self.prompt_seeds[i] + step) % SEED_MOD)
            a1 = self.sample_base(i, problems, self.base_gens[i])
            keep = a1 if group and cfg.keep_candidate else None
            rows = self.rewrite(i, self.revisions(problems, a1), k, self.sample_gens[i], keep)
            p1 = self.proxy(i, problems, a1)
            sampled = [t for j in range(n) for t in rows.texts[j * (k + (keep is not None)):][:k]]
            p2 = self.proxy_rewrites(i, problems, a1, p1, sampled, k)
            if keep is not None:
                p2 = torch.cat([p2, p1[:, None]], 1)
            seeds_rows.append(rows)
            proxy_a1s.append(p1)
            proxy_a2s.append(p2)
        proxy_a2 = torch.stack(proxy_a2s).to(self.device)
        logged[M.REWARD] = proxy_a2[..., :k].flatten(1).mean(-1).cpu()
        T = max(r.completion_mask.shape[1] for r in seeds_rows)
        P = [r.prompt_ids.shape[1] for r in seeds_rows]
        ids = [torch.cat([r.prompt_ids, _pad_to(r.input_ids[:, p:], T, self.pad)], 1) for r, p in zip(seeds_rows, P)]
        amask = [torch.cat([r.attention_mask[:, :p], _pad_to(r.attention_mask[:, p:], T)], 1)
                 for r, p in zip(seeds_rows, P)]
        cmask = torch.stack([_pad_to(r.completion_mask, T) for r in seeds_rows])
        ro = LLMRefineRollout(ids, amask, [r.prompt_ids for r in seeds_rows], cmask,
                              torch.stack([_pad_to(r.logp_old, T) for r in seeds_rows]),
                              torch.stack(proxy_a1s).to(self.device), proxy_a2)
        if self.reference == "snapshot":
            ro.logp_ref = ro.logp_old
        elif self.reference == "reference":
            ro.logp_ref = torch.stack([reference_logprobs(m, r, x, a, cmask[i]) for i, (m, r, x, a) in
                                       enumerate(zip(self.models, self.references, ids, amask))])
        logged.update(self._constants)
        return ro, logged

    def batch_fields(self, ro: LLMRefineRollout) -> dict[str, Tensor]:
        from bench.models.lm import completion_logprobs

        logp = torch.stack([completion_logprobs(m, x, a, ro.completion_mask[i])
                            for i, (m, x, a) in enumerate(zip(self.models, ro.input_ids, ro.attention_mask))])
        return _BUILDERS[(self.kind, "sampled" if self.kind == "group" else "single")](self, ro, logp)

    def grad_metrics(self, ro: Any) -> dict[str, Tensor]:
        return {}

    def after_step(self, step: int) -> dict[str, Tensor]:
        return self.evaluate(step + 1) if step == self.steps - 1 else {}

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, Tensor]:
        """Monte-Carlo metrics of the current refiners on the held-out states (module doc), each [S]."""
        from bench.models.lm import reference_logprobs

        cfg, K = self.cfg, self.cfg.gate_k
        n = len(self.eval_problems)
        gold_a2, proxy_a2, same, edit, kl = [], [], [], [], []
        for i, s in enumerate(self.seeds):
            a1 = self.eval_a1[i]
            rows = self.rewrite(i, self.revisions(self.eval_problems, a1), K,
                                stream_seed(s, f"eval_sample_{step}") % SEED_MOD)
            a1_rep = [a1[j // K] for j in range(n * K)]
            gold_a2.append(gold_rewards(self.task, self.eval_problems, rows.texts, K))
            proxy_a2.append(self.proxy_rewrites(i, self.eval_problems, a1, self.eval_proxy_a1[i], rows.texts, K))
            same.append(torch.tensor([a == b for a, b in zip(rows.texts, a1_rep)]).view(n, K))
            edit.append(edit_fraction(rows.texts, a1_rep).view(n, K))
            ref = reference_logprobs(self.models[i], self.references[i], rows.input_ids, rows.attention_mask,
                                     rows.completion_mask)
            diff = torch.where(rows.completion_mask > 0, rows.logp_old - ref, torch.zeros_like(ref)).sum(-1)
            kl.append(diff.float().cpu().view(n, K).mean(-1))
        out = gate_metrics(cfg, self.eval_gold_a1, self.eval_proxy_a1, torch.stack(gold_a2), torch.stack(proxy_a2),
                           torch.stack(same), torch.stack(edit), torch.stack(kl))
        logged = {EVAL_METRICS[k]: v for k, v in out.items()}
        logged.update(reward_model_metrics(cfg, out["lift"], self.rm_accuracy))
        logged.update(self.info)
        return logged


# -- batch builders: (task, rollout, logp [S, n·K', T] with grad) -> fields ----------------------------------
def _sampled_group(task: RefineLLMTask, ro: LLMRefineRollout, logp: Tensor) -> dict[str, Tensor]:
    S, n, K = ro.proxy_a2.shape
    view = lambda t: t.view(S, n, K, -1)  # noqa: E731
    fields = {"logp": view(logp), "logp_old": view(ro.logp_old), "mask": view(ro.completion_mask),
              "scores": ro.proxy_a2 - ro.proxy_a1[..., None]}
    if ro.logp_ref is not None:
        fields["logp_ref"] = view(ro.logp_ref)
    return fields


def _single(task: RefineLLMTask, ro: LLMRefineRollout, logp: Tensor) -> dict[str, Tensor]:
    reward, base = ro.proxy_a2[..., 0], ro.proxy_a1                                   # [S, n]
    mask = ro.completion_mask
    scores = single_scores(task.loss, reward, reward - base)
    fields = {"logp": logp, "logp_old": ro.logp_old, "mask": mask,
              "rewards": reward[..., None] * mask, "baseline": base[..., None] * mask,
              "scores": reward if scores is None else scores}
    if task.values:
        v = torch.stack([net(p, (p != task.pad).long()) for net, p in zip(task.values, ro.prompt_ids)])
        fields["values"] = v + base if task.cfg.value_init == "reward_model" else v
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref
    return fields


_BUILDERS: dict[tuple[str, str], Callable[..., dict[str, Tensor]]] = {
    ("group", "sampled"): _sampled_group,
    ("trajectory", "single"): _single,
}


def build_refine_llm(settings: Any, seeds: list[int], batch_kind: str) -> RefineLLMTask:
    """``FAMILIES["refine_llm"]``: the LLM-scale refinement task (model must be ``lm``)."""
    if settings.model.name != "lm":
        raise ConfigError(f"env={settings.env.name} needs model=lm, got model={settings.model.name}")
    if settings.model.path is not None:   # the model before the task: the first missing path named is its
        import os

        from bench.models.lm import _missing
        if not os.path.isfile(os.path.join(settings.model.path, "config.json")):
            raise ConfigError(str(_missing(settings.model.path, "no checkpoint (config.json) there")))
    return RefineLLMTask(settings, seeds, batch_kind)
