"""verl engine: TPO as a verl policy loss, its configuration constraints, and the command lines.

verl's policy loss sees a padded micro-batch (old_log_prob, log_prob, advantages, response_mask, the actor config)
and no group ids, so TPO relies on the layout: verl repeats each prompt's K = ``rollout.n`` rollouts next to each
other, and nothing may move them apart before the loss. :func:`check_verl_config` refuses, at start-up and in one
line, every setting that would (balanced reordering across ranks, the actor's shuffle, token-budget micro-batches,
micro-batches or per-rank shares that are not whole groups); the ``tpo_score`` advantage estimator checks the rows'
``uid`` order again at run time (:mod:`bench.engines.verl_loss`).

Entry point: ``python -m bench.engines.verl <verl overrides>`` — verl's ``main_ppo`` with the TPO names
registered (also in Ray workers), after :func:`check_verl_config`. ``python -m bench.engines.verl --print
<bench overrides>`` prints the verl command of a suite configuration (``bench ... engine=verl``).
:func:`appendix_g_overrides` is the TPO paper's App. G setting (Qwen3-1.7B, K = 16, AdamW 1e-5, 16 prompts per
step, LoRA r = 32, KL 1e-3, GSM8K), TPO and GRPO differing only in the loss (docs/engines.md).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

POLICY_LOSS, ADV_ESTIMATOR = "tpo", "tpo_score"
MODULE = "bench.engines.verl_loss"


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    node = cfg
    for part in key.split("."):
        if node is None:
            return default
        try:
            node = node[part] if part in node else None
        except TypeError:
            node = getattr(node, part, None)
    return default if node is None else node


def check_verl_config(cfg: Mapping[str, Any]) -> None:
    """Refuse a verl configuration that would split a TPO group before the loss (ValueError, one line naming the
    key, its value and what is needed). A configuration without ``policy_loss.loss_mode=tpo`` passes unchanged.

    cfg: verl's composed ``ppo_trainer`` config (DictConfig or nested mappings)."""
    actor = "actor_rollout_ref.actor"
    if _get(cfg, f"{actor}.policy_loss.loss_mode") != POLICY_LOSS:
        return
    n = int(_get(cfg, "actor_rollout_ref.rollout.n", 1))
    est = _get(cfg, "algorithm.adv_estimator")
    dp = int(_get(cfg, "trainer.n_gpus_per_node", 1)) * int(_get(cfg, "trainer.nnodes", 1))
    micro = _get(cfg, f"{actor}.ppo_micro_batch_size_per_gpu")
    checks = [
        (est == ADV_ESTIMATOR, f"algorithm.adv_estimator={est}: policy_loss.loss_mode=tpo needs {ADV_ESTIMATOR} "
                               f"(the sequence scores; TPO standardises them per group)"),
        (n >= 2, f"actor_rollout_ref.rollout.n={n}: TPO needs K >= 2 rollouts per prompt"),
        (not _get(cfg, "trainer.balance_batch", False), "trainer.balance_batch=True reorders rollouts across ranks "
                                                         "and splits groups; set trainer.balance_batch=False"),
        (not _get(cfg, f"{actor}.shuffle", False), f"{actor}.shuffle=True shuffles rollouts apart; set it False"),
        (not _get(cfg, f"{actor}.use_dynamic_bsz", False), f"{actor}.use_dynamic_bsz=True packs micro-batches by "
                                                             f"tokens and splits groups; set it False"),
        (micro is not None and int(micro) % n == 0, f"{actor}.ppo_micro_batch_size_per_gpu={micro}: must be a "
                                                      f"multiple of rollout.n={n} (whole groups per micro-batch)"),
        (int(_get(cfg, "data.train_batch_size", 0)) % dp == 0, f"data.train_batch_size="
                                                                 f"{_get(cfg, 'data.train_batch_size')}: must be a "
                                                                 f"multiple of the {dp} data-parallel ranks"),
        (int(_get(cfg, f"{actor}.ppo_mini_batch_size", 0)) % dp == 0, f"{actor}.ppo_mini_batch_size="
                                                                        f"{_get(cfg, f'{actor}.ppo_mini_batch_size')}"
                                                                        f": must be a multiple of the {dp} ranks"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def loss_overrides(loss: str, kl_coef: float) -> list[str]:
    """The overrides that pick the policy loss: ``tpo`` (this suite's TPO, η = 1, anchored) or ``grpo`` (verl's
    GRPO: z-scored group advantage, PPO clip). Both with verl's k3 KL to the reference (``low_var_kl``) at
    ``kl_coef`` and the same layout constraints, so the two runs differ only in the loss."""
    common = [f"actor_rollout_ref.actor.use_kl_loss={'true' if kl_coef > 0 else 'false'}",
              f"actor_rollout_ref.actor.kl_loss_coef={kl_coef}", "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
              "algorithm.use_kl_in_reward=false", "trainer.balance_batch=false", "actor_rollout_ref.actor.shuffle=false",
              "actor_rollout_ref.actor.use_dynamic_bsz=false"]
    if loss == "tpo":
        return ["algorithm.adv_estimator=tpo_score", "actor_rollout_ref.actor.policy_loss.loss_mode=tpo",
                "actor_rollout_ref.actor.policy_loss._target_=bench.engines.verl_loss.TPOPolicyLossConfig",
                *common]
    if loss == "grpo":
        return ["algorithm.adv_estimator=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla", *common]
    raise ValueError(f"loss={loss!r}; valid: tpo, grpo")


def appendix_g_overrides(loss: str, model: str = "models/Qwen3-1.7B", data_dir: str = "data/gsm8k_verl",
                         n_gpus: int = 1, nnodes: int = 1) -> list[str]:
    """TPO paper App. G on GSM8K: Qwen3-1.7B, 16 prompts × K = 16, AdamW lr 1e-5, LoRA r = 32 (α = 64, the suite's
    paper scale), KL 1e-3 to the reference (adapters off); TPO or GRPO (``loss``). ``data_dir`` holds
    ``train.parquet``/``test.parquet`` (:func:`write_data`, ``python -m bench.engines.verl --data ...``)."""
    reward = Path(__file__).with_name("verl_reward.py")
    return [f"data.train_files={data_dir}/train.parquet", f"data.val_files={data_dir}/test.parquet",
            "data.train_batch_size=16", "data.max_prompt_length=512", "data.max_response_length=1024",
            "data.shuffle=false", f"actor_rollout_ref.model.path={model}", "actor_rollout_ref.model.lora_rank=32",
            "actor_rollout_ref.model.lora_alpha=64", "actor_rollout_ref.model.target_modules=all-linear",
            "actor_rollout_ref.actor.optim.lr=1e-5", "actor_rollout_ref.actor.optim.weight_decay=0.0",
            "actor_rollout_ref.actor.ppo_mini_batch_size=16", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=16",
            "actor_rollout_ref.actor.ppo_epochs=4", "actor_rollout_ref.rollout.n=16",   # E = 4: llm_rlvr paper scale
            "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.temperature=1.0",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16",
            f"reward.custom_reward_function.path={reward}", "reward.custom_reward_function.name=compute_score",
            f"trainer.n_gpus_per_node={n_gpus}", f"trainer.nnodes={nnodes}", "trainer.total_training_steps=200",
            "trainer.logger=[console,file]", "trainer.project_name=tpo-bench", f"trainer.experiment_name=gsm8k-{loss}",
            *loss_overrides(loss, 1e-3)]


def suite_overrides(settings: Any, data_dir: str) -> list[str]:
    """The verl overrides of a suite configuration (``env=rlvr``, ``engine=verl``): its model, batch (G prompts ×
    K), sampling, Adam, epochs, LoRA, steps and loss (TPO's KL β → verl's ``kl_loss_coef``; GRPO's β likewise)."""
    env, m, e, a = settings.env, settings.model, settings.engine, settings.algorithm
    if m.path is None:
        raise ValueError("model.path=null: engine=verl loads a checkpoint directory (model.path=/local/dir); the tiny "
                         "random-init model runs with engine=native or engine=trl")
    kl = float(getattr(settings.loss_params, "kl_beta", 0.0) or 0.0)
    reward = Path(__file__).with_name("verl_reward.py")
    micro = e.micro_batch_size_per_gpu
    out = [f"data.train_files={data_dir}/train.parquet", f"data.val_files={data_dir}/test.parquet",
           f"data.train_batch_size={env.prompts_per_step}", "data.shuffle=false",
           f"data.max_response_length={env.max_new_tokens}", f"actor_rollout_ref.model.path={m.path}",
           f"actor_rollout_ref.model.lora_rank={m.lora.rank}", f"actor_rollout_ref.model.lora_alpha={m.lora.alpha}",
           f"actor_rollout_ref.model.enable_gradient_checkpointing={str(m.gradient_checkpointing).lower()}",
           f"actor_rollout_ref.actor.optim.lr={settings.optim.lr}", "actor_rollout_ref.actor.optim.weight_decay=0.0",
           f"actor_rollout_ref.actor.ppo_mini_batch_size={env.prompts_per_step}",
           f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
           f"actor_rollout_ref.actor.ppo_epochs={a.epochs}", f"actor_rollout_ref.rollout.n={env.k}",
           f"actor_rollout_ref.rollout.name={e.rollout}", f"actor_rollout_ref.rollout.temperature={env.temperature}",
           f"actor_rollout_ref.rollout.top_p={env.top_p}",
           f"actor_rollout_ref.rollout.tensor_model_parallel_size={e.tensor_parallel}",
           f"actor_rollout_ref.rollout.gpu_memory_utilization={e.gpu_memory_utilization}",
           f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
           f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
           f"reward.custom_reward_function.path={reward}", "reward.custom_reward_function.name=compute_score",
           f"trainer.n_gpus_per_node={e.n_gpus_per_node}", f"trainer.nnodes={e.nnodes}",
           f"trainer.total_training_steps={settings.run.steps}", f"trainer.test_freq={env.eval_every}",
           "trainer.val_before_train=true", "trainer.logger=[console,file]", "trainer.save_freq=-1",
           *loss_overrides(a.loss, kl), *e.extra]
    return out


def write_data(settings: Any, data_dir: str) -> Path:
    """Write the run's prompts as verl parquet files: ``train.parquet`` (every step's G prompts, in the native loop's
    order for the first seed) and ``test.parquet`` (the held-out ``env.eval_size`` problems). Each row carries its
    task and problem in ``extra_info`` for :func:`bench.engines.verl_reward.compute_score`. Returns the directory."""
    import pandas as pd

    from bench.build import seed_list
    from bench.seeding import stream_seed
    from envs.rlvr.config import build_task

    env = settings.env
    task = build_task(env)
    spec = json.dumps({"task": env.task, "settings": dict(env.settings)}, sort_keys=True)
    seed = stream_seed(seed_list(settings)[0], "prompts")
    train = [p for step in range(settings.run.steps)
             for p in task.prompts("train", env.prompts_per_step, seed=(seed + step) % (2 ** 62))]
    splits = {"train": train, "test": task.prompts("eval", env.eval_size, seed=0)}
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, problems in splits.items():
        rows = [{"data_source": f"tpo-bench/{env.task}", "prompt": [{"role": "user", "content": p.prompt}],
                 "ability": "rlvr", "reward_model": {"style": "rule", "ground_truth": p.answer or ""},
                 "extra_info": {"index": i, "split": split, "task": spec,
                                "problem": json.dumps({"prompt": p.prompt, "answer": p.answer, "task": p.task,
                                                       "metadata": p.metadata}, default=str)}}
                for i, p in enumerate(problems)]
        pd.DataFrame(rows).to_parquet(out / f"{split}.parquet")
    return out


def command(overrides: list[str]) -> str:
    """The shell command that runs verl with the TPO names registered and the layout checked."""
    return " ".join(["python", "-m", "bench.engines.verl", *map(shlex.quote, overrides)])


def build(settings: Any, seeds: Optional[list[int]] = None) -> Any:
    """``engine=verl`` under ``bench``: needs verl (``pip install -e .[verl]``) and CUDA GPUs (verl trains with FSDP
    and samples with vLLM/SGLang); otherwise one line saying so and how to print the verl command."""
    from bench.schema import ConfigError

    try:
        import verl  # noqa: F401
    except ImportError:
        raise ConfigError("engine=verl: verl is not installed (pip install -e .[verl]); print the verl command with "
                          "python -m bench.engines.verl --print <bench overrides>") from None
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("engine=verl needs CUDA GPUs (verl's FSDP training and vLLM/SGLang rollout); print the verl "
                          "command with python -m bench.engines.verl --print <bench overrides>")
    raise ConfigError("engine=verl: run the verl command (python -m bench.engines.verl --print <bench overrides>); "
                      "its run records are verl's (trainer.logger=file), not converted into bench records yet")


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m bench.engines.verl [--print BENCH_OVERRIDES... | --data DIR BENCH_OVERRIDES... | VERL_OVERRIDES...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--print"], ["--data"]):
        from bench.cli import compose
        from bench.schema import to_settings

        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from bench.validate import composition_error_line

        data_dir = argv[1] if argv[0] == "--data" else "verl_data"
        rest = argv[2:] if argv[0] == "--data" else argv[1:]
        try:
            settings = to_settings(compose(["env=rlvr", "engine=verl", *rest]))
            if argv[0] == "--data":
                print(write_data(settings, data_dir))
            print(command(suite_overrides(settings, data_dir)))
        except HydraException as exc:   # unknown option / key: the same one line as `bench`
            print(f"bench.engines.verl: error: {composition_error_line(exc)}", file=sys.stderr)
            sys.exit(2)
        except (ValueError, KeyError, OmegaConfBaseException) as exc:
            print(f"bench.engines.verl: error: {str(exc).splitlines()[0]}", file=sys.stderr)
            sys.exit(2)
        return
    os.environ.setdefault("VERL_USE_EXTERNAL_MODULES", MODULE)   # inherited by the Ray workers this run starts
    import importlib

    importlib.import_module(MODULE)
    import hydra
    from verl.trainer import main_ppo

    config_dir = str(Path(main_ppo.__file__).with_name("config"))

    @hydra.main(config_path=config_dir, config_name="ppo_trainer", version_base=None)
    def _run(cfg: Any) -> None:
        try:
            check_verl_config(cfg)
        except ValueError as exc:
            print(f"bench.engines.verl: error: {exc}", file=sys.stderr)
            sys.exit(2)
        main_ppo.main.__wrapped__(cfg)

    sys.argv = [sys.argv[0], *argv]
    _run()


if __name__ == "__main__":
    main()
