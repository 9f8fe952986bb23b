"""Hydra's basic sweeper, with every job's settings validated before the first job is launched.

Hydra's :class:`~hydra._internal.core_plugins.basic_sweeper.BasicSweeper` composes each job of a batch before
launching it, which catches composition errors (a misspelled key, an unknown option) early; a value out of its
range, or a cross-field rule, is only checked when the job itself starts (:func:`bench.schema.to_settings`), so
in ``bench ... algorithm.eta=1,-1`` the first run would finish before the second is refused. This sweeper runs
:func:`~bench.schema.to_settings` on every composed job config during that same check: one bad job refuses the
whole sweep before any run starts (:class:`SweepRefused`, printed by :func:`bench.cli.main` as one line), and the
sweep folder Hydra made for it is removed again when it holds nothing else.

Selected by ``hydra/sweeper: bench`` in ``conf/config.yaml``; its options are the basic sweeper's
(``hydra.sweeper.params``, ``hydra.sweeper.max_batch_size``). Hydra loads sweepers only from the
``hydra_plugins`` namespace package, hence this module's place; Hydra's plugin scan imports it, which
registers the option.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence   # no `from __future__ import annotations`: Hydra's plugin scan
# executes this module outside sys.modules, where dataclasses cannot resolve string annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException

from bench.schema import ConfigError, to_settings


class SweepRefused(ConfigError):
    """A job of a sweep fails validation; raised before any job of the sweep is launched."""


@dataclass
class ValidatingSweeperConf:
    _target_: str = "hydra_plugins.tpo_bench.sweeper.ValidatingSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = field(default=None)


class ValidatingSweeper(BasicSweeper):
    """:class:`BasicSweeper` whose legality check also validates each job's settings (module doc)."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from bench.report.grid import remember_job   # here, not at the top: Hydra imports this module at every start
        from bench.validate import composition_error_line

        loader = self.hydra_context.config_loader
        launched = sum(len(b) for b in (self.overrides or [])[:max(self.batch_index - 1, 0)])
        for overrides in batch:
            try:
                cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
                to_settings(cfg)
            except (ConfigError, CompactHydraException) as exc:   # a range / rule, or a composition error
                if not launched:
                    _discard_sweep_dir(Path(self.config.hydra.sweep.dir))
                line = str(exc) if isinstance(exc, ConfigError) else composition_error_line(exc)
                jobs = [j for b in self.overrides or [batch] for j in b]   # the whole sweep
                job = [o for o in overrides if not all(o in other for other in jobs)] or list(overrides)
                total = len(jobs)
                ran = (f"{launched} of its {total} jobs ran in earlier batches, none of this batch's {len(batch)}"
                       if launched else f"none of the sweep's {total} jobs was launched")
                raise SweepRefused(f"{line} (job {' '.join(job)}; {ran})") from None
            remember_job(overrides, cfg)   # the sweep-end report's grid point, without composing it again


def _discard_sweep_dir(sweep_dir: Path) -> None:
    """Remove the sweep folder when it holds only Hydra's ``multirun.yaml``; emptied parents up to ``_hydra`` too."""
    from bench.cli import remove_hydra_dir

    if sweep_dir.is_dir() and all(p.name == "multirun.yaml" for p in sweep_dir.iterdir()):
        remove_hydra_dir(sweep_dir)


ConfigStore.instance().store(group="hydra/sweeper", name="bench", node=ValidatingSweeperConf, provider="tpo-bench")
