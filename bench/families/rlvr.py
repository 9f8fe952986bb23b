"""LLM RLVR: a Hugging Face causal LM trained with verifiable rewards (TPO paper §3.8, App. G).

One step, per seed s (each seed its own model, its own prompt and sampling streams):

    G prompts (train split) → K completions each, sampled with a KV cache (:mod:`bench.models.lm_sampling`),
    logp_old frozen at sampling → each completion scored by the task's verifier (:mod:`envs.rlvr`)
    → the registry loss on a :class:`~algorithms.batch.GroupBatch` [S, G, K, T] (group methods: TPO, GRPO and
    variants, RLOO, group PG) or a :class:`~algorithms.batch.TrajectoryBatch` [S, G·K, T] (one completion per
    prompt: PG, PPO, DG, DRO-V, KTO) with per-token tensors and the completion mask.

The losses are the registry's, unchanged; the on-policy loop (:mod:`bench.loop`) is the one every family uses.
Seeds are not stacked into one tensor here (a Hugging Face model is not a functional stack): each seed keeps its
model and the per-token log-probs of all seeds are stacked before the loss, which is evaluated per seed.

Warm start: a random-init model (``model.path`` null) is first fine-tuned on generated solutions
(:func:`bench.families.rlvr_sft.warm_start`), cached by a hash of its inputs, so every algorithm of a sweep
starts RL from the same weights for a given seed; a checkpoint skips it. The reference policy of a KL term is
that start (the checkpoint with LoRA adapters disabled, or one frozen copy).

Derived numbers per step (:func:`derived`): prompts, completions and the completion-token budget.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn

from algorithms.dro import normalise_scores
from bench import metrics as M
from bench.families.sequence import needs_value, reference_kind
from bench.seeding import stream_seed

ACCURACY = "eval/accuracy"                 # held-out mean score of the greedy completion
ACCURACY_SAMPLED = "eval/accuracy_sampled"  # held-out accuracy of one sampled completion


def n_prompts(env: Any, candidates: str) -> int:
    """Prompts per step: G (group methods) or G·K (one completion per prompt: the same completions per step)."""
    return env.prompts_per_step if candidates == "sampled" else env.prompts_per_step * env.k


def completions_per_prompt(env: Any, candidates: str) -> int:
    """K for group methods, 1 for single-completion methods."""
    return env.k if candidates == "sampled" else 1


def derived(env: Any, candidates: str) -> dict[str, float]:
    """Numbers every step is sized by: prompts, completions and the most completion tokens per step."""
    p, k = n_prompts(env, candidates), completions_per_prompt(env, candidates)
    return {"prompts_per_step": p, "completions_per_step": p * k, "max_tokens_per_step": p * k * env.max_new_tokens}


@dataclass
class RLVRRollout:
    """Frozen data of one step. Per seed (lists of length S): input_ids [N, P+T] (left-padded prompt then the
    completion, T = the step's longest completion over seeds), attention_mask [N, P+T], prompt ids for the value
    model [N, P]. Stacked: completion_mask, logp_old (and logp_ref) [S, N, T]; scores [S, N]; N = prompts·k."""

    input_ids: list[Tensor]
    attention_mask: list[Tensor]
    prompt_ids: list[Tensor]
    completion_mask: Tensor
    logp_old: Tensor
    scores: Tensor
    k: int
    logp_ref: Optional[Tensor] = None

    def rows(self, start: int, stop: int) -> "RLVRRollout":
        """Rows [start, stop) of every seed (a micro-batch of whole groups when start, stop are multiples of k)."""
        cut = lambda xs: [x[start:stop] for x in xs]   # noqa: E731
        return RLVRRollout(cut(self.input_ids), cut(self.attention_mask), cut(self.prompt_ids),
                           self.completion_mask[:, start:stop], self.logp_old[:, start:stop],
                           self.scores[:, start:stop], self.k,
                           None if self.logp_ref is None else self.logp_ref[:, start:stop])


class PromptValue(nn.Module):
    """V(x): a value model separate from the policy (the DRO paper found sharing it hurts): the mean embedding of
    the prompt's tokens → MLP → scalar. ids [N, P] long, mask [N, P] → [N]."""

    def __init__(self, vocab: int, dim: int = 32, hidden: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        m = mask.to(self.embed.weight.dtype)[..., None]
        pooled = (self.embed(ids) * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.mlp(pooled).squeeze(-1)


def _pad_to(x: Tensor, width: int, value: float = 0.0) -> Tensor:
    """Right-pad the last dim of x to ``width``."""
    return torch.nn.functional.pad(x, (0, width - x.shape[-1]), value=value)


class PerSeedModels:
    """Parameters of a task holding one model per seed (``self.models``, optional ``self.values``): no seed axis on
    the tensors, so the task also gives the loop its per-seed gradient norm."""

    def _seed_params(self, i: int) -> list[Tensor]:
        ps = [p for p in self.models[i].parameters() if p.requires_grad]
        return ps + (list(self.values[i].parameters()) if self.values else [])

    def parameters(self) -> list[Tensor]:
        """Every trainable tensor of every seed (seed i's tensors belong to its models only)."""
        return [p for i in range(len(self.seeds)) for p in self._seed_params(i)]

    def grad_norm(self) -> Tensor:
        """‖∇θ‖₂ per seed [S] (the loop's per-seed norm for tasks whose tensors carry no seed axis)."""
        return torch.stack([sum((p.grad.detach().float().pow(2).sum() for p in self._seed_params(i)
                                 if p.grad is not None), torch.zeros(())).sqrt() for i in range(len(self.seeds))])


class RLVRTask(PerSeedModels):
    """The on-policy task of the LLM RLVR family (module docstring)."""

    def __init__(self, settings: Any, seeds: list[int], batch_kind: str) -> None:
        from bench.families.rlvr_sft import warm_start
        from bench.models.lm import load_lm, make_reference
        from envs.rlvr.config import build_task

        env, cand = settings.env, settings.algorithm.candidates
        if (batch_kind, cand) not in (("group", "sampled"), ("trajectory", "single")):
            raise ValueError(f"the rlvr family runs group methods (candidates=sampled) and single-completion methods "
                             f"(candidates=single); algorithm {settings.algorithm.name} has candidates={cand!r}")
        self.env, self.candidates, self.seeds = env, cand, list(seeds)
        self.steps, self.device = settings.run.steps, settings.run.device
        from bench.models.lm import ModelNotFound
        from bench.schema import ConfigError
        from envs.rlvr.errors import RLVRError

        if settings.model.path is not None:   # the model before the data: the first missing path named is its
            from bench.models.lm import _missing
            if not os.path.isfile(os.path.join(settings.model.path, "config.json")):
                raise ConfigError(str(_missing(settings.model.path, "no checkpoint (config.json) there")))
        try:
            self.task = build_task(env)
        except RLVRError as exc:
            raise ConfigError(f"env.task={env.task}: {exc}") from None
        self.k, self.n_prompts = completions_per_prompt(env, cand), n_prompts(env, cand)
        self.derived = derived(env, cand)
        params, loss = settings.loss_params, settings.algorithm.loss
        self.reference_kind = reference_kind(loss, params)
        self.normalise_scores = loss in ("dro_v", "kto")
        self.score_params = params if self.normalise_scores else None
        alphabet = self.task.alphabet()
        self.models, self.references, self.sft = [], [], []
        for s in self.seeds:
            try:
                model, tok = load_lm(settings.model, alphabet=alphabet, seed=stream_seed(s, "init"),
                                     device=self.device)
            except ModelNotFound as exc:
                raise ConfigError(str(exc)) from None
            if settings.model.path is None and env.sft.steps > 0:
                # warm_start adds the SFT settings, the seed and its format version to the cache key itself
                parts = {"model": settings.model, "task": env.task, "settings": env.settings}
                self.sft.append(warm_start(model, tok, self.task, env.sft, s, parts, None))
            model.zero_grad(set_to_none=True)
            model.train()
            needed = self.reference_kind == "initial" or env.log_kl
            self.references.append(make_reference(model, needed=needed))
            self.models.append(model)
        self.tokenizer = tok
        self.values: list[nn.Module] = []
        if needs_value(loss, params):
            for s in self.seeds:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(stream_seed(s, "value_init"))
                    self.values.append(PromptValue(len(tok)).to(self.device))
        self.prompt_seeds = [stream_seed(s, "prompts") for s in self.seeds]
        self.sample_gens = [torch.Generator(device=self.device).manual_seed(stream_seed(s, "sample"))
                            for s in self.seeds]
        self.eval_problems = self.task.prompts("eval", env.eval_size, seed=0)
        S = len(self.seeds)
        self._constants = {M.diag(k): torch.full((S,), float(v)) for k, v in self.derived.items()}
        if self.sft:
            self._constants[M.diag("sft_loss")] = torch.tensor([m["sft_loss"] for m in self.sft])
        self._t_rollout_end = None
        self._tokens = 0

    # -- rollout ----------------------------------------------------------------------------------
    def rollout(self, step: int) -> tuple[RLVRRollout, dict[str, Tensor]]:
        from bench.models.lm import reference_logprobs
        from bench.models.lm_sampling import sample_completions

        evaluation = self.evaluate() if step % self.env.eval_every == 0 and step != self.steps - 1 else {}
        t0 = time.perf_counter()
        outs, scores, n_tokens = [], [], 0
        for i, model in enumerate(self.models):
            problems = self.task.prompts("train", self.n_prompts, seed=(self.prompt_seeds[i] + step) % (2 ** 62))
            out = sample_completions(model, self.tokenizer, [p.prompt for p in problems], self.k,
                                     self.env.max_new_tokens, temperature=self.env.temperature, top_p=self.env.top_p,
                                     generator=self.sample_gens[i])
            scores.append(torch.tensor([self.task.score(problems[n // self.k], text)
                                        for n, text in enumerate(out.texts)], dtype=torch.float32))
            outs.append(out)
            n_tokens += out.n_tokens
        T = max(o.completion_ids.shape[1] for o in outs)
        pad = self.tokenizer.pad_token_id
        ids = [torch.cat([o.prompt_ids, _pad_to(o.completion_ids, T, pad)], 1) for o in outs]
        cmask = torch.stack([_pad_to(o.completion_mask, T) for o in outs])
        amask = [torch.cat([o.prompt_mask, _pad_to(o.completion_mask, T).long()], 1) for o in outs]
        ro = RLVRRollout(ids, amask, [o.prompt_ids for o in outs], cmask,
                         torch.stack([_pad_to(o.logp_old, T) for o in outs]), torch.stack(scores).to(cmask.device),
                         self.k)
        t_sample = time.perf_counter() - t0
        logged = {**self._rollout_metrics(ro, t_sample, n_tokens), **evaluation}
        if self.references[0] is not None:
            ref = torch.stack([reference_logprobs(m, r, x, a, ro.completion_mask[i])
                               for i, (m, r, x, a) in enumerate(zip(self.models, self.references, ro.input_ids,
                                                                    ro.attention_mask))])
            x = ro.logp_old - ref   # k3 = exp(−x) + x − 1 ≥ 0 per sampled token (Schulman's estimator of KL(π‖π_ref))
            logged[M.diag("kl_ref")] = _per_seed_token_mean(torch.exp(-x) + x - 1.0, ro.completion_mask)
            if self.reference_kind == "initial":
                ro.logp_ref = ref
        if self.reference_kind == "snapshot":
            ro.logp_ref = ro.logp_old
        self._tokens, self._t_rollout_end = n_tokens, time.perf_counter()
        return ro, logged

    def _rollout_metrics(self, ro: RLVRRollout, t_sample: float, n_tokens: int) -> dict[str, Tensor]:
        S = len(self.seeds)
        lengths = ro.completion_mask.sum(-1)                               # [S, N]
        groups = ro.scores.reshape(S, -1, self.k)
        flat = (groups.amax(-1) - groups.amin(-1)) <= 1e-12
        return {M.REWARD: ro.scores.mean(-1), M.diag("completion_length"): lengths.mean(-1),
                M.diag("zero_variance_frac"): flat.float().mean(-1),
                M.diag("all_fail_frac"): (groups <= 0).all(-1).float().mean(-1),
                M.diag("entropy"): -_per_seed_token_mean(ro.logp_old, ro.completion_mask),
                M.diag("rollout_tokens_per_s"): torch.full((S,), n_tokens / max(t_sample, 1e-9)),
                **self._constants}

    # -- training forward -------------------------------------------------------------------------
    def micro_batches(self, ro: RLVRRollout) -> list[tuple[RLVRRollout, float]]:
        """Whole groups per forward/backward (``env.micro_batch_groups``), each with its share of the groups as
        weight. Σ_m w_m·∇loss_m is the full batch's gradient when each loss averages over the batch's groups
        (completions, for single-completion methods) and every group counts: a zero-variance group, which the
        group losses leave out of their normaliser, makes the micro-batch normalisers differ from the full
        batch's (the usual gradient-accumulation approximation, e.g. TRL's)."""
        n_rows = ro.scores.shape[1]
        per = self.env.micro_batch_groups * self.k
        if per <= 0 or per >= n_rows:
            return [(ro, 1.0)]
        return [(ro.rows(a, min(a + per, n_rows)), (min(a + per, n_rows) - a) / n_rows)
                for a in range(0, n_rows, per)]

    def batch_fields(self, ro: RLVRRollout) -> dict[str, Tensor]:
        from bench.models.lm import completion_logprobs

        logp = torch.stack([completion_logprobs(m, x, a, ro.completion_mask[i])
                            for i, (m, x, a) in enumerate(zip(self.models, ro.input_ids, ro.attention_mask))])
        S, N, T = logp.shape
        if self.candidates == "sampled":
            G = N // self.k
            f = {"logp": logp.view(S, G, self.k, T), "logp_old": ro.logp_old.view(S, G, self.k, T),
                 "scores": ro.scores.view(S, G, self.k), "mask": ro.completion_mask.view(S, G, self.k, T)}
            if ro.logp_ref is not None:
                f["logp_ref"] = ro.logp_ref.view(S, G, self.k, T)
            return f
        scores = normalise_scores(ro.scores, self.score_params) if self.normalise_scores else ro.scores
        f = {"logp": logp, "logp_old": ro.logp_old, "mask": ro.completion_mask, "scores": scores,
             "rewards": ro.scores[..., None].expand(S, N, T) * ro.completion_mask}
        if self.values:
            f["values"] = torch.stack([v(p, (p != self.tokenizer.pad_token_id).long())
                                       for v, p in zip(self.values, ro.prompt_ids)])
        if ro.logp_ref is not None:
            f["logp_ref"] = ro.logp_ref
        return f

    def grad_metrics(self, ro: RLVRRollout) -> dict[str, Tensor]:
        return {}

    # -- evaluation -------------------------------------------------------------------------------
    def after_step(self, step: int) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if self._t_rollout_end is not None:
            dt = time.perf_counter() - self._t_rollout_end
            out[M.diag("train_tokens_per_s")] = torch.full((len(self.seeds),), self._tokens / max(dt, 1e-9))
        if step == self.steps - 1:   # the final policy (the other evaluations run before a step's rollout)
            out.update(self.evaluate())
        return out

    def evaluate(self) -> dict[str, Tensor]:
        """Held-out accuracy per seed [S] of the current policy — logged at step s it is the policy after s updates
        (the evaluation runs before step s's rollout; the last step's after its update): the mean task score of the greedy completion (``eval/accuracy``) and,
        with ``env.eval_sampled``, of one completion sampled at the training temperature from the seed's own
        evaluation stream (``eval/accuracy_sampled``); the same ``env.eval_size`` problems every time."""
        from bench.models.lm_sampling import sample_completions

        texts = [p.prompt for p in self.eval_problems]
        greedy, sampled = [], []
        for i, model in enumerate(self.models):
            out = sample_completions(model, self.tokenizer, texts, 1, self.env.max_new_tokens, temperature=0.0)
            greedy.append(_mean_score(self.task, self.eval_problems, out.texts))
            if self.env.eval_sampled:
                out = sample_completions(model, self.tokenizer, texts, 1, self.env.max_new_tokens,
                                         temperature=self.env.temperature, top_p=self.env.top_p,
                                         seed=stream_seed(self.seeds[i], "eval") % (2 ** 62))
                sampled.append(_mean_score(self.task, self.eval_problems, out.texts))
            model.train()
        res = {ACCURACY: torch.tensor(greedy), M.EVAL_ERROR: 1.0 - torch.tensor(greedy)}
        if sampled:
            res[ACCURACY_SAMPLED] = torch.tensor(sampled)
        return res

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"models": [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.models],
                "values": [v.state_dict() for v in self.values],
                "sample_gens": [g.get_state() for g in self.sample_gens]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for m, sd in zip(self.models, state["models"], strict=True):
            m.load_state_dict(sd)
        for v, sd in zip(self.values, state["values"], strict=True):
            v.load_state_dict(sd)
        for g, st in zip(self.sample_gens, state["sample_gens"], strict=True):
            g.set_state(st)


def _mean_score(task: Any, problems: list, texts: list[str]) -> float:
    return sum(task.score(p, t) for p, t in zip(problems, texts)) / max(len(problems), 1)


def _per_seed_token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Σ mask·x / Σ mask per seed: x, mask [S, N, T] → [S]."""
    return torch.where(mask > 0, x, torch.zeros_like(x)).flatten(1).sum(-1) / mask.flatten(1).sum(-1).clamp_min(1.0)


def build_rlvr(settings: Any, seeds: list[int], batch_kind: str) -> RLVRTask:
    """The RLVR task (model must be ``lm``)."""
    if settings.model.name != "lm":
        raise ValueError(f"env=rlvr needs model=lm, got model={settings.model.name}")
    return RLVRTask(settings, seeds, batch_kind)
