"""Local-first run records.

A run directory holds::

    config.yaml       resolved config (written first, atomically)
    provenance.json   git SHA + dirty flag, package versions, device, host, argv, start time,
                      the Hydra sweep (directory, job number) when run inside a multirun
    metrics.jsonl     one JSON object per line: {"step": int, "seed": int, "<metric>": float, ...}
    summary.json      {"status", "wall_time_s", "final", "error", "seeds", "steps_done", "config_hash", ...}

Crash safety: ``config.yaml``, ``provenance.json`` and ``summary.json`` are written
to a temporary file and moved into place with :func:`os.replace`, so each is
either absent or complete. ``summary.json`` is written with status ``running``
before the first step; a run killed at any instant therefore leaves either a
``completed``/``failed``/``nan`` summary or a ``running`` one (or none at all,
if killed before the first write). ``metrics.jsonl`` is append-only and flushed
per write; :func:`read_metrics` skips a torn last line.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import yaml

STATUSES = ("running", "completed", "failed", "nan")
CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SUMMARY_EVERY_S = 2.0
NON_IDENTITY = ("logger", "run.root", "run.progress", "run.checkpoint_every", "run.seeds_per_batch")
"""Dotted config keys that do not change what a run computes: left out of its identity hash."""
TRACKED_PACKAGES = ("torch", "numpy", "hydra-core", "omegaconf", "wandb", "pandas", "tpo-bench")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable 12-hex digest of a resolved config (key order independent)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(device: str = "cpu", extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Where and with what a run was produced."""
    versions = {}
    for pkg in TRACKED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    info = {
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "versions": versions,
        "python": platform.python_version(),
        "device": device,
        "device_name": _device_name(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "argv": list(sys.argv),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sweep": current_sweep(),
    }
    try:
        import torch
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    if extra:
        info.update(extra)
    return info


def current_sweep() -> Optional[dict[str, Any]]:
    """``{"dir": absolute Hydra sweep directory, "job": job number}`` when called inside a job of a
    Hydra multirun, else ``None``. Ad-hoc reports use it to show only the runs of one sweep."""
    try:
        from hydra.core.hydra_config import HydraConfig
        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        if str(hc.mode) != "RunMode.MULTIRUN":
            return None
        return {"dir": str(Path(hc.sweep.dir).resolve()), "job": hc.job.get("num")}
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return None


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch
            return torch.cuda.get_device_name(torch.device(device))
        except Exception:  # noqa: BLE001 - provenance must never fail a run
            return device
    return platform.processor() or platform.machine()


def _finite_or_none(x: Any) -> Any:
    """NaN and ±inf are stored as JSON null (strict JSON has no non-finite numbers)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class RunWriter:
    """Writes one run directory. Use as ``with RunWriter(...) as rec: rec.log(...)``.

    ``identity`` is the config hash to record (default: hash of ``config``).
    ``resume_after=k`` continues a run from its checkpoint at step k: metric
    rows of steps ≤ k are kept, later ones (recomputed after the resume) dropped;
    ``prior_wall_s`` is the wall time already spent before the resume. A run trained in
    chunks of seeds (:mod:`bench.batching`) resumes inside one chunk: ``finished_seeds``
    (the seeds of the chunks already done) keep all their rows, the seeds of the
    resumed chunk (``resume_seeds``, default: all others) keep rows of steps ≤ k, and
    rows of any other seed are dropped.
    Leaving the ``with`` block normally marks the run ``completed``; an exception
    marks it ``failed`` (the error text is kept) and re-raises; :meth:`mark_nan`
    records a NaN stop.
    """

    def __init__(self, run_dir: Path, config: Mapping[str, Any], seeds: Iterable[int],
                 device: str = "cpu", extra_provenance: Optional[Mapping[str, Any]] = None,
                 identity: Optional[str] = None, resume_after: Optional[int] = None,
                 prior_wall_s: float = 0.0, finished_seeds: Iterable[int] = (),
                 resume_seeds: Optional[Iterable[int]] = None):
        self.dir = Path(run_dir)
        self.config = dict(config)
        self.seeds = [int(s) for s in seeds]
        self.device = device
        self.extra_provenance = dict(extra_provenance or {})
        self.hash = identity or config_hash(self.config)
        self.resume_after = resume_after
        self.finished_seeds = {int(s) for s in finished_seeds}
        self.resume_seeds = None if resume_seeds is None else {int(s) for s in resume_seeds}
        self.prior_wall_s = float(prior_wall_s)
        self.steps_done = 0
        self.final: dict[str, float] = {}
        self._status = "running"
        self._error: Optional[str] = None
        self._t0 = 0.0
        self._fh = None
        self._last_summary = 0.0

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> "RunWriter":
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.resume_after is None:  # a rerun replaces an incomplete record, never appends to it
            for stale in (METRICS, SUMMARY):
                (self.dir / stale).unlink(missing_ok=True)
        else:  # resuming from a checkpoint: keep the rows up to it, drop the rest
            kept = [r for r in read_metrics(self.dir) if self._kept_on_resume(r)]
            atomic_write_text(self.dir / METRICS, "".join(json.dumps(r) + "\n" for r in kept))
            self.steps_done = self.resume_after + 1
        atomic_write_text(self.dir / CONFIG, yaml.safe_dump(self.config, sort_keys=False))
        atomic_write_text(self.dir / PROVENANCE, json.dumps(provenance(self.device, self.extra_provenance), indent=2))
        self._t0 = time.perf_counter()
        self._write_summary()
        self._fh = open(self.dir / METRICS, "a", encoding="utf-8")
        return self

    def _kept_on_resume(self, row: Mapping[str, Any]) -> bool:
        if row.get("seed") in self.finished_seeds:
            return True
        in_chunk = self.resume_seeds is None or row.get("seed") in self.resume_seeds
        return in_chunk and row["step"] <= self.resume_after

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._fh is not None:
            self._fh.close()
        if exc is not None and self._status == "running":
            self._status = "failed"
            self._error = f"{exc_type.__name__}: {exc}"
        elif self._status == "running":
            self._status = "completed"
        self._write_summary()
        return False

    # -- writing -------------------------------------------------------------
    def log(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append metric rows (each with ``step`` and ``seed``) and flush."""
        assert self._fh is not None, "RunWriter.log outside of `with`"
        lines = [json.dumps({k: _finite_or_none(v) for k, v in r.items()}, allow_nan=False) for r in rows]
        if lines:
            self._fh.write("\n".join(lines) + "\n")
            self._fh.flush()

    def progress(self, steps_done: int, final: Optional[Mapping[str, float]] = None) -> None:
        """Record progress; the ``running`` summary is rewritten at most every
        ``SUMMARY_EVERY_S`` seconds so that a live or killed run shows how far it got."""
        self.steps_done = int(steps_done)
        if final is not None:
            self.final = {k: float(v) for k, v in final.items()}
        now = time.perf_counter()
        if now - self._last_summary >= SUMMARY_EVERY_S:
            self._write_summary()

    def mark_nan(self, step: int, what: str) -> None:
        """Stop the run with status ``nan`` and a message saying where."""
        self._status = "nan"
        self._error = f"non-finite value at step {step}: {what}"

    def _write_summary(self) -> None:
        summary = {
            "status": self._status,
            "config_hash": self.hash,
            "seeds": self.seeds,
            "steps_done": self.steps_done,
            "wall_time_s": round(self.prior_wall_s + (time.perf_counter() - self._t0 if self._t0 else 0.0), 4),
            "resumed_after_step": self.resume_after,
            "final": {k: _finite_or_none(v) for k, v in self.final.items()},
            "error": self._error,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(self.dir / SUMMARY, json.dumps(summary, indent=2))
        self._last_summary = time.perf_counter()


# -- reading -------------------------------------------------------------------
@dataclass
class RunRecord:
    """What :func:`read_run` recovers from a run directory, whatever state it was left in."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.summary.get("status", "running")


def read_json(path: Path) -> Optional[dict[str, Any]]:
    """Parse a JSON object file; ``None`` when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


def read_run(run_dir: Path) -> Optional[RunRecord]:
    """Read a run directory; ``None`` if it has no readable config (not a run).

    A missing or unreadable ``summary.json`` reads as status ``running``
    (recognisably incomplete), never as an error.
    """
    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    summary = read_json(run_dir / SUMMARY) or {"status": "running"}
    if summary.get("status") not in STATUSES:
        summary["status"] = "running"
    return RunRecord(run_dir, config, summary, read_json(run_dir / PROVENANCE) or {})


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All well-formed metric rows of a run; torn or corrupt lines are skipped."""
    rows: list[dict[str, Any]] = []
    try:
        fh = open(Path(run_dir) / METRICS, encoding="utf-8")
    except OSError:
        return rows
    with fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
    return rows


def find_runs(root: Path) -> list[Path]:
    """Run directories (those holding a ``config.yaml``) below ``root``, sorted."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p.parent for p in root.rglob(CONFIG) if not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))
