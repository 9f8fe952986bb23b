"""``bench``: the Hydra entry point.

    bench experiment=NAME [scale=quick|paper] [key=value ...]   # a whole paper table
    bench algorithm=A env=E [key=value ...] [-m]                # single runs / ad-hoc sweeps
    bench --help                                                # experiments, algorithms, envs

An experiment file sets ``hydra.mode: MULTIRUN`` and its sweep grid, so one
command runs the grid; :class:`ReportOnSweepEnd` then writes its tables.
"""
from __future__ import annotations

import json
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
        "  bench-report NAME [--scale S]                              rebuild tables from records\n"
        "  bench-data quick | list | generate ID                      offline-RL datasets (env=offline)\n\n"
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
    """After a multirun, rebuild the sweep's tables from its records and print them.

    An experiment's report covers its whole expected grid (missing runs named) and goes to
    ``<run.root>/<experiment>/<scale>/report/``; ``results/`` is written only with
    ``hydra.callbacks.report.publish=true`` (an incomplete grid does not replace a committed
    table unless ``hydra.callbacks.report.force=true``). An ad-hoc sweep (no ``experiment=``)
    reports exactly the runs of that sweep, one row per configuration. Each job leaves the
    identity hash of its run in its Hydra job directory (``bench_run.json``), so a run reused
    from an earlier sweep still belongs to this one.
    """

    def __init__(self, publish: bool = False, force: bool = False) -> None:
        self.publish = bool(publish)
        self.force = bool(force)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobStatus

        from bench.report.api import JOB_RUN_FILE

        try:
            if job_return.status != JobStatus.COMPLETED or not HydraConfig.initialized():
                return
            summary = job_return.return_value
            if not isinstance(summary, dict) or "config_hash" not in summary:
                return
            out = Path(HydraConfig.get().runtime.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / JOB_RUN_FILE).write_text(json.dumps({
                "config_hash": summary["config_hash"], "status": summary.get("status"),
                "experiment": config.experiment, "scale": config.scale}), encoding="utf-8")
        except Exception as exc:  # noqa: BLE001 - bookkeeping must never fail a job
            print(f"[bench] could not note the job's run for the sweep report: {exc}", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench.report import build_report
        from bench.report.api import ADHOC
        from bench.report.grid import command_overrides

        command = "bench " + " ".join(sys.argv[1:])
        adhoc = config.experiment == ADHOC
        try:
            sweep = Path(config.hydra.sweep.dir).resolve() if adhoc else None
            result = build_report(config.experiment, config.scale, Path(config.run.root), Path("results"),
                                  command=command, publish=self.publish and not adhoc, force=self.force,
                                  overrides=command_overrides(list(config.hydra.overrides.task)), sweep=sweep)
        except Exception as exc:  # noqa: BLE001 - the runs are saved; say how to rebuild
            again = f"bench-report {ADHOC} --scale {config.scale} --sweep {config.hydra.sweep.dir}" if adhoc else \
                f"bench-report {config.experiment} --scale {config.scale}"
            print(f"[bench] table not built: {type(exc).__name__}: {exc}\n[bench] rebuild with: {again}",
                  file=sys.stderr)
            return
        print(result.markdown)
        print(f"[bench] tables and figures written to {result.out_dir}/")
        if self.publish:
            print(f"[bench] {result.publish_note}")
        elif not adhoc:
            print(f"[bench] results/ unchanged; publish with: bench-report {config.experiment} --scale "
                  f"{config.scale} --publish")


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> Any:
    from bench.run import execute

    try:
        return execute(cfg)
    except (ConfigError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"bench: error: {msg}", file=sys.stderr)
        discard_job_dir()
        sys.exit(2)


def discard_job_dir() -> None:
    """Remove the job's Hydra output folder (``<run.root>/_hydra/<date>/<time>[/<job>]``) when it holds only
    Hydra's own files (``.hydra/`` and logs), so a refused config leaves nothing behind; emptied parents
    up to ``_hydra`` go too (``_hydra`` itself when it is left empty). Anything else in the folder keeps it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    out = Path(HydraConfig.get().runtime.output_dir)
    files = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []
    if any(".hydra" not in p.relative_to(out).parts[:1] and p.suffix != ".log" for p in files):
        return
    remove_hydra_dir(out)


def remove_hydra_dir(path: Path) -> None:
    """Remove a Hydra output folder and then its parents that it left empty, up to and including ``_hydra``."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    for parent in path.parents:
        if not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()
        if parent.name == "_hydra":
            break


def register_all() -> None:
    """Schemas and the help page into Hydra's ConfigStore (the sweeper, ``hydra/sweeper=bench``, registers
    itself from ``hydra_plugins/tpo_bench/sweeper.py`` when Hydra scans its plugins)."""
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
    """Console entry point ``bench``. A composition error (misspelled key, unknown option,
    wrong type) exits 2 with one line (``bench: error: algorithm.etaa: unknown key; did you
    mean eta?``); ``HYDRA_FULL_ERROR=1`` keeps Hydra's own report with its stack trace."""
    from hydra.errors import CompactHydraException

    from bench.validate import composition_error_line

    register_all()
    ours = "HYDRA_FULL_ERROR" not in os.environ
    if ours:  # Hydra then raises composition errors to us instead of printing its multi-line report
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    except CompactHydraException as exc:
        if not ours:
            raise
        print(f"bench: error: {composition_error_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except ConfigError as exc:   # a sweep refused before its first job (hydra_plugins/tpo_bench/sweeper.py)
        if not ours:
            raise
        print(f"bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if ours:
            os.environ.pop("HYDRA_FULL_ERROR", None)


if __name__ == "__main__":
    main()
