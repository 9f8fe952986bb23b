"""Every config option and experiment composes and converts to the typed schema;
bad input is rejected with the valid choices named."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from algorithms import ALGORITHMS
from bench.cli import CONF_DIR, compose
from bench.schema import ConfigError, Settings, to_settings

GROUPS = ("algorithm", "env", "model", "optim", "logger", "launcher", "scale")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


EXPERIMENTS = options("experiment")


@pytest.mark.parametrize("algorithm", options("algorithm"))
def test_every_algorithm_option_converts(algorithm):
    algo = compose([f"algorithm={algorithm}"]).algorithm
    token = algo.candidates == "token"   # token groups: sequence tasks
    env = "reversal" if token else "offline" if ALGORITHMS[algo.loss].batch == "transition" else None
    s = to_settings(compose([f"algorithm={algorithm}", *([f"env={env}"] if env else [])]))
    assert isinstance(s, Settings)
    assert s.algorithm.name == algorithm
    assert type(s.loss_params) is ALGORITHMS[s.algorithm.loss].params
    assert dataclasses.is_dataclass(s.algorithm) and dataclasses.is_dataclass(s.env)


#: an env that runs with each model / optimizer option (a model or optimizer option alone
#: is checked against the default env's family, see test_env_selects_its_model_and_optimizer)
ENV_FOR = {("model", "table"): "tabular_single", ("model", "mlp"): "mnist", ("model", "transformer"): "reversal",
           ("optim", "muon"): "reversal", ("model", "offline_mlp"): "offline", ("optim", "adam_offline"): "offline",
           ("model", "lm"): "rlvr", ("optim", "adam_rlvr"): "rlvr"}
#: what else an env needs to convert (the default algorithm, TPO, is on-policy)
ENV_NEEDS = {"offline": ["algorithm=bc"]}
#: option file → the ``name`` it sets (an option that is another option's settings)
OPTION_NAME = {"adam_offline": "adam", "adam_rlvr": "adam"}


@pytest.mark.parametrize("group", ["env", "model", "optim", "logger", "launcher", "scale"])
def test_every_group_option_composes(group):
    for option in options(group):
        if group == "launcher" and option == "ray":
            pytest.importorskip("hydra_plugins.hydra_ray_launcher")
        if group == "launcher" and option != "basic":
            pytest.importorskip("hydra_plugins.hydra_joblib_launcher" if option == "joblib"
                                else "hydra_plugins.hydra_submitit_launcher")
        env = option if group == "env" else ENV_FOR.get((group, option))
        cfg = compose([f"{group}={option}", *([f"env={env}"] if env else []), *ENV_NEEDS.get(env, [])])
        s = to_settings(cfg)
        if group in ("env", "model", "optim", "logger"):
            assert getattr(s, group).name == OPTION_NAME.get(option, option)


@pytest.mark.parametrize("env, model, optim, lr, algorithm", [
    ("tabular_single", "table", "normalised_step", 0.1, "tpo"),   # paper §2: logit table, α = 0.1
    ("tabular_multi", "table", "normalised_step", 0.1, "tpo"),
    ("mnist", "mlp", "adam", 1e-3, "tpo"),                        # Fig. 4: 784-50-50-10 MLP, Adam lr 1e-3
    ("reversal", "transformer", "muon", 1e-3, "tpo"),             # §4: transformer, Muon + AdamW lr 1e-3
    ("offline", "offline_mlp", "adam", 3e-4, "td3_bc"),           # TD3+BC App. C / IQL App. B: 256-256, Adam 3e-4
])
def test_env_selects_its_model_and_optimizer(env, model, optim, lr, algorithm):
    s = to_settings(compose([f"env={env}", f"algorithm={algorithm}"]))
    assert (s.env.name, s.model.name, s.optim.name, s.optim.lr) == (env, model, optim, lr)


def test_explicit_model_and_optimizer_win_over_the_envs_choice():
    cfg = compose(["env=mnist", "optim=normalised_step", "optim.lr=0.5"])
    assert (cfg.model.name, cfg.optim.name, cfg.optim.lr) == ("mlp", "normalised_step", 0.5)
    assert to_settings(cfg).optim.name == "normalised_step"
    cfg = compose(["env=mnist", "model=transformer"])   # the user's choice is kept, then refused clearly
    assert cfg.model.name == "transformer"
    with pytest.raises(ConfigError, match=r"^env=mnist needs model=mlp, got model=transformer$"):
        to_settings(cfg)


def test_experiment_model_choice_is_kept_over_the_envs():
    """An experiment's `override /model` (and the command line) come before the env's choice."""
    cfg = compose(["experiment=mnist", "model=mlp", "model.hidden=[7]"])
    assert cfg.model.hidden == [7] and cfg.optim.name == "adam"


def _grid(cfg) -> dict[str, list[str]]:
    params = cfg.hydra.sweeper.params or {}
    return {k: str(v).split(",") for k, v in params.items()}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_every_experiment_grid_point_converts(experiment, scale):
    from hydra import compose as hydra_compose, initialize_config_dir
    from bench.cli import register_all

    register_all()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = hydra_compose("config", overrides=[f"experiment={experiment}", f"scale={scale}"],
                            return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN", "an experiment runs its whole grid by itself"
    grid = _grid(cfg)
    assert grid, f"{experiment} has no sweep grid"
    # every value of every axis, with the other axes at their first value
    for key, values in grid.items():
        for value in values:
            point = [f"{k}={vs[0]}" for k, vs in grid.items() if k != key] + [f"{key}={value}"]
            s = to_settings(compose([f"experiment={experiment}", f"scale={scale}", *point]))
            assert s.experiment == experiment and s.scale == scale


def test_scale_changes_settings():
    quick = to_settings(compose(["experiment=tabular_single", "scale=quick"]))
    paper = to_settings(compose(["experiment=tabular_single", "scale=paper"]))
    assert paper.run.seeds == 100 and quick.run.seeds < paper.run.seeds


def test_algorithm_overrides_apply_to_that_algorithm_only():
    pg = to_settings(compose(["experiment=tabular_single", "algorithm=pg"]))
    tpo = to_settings(compose(["experiment=tabular_single", "algorithm=tpo"]))
    assert pg.loss_params.baseline == "constant"
    assert tpo.algorithm.candidates == "all" and tpo.loss_params.eta == 1.0


def test_bad_override_in_algorithm_overrides_is_rejected():
    with pytest.raises(ConfigError, match="algorithm_overrides.tpo"):
        to_settings(compose(["algorithm=tpo", "+algorithm_overrides.tpo.etaa=1"]))


def test_unknown_option_names_valid_choices():
    with pytest.raises(MissingConfigException) as err:
        compose(["algorithm=nope"])
    assert "Available options in 'algorithm'" in str(err.value) and "tpo" in str(err.value)


@pytest.mark.parametrize("override, exc", [
    ("algorithm.etaa=2", ConfigCompositionException),   # misspelled key
    ("algorithm.eta=abc", ConfigCompositionException),  # wrong type
    ("run.seedz=3", ConfigCompositionException),
    ("run.steps=1.5", ConfigCompositionException),
])
def test_misspelled_key_or_wrong_type_is_rejected(override, exc):
    with pytest.raises(exc):
        compose([override])


def test_settings_are_frozen():
    s = to_settings(compose([]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.run.steps = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.loss_params.eta = 3  # type: ignore[misc]


def test_every_experiment_file_names_its_paper_source():
    for name in EXPERIMENTS:
        text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
        assert "§" in text or "Table" in text or "Fig" in text, f"{name}: non-default values need a paper reference"


def test_offline_env_selects_an_offline_algorithm_unless_one_is_given():
    """env=offline alone would otherwise compose the suite's default (TPO, on-policy) and be refused."""
    assert to_settings(compose(["env=offline"])).algorithm.name == "td3_bc"
    assert to_settings(compose(["env=offline", "algorithm=iql"])).algorithm.name == "iql"
    assert compose([]).algorithm.name == "tpo"
