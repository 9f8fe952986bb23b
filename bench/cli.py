"""``bench``: the Hydra entry point.

    bench experiment=NAME [scale=quick|paper] [key=value ...]   # a whole paper table
    bench algorithm=A env=E [key=value ...] [-m]                # single runs / ad-hoc sweeps
    bench --help                                                # experiments, algorithms, envs

An experiment file sets ``hydra.mode: MULTIRUN`` and its sweep grid, so one
command runs the grid; :class:`ReportOnSweepEnd` then writes its tables.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# W&B offline unless the user chose a mode: set before anything imports wandb.
os.environ.setdefault("WANDB_MODE", "offline")

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from hydra.experimental.callback import Callback  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from algorithms import ALGORITHMS  # noqa: E402
from bench.schema import ConfigError, register  # noqa: E402
from envs import ENVS  # noqa: E402

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def describe_yaml(path: Path) -> str:
    """First comment line of a config file that is not a ``@package`` directive."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line.startswith("#"):
                break
            text = line.lstrip("#").strip()
            if text and not text.startswith("@package"):
                return text
    except OSError:
        pass
    return ""


def experiments() -> dict[str, str]:
    """Experiment name → description, from ``conf/experiment/*.yaml``."""
    return {p.stem: describe_yaml(p) for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))}


def _listing(title: str, items: dict[str, str]) -> str:
    width = max((len(k) for k in items), default=0)
    lines = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in items.items())
    return f"{title}:\n{lines}\n"


def help_text() -> str:
    """The ``bench --help`` page (Hydra help template; ``$CONFIG`` is Hydra's)."""
    algos = {p.stem: describe_yaml(p) for p in sorted((CONF_DIR / "algorithm").glob("*.yaml"))}
    envs = {k: v.summary for k, v in sorted(ENVS.items())}
    groups = {g: ", ".join(sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")))
              for g in ("model", "optim", "logger", "launcher", "scale")}
    return (
        "bench - tpo-bench: policy-optimisation benchmark (TPO = Target Policy Optimization)\n\n"
        "Usage:\n"
        "  bench experiment=NAME [scale=quick|paper] [key=value ...]   run a paper table's whole grid\n"
        "  bench algorithm=A env=E [key=value ...] [-m]                single run / ad-hoc sweep\n"
        "  bench-report NAME [--scale S]                              rebuild tables from records\n\n"
        + _listing("Experiments (experiment=)", experiments()) + "\n"
        + _listing("Algorithms (algorithm=)", algos) + "\n"
        + _listing("Envs (env=)", envs) + "\n"
        + _listing("Other groups", groups) + "\n"
        + f"Losses in the registry: {', '.join(sorted(ALGORITHMS))}\n\n"
        "== Composed config (override any key with key=value) ==\n$CONFIG\n"
        "Hydra's own flags: bench --hydra-help\n"
    )


def _register_help() -> None:
    ConfigStore.instance().store(group="hydra/help", name="bench_help",
                                 node={"app_name": "bench", "header": "", "footer": "", "template": help_text()})


class ReportOnSweepEnd(Callback):
    """After a multirun, rebuild the experiment's tables from its records and print them."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench.report import build_report

        command = "bench " + " ".join(sys.argv[1:])
        try:
            result = build_report(config.experiment, config.scale, Path(config.run.root), Path("results"),
                                  command=command)
        except Exception as exc:  # noqa: BLE001 - the runs are saved; say how to rebuild
            print(f"[bench] table not built: {type(exc).__name__}: {exc}\n"
                  f"[bench] rebuild with: bench-report {config.experiment} --scale {config.scale}", file=sys.stderr)
            return
        print(result.markdown)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> Any:
    from bench.run import execute

    try:
        return execute(cfg)
    except (ConfigError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"bench: error: {msg}", file=sys.stderr)
        sys.exit(2)


def register_all() -> None:
    """Schemas and the help page into Hydra's ConfigStore."""
    register()
    _register_help()


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The composed config for ``bench <overrides>`` without running it
    (tests, notebooks and the benchmark command use this)."""
    from hydra import compose as hydra_compose, initialize_config_dir

    register_all()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return hydra_compose("config", overrides=list(overrides or []))


def main() -> None:
    """Console entry point ``bench``."""
    register_all()
    _hydra_main()


if __name__ == "__main__":
    main()
