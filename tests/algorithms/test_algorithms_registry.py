import dataclasses
import typing

import pytest
import torch

import algorithms
from algorithms import ALGORITHMS, AlgorithmSpec, GroupBatch, Phase, TrajectoryBatch, TransitionBatch, get_algorithm
from algorithms.offline import OfflineNets

EXPECTED = {"tpo": 4, "group_pg": 4, "pg": 1, "ppo": 4, "grpo": 4, "rloo": 4, "dg": 1, "ce": 1, "dro_v": 1, "kto": 1,
            "bc": 1, "td3_bc": 1, "iql": 1, "ddpm_bc": 1, "diffusion_ql": 1, "consistency_bc": 1, "consistency_ac": 1,
            "flow_bc": 1, "fql": 1, "gtp_bc": 1, "gtp": 1, "tpo_offline": 1}
KIND = {"group": GroupBatch, "trajectory": TrajectoryBatch, "transition": TransitionBatch}
#: offline specs (batch "transition", loss None): phases as (network, loss name, every), nets, targets, noise
OFFLINE = {
    "bc": ((("actor", "bc_loss", None),), ("actor",), (), 0),
    "td3_bc": ((("critic", "td3_bc_critic_loss", None), ("actor", "td3_bc_actor_loss", "actor_every")),
               ("actor", "critic"), ("critic", "actor"), 1),
    "iql": ((("value", "iql_value_loss", None), ("actor", "iql_actor_loss", None), ("critic", "iql_critic_loss", None)),
            ("gaussian_actor", "critic", "value"), ("critic",), 0),
}
ONLINE = sorted(k for k in EXPECTED if ALGORITHMS[k].batch != "transition")


def test_keys_and_epochs():
    assert {k: s.epochs for k, s in ALGORITHMS.items()} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_is_consistent(name):
    spec = get_algorithm(name)
    assert isinstance(spec, AlgorithmSpec) and spec.name == name
    assert dataclasses.is_dataclass(spec.params) and spec.params.__dataclass_params__.frozen
    params = spec.params()  # every default constructs
    for f in dataclasses.fields(params):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(params, f.name, getattr(params, f.name))
    if spec.batch == "transition":   # offline: one loss per phase, loss(batch, nets, params)
        assert spec.loss is None and spec.phases and spec.epochs == 1
        for phase in spec.phases:
            hints = typing.get_type_hints(phase.loss)
            assert hints["batch"] is TransitionBatch and hints["nets"] is OfflineNets
            assert hints["params"] is spec.params
            assert phase.every is None or isinstance(getattr(params, phase.every), int)
        for f in ("discount", "tau", "actor_every"):   # read uniformly by the offline loop
            assert hasattr(params, f), f
        return
    assert not spec.phases and not spec.nets and not spec.targets and spec.noise == 0
    hints = typing.get_type_hints(spec.loss)
    assert hints["batch"] is KIND[spec.batch]
    assert hints["params"] is spec.params


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_specs_declare_phases_nets_targets_noise(name):
    spec = get_algorithm(name)
    phases, nets, targets, noise = OFFLINE[name]
    assert spec.batch == "transition" and spec.loss is None and spec.epochs == 1
    assert all(isinstance(p, Phase) for p in spec.phases)
    assert tuple((p.network, p.loss.__name__, p.every) for p in spec.phases) == phases
    assert (spec.nets, spec.targets, spec.noise) == (nets, targets, noise)


@pytest.mark.parametrize("name", ONLINE)
def test_every_loss_runs_with_defaults(name, make_group_batch, make_traj_batch):
    spec = get_algorithm(name)
    if spec.batch == "group":
        batch = make_group_batch(at_snapshot=False, binary=True)
    else:
        batch = make_traj_batch(at_snapshot=False, values=True, ref=True)
    loss, diags = spec.loss(batch, spec.params())
    assert loss.dim() == 0 and torch.isfinite(loss)
    grads = torch.autograd.grad(loss, batch.logp)[0]
    assert torch.isfinite(grads).all() and grads.abs().sum() > 0
    assert diags
    for k, v in diags.items():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, k


def test_paper_defaults():
    assert algorithms.TPOParams() == algorithms.TPOParams(eta=1.0, anchor=True, std_eps=1e-6)
    g = algorithms.GRPOParams()
    assert (g.clip_eps, g.kl_beta, g.kl_to, g.log_ratio_clamp, g.aggregation, g.ratio_level) == (
        0.2, 0.04, "snapshot", 20.0, "group_sum", "sequence")
    assert algorithms.PPOParams().clip_eps == 0.2 and algorithms.PPOParams().baseline == "batch_mean"
    assert algorithms.DGParams().eta == 1.0 and algorithms.DROVParams().tau == 1.0


def test_unknown_name_lists_choices():
    with pytest.raises(KeyError) as e:
        get_algorithm("trpo")
    msg = str(e.value)
    assert "trpo" in msg and ", ".join(sorted(EXPECTED)) in msg


def test_reexports():
    for name in ("GroupBatch", "TrajectoryBatch", "TransitionBatch", "group_to_trajectories"):
        assert hasattr(algorithms, name)
