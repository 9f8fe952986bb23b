"""Config validation: every numeric field of every schema declares its range, a value just
outside it is refused at config time with one line naming the field, and the cross-field
rules (K >= 2 for grouped methods, the env's model, ...) hold."""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from hydra.errors import ConfigCompositionException

from algorithms import ALGORITHMS
from bench import validate
from bench.cli import CONF_DIR, compose
from bench.schema import ALGORITHM_SCHEMAS, LOGGERS, MODELS, OPTIMS, ConfigError, RunConfig, to_settings
from envs import ENVS

#: numeric fields without a range, each with the reason any value is meaningful
EXEMPT = {
    ("algorithm", "baseline_value"): "a constant baseline b in A = R − b: any real number",
    ("env", "reward_baseline"): "the bandit's centring constant b in R − b: any real number",
    ("env", "reward_bias"): "the offline reward shift c in r·scale + c: any real number (AntMaze: −1)",
    ("optim", "ns_coeffs"): "Newton–Schulz polynomial coefficients: any reals (the default's middle one is < 0)",
}

#: an option of each group per schema, and an env that runs with it (ranges are checked before cross-field rules,
#: the env only keeps composition close to a real run)
ALGORITHM_OPTION = {loss: loss for loss in ALGORITHMS}
ENV_OF_MODEL = {"table": "tabular_single", "mlp": "mnist", "transformer": "reversal", "offline_mlp": "offline",
                "lm": "rlvr"}
ENV_OF_OPTIM = {"muon": "reversal", "adam": "mnist", "normalised_step": "tabular_single"}


def _schemas() -> list[tuple[str, str, type]]:
    out = [("algorithm", key, cls) for key, cls in ALGORITHM_SCHEMAS.items()]
    out += [("env", key, spec.config) for key, spec in ENVS.items()]
    out += [("model", key, cls) for key, cls in MODELS.items()]
    out += [("optim", key, cls) for key, cls in OPTIMS.items()]
    out += [("logger", key, cls) for key, cls in LOGGERS.items()]
    out += [("run", "run", RunConfig)]
    return out


NUMERIC = [(group, option, f) for group, option, cls in _schemas() for f in validate.numeric_fields(cls)]


def test_the_walk_sees_every_group():
    groups = {g for g, _, _ in NUMERIC}
    assert groups == {"algorithm", "env", "model", "optim", "logger", "run"}
    assert len(NUMERIC) > 60


@pytest.mark.parametrize("group, option, f", NUMERIC, ids=[f"{g}-{o}-{f.name}" for g, o, f in NUMERIC])
def test_every_numeric_field_declares_a_range(group, option, f):
    if (group, f.name) in EXEMPT:
        assert not validate.field_range(f), f"{group}.{f.name} is exempt but declares a range: drop the exemption"
        return
    bounds = validate.field_range(f)
    assert bounds, f"{group}={option}: numeric field {f.name} has no ge/gt/le/lt metadata"
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    values = default if isinstance(default, list) else [default]
    assert all(v is None or validate.in_range(v, bounds) for v in values), f"default {default} outside {bounds}"


def _just_outside(bounds: dict, is_int: bool) -> typing.Any:
    key, bound = next(iter(bounds.items()))
    if key in ("gt", "lt"):
        return bound
    step = 1 if is_int else max(1e-6, abs(bound) * 1e-6)
    return bound - step if key == "ge" else bound + step


def _overrides(group: str, option: str) -> list[str]:
    if group == "algorithm":
        return [f"algorithm={ALGORITHM_OPTION[option]}"]
    if group == "env":
        model = {v: k for k, v in ENV_OF_MODEL.items()}.get(option, "table")
        return [f"env={option}", f"model={model}"]
    if group == "model":
        return [f"model={option}", f"env={ENV_OF_MODEL[option]}"]
    if group == "optim":
        return [f"optim={option}", f"env={ENV_OF_OPTIM[option]}"]
    if group == "logger":
        return [f"logger={option}"]
    return []


RANGED = [(g, o, f) for g, o, f in NUMERIC if validate.field_range(f)]


@pytest.mark.parametrize("group, option, f", RANGED, ids=[f"{g}-{o}-{f.name}" for g, o, f in RANGED])
def test_a_value_just_outside_the_range_is_refused_naming_the_field(group, option, f):
    """Through the real path: Hydra composition, then :func:`bench.schema.to_settings`."""
    bounds = validate.field_range(f)
    hint = typing.get_type_hints(dict(((o, c) for g, o, c in _schemas() if g == group))[option])[f.name]
    is_int = int in (hint, *typing.get_args(hint))   # int, Optional[int], list[int]
    bad = _just_outside(bounds, is_int)
    is_list = f.default is dataclasses.MISSING and isinstance(f.default_factory(), list)
    value = f"[{bad}]" if is_list else str(bad)
    cfg = compose([*_overrides(group, option), f"{group}.{f.name}={value}"])
    with pytest.raises(ConfigError) as err:
        to_settings(cfg)
    msg = str(err.value)
    assert msg.startswith(f"{group}.{f.name}="), msg
    assert validate.describe_range(bounds) in msg and "\n" not in msg
    # the value on the edge (or just inside) is accepted by the checker
    key, edge = next(iter(bounds.items()))
    inside = edge if key in ("ge", "le") else (edge + (1 if is_int else 1e-6) * (1 if key == "gt" else -1))
    validate.check_value(f"{group}.{f.name}", [inside] if is_list else inside, bounds)


def test_check_value_cases():
    validate.check_value("x", None, {"ge": 1})                 # an unset Optional
    validate.check_value("x", [1, 2], {"ge": 1})
    with pytest.raises(ConfigError, match=r"^x=\[1, 0\]: every entry must be >= 1$"):
        validate.check_value("x", [1, 0], {"ge": 1})
    with pytest.raises(ConfigError, match=r"^x=1.0: must be >= 0 and < 1$"):
        validate.check_value("x", 1.0, {"ge": 0, "lt": 1})
    with pytest.raises(ConfigError, match=r"^x=nan: must be > 0$"):
        validate.check_value("x", math.nan, {"gt": 0})
    with pytest.raises(ConfigError):
        validate.check_value("x", True, {"ge": 0})


def test_is_numeric():
    assert validate.is_numeric(int) and validate.is_numeric(typing.Optional[float])
    assert validate.is_numeric(list[int]) and validate.is_numeric(int | None) and not validate.is_numeric(bool)
    assert not validate.is_numeric(str) and not validate.is_numeric(list[str])


def test_choices_metadata_is_checked_before_the_dataclass():
    with pytest.raises(ConfigError, match=r"^env.logic='nope'; valid: copy, flip, reverse_copy, reverse_flip$"):
        to_settings(compose(["env=reversal", "env.logic=nope"]))


# -- the three refusals that used to run (or crash mid-run) ----------------------------------
@pytest.mark.parametrize("override, message", [
    ("run.seeds=0", "run.seeds=0: must be >= 1"),
    ("run.steps=-5", "run.steps=-5: must be >= 1"),
    ("run.log_every=0", "run.log_every=0: must be >= 1"),
])
def test_run_fields(override, message):
    with pytest.raises(ConfigError) as err:
        to_settings(compose([override]))
    assert str(err.value) == message


@pytest.mark.parametrize("env, algorithm, field, extra", [
    ("reversal", "tpo", "k", []),
    ("reversal", "grpo", "k", []),
    ("reversal", "rloo", "k", []),
    ("reversal", "group_pg", "k", []),
    ("reversal", "tpo_token", "k", []),
    ("reversal", "grpo_token", "k", []),
    ("tabular_single", "grpo", "batch_size", []),
    ("mnist", "grpo", "batch_size", []),
])
def test_grouped_methods_need_two_candidates(env, algorithm, field, extra):
    with pytest.raises(ConfigError) as err:
        to_settings(compose([f"env={env}", f"algorithm={algorithm}", f"env.{field}=1", *extra]))
    assert str(err.value).startswith(f"env.{field}=1: must be >= 2 for algorithm={algorithm}")
    to_settings(compose([f"env={env}", f"algorithm={algorithm}", f"env.{field}=2"]))   # K = 2 is fine


@pytest.mark.parametrize("algorithm", ["pg", "ppo", "dg", "dro_v", "kto"])
def test_single_answer_methods_run_with_k_one(algorithm):
    """K only sizes the groups (and the interaction matching) of single-answer methods."""
    assert to_settings(compose(["env=reversal", f"algorithm={algorithm}", "env.k=1"])).env.k == 1


def test_every_group_size_rule_names_a_real_env_field():
    for (env, candidates), name in validate.GROUP_SIZE_FIELD.items():
        assert name in {f.name for f in dataclasses.fields(ENVS[env].config)}
        assert candidates in ("sampled", "token")


def test_candidate_table_matches_the_families():
    """The config-time table equals the batches the families can build."""
    from bench.families import mnist, sequence, tabular

    built = {"tabular_single": tabular._SINGLE_BUILDERS, "mnist": mnist._BUILDERS, "reversal": sequence._BUILDERS}
    for env, builders in built.items():
        for kind in ("group", "trajectory"):
            cands = tuple(c for k, c in builders if k == kind)
            expected = validate.CANDIDATES_BY_ENV.get((env, kind))
            if expected is None:   # any candidates value: the family maps it to its single batch
                assert cands == ("single",), (env, kind)
            else:
                assert sorted(expected) == sorted(cands), (env, kind)


@pytest.mark.parametrize("overrides, message", [
    (["env=mnist", "model=table"], "env=mnist needs model=mlp, got model=table"),
    (["env=reversal", "model=mlp"], "env=reversal needs model=transformer, got model=mlp"),
    (["env=tabular_multi", "model=transformer"], "env=tabular_multi needs model=table, got model=transformer"),
    (["env=tabular_single", "optim=muon"], "optim=muon splits parameters by name"),
    (["algorithm=tpo", "algorithm.candidates=single"], "algorithm.candidates='single': env=tabular_single"),
    (["env=reversal", "algorithm=tpo", "algorithm.candidates=all"], "algorithm.candidates='all': env=reversal"),
    (["env=reversal", "algorithm=pg", "algorithm.candidates=sampled"], "algorithm.candidates='sampled': env=reversal"),
    (["env=reversal", "algorithm=tpo_token", "env.reward=terminal"], "env.reward=terminal: algorithm=tpo_token"),
    (["env.correct=100"], "env.correct=100: must be < env.n_arms=100"),
    (["env=tabular_multi", "env.correct=10"], "env.correct=10: must be < env.n_actions=10"),
    (["env=reversal", "model.n_heads=3"], "model.n_heads=3: must divide model.d_model=64"),
    (["algorithm.loss=grpo"], "algorithm.loss='grpo' does not fit algorithm=tpo"),
    (["+algorithm.etaa=2"], "algorithm.etaa: unknown key; did you mean eta?"),
    (["env.name=mnist"], "env.name='mnist' does not match the env option's schema"),
    (["model.name=mlp"], "model.name='mlp' does not match the model option's schema"),
])
def test_cross_field_rules(overrides, message):
    with pytest.raises(ConfigError) as err:
        to_settings(compose(overrides))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# -- Hydra's composition errors in one line --------------------------------------------------
@pytest.mark.parametrize("override, line", [
    ("algorithm.etaa=2", "algorithm.etaa: unknown key; did you mean eta?"),
    ("run.seedz=3", "run.seedz: unknown key; did you mean seeds?"),
    ("env.n_armz=3", "env.n_armz: unknown key; did you mean n_arms?"),
    ("algorithm=tpoo", "algorithm=tpoo: no such option; did you mean tpo? Available options in 'algorithm': bc, ce,"),
    ("algorithm.eta=abc", "algorithm.eta: Value 'abc' of type 'str' could not be converted to Float"),
])
def test_composition_error_line(override, line):
    with pytest.raises(ConfigCompositionException) as err:
        compose([override])
    text = validate.composition_error_line(err.value)
    assert text.startswith(line) and "\n" not in text
    assert "+" not in text   # no "use +key" hint: the key exists under another spelling


def test_conf_dir_has_every_env():
    assert {p.stem for p in (CONF_DIR / "env").glob("*.yaml")} == set(ENVS)


@pytest.mark.parametrize("algorithm", ["tpo", "grpo", "dro_v"])
def test_a_pickled_config_validates_as_in_a_launcher_job(algorithm):
    """Launchers (submitit, joblib) pickle the composed config into the job: same schema classes."""
    import pickle

    cfg = pickle.loads(pickle.dumps(compose([f"algorithm={algorithm}"])))
    assert type(to_settings(cfg).algorithm) is ALGORITHM_SCHEMAS[algorithm]
    with pytest.raises(ConfigError, match=r"^algorithm.epochs=0: must be >= 1$"):
        to_settings(pickle.loads(pickle.dumps(compose([f"algorithm={algorithm}", "algorithm.epochs=0"]))))
