"""Execute one composed configuration: build → train → records (+ W&B mirror)."""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig

from bench import batching, checkpoint, engines
from bench import metrics as M
from bench.build import seed_list
from bench.loop import NonFinite
from bench.precision import configure
from bench.progress import RunProgress, say
from bench.records import NON_IDENTITY, RunWriter, config_hash, read_run
from bench.schema import Settings, record_config, to_settings
from bench.wandb_mirror import WandbMirror

SHARED_MATCHING = "shared"


def matching_is_shared(record: dict[str, Any]) -> bool:
    """Prompt/interaction matching changes only single-rollout methods (batch B·K,
    lr·√K); a grouped method's run is the same under both, so it is run once."""
    return "matching" in record.get("env", {}) and record["algorithm"].get("candidates") != "single"


def identity(record: dict[str, Any]) -> str:
    """Config hash over everything that can move a result (not logging/paths)."""
    ident = {section: {k: v for k, v in values.items() if f"{section}.{k}" not in NON_IDENTITY}
             if isinstance(values, dict) else values
             for section, values in record.items() if section not in NON_IDENTITY}
    if matching_is_shared(record):
        ident["env"] = {**record["env"], "matching": SHARED_MATCHING}
    return config_hash(ident)


def run_dir(settings: Settings, ident: str) -> Path:
    """``<root>/<experiment>/<scale>/<algorithm>-<env>-<hash>``."""
    name = f"{settings.algorithm.name}-{settings.env.name}-{ident}"
    return Path(settings.run.root) / settings.experiment / settings.scale / name


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run one configuration (all its seeds batched); return its summary.

    A directory whose record says ``completed`` for the same identity hash is
    not rerun (resume). The config is validated first (:func:`bench.schema.to_settings`
    raises :class:`bench.schema.ConfigError`), before any directory exists; a run that
    fails before its first record (e.g. missing data) leaves no directory behind."""
    settings = to_settings(cfg)
    record = record_config(cfg)
    if not engines.writes_records(settings):   # rank > 0 of a multi-process engine launch: rank 0 records
        return engines.train_unrecorded(settings, record)
    ident = identity(record)
    out = run_dir(settings, ident)
    label = f"{settings.algorithm.name}-{settings.env.name}"
    new = [p for p in (out, *out.parents) if not p.exists()]   # the directories this call creates
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _exclusive(out / ".lock"):  # parallel jobs of one identity (shared matching) run it once
            return _execute_locked(cfg, settings, record, ident, out, label)
    except BaseException:
        _remove_if_bare(new)
        raise


def _remove_if_bare(created: list[Path]) -> None:
    """Remove the directories a failed run created (deepest first) while they hold nothing but its lock."""
    for path in created:
        with contextlib.suppress(OSError):
            if path.is_dir() and {p.name for p in path.iterdir()} <= {".lock"}:
                (path / ".lock").unlink(missing_ok=True)
                path.rmdir()


@contextlib.contextmanager
def _exclusive(path: Path):
    """An exclusive advisory lock on ``path`` for the duration of the block."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _execute_locked(cfg: DictConfig, settings: Settings, record: dict[str, Any], ident: str, out: Path,
                    label: str) -> dict[str, Any]:
    previous = read_run(out)
    if previous is not None and previous.status == "completed" and previous.summary.get("config_hash") == ident:
        say(f"[bench] {label}: completed record found, not rerun ({out})")
        return previous.summary
    torch.set_num_threads(settings.run.threads)
    precision = configure(settings.run)
    seeds = seed_list(settings)
    state = _resume_state(out, ident, previous, settings)
    per_chunk = engines.seeds_per_chunk(settings) or batching.seeds_per_batch(settings, len(seeds))
    chunks = state["chunks"] if state else batching.chunks(seeds, per_chunk)
    first = state["chunk"] if state else 0
    resume_after = state["step"] if state else None
    prior_wall = float(previous.summary.get("wall_time_s") or 0.0) if state else 0.0
    build = engines.builder(settings)        # bench.build.build, or the engine's (engine=trl|verl)
    built = build(settings, chunks[first])   # bad input (e.g. missing data) fails here, before any record
    mirror = WandbMirror(settings.logger, record, seeds, settings.experiment, settings.algorithm.name,
                         settings.env.name, root=settings.run.root)
    status = "failed"
    say(f"[bench] {label}: {len(seeds)} seeds x {settings.run.steps} steps -> {out}"
        + (f" ({len(chunks)} chunks of ≤ {len(chunks[0])} seeds)" if len(chunks) > 1 else "")
        + (f" (resuming after step {resume_after} of chunk {first})" if state else ""))
    with RunWriter(out, record, seeds, device=settings.run.device, identity=ident, resume_after=resume_after,
                   prior_wall_s=prior_wall, extra_provenance={"precision": precision.provenance(),
                                                              "seed_chunks": chunks},
                   finished_seeds=[s for c in chunks[:first] for s in c],
                   resume_seeds=chunks[first] if state else None) as rec, \
            RunProgress(label, settings.run.steps * (len(chunks) - first), settings.run.progress) as bar:
        try:
            for i in range(first, len(chunks)):
                built = built or build(settings, chunks[i])
                _train_chunk(settings, precision, ident, out, rec, mirror, bar, chunks, i, built,
                             state if (state and i == first) else None, (i - first) * settings.run.steps)
                built = None   # free this chunk's tensors before the next chunk is built
            status = "completed"
            checkpoint.remove(out)
        except NonFinite as exc:
            rec.mark_nan(exc.step, ", ".join(exc.keys))
            status = "nan"
            say(f"[bench] {label}: stopped, {exc}; record says status=nan")
        finally:
            mirror.finish(status)
    summary = read_run(out).summary
    say(f"[bench] {label}: {summary['status']} in {summary['wall_time_s']:.2f}s")
    return summary


def _train_chunk(settings: Settings, precision: Any, ident: str, out: Path, rec: RunWriter, mirror: WandbMirror,
                 bar: RunProgress, chunks: list[list[int]], i: int, built: Any, state: Any, bar_offset: int) -> None:
    """Train seed chunk ``i`` (``built`` for its seeds; from ``state``'s checkpoint if given), logging into ``rec``."""
    seeds = chunks[i]
    start = checkpoint.restore(state, built.task, built.optimizer) if state is not None else 0

    def on_log(step: int, logged: dict[str, torch.Tensor]) -> None:
        keys = list(logged)
        table = torch.stack([logged[k].detach().float().reshape(-1).cpu() for k in keys], 1).tolist()
        per_seed = {seed: dict(zip(keys, row)) for seed, row in zip(seeds, table)}
        rec.log({"step": step, "seed": seed, **vals} for seed, vals in per_seed.items())
        means = {k: sum(r[k] for r in per_seed.values()) / len(seeds) for k in keys}
        rec.progress(step + 1, means)
        mirror.log(step, per_seed)
        bar.update(bar_offset + step, {k.split("/")[-1]: means[k] for k in (M.ERROR, M.EVAL_ERROR) if k in means})

    def on_step_end(step: int) -> None:
        every = settings.run.checkpoint_every
        if every > 0 and (step + 1) % every == 0 and step < settings.run.steps - 1:
            checkpoint.save(out, step, ident, built.task, built.optimizer, chunk=i, chunks=chunks)

    built.train(built.task, built.loss, built.optimizer, steps=settings.run.steps, epochs=built.epochs,
          log_every=settings.run.log_every, on_log=on_log, start_step=start,
          on_step_end=on_step_end if checkpoint.supports(built.task) else None, precision=precision)
    if settings.run.checkpoint_every > 0 and i + 1 < len(chunks):
        checkpoint.save_chunk_start(out, ident, i + 1, chunks)


def _resume_state(out: Path, ident: str, previous: Any, settings: Settings) -> Optional[dict[str, Any]]:
    """The checkpoint an unfinished record of the same config resumes from, else None.

    Its ``chunk``/``chunks`` say which seed chunk to continue (a checkpoint written
    before chunking existed counts as chunk 0 of one chunk of all seeds)."""
    if settings.run.checkpoint_every <= 0 or previous is None:
        return None
    state = checkpoint.load(out, ident)
    if state is None:
        return None
    state.setdefault("chunk", 0)
    if not state.get("chunks"):
        state["chunks"] = [seed_list(settings)]
    return state
