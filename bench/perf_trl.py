"""Seconds per GRPO step of TRL's ``GRPOTrainer`` on the suite's LLM RLVR setting, beside ``bench-perf``'s
``rlvr grpo`` workload (:func:`time_trl_grpo_step`). Needs the ``trl`` extra (``pip install -e .[trl]``)."""
from __future__ import annotations

import tempfile
import time
from typing import Any

def _import_trl() -> Any:
    try:
        import trl
    except ImportError:
        raise ImportError("TRL is not installed: pip install -e .[trl]") from None
    return trl


def time_trl_grpo_step(settings_overrides: list[str], steps: int) -> float:
    """Seconds per optimizer step of ``trl.GRPOTrainer`` on the suite's RLVR task, model and batch.

    Settings: those of ``bench-perf``'s RLVR workloads (``bench.perf.RLVR``: ``experiment=llm_rlvr scale=quick
    env.task=arithmetic_small run.seeds=1``, no evaluation) then ``algorithm=grpo`` then ``settings_overrides``
    (e.g. ``env.k=4``, ``model.hidden=32``), composed as ``bench`` composes them.

    One step, G = ``env.prompts_per_step`` prompts × K = ``env.k`` completions (TPO paper App. G: G = 16, K = 16):
    G·K completions generated once (``num_generations=K``, ``per_device_train_batch_size=G·K``,
    ``steps_per_generation=1``, ``num_iterations=1``), scored, one forward/backward, one Adam step.

    Identical on both sides: the model and its weights (the suite's RLVR task builds it: ``load_lm`` for the
    first seed plus the cached SFT warm start of ``env.sft``), the character tokenizer (BOS added to each
    prompt), prompts of the task's train split (the same split, other draws), ``env.max_new_tokens``
    (``max_completion_length``), ``env.temperature``, ``env.top_p``, Adam (``optim.lr``, betas, eps; no weight
    decay, no gradient clipping, constant learning rate), ``model.dtype`` with no autocast (bf16/fp16 off),
    ``model.gradient_checkpointing`` (off by default; TRL's own default is on), and the reward: ``task.score``
    of the decoded completion. No logging, saving or evaluation.

    Not identical: TRL samples with Hugging Face ``generate`` (the suite: its own KV-cache sampler, which also
    returns the rollout log-probs), then recomputes the log-probs with gradients in one forward pass; its loss is
    TRL's ``loss_type="grpo"`` (token-level ratio, per-sequence length mean, group-scaled advantages) with no KL
    term (``beta=0``). The suite's ``algorithm=grpo`` (TPO paper App. F) has a sequence-level ratio, its own
    aggregation, a k3 KL penalty (β = 0.04) to the rollout snapshot (zero at one epoch, but computed) and runs
    ``algorithm.epochs`` passes over each rollout (4 by default); with ``env.log_kl`` (default on) its step also
    runs one no-gradient forward of the frozen initial policy for the logged KL. Compare with the suite's step
    at one epoch (one forward/backward per rollout, as here):
    ``bench-perf --only "rlvr grpo" --set algorithm.epochs=1`` (add ``env.log_kl=false`` to drop the extra
    forward).

    Timing: ``max_steps = 1 + steps``; a ``TrainerCallback`` reads the clock at the end of optimizer step 1
    (the warm-up step, not counted) and of the last step (with a CUDA synchronise on a GPU), so the time
    covers sampling, scoring, loss, backward and optimizer step of ``steps`` steps, not trainer setup.
    Threads: the caller's ``torch.set_num_threads``.

    Args:
        settings_overrides: config overrides (``KEY=VALUE``), applied after the settings above.
        steps: timed optimizer steps (>= 1).

    Returns:
        seconds per step (float).

    Raises:
        ImportError: TRL is not installed (one line naming ``pip install -e .[trl]``).
        ValueError: ``steps`` < 1.
        bench.schema.ConfigError: an override does not compose or validate (one line, as ``bench`` reports it).
    """
    trl = _import_trl()
    if steps < 1:
        raise ValueError(f"steps={steps}: must be >= 1")
    import torch
    from datasets import Dataset
    from hydra.errors import CompactHydraException
    from transformers import PrinterCallback, TrainerCallback

    from bench.build import seed_list
    from bench.cli import compose
    from bench.families.rlvr import build_rlvr
    from bench.perf import RLVR
    from bench.schema import ConfigError, to_settings
    from bench.seeding import stream_seed
    from bench.validate import composition_error_line

    try:
        s = to_settings(compose(["logger=none", *RLVR, "algorithm=grpo", *settings_overrides]))
    except CompactHydraException as exc:
        raise ConfigError(composition_error_line(exc)) from None
    env, optim, seed = s.env, s.optim, seed_list(s)[0]
    suite = build_rlvr(s, [seed], "group")                     # the suite's model, tokenizer and task for `seed`
    model, task = suite.models[0], suite.task
    problems = task.prompts("train", env.prompts_per_step * (1 + steps), seed=stream_seed(seed, "prompts"))
    data = Dataset.from_dict({"prompt": [p.prompt for p in problems], "problem": list(range(len(problems)))})

    def reward(prompts: list, completions: list, problem: list, **_: Any) -> list[float]:
        return [task.score(problems[i], text) for i, text in zip(problem, completions)]

    cuda = s.run.device.startswith("cuda")
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (1, 1 + steps):
                if cuda:
                    torch.cuda.synchronize()
                marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        config = trl.GRPOConfig(
            output_dir=out, max_steps=1 + steps, per_device_train_batch_size=env.prompts_per_step * env.k,
            num_generations=env.k, steps_per_generation=1, num_iterations=1, gradient_accumulation_steps=1,
            max_completion_length=env.max_new_tokens, temperature=env.temperature, top_p=env.top_p, beta=0.0,
            loss_type="grpo", learning_rate=optim.lr, adam_beta1=getattr(optim, "beta1", 0.9),
            adam_beta2=getattr(optim, "beta2", 0.999), adam_epsilon=getattr(optim, "eps", 1e-8), weight_decay=0.0,
            optim="adamw_torch", lr_scheduler_type="constant", max_grad_norm=0.0, seed=seed, use_cpu=not cuda,
            bf16=False, fp16=False, report_to="none", save_strategy="no", eval_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
            activation_checkpointing=s.model.gradient_checkpointing)
        trainer = trl.GRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=data,
                                  processing_class=suite.tokenizer, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)               # no end-of-training summary on stdout
        trainer.train()
    return (marks[1] - marks[0]) / steps
