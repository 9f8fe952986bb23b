"""TRL engine: the suite's TPO and DRO-V losses inside TRL's ``GRPOTrainer`` (``pip install -e .[trl]``).

``bench experiment=llm_rlvr engine=trl algorithm=tpo`` trains the suite's RLVR task, model (with its SFT warm start)
and tokenizer with TRL's trainer — HF ``generate``, accelerate, DDP/FSDP/DeepSpeed, vLLM — and writes the same run
records as the native loop (held-out evaluation by the suite's own evaluator, same metric names), so
``bench-report`` builds the same tables. Multi-GPU: ``accelerate launch --num_processes N -m bench.cli ...``
(docs/engines.md).

What TRL does not give a loss, and how it is carried (TRL 1.x, ``GRPOTrainer``):

* Rewards and groups. ``_compute_loss`` sees per-token log-probs, the completion mask and TRL's advantages only.
  :class:`SuiteLossTrainer` keeps the per-completion sequence score (the weighted sum of the reward functions,
  gathered over processes) and a global group id (row index // K in the generation batch, where TRL's sampler puts
  each prompt's K completions next to each other) in the batch, as ``suite_scores`` / ``suite_group_ids``.
* Shuffling and slicing. TRL shuffles the generation batch by rows and cuts it into ``steps_per_generation`` slices.
  Here the batch is shuffled by whole groups and cut between groups (:func:`split_whole_groups`), so every slice
  holds complete groups; configurations that cannot (a process's share, or a slice, not a whole number of groups)
  are refused at start-up with one line (:func:`check_layout`).
* The loss. :func:`loss_from_trl_inputs` regroups the rows by group id and calls the registry losses unchanged
  (:mod:`bench.engines.losses`): TPO's group softmax over sequence log-probs is the suite's.
* Epochs. ``algorithm.epochs`` = TRL's ``num_iterations``: ℓ_old is frozen at generation (TRL recomputes it when
  it reuses a batch); one suite step = ``epochs`` TRL optimizer steps on one generation batch.
* DRO-V is single-completion (one completion per prompt, G·K prompts per step): TRL's config insists on ≥ 2
  generations, so :class:`SingleCompletionConfig` satisfies that check and then samples one; the scores are
  normalised over the whole step (all processes) before slicing, and the separate value model V(x) (the suite's
  :class:`~bench.families.rlvr.PromptValue`) is trained by the same optimizer.
* Reference policy (TPO with ``kl_beta > 0``, DRO-V with ``reference=initial``): the suite's (LoRA adapters off, or
  a frozen copy of the start), evaluated at generation; TRL's own ``beta`` stays 0.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from bench.engines.losses import GroupLayoutError, dro_v_loss_rows, tpo_loss_rows

LOSSES = ("tpo", "dro_v")
"""Registry losses the TRL engine runs."""


def import_trl() -> Any:
    """``trl``, or ImportError with one line naming the extra."""
    try:
        import trl
    except ImportError:
        raise ImportError("TRL is not installed: pip install -e .[trl]") from None
    return trl


# -- pure pieces (no TRL needed) ----------------------------------------------------------------------------------------
def completion_text(completion: Any) -> str:
    """A TRL completion as text: the string itself, or the content of a conversational completion's messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


class TaskReward:
    """A suite RLVR task as a TRL reward function: ``reward(prompts, completions, problem=[i, ...]) -> [score]``.

    ``problems``: the task's problems; the dataset column ``problem`` holds each row's index into it. The score is
    ``task.score(problem, completion text)`` ∈ [0, 1] — the native loop's reward, the same verifier.
    """

    def __init__(self, task: Any, problems: list) -> None:
        self.task, self.problems = task, problems
        self.__name__ = f"{getattr(task, 'name', 'task')}_score"

    def __call__(self, prompts: list, completions: list, problem: list, **_: Any) -> list[float]:
        return [float(self.task.score(self.problems[int(i)], completion_text(c))) for i, c in zip(problem, completions)]


def loss_from_trl_inputs(per_token_logps: Tensor, inputs: dict[str, Any], loss: str, k: int, params: Any,
                         values: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The suite's loss on one TRL slice (the dict ``_compute_loss`` receives, plus the suite's keys).

    per_token_logps [N, T] (with grad); inputs: ``completion_mask`` [N, T] (times ``tool_mask`` when present),
    ``old_per_token_logps`` [N, T] (absent: the current log-probs, detached — TRL's own convention when the batch is
    used once), ``suite_scores`` [N], ``suite_group_ids`` [N] (TPO), ``suite_ref_logps`` [N, T] (optional).
    ``loss``: ``"tpo"`` (K rows per group id) or ``"dro_v"`` (``values`` [N] = V(x), with grad; the reference is
    ``suite_ref_logps`` or, for ``reference=snapshot``, ℓ_old). Returns the registry loss and its diagnostics.
    """
    mask = inputs["completion_mask"]
    if inputs.get("tool_mask") is not None:
        mask = mask * inputs["tool_mask"]
    old = inputs.get("old_per_token_logps")
    old = per_token_logps.detach() if old is None else old
    ref = inputs.get("suite_ref_logps")
    if loss == "tpo":
        return tpo_loss_rows(per_token_logps, old, mask, inputs["suite_scores"], inputs["suite_group_ids"], k, params,
                             logp_ref=ref)
    if loss == "dro_v":
        if values is None:
            raise ValueError("values: DRO-V needs V(x) for every row, got None")
        return dro_v_loss_rows(per_token_logps, old if ref is None else ref, mask, inputs["suite_scores"], values,
                               params)
    raise ValueError(f"loss={loss!r}; valid: {', '.join(LOSSES)}")


def split_whole_groups(batch: dict[str, Any], group_ids: Tensor, n_slices: int,
                       generator: Optional[torch.Generator] = None) -> list[dict[str, Any]]:
    """Shuffle a generation batch by whole groups and cut it into ``n_slices`` slices of whole groups.

    batch: TRL's generation batch (tensors and lists with N rows; 0-dim tensors and other values are copied to
    every slice); group_ids [N]. The groups' order is a random permutation (``generator``); rows of a group stay
    together in their order. Raises :class:`GroupLayoutError` when the groups do not divide into ``n_slices``.
    """
    n = int(group_ids.numel())
    uniq, inverse = torch.unique(group_ids.cpu(), return_inverse=True)
    if len(uniq) % n_slices:
        raise GroupLayoutError(f"steps_per_generation={n_slices}: the {len(uniq)} groups of this process do not "
                               f"divide into {n_slices} slices of whole groups")
    perm = torch.randperm(len(uniq), generator=generator)
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(len(uniq))
    order = torch.sort(rank[inverse] * n + torch.arange(n), stable=True).indices   # groups in shuffled order
    per = n // n_slices
    out = []
    for s in range(n_slices):
        rows = order[s * per:(s + 1) * per]
        part = {}
        for key, v in batch.items():
            if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n:
                part[key] = v[rows.to(v.device)]
            elif isinstance(v, list) and len(v) == n:
                part[key] = [v[i] for i in rows.tolist()]
            else:
                part[key] = v
        out.append(part)
    return out


def check_layout(rows_per_process: int, steps_per_generation: int, k: int, loss: str) -> None:
    """Refuse (one line, ValueError) a TRL layout that would split a group: each process's share of the generation
    batch (``rows_per_process`` = per-device batch × steps_per_generation) must be whole groups of K, and the groups
    must divide into ``steps_per_generation`` slices. Single-completion losses (K = 1) always fit."""
    if loss != "tpo":
        return
    if k < 2:
        raise ValueError(f"env.k={k}: TPO needs K >= 2 completions per prompt")
    if rows_per_process % k:
        raise ValueError(f"per-process generation batch of {rows_per_process} completions is not a whole number of "
                         f"groups of K={k}: make env.prompts_per_step·K divisible by K·processes")
    if (rows_per_process // k) % steps_per_generation:
        raise ValueError(f"env.micro_batch_groups: the {rows_per_process // k} groups per process do not divide into "
                         f"{steps_per_generation} micro-batches of whole groups")


@dataclass(frozen=True)
class TRLLayout:
    """How one suite step maps onto TRL: ``rows`` completions per step (G·K), ``per_device`` completions per
    forward/backward, ``slices`` micro-batches per step (TRL's steps_per_generation = gradient accumulation),
    ``generations`` completions per prompt (K, or 1 for single-completion losses)."""

    rows: int
    per_device: int
    slices: int
    generations: int


def layout(env: Any, loss: str, processes: int = 1) -> TRLLayout:
    """The TRL batch layout of the suite's step (``env.prompts_per_step``, ``env.k``, ``env.micro_batch_groups``)
    over ``processes`` data-parallel processes. Raises ValueError (one line) for a layout that splits a group."""
    k = env.k
    rows = env.prompts_per_step * k
    if rows % processes:
        raise ValueError(f"env.prompts_per_step·env.k={rows} completions do not divide over {processes} processes")
    local = rows // processes
    micro = env.micro_batch_groups * k
    per_device = local if micro <= 0 or micro >= local else micro
    if local % per_device:
        raise ValueError(f"env.micro_batch_groups={env.micro_batch_groups}: {local // k} groups per process do not "
                         f"divide into micro-batches of {env.micro_batch_groups} groups")
    slices = local // per_device
    check_layout(local, slices, k, loss)
    return TRLLayout(rows, per_device, slices, k if loss == "tpo" else 1)


# -- the trainer (TRL needed) ---------------------------------------------------------------------------------------------
_CLASSES: dict[str, Any] = {}


def trainer_classes() -> tuple[type, type]:
    """(SuiteLossTrainer, SingleCompletionConfig), defined on first use (they subclass TRL's classes)."""
    if not _CLASSES:
        _define_classes(import_trl())
    return _CLASSES["trainer"], _CLASSES["config"]


def _define_classes(trl: Any) -> None:
    @dataclass
    class SingleCompletionConfig(trl.GRPOConfig):
        """``GRPOConfig`` that allows ``num_generations=1`` (single-completion losses: DRO-V). GRPO's own check
        asks for a group of ≥ 2; the check runs with 2 and the trainer then samples one completion per prompt."""

        def __post_init__(self) -> None:
            wanted = self.num_generations
            if wanted == 1:
                self.num_generations = 2
            super().__post_init__()
            self.num_generations = wanted

    class SuiteLossTrainer(trl.GRPOTrainer):
        """``GRPOTrainer`` whose policy loss is a suite registry loss (module docstring).

        Extra arguments: ``suite_loss`` (``"tpo"`` or ``"dro_v"``), ``suite_params`` (the loss' params dataclass),
        ``value_model`` (DRO-V's V(x), trained by the same optimizer), ``reference`` (the suite's
        :class:`~bench.models.lm.Reference` when the loss needs fixed reference log-probs, else None).
        After each generation ``self.suite_rollout`` holds the step's rollout metrics; after each loss
        ``self.suite_losses`` collects (loss, diagnostics) of the slices.
        """

        def __init__(self, *args: Any, suite_loss: str, suite_params: Any, value_model: Any = None,
                     reference: Any = None, **kwargs: Any) -> None:
            self.suite_loss, self.suite_params = suite_loss, suite_params
            self.value_model, self.suite_reference = value_model, reference
            self.suite_rollout: dict[str, float] = {}
            self.suite_losses: list[tuple[float, dict[str, float]]] = []
            self._suite_rewards: Optional[Tensor] = None
            super().__init__(*args, **kwargs)
            args_ = self.args
            check_layout(args_.per_device_train_batch_size * args_.steps_per_generation, args_.steps_per_generation,
                         self.num_generations, suite_loss)
            self._suite_gen = torch.Generator().manual_seed(int(args_.seed))

        # optimizer: the value model's parameters join the policy's (one Adam, as the native loop)
        def create_optimizer(self, *args: Any, **kwargs: Any):
            opt = super().create_optimizer(*args, **kwargs)
            if self.value_model is not None and not getattr(self, "_suite_value_added", False):
                group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
                opt.add_param_group({**group, "params": list(self.value_model.parameters()), "weight_decay": 0.0})
                self._suite_value_added = True
            return opt

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._suite_rewards = rewards                    # [global rows, reward functions], all processes
            return rewards

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            per_func = self._suite_rewards
            scores = (per_func * self.reward_weights.to(per_func.device)).nansum(dim=1)   # [global rows]
            n = out["completion_ids"].shape[0]
            rows = torch.arange(n) + self.accelerator.process_index * n
            k = self.num_generations
            local = scores[rows.to(scores.device)]
            if self.suite_loss == "dro_v":
                from algorithms.dro import normalise_scores
                local = normalise_scores(scores, self.suite_params)[rows.to(scores.device)]
            out["suite_scores"] = local.to(out["completion_mask"].device)
            out["suite_group_ids"] = (rows // k).to(out["completion_mask"].device)
            if self.suite_reference is not None:
                out["suite_ref_logps"] = self._reference_logps(out)
            groups = scores.view(-1, k) if k > 1 else scores.view(-1, 1)
            self.suite_rollout = {
                "reward": float(scores.mean()),
                "completion_length": float(self.accelerator.gather(out["completion_mask"].sum(-1).float()).mean()),
                "zero_variance_frac": float(((groups.amax(-1) - groups.amin(-1)) <= 1e-12).float().mean()),
                "all_fail_frac": float((groups <= 0).all(-1).float().mean()),
            }
            return out

        def _reference_logps(self, out: dict[str, Any]) -> Tensor:
            ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
            mask = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
            keep = out["completion_ids"].size(1)
            ref = self.suite_reference
            with torch.no_grad():
                if ref.kind == "frozen_copy":
                    return self._get_per_token_logps_and_entropies(ref.model, ids, mask, keep)[0]
                with self.accelerator.unwrap_model(self.model).disable_adapter():
                    return self._get_per_token_logps_and_entropies(self.model, ids, mask, keep)[0]

        def _prepare_inputs(self, generation_batch):
            if not self.model.training:
                return super()._prepare_inputs(generation_batch)
            slices = self.args.steps_per_generation
            if self._step % (slices * self.num_iterations) == 0 or self._buffered_inputs is None:
                batch = self._generate_and_score_completions(generation_batch)
                self._buffered_inputs = split_whole_groups(batch, batch["suite_group_ids"].cpu(), slices,
                                                           self._suite_gen)
            return self._buffered_inputs[self._step % slices]

        def _compute_loss(self, model, inputs):
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
            mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
            logps, _, _ = self._get_per_token_logps_and_entropies(model, ids, mask, inputs["completion_ids"].size(1))
            values = None
            if self.value_model is not None:
                values = self.value_model(inputs["prompt_ids"], inputs["prompt_mask"].long())
            loss, diags = loss_from_trl_inputs(logps, inputs, self.suite_loss, self.num_generations,
                                               self.suite_params, values)
            self.suite_losses.append((float(loss.detach()), {k: float(v) for k, v in diags.items()}))
            training = self.model.training
            return loss / (self.current_gradient_accumulation_steps if training else 1)

        def training_step(self, model, inputs, num_items_in_batch=None):
            out = super().training_step(model, inputs, num_items_in_batch)
            if self.value_model is not None and self.accelerator.num_processes > 1:
                for p in self.value_model.parameters():   # V(x) is not wrapped by DDP: average its gradient here
                    if p.grad is not None:
                        p.grad.copy_(self.accelerator.reduce(p.grad, reduction="mean"))
            return out

    _CLASSES["trainer"], _CLASSES["config"] = SuiteLossTrainer, SingleCompletionConfig


# -- the run (bench's train signature) -------------------------------------------------------------------------------------
class TRLRun:
    """One seed's TRL run: the suite's RLVR task (model, tokenizer, SFT warm start, evaluator) and its settings.
    ``seeds`` has one seed (engine runs go seed by seed, each in its own chunk of the run record)."""

    def __init__(self, settings: Any, seeds: list[int]) -> None:
        from algorithms import ALGORITHMS
        from bench.families.rlvr import build_rlvr

        if len(seeds) != 1:
            raise ValueError(f"engine=trl trains one seed at a time, got seeds {seeds}")
        self.settings, self.seeds = settings, list(seeds)
        self.loss = settings.algorithm.loss
        self.layout = layout(settings.env, self.loss, _processes())
        self.suite = build_rlvr(settings, self.seeds, ALGORITHMS[self.loss].batch)

    def parameters(self) -> list[Tensor]:
        return self.suite.parameters()


def _processes() -> int:
    import os
    return int(os.environ.get("WORLD_SIZE", "1"))


def _dataset(run: TRLRun, steps: int):
    """Prompts of every step in the native loop's order (step s: the task's train prompts drawn with the seed's
    prompt stream at s), one row per prompt; TRL walks them in order (``shuffle_dataset=False``)."""
    from datasets import Dataset

    suite = run.suite
    problems: list = []
    for step in range(steps):
        problems += suite.task.prompts("train", suite.n_prompts, seed=(suite.prompt_seeds[0] + step) % (2 ** 62))
    templated = bool(getattr(suite.tokenizer, "chat_template", None))   # as bench.models.lm.format_prompt: one user turn
    prompts = [[{"role": "user", "content": p.prompt}] if templated else p.prompt for p in problems]
    return Dataset.from_dict({"prompt": prompts, "problem": list(range(len(problems)))}), problems


def trl_config(run: TRLRun, out_dir: str, steps: int) -> Any:
    """The TRL config of a run: the suite's batch layout, sampling, Adam and epochs (no TRL KL, no clipping,
    constant learning rate, no logging/saving/evaluation by TRL)."""
    s, env, optim = run.settings, run.settings.env, run.settings.optim
    _, Config = trainer_classes()
    cuda = s.run.device.startswith("cuda")
    lay = run.layout
    names = {f.name for f in dataclasses.fields(Config)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return Config(
        output_dir=out_dir, max_steps=steps * s.algorithm.epochs, per_device_train_batch_size=lay.per_device,
        num_generations=lay.generations, steps_per_generation=lay.slices, gradient_accumulation_steps=lay.slices,
        num_iterations=s.algorithm.epochs, max_completion_length=env.max_new_tokens, temperature=env.temperature,
        top_p=env.top_p, beta=0.0, learning_rate=optim.lr, adam_beta1=optim.beta1, adam_beta2=optim.beta2,
        adam_epsilon=optim.eps, weight_decay=0.0, optim="adamw_torch", lr_scheduler_type="constant",
        max_grad_norm=0.0, seed=run.seeds[0], use_cpu=not cuda, bf16=False, fp16=False, report_to="none",
        save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        shuffle_dataset=False, **{checkpointing: s.model.gradient_checkpointing})   # gradient_checkpointing before transformers 5.11


def train(run: TRLRun, loss: Any, optimizer: Any, *, steps: int, epochs: int, log_every: int,
          on_log: Callable[[int, dict[str, Tensor]], None], start_step: int = 0,
          on_step_end: Optional[Callable[[int], None]] = None, precision: Any = None) -> int:
    """Train ``run`` for ``steps`` suite steps with TRL, logging as the native loop does (same metric names; held-out
    evaluation by the suite before steps 0, eval_every, … and after the last step). Returns the steps done."""
    from transformers import PrinterCallback, TrainerCallback

    from bench import metrics as M
    from bench.loop import LogWindow

    Trainer, _ = trainer_classes()
    suite, s = run.suite, run.settings
    data, problems = _dataset(run, steps)
    window = LogWindow(1, steps, log_every)
    pending: dict[str, Tensor] = {}
    one = lambda x: torch.tensor([float(x)])   # noqa: E731 - a [S = 1] metric

    def evaluate() -> dict[str, Tensor]:
        t0 = time.perf_counter()
        res = suite.evaluate()
        window.exclude(time.perf_counter() - t0)
        return res

    class SuiteLog(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step % epochs == 0:
                step = state.global_step // epochs
                if step % s.env.eval_every == 0 and step != steps - 1:
                    pending.update(evaluate())

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % epochs:
                return
            step = state.global_step // epochs - 1
            first = trainer.suite_losses[:run.layout.slices]          # the first epoch's micro-batches
            logged = {**pending, M.REWARD: one(trainer.suite_rollout["reward"]),
                      M.LOSS_TOTAL: one(sum(v for v, _ in first) / max(len(first), 1))}
            for key in ("completion_length", "zero_variance_frac", "all_fail_frac"):
                logged[M.diag(key)] = one(trainer.suite_rollout[key])
            for key in (first[0][1] if first else {}):
                logged[M.diag(key)] = one(sum(d[key] for _, d in first) / len(first))
            logged.update({k: v.clone() for k, v in suite._constants.items()})
            if step == steps - 1:
                logged.update(evaluate())
            pending.clear()
            trainer.suite_losses.clear()
            if run.is_main:
                window.end_step(step, logged, on_log)
            if on_step_end is not None:
                on_step_end(step)

    loss_name = run.loss
    value = suite.values[0] if suite.values else None
    reference = None
    needs_ref = (loss_name == "tpo" and s.loss_params.kl_beta > 0) or \
        (loss_name == "dro_v" and s.loss_params.reference == "initial")
    if needs_ref:
        reference = suite.references[0]
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model=suite.models[0], reward_funcs=[TaskReward(suite.task, problems)],
                          args=trl_config(run, out, steps), train_dataset=data, processing_class=suite.tokenizer,
                          callbacks=[SuiteLog()], suite_loss=loss_name, suite_params=s.loss_params,
                          value_model=value, reference=reference)
        trainer.remove_callback(PrinterCallback)
        run.is_main = trainer.accelerator.is_main_process
        trainer.train()
    return steps


TRLRun.is_main = True


def build(settings: Any, seeds: Optional[list[int]] = None) -> Any:
    """The engine's counterpart of :func:`bench.build.build` for ``engine=trl`` (one seed)."""
    from bench.build import Built

    import_trl()
    run = TRLRun(settings, list(seeds))
    return Built(task=run, optimizer=None, loss=None, epochs=settings.algorithm.epochs, train=train)
