"""engine=verl: the start-up checks that keep TPO's groups whole in verl, the App. G command lines (TPO and GRPO
differ only in the loss), the parquet data and reward function; with verl installed, the registered policy loss
equals the registry's tpo_loss (value and gradient, groups shuffled) and the commands compose in verl's config."""
from __future__ import annotations

import pytest
import torch

from bench.engines.verl import appendix_g_overrides, check_verl_config, loss_overrides

K = 4


def nested(overrides):
    """A nested dict from ``a.b.c=value`` overrides (enough for check_verl_config)."""
    cfg: dict = {}
    for text in overrides:
        key, value = text.split("=", 1)
        node = cfg
        *parents, leaf = key.lstrip("+").split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = {"true": True, "false": False}.get(value, int(value) if value.isdigit() else value)
    return cfg


def test_appendix_g_tpo_and_grpo_differ_only_in_the_loss_and_pass_the_checks():
    tpo, grpo = appendix_g_overrides("tpo"), appendix_g_overrides("grpo")
    differ = set(tpo) ^ set(grpo)
    assert {d.split("=")[0] for d in differ} == {"algorithm.adv_estimator", "actor_rollout_ref.actor.policy_loss.loss_mode",
                                                "actor_rollout_ref.actor.policy_loss._target_",
                                                "trainer.experiment_name"}
    assert "actor_rollout_ref.rollout.n=16" in tpo and "actor_rollout_ref.actor.kl_loss_coef=0.001" in tpo
    assert "actor_rollout_ref.model.lora_rank=32" in tpo and "actor_rollout_ref.actor.optim.lr=1e-5" in tpo
    check_verl_config(nested(tpo))
    check_verl_config(nested(grpo))


@pytest.mark.parametrize("change, message", [
    ("trainer.balance_batch=true", r"^trainer.balance_batch=True reorders rollouts across ranks"),
    ("actor_rollout_ref.actor.shuffle=true", r"^actor_rollout_ref.actor.shuffle=True shuffles"),
    ("actor_rollout_ref.actor.use_dynamic_bsz=true", r"^actor_rollout_ref.actor.use_dynamic_bsz=True packs"),
    ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=24", r"ppo_micro_batch_size_per_gpu=24: must be a multiple"),
    ("algorithm.adv_estimator=grpo", r"^algorithm.adv_estimator=grpo: policy_loss.loss_mode=tpo needs tpo_score"),
    ("trainer.n_gpus_per_node=3", r"^data.train_batch_size=16: must be a multiple of the 3 data-parallel ranks$"),
])
def test_layouts_that_split_groups_are_refused_in_one_line(change, message):
    cfg = nested([*appendix_g_overrides("tpo"), change])
    with pytest.raises(ValueError, match=message):
        check_verl_config(cfg)


def test_suite_settings_give_the_verl_command_and_data(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    from bench.cli import compose
    from bench.engines.verl import suite_overrides, write_data
    from bench.engines.verl_reward import compute_score
    from bench.schema import to_settings

    s = to_settings(compose(["experiment=llm_rlvr", "scale=paper", "algorithm=tpo", "env.task=arithmetic_small",
                             "+env.settings.max_operand=9", "env.eval_size=3", "run.steps=2", "engine=verl",
                             f"run.root={tmp_path}"]))
    over = suite_overrides(s, str(tmp_path / "data"))
    assert "actor_rollout_ref.rollout.n=16" in over and "actor_rollout_ref.actor.kl_loss_coef=0.001" in over
    check_verl_config(nested(over))
    out = write_data(s, str(tmp_path / "data"))
    train, test = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "test.parquet")
    assert len(train) == 2 * 16 and len(test) == 3
    row = train.iloc[0]
    info = dict(row["extra_info"])
    answer = row["reward_model"]["ground_truth"]
    assert compute_score(row["data_source"], answer, answer, info) == 1.0
    assert compute_score(row["data_source"], "x", answer, info) == 0.0


def test_loss_overrides_name_the_valid_losses():
    with pytest.raises(ValueError, match=r"^loss='ppo'; valid: tpo, grpo$"):
        loss_overrides("ppo", 0.0)


# -- with verl installed ----------------------------------------------------------------------------------------------
def test_registered_tpo_policy_loss_equals_the_registry_loss_with_groups_shuffled():
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn

    import bench.engines.verl_loss  # noqa: F401  (registers tpo, tpo_score)
    from algorithms.batch import GroupBatch
    from algorithms.tpo import TPOParams, tpo_loss

    G, T = 3, 5
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([[5, 3, 1, 4], [2, 5, 5, 3], [4, 1, 2, 5]])
    mask = torch.arange(T)[None, None, :] < lengths[..., None]
    logp = -torch.rand(G, K, T, generator=g, dtype=torch.float64)
    old = logp + 0.1 * torch.randn(G, K, T, generator=g, dtype=torch.float64)
    scores = torch.tensor([[1.0, 0, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.float64)
    config = OmegaConf.create({"rollout_n": K, "policy_loss": {"loss_mode": "tpo", "tpo_eta": 0.7},
                               "global_batch_info": {}})
    x = logp.clone().requires_grad_(True)
    want, _ = tpo_loss(GroupBatch(x, old, scores, mask.double()), TPOParams(eta=0.7))
    want.backward()
    rewards = torch.zeros(G * K, T, dtype=torch.float64)
    rewards[:, 0] = scores.reshape(-1)
    for order in (torch.arange(G), torch.tensor([2, 0, 1])):       # whole groups moved, each kept contiguous
        rows = (order[:, None] * K + torch.arange(K)).reshape(-1)
        m = mask.reshape(G * K, T)[rows]
        adv, _ = get_adv_estimator_fn("tpo_score")(token_level_rewards=rewards[rows], response_mask=m,
                                                   index=[f"u{int(r) // K}" for r in rows], config=None)
        y = logp.reshape(G * K, T)[rows].clone().requires_grad_(True)
        got, metrics = get_policy_loss_fn("tpo")(old.reshape(G * K, T)[rows], y, adv, m, "token-mean", config, None)
        got.backward()
        grad = torch.empty_like(y.grad)
        grad[rows] = y.grad
        assert abs(float(got.detach() - want.detach())) < 1e-6
        assert torch.allclose(grad.view(G, K, T), x.grad, atol=1e-6, rtol=0)
        assert "actor/tpo_target_entropy" in metrics


def test_commands_compose_in_verls_own_config():
    pytest.importorskip("verl")
    from hydra import compose, initialize_config_dir
    from verl.trainer import main_ppo

    from pathlib import Path

    with initialize_config_dir(str(Path(main_ppo.__file__).with_name("config")), version_base=None):
        for loss in ("tpo", "grpo"):
            cfg = compose("ppo_trainer", overrides=appendix_g_overrides(loss))
            check_verl_config(cfg)
            assert cfg.actor_rollout_ref.rollout.n == 16
        default = compose("ppo_trainer", overrides=[*appendix_g_overrides("tpo")[:-7]])   # verl's own layout
        with pytest.raises(ValueError, match="balance_batch"):
            check_verl_config(default)


@pytest.mark.parametrize("overrides, needle", [
    (["experiment=llm_rlvr", "scale=quick"], "model.path=null"),
    (["experiment=llm_rlvr", "scale=paper", "algorithm=tpoo"], "did you mean tpo?"),
])
def test_print_mode_refuses_bad_input_in_one_line(overrides, needle, capsys):
    from bench.engines.verl import main

    with pytest.raises(SystemExit) as exc:
        main(["--print", *overrides])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench.engines.verl: error:") and needle in err[0]
