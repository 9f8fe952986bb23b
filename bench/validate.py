"""Config validation before anything runs: field ranges, unknown keys and cross-field rules.

Ranges are plain dataclass field metadata with the keys ``ge`` / ``gt`` / ``le`` / ``lt``
(and ``choices`` for a field with a fixed set of values)::

    seeds: int = field(default=1, metadata={"ge": 1})

:func:`check_fields` walks a schema dataclass and reads each value from a dataclass
instance or a composed config node; a value outside its range raises
:class:`bench.schema.ConfigError` with one line naming the field, the value and the
range (``run.seeds=0: must be >= 1``). ``None`` (an ``Optional`` field left unset) is
accepted; a list field has the range checked on every entry. :func:`check_settings`
holds the rules that span fields or groups (K ≥ 2 for grouped methods, the model and
optimizer an env's family runs, ...). :func:`composition_error_line` turns Hydra's
multi-line composition errors into one line, with the closest valid key for a typo.
"""
from __future__ import annotations

import dataclasses
import difflib
import operator
import types
import typing
from typing import Any, Iterable, Union

from bench.schema import LOGGERS, MODELS, OPTIMS, ConfigError

#: metadata key → (comparison the value must pass, its symbol in messages)
RANGE_KEYS: dict[str, tuple[Any, str]] = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"),
                                          "le": (operator.le, "<="), "lt": (operator.lt, "<")}

#: model option each env family builds its policy with (``bench.families``)
FAMILY_MODEL: dict[str, str] = {"tabular": "table", "mnist": "mlp", "sequence": "transformer",
                                "offline": "offline_mlp", "rlvr": "lm", "refine": "table"}

#: optimizers that only some families can drive (Muon splits parameters by name:
#: only the sequence family exposes ``named_parameters()``)
OPTIM_FAMILIES: dict[str, tuple[str, ...]] = {"muon": ("sequence",)}

#: (env, batch kind) → the ``algorithm.candidates`` its family can batch (absent: any;
#: the tabular and MNIST families give every trajectory loss one sample per context
#: whatever ``candidates`` says; the exact multi-context bandit enumerates every action).
#: Kept equal to the families' builder tables by tests/bench/test_validate.py.
CANDIDATES_BY_ENV: dict[tuple[str, str], tuple[str, ...]] = {
    ("tabular_single", "group"): ("sampled", "all", "label"),
    ("mnist", "group"): ("all", "sampled", "label"),
    ("reversal", "group"): ("sampled", "token"),
    ("reversal", "trajectory"): ("single",),
    ("rlvr", "group"): ("sampled",),
    ("rlvr", "trajectory"): ("single",),
    ("refine_tabular", "group"): ("sampled", "all"),       # K rewrites per sampled state, or every refinement (exact)
    ("refine_tabular", "trajectory"): ("single", "all"),   # one rewrite per sampled state, or every (x, a2) (exact)
}

#: (env, candidates) → the env field that is K, the group size, for group losses whose
#: groups are sampled (with ``all``/``label`` K is the number of actions, bounded by
#: the field ranges). A group of one has a zero standardised score: no gradient.
GROUP_SIZE_FIELD: dict[tuple[str, str], str] = {
    ("reversal", "sampled"): "k",        # K answers per prompt
    ("reversal", "token"): "k",          # K next-token candidates per prefix
    ("tabular_single", "sampled"): "batch_size",  # one group of the B sampled arms
    ("mnist", "sampled"): "batch_size",  # one group of the B sampled classes
    ("rlvr", "sampled"): "k",            # K completions per prompt
    ("refine_tabular", "sampled"): "k",  # K rewrites per refiner state (S, A1)
}
MIN_GROUP_SIZE = 2


# -- field ranges ----------------------------------------------------------------------------
def field_range(f: dataclasses.Field) -> dict[str, Any]:
    """The ``ge``/``gt``/``le``/``lt`` bounds declared in ``f.metadata`` (may be empty)."""
    return {k: f.metadata[k] for k in RANGE_KEYS if k in f.metadata}


def describe_range(bounds: dict[str, Any]) -> str:
    """``{"ge": 0, "lt": 1}`` → ``">= 0 and < 1"``."""
    return " and ".join(f"{RANGE_KEYS[k][1]} {bounds[k]}" for k in RANGE_KEYS if k in bounds)


def in_range(value: Any, bounds: dict[str, Any]) -> bool:
    """True when the number ``value`` passes every bound."""
    return all(RANGE_KEYS[k][0](value, bound) for k, bound in bounds.items())


def is_numeric(tp: Any) -> bool:
    """True for int/float annotations, ``Optional`` of them and lists/tuples of them (not bool)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(is_numeric(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple) or tp in (list, tuple):
        return any(is_numeric(a) for a in typing.get_args(tp) if a is not Ellipsis)
    return tp in (int, float)


def numeric_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of dataclass ``cls`` whose annotation :func:`is_numeric`."""
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if is_numeric(hints[f.name])]


def check_value(name: str, value: Any, bounds: dict[str, Any]) -> None:
    """ConfigError ``"name=value: must be <range>"`` unless ``value`` (None, a number or a
    list of numbers) lies in ``bounds``."""
    if value is None or not bounds:
        return
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value}: must be a number {describe_range(bounds)}")
    if isinstance(value, (int, float)):
        if not in_range(value, bounds):
            raise ConfigError(f"{name}={value}: must be {describe_range(bounds)}")
        return
    entries = list(value)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and in_range(v, bounds) for v in entries):
        raise ConfigError(f"{name}={entries}: every entry must be {describe_range(bounds)}")


def check_fields(cls: type, values: Any, prefix: str) -> None:
    """Check every field of dataclass ``cls`` that declares a range (or ``choices``: the
    valid values), reading ``getattr(values, name)`` (``values``: an instance or a config
    node of ``cls``); names in messages are ``prefix.name``."""
    for f in dataclasses.fields(cls):
        bounds = field_range(f)
        if bounds:
            check_value(f"{prefix}.{f.name}", getattr(values, f.name), bounds)
        choices = f.metadata.get("choices")
        if choices is not None and getattr(values, f.name) not in choices:
            raise ConfigError(f"{prefix}.{f.name}={getattr(values, f.name)!r}; valid: {', '.join(map(str, choices))}")


def check(instance: Any, prefix: str) -> None:
    """:func:`check_fields` on a dataclass instance (its own class gives the ranges)."""
    check_fields(type(instance), instance, prefix)


# -- unknown keys ----------------------------------------------------------------------------
def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """``"did you mean eta?"`` for the closest of ``valid``, else ``"valid: a, b, ..."``."""
    valid = sorted(valid)
    close = difflib.get_close_matches(word, valid, n=1)
    return f"did you mean {close[0]}?" if close else f"valid: {', '.join(valid)}"


def check_keys(cls: type, keys: Iterable[str], prefix: str) -> None:
    """ConfigError for a key (e.g. added with ``+algorithm.etaa=2``) that ``cls`` has no field for."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in names:
            raise ConfigError(f"{prefix}.{key}: unknown key; {did_you_mean(str(key), names)}")


# -- cross-field rules -----------------------------------------------------------------------
def check_settings(settings: Any) -> None:
    """Rules that span fields or groups, on typed :class:`bench.schema.Settings`
    (field ranges are checked before: :func:`check_fields`)."""
    from algorithms import ALGORITHMS
    from envs import ENVS

    env, algo, model, optim = settings.env, settings.algorithm, settings.model, settings.optim
    options = {"env": {k: s.config for k, s in ENVS.items()}, "model": MODELS, "optim": OPTIMS, "logger": LOGGERS}
    for group, table in options.items():
        value = getattr(settings, group)
        if table.get(value.name) is not type(value):
            raise ConfigError(f"{group}.name={value.name!r} does not match the {group} option's schema; choose the "
                              f"option with {group}=NAME (valid: {', '.join(sorted(table))})")
    spec = ENVS[env.name]
    batch_kind = ALGORITHMS[algo.loss].batch
    if (spec.family == "offline") != (batch_kind == "transition"):
        offline = sorted(k for k, s in ALGORITHMS.items() if s.batch == "transition")
        if spec.family == "offline":
            raise ConfigError(f"env={env.name} trains offline algorithms only; algorithm={algo.name} is on-policy "
                              f"(valid: {', '.join(offline)})")
        raise ConfigError(f"algorithm={algo.name} is an offline algorithm ({', '.join(offline)}); it needs env=offline")
    want = FAMILY_MODEL.get(spec.family)
    if want is not None and model.name != want:
        raise ConfigError(f"env={env.name} needs model={want}, got model={model.name}")
    families = OPTIM_FAMILIES.get(optim.name)
    if families is not None and spec.family not in families:
        ok = sorted(e for e, s in ENVS.items() if s.family in families)
        raise ConfigError(f"optim={optim.name} splits parameters by name and runs only with env="
                          f"{'/'.join(ok)}; env={env.name} needs another optimizer (e.g. optim=adam)")
    valid = CANDIDATES_BY_ENV.get((env.name, batch_kind))
    if valid is not None and algo.candidates not in valid:
        raise ConfigError(f"algorithm.candidates={algo.candidates!r}: env={env.name} batches {batch_kind} losses "
                          f"(algorithm={algo.name}) only with candidates in {', '.join(valid)}")
    size_field = GROUP_SIZE_FIELD.get((env.name, algo.candidates)) if batch_kind == "group" else None
    if size_field is not None and getattr(env, size_field) < MIN_GROUP_SIZE:
        raise ConfigError(f"env.{size_field}={getattr(env, size_field)}: must be >= {MIN_GROUP_SIZE} for "
                          f"algorithm={algo.name} (candidates={algo.candidates}: K = env.{size_field} candidates "
                          "per group; a group of one gives no gradient)")
    if algo.candidates == "token" and batch_kind == "group" and getattr(env, "reward", None) == "terminal":
        raise ConfigError(f"env.reward=terminal: algorithm={algo.name} (candidates=token) needs a dense reward "
                          "(bag or sequential)")
    for count in ("n_arms", "n_actions"):
        if hasattr(env, count) and hasattr(env, "correct") and env.correct >= getattr(env, count):
            raise ConfigError(f"env.correct={env.correct}: must be < env.{count}={getattr(env, count)}")
    if model.name == "transformer" and model.d_model % model.n_heads:
        raise ConfigError(f"model.n_heads={model.n_heads}: must divide model.d_model={model.d_model}")


# -- Hydra composition errors ----------------------------------------------------------------
def composition_error_line(exc: BaseException) -> str:
    """One line for a Hydra composition error: a misspelled key names the closest valid
    key (``algorithm.etaa: unknown key; did you mean eta?``), a missing option lists the
    available ones, a wrong type names the key and the value's problem."""
    from omegaconf import DictConfig
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = exc.__cause__
    options = getattr(exc, "options", None)
    if options is not None:  # MissingConfigException: an option that does not exist
        missing = getattr(exc, "missing_cfg_file", None) or ""
        group, _, name = str(missing).rpartition("/")
        hint = did_you_mean(name, options) if name else ""
        close = f"{hint} " if hint.startswith("did you mean") else ""
        return f"{group}={name}: no such option; {close}Available options in '{group}': {', '.join(options)}"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and getattr(cause, "key", None) is not None:
        parent = getattr(cause, "parent_node", None)
        full_key = getattr(cause, "full_key", None) or str(cause.key)
        if isinstance(parent, DictConfig):
            return f"{full_key}: unknown key; {did_you_mean(str(cause.key), [str(k) for k in parent.keys()])}"
    if isinstance(cause, OmegaConfBaseException):
        full_key = getattr(cause, "full_key", None)
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        return f"{full_key}: {first}" if full_key else first
    return _one_line(str(exc))


def _one_line(text: str) -> str:
    """Hydra's message on one line (the config search path listing dropped)."""
    text = text.split("Config search path:")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


__all__ = ["CANDIDATES_BY_ENV", "FAMILY_MODEL", "GROUP_SIZE_FIELD", "MIN_GROUP_SIZE", "OPTIM_FAMILIES",
           "RANGE_KEYS", "check", "check_fields", "check_keys", "check_settings", "check_value",
           "composition_error_line", "describe_range", "did_you_mean", "field_range", "in_range", "is_numeric",
           "numeric_fields"]
