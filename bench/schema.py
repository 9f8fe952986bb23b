"""Typed configuration: frozen dataclass schemas registered in Hydra's ConfigStore.

Every config group option validates against a schema:

* ``algorithm/*.yaml`` extends ``schema/algorithm/<loss>``: the common
  :class:`AlgorithmBase` fields plus the fields of that loss' params dataclass
  from the :data:`algorithms.ALGORITHMS` registry (so a misspelled key or a
  wrong type is rejected at composition time);
* ``env/*.yaml`` extends ``schema/env/<name>`` built from :data:`envs.ENVS`;
* ``model/``, ``optim/``, ``logger/`` options extend the dataclasses below.

The frozen dataclasses are stored as writable OmegaConf nodes (Hydra must merge
overrides into them); :func:`to_settings` turns the composed config into frozen
dataclass instances, so losses and envs never see a DictConfig.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from algorithms import ALGORITHMS
from bench.models.lm import LMConfig
from bench.models.mlp import MlpModelConfig
from bench.models.offline import OfflineMlpConfig
from envs import ENVS

CANDIDATES = ("single", "sampled", "all", "label", "token")


@dataclass(frozen=True)
class AlgorithmBase:
    """Fields every algorithm option has, besides its loss hyperparameters.

    name:       display name (tables, W&B job_type), e.g. ``tpo_token``.
    loss:       key of :data:`algorithms.ALGORITHMS`.
    epochs:     full-batch gradient epochs per rollout batch (paper: 4; DG 1).
    candidates: how a family forms the loss' batch: ``single`` (one sample per
                context), ``sampled`` (K sampled candidates per group),
                ``all`` (every action, scored), ``label`` (every action, scored
                by the true label: the CE oracle), ``token`` (K next-token
                candidates per prefix).
    """

    name: str = MISSING
    loss: str = MISSING
    epochs: int = field(default=1, metadata={"ge": 1})
    candidates: str = "single"


@dataclass(frozen=True)
class RunConfig:
    """Run-level settings. ``seeds`` seeds (``seed0`` … ``seed0+seeds−1``) run
    batched in one process."""

    seeds: int = field(default=1, metadata={"ge": 1})
    seed0: int = field(default=0, metadata={"ge": 0})
    steps: int = field(default=100, metadata={"ge": 1})
    log_every: int = field(default=1, metadata={"ge": 1})
    device: str = "cpu"
    threads: int = field(default=1, metadata={"ge": 1})  # torch intra-op threads per process (1 on small CPUs)
    root: str = "runs"        # records go to <root>/<experiment>/<scale>/<run>/
    progress: bool = True     # progress bar (auto-silent when stdout is not a terminal)
    # save task/optimizer/RNG state every N steps (0: off); reruns resume from it
    checkpoint_every: int = field(default=0, metadata={"ge": 0})
    # seeds trained together in one batch; 0: auto (all that fit in memory)
    seeds_per_batch: int = field(default=0, metadata={"ge": 0})
    autocast: str = "none"    # opt-in: "bf16" runs rollouts and training forwards under torch.autocast
    tf32: bool = False        # opt-in, CUDA only: TF32 matrix products
    compile: bool = False     # opt-in: torch.compile the per-epoch loss (training forward + loss)


@dataclass(frozen=True)
class TableModelConfig:
    """The tabular policy: one free logit per (context, action)."""

    name: str = "table"


@dataclass(frozen=True)
class NormalisedStepConfig:
    """z ← z + lr·g/‖g‖ per seed (paper §2: α = 0.1)."""

    name: str = "normalised_step"
    lr: float = field(default=0.1, metadata={"gt": 0})


@dataclass(frozen=True)
class AdamConfig:
    """torch.optim.Adam."""

    name: str = "adam"
    lr: float = field(default=1e-3, metadata={"gt": 0})
    beta1: float = field(default=0.9, metadata={"ge": 0, "lt": 1})
    beta2: float = field(default=0.999, metadata={"ge": 0, "lt": 1})
    eps: float = field(default=1e-8, metadata={"gt": 0})


@dataclass(frozen=True)
class WandbLoggerConfig:
    """Weights & Biases mirror of the local records.

    mode: ``offline`` (default; no network, ``wandb sync`` later), ``online``
    or ``disabled``. One W&B run per seed, named ``{algorithm}-{env}-s{seed}``,
    group = experiment, job_type = algorithm; at most ``max_seed_runs`` seeds
    of a batched run are mirrored (−1: all). dir: where W&B writes its files
    (None: ``<run.root>/wandb``, beside the local records).
    """

    name: str = "wandb"
    project: str = "tpo-bench"
    entity: Optional[str] = None
    mode: str = "offline"
    dir: Optional[str] = None
    max_seed_runs: int = field(default=10, metadata={"ge": -1})
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NoLoggerConfig:
    """Local records only."""

    name: str = "none"


@dataclass(frozen=True)
class TransformerModelConfig:
    """Causal transformer policy of the sequence tasks (:class:`bench.models.transformer.TransformerPolicy`).

    n_heads: the paper's text says 4, the reference code uses 2; the default follows the code (2).
    """

    name: str = "transformer"
    d_model: int = field(default=64, metadata={"ge": 1})
    n_layers: int = field(default=2, metadata={"ge": 1})
    n_heads: int = field(default=2, metadata={"ge": 1})   # must divide d_model
    d_ff: int = field(default=256, metadata={"ge": 1})
    ln_eps: float = field(default=1e-6, metadata={"gt": 0})
    # width of the learned-baseline MLP V(x) (DRO-V, REINFORCE-LB only; not the policy)
    value_hidden: int = field(default=64, metadata={"ge": 1})


@dataclass(frozen=True)
class MuonConfig:
    """Muon on the split's matrices + AdamW-Nesterov (no weight decay) on the rest, same lr
    (:func:`bench.optim.build_optimizer`). split: ``reference`` (attention kernels under AdamW,
    as in the reference code) or ``all-matrices``."""

    name: str = "muon"
    lr: float = field(default=1e-3, metadata={"gt": 0})
    split: str = "reference"
    momentum: float = field(default=0.95, metadata={"ge": 0, "lt": 1})
    nesterov: bool = True
    ns_steps: int = field(default=5, metadata={"ge": 1})
    ns_coeffs: list[float] = field(default_factory=lambda: [3.4445, -4.7750, 2.0315])
    adam_beta1: float = field(default=0.9, metadata={"ge": 0, "lt": 1})
    adam_beta2: float = field(default=0.999, metadata={"ge": 0, "lt": 1})
    adam_eps: float = field(default=1e-8, metadata={"gt": 0})
    # optax.contrib.muon (the reference's optimizer): Newton–Schulz ε and bias-corrected Nesterov momentum;
    # eps=1e-7 with bias_correction=false is the suite's earlier Muon (bench.optim.muon)
    eps: float = field(default=1e-8, metadata={"gt": 0})
    bias_correction: bool = True


MODELS: dict[str, type] = {"table": TableModelConfig, "transformer": TransformerModelConfig,
                           "mlp": MlpModelConfig, "offline_mlp": OfflineMlpConfig, "lm": LMConfig}
OPTIMS: dict[str, type] = {"normalised_step": NormalisedStepConfig, "adam": AdamConfig, "muon": MuonConfig}
LOGGERS: dict[str, type] = {"wandb": WandbLoggerConfig, "none": NoLoggerConfig}


@dataclass
class BenchConfig:
    """Top-level schema. ``algorithm_overrides`` maps an algorithm name to
    values that an experiment sets for that algorithm only (e.g. the paper's
    R − 0.5 baseline for PG and DG in the tabular bandit)."""

    experiment: str = "adhoc"
    scale: str = "quick"
    algorithm: Any = MISSING
    env: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    logger: Any = MISSING
    run: RunConfig = field(default_factory=RunConfig)
    algorithm_overrides: dict[str, Any] = field(default_factory=dict)
    engine: Any = MISSING   # bench.engines.ENGINE_SCHEMAS: native (default) | trl | verl


def algorithm_schema(key: str) -> type:
    """Frozen dataclass: :class:`AlgorithmBase` fields + the loss' params fields (with their
    range metadata, read by :mod:`bench.validate`)."""
    spec = ALGORITHMS[key]
    base = {f.name for f in dataclasses.fields(AlgorithmBase)}
    hints = typing.get_type_hints(spec.params)
    extra = []
    for f in dataclasses.fields(spec.params):
        if f.name in base:
            raise TypeError(f"{spec.params.__name__}.{f.name} clashes with an AlgorithmBase field")
        kept = (field(default=f.default, metadata=f.metadata) if f.default is not dataclasses.MISSING
                else field(default_factory=f.default_factory, metadata=f.metadata))  # ranges travel along
        extra.append((f.name, hints[f.name], kept))
    cls = dataclasses.make_dataclass(f"{spec.params.__name__.removesuffix('Params')}Algorithm", extra,
                                     bases=(AlgorithmBase,), frozen=True)
    cls.__module__ = __name__
    return cls


def _writable(cls: type) -> DictConfig:
    node = OmegaConf.structured(cls)
    _clear_readonly(node)
    return node


def _clear_readonly(node: Any) -> None:
    if OmegaConf.is_config(node):
        OmegaConf.set_readonly(node, None)
        for key in node.keys() if OmegaConf.is_dict(node) else range(len(node)):
            _clear_readonly(node._get_node(key))


ALGORITHM_SCHEMAS: dict[str, type] = {key: algorithm_schema(key) for key in ALGORITHMS}
globals().update({cls.__name__: cls for cls in ALGORITHM_SCHEMAS.values()})  # importable: pickled by reference


def register() -> None:
    """Put every schema into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=_writable(BenchConfig))
    for group, table in (("algorithm", ALGORITHM_SCHEMAS), ("env", {k: s.config for k, s in ENVS.items()}),
                         ("model", MODELS), ("optim", OPTIMS), ("logger", LOGGERS), ("engine", _engines())):
        for name, cls in table.items():
            cs.store(group=f"schema/{group}", name=name, node=_writable(cls))
    OmegaConf.register_new_resolver("mnist_source", _mnist_source, replace=True)


def _engines() -> dict[str, type]:
    from bench.engines import ENGINE_SCHEMAS   # imports no engine
    return ENGINE_SCHEMAS


def _mnist_source(source: str, data_dir: Optional[str] = None) -> str:
    """``${mnist_source:SOURCE,DATA_DIR}``: the MNIST source a run uses ("auto" resolved), so it is recorded."""
    from envs.mnist import resolve_source
    return resolve_source(str(source), data_dir)


# -- conversion to typed settings ---------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The composed config as frozen dataclasses (what the harness builds from)."""

    experiment: str
    scale: str
    algorithm: Any     # ALGORITHM_SCHEMAS[loss] instance
    loss_params: Any   # ALGORITHMS[loss].params instance
    env: Any           # ENVS[name].config instance
    model: Any
    optim: Any
    logger: Any
    run: RunConfig
    engine: Any = None  # bench.engines.ENGINE_SCHEMAS instance (None: native)


class ConfigError(ValueError):
    """A config that composes but cannot be built (the message names the valid choices)."""


def command_line_keys(group: str = "algorithm") -> set[str]:
    """Top-level keys of ``group`` set on the command line (``algorithm.eta=2`` → ``eta``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    keys = set()
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith(group + "."):
            keys.add(key[len(group) + 1:].split(".")[0])
    return keys


def merged_algorithm(cfg: DictConfig) -> DictConfig:
    """``cfg.algorithm`` with the experiment's ``algorithm_overrides[name]`` merged in
    (validated). A key also set on the command line (``algorithm.epochs=2``) keeps
    the command-line value: the user's last word wins over the experiment file."""
    extra = cfg.get("algorithm_overrides", {}).get(cfg.algorithm.name)
    if extra:
        explicit = command_line_keys()
        extra = {k: v for k, v in extra.items() if k not in explicit}
    if not extra:
        return cfg.algorithm
    try:
        return OmegaConf.merge(cfg.algorithm, extra)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise ConfigError(f"algorithm_overrides.{cfg.algorithm.name}: {exc}") from None


def to_settings(cfg: DictConfig) -> Settings:
    """Typed, frozen settings from a composed config, validated before anything is built:
    unknown keys, field ranges (:func:`bench.validate.check_fields`), choices, then the
    cross-field rules (:func:`bench.validate.check_settings`). Raises :class:`ConfigError`
    with one line naming the field, its value and what is allowed."""
    from bench import validate
    from bench.precision import AUTOCAST_DTYPES

    algo_node = merged_algorithm(cfg)
    loss_key = algo_node.loss
    if loss_key not in ALGORITHMS:
        raise ConfigError(f"algorithm.loss={loss_key!r}; valid: {', '.join(sorted(ALGORITHMS))}")
    nodes = {"algorithm": algo_node, "env": cfg.env, "model": cfg.model, "optim": cfg.optim,
             "logger": cfg.logger, "run": cfg.run}
    if cfg.get("engine") is not None:
        nodes["engine"] = cfg.engine
    for group, node in nodes.items():
        cls = OmegaConf.get_type(node)
        if dataclasses.is_dataclass(cls):
            validate.check_keys(cls, node.keys(), group)
            validate.check_fields(cls, node, group)
    schema = OmegaConf.get_type(algo_node)   # compared by name: a launcher may rebuild the class in its job
    if dataclasses.is_dataclass(schema) and schema.__name__ != ALGORITHM_SCHEMAS[loss_key].__name__:
        raise ConfigError(f"algorithm.loss={loss_key!r} does not fit algorithm={algo_node.name}; "
                          f"choose the option instead (algorithm={loss_key})")
    typed = {group: _typed(group, node) for group, node in nodes.items()}
    algorithm = typed["algorithm"]
    if algorithm.candidates not in CANDIDATES:
        raise ConfigError(f"algorithm.candidates={algorithm.candidates!r}; valid: {', '.join(CANDIDATES)}")
    if typed["run"].autocast not in AUTOCAST_DTYPES:
        raise ConfigError(f"run.autocast={typed['run'].autocast!r}; valid: {', '.join(AUTOCAST_DTYPES)}")
    params_cls = ALGORITHMS[loss_key].params
    try:
        loss_params = params_cls(**{f.name: getattr(algorithm, f.name) for f in dataclasses.fields(params_cls)})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"algorithm={algorithm.name}: {exc}") from None
    settings = Settings(experiment=cfg.experiment, scale=cfg.scale, algorithm=algorithm, loss_params=loss_params,
                        env=typed["env"], model=typed["model"], optim=typed["optim"], logger=typed["logger"],
                        run=typed["run"], engine=typed.get("engine"))
    validate.check_settings(settings)
    return settings


def _typed(group: str, node: DictConfig) -> Any:
    """``OmegaConf.to_object`` of one group; a dataclass' own check (``__post_init__``) becomes a ConfigError."""
    try:
        return OmegaConf.to_object(node)
    except (TypeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(text if text.startswith(f"{group}.") else f"{group}: {text}") from None


def record_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config written to ``config.yaml``: overrides merged into
    ``algorithm``, ``algorithm_overrides`` dropped (it is now in ``algorithm``)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    out["algorithm"] = OmegaConf.to_container(merged_algorithm(cfg), resolve=True)
    out.pop("algorithm_overrides", None)
    if (out.get("engine") or {}).get("name", "native") == "native":
        out.pop("engine", None)   # the native loop's records (and identity hashes) are as before engines existed
    return out
