"""``bench-perf --reference DIR``: the suite and the TPO paper's JAX reference implementation, timed side by side.

    bench-perf --reference /path/to/tpo [--reference-python /path/to/venv/bin/python] [--repeats 3]
               [--only NAME ...] [--out results/perf]

``DIR`` is a checkout of the reference implementation (github.com/JeanKaddour/tpo, the TPO paper's code) and
``--reference-python`` the interpreter of an environment where it is installed (``pip install -e DIR``; default
``DIR/.venv/bin/python``). Every workload is run as a whole process on both sides, the two interleaved
(reference, suite, reference, suite, …) so that load on the machine hits both alike:

* **whole process** rows time one complete run of a paper-scale tabular experiment (all its algorithms and seeds,
  start-up, JIT compilation / model build, writing results) — the reference's own ``run_single_context`` /
  ``run_multi_context`` against ``bench experiment=<tabular_*> scale=paper``;
* **per step** rows difference two run lengths, (t(n_long) − t(n_short)) / (n_long − n_short), so start-up,
  compilation and result writing cancel. Tabular: all algorithms of the experiment together (the reference runs
  them in one jitted program); transformer: one algorithm, 1 seed, terminal reward, H = 7, B = 100, K = 8, V = 2,
  prompt-matched (the reference's ``transformer_rlvr`` against ``bench experiment=table3_terminal``).

Each side runs in a fresh temporary directory (the reference caches ``transformer_rlvr`` results in its save
directory, so a reused one would skip the work); the suite writes its records there with ``logger=none`` (the
reference runs with W&B disabled; XLA keeps its default threading, the suite its one torch thread). The paper-scale tabular runs are also checked for being the same work: each
algorithm's last-step error, mean ± s.e. over seeds, must agree between the two within 2 combined s.e.

The table gives, per workload, the median over repeats (and min–max) of each side's seconds and the ratio
suite / reference of the medians (< 1: the suite is faster); per-step spreads are over the repeats' paired
differences. Written as ``vs-reference-<device>.md`` and ``.json`` under ``--out``.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

# the reference's final-error printer: run inside the reference's environment (argv: experiment, steps, save_dir)
REFERENCE_TABULAR = """
import json, sys
from tpo.experiments.tabular import run_multi_context, run_single_context
run = {"tabular_single": run_single_context, "tabular_multi": run_multi_context}[sys.argv[1]]
report = run(num_steps=int(sys.argv[2]), save_dir=sys.argv[3])
curve = report.curves[0]
final = {k[:-5]: [float(v[-1]), float(curve.series[k[:-5] + "_se"][-1])]
         for k, v in curve.series.items() if k.endswith("_mean")}
print("REFERENCE_FINAL " + json.dumps(final))
"""

TABULAR = {   # experiment: (reference algorithm label → suite algorithm), (short, long) run lengths
    "tabular_single": ({"pg": "pg", "dg": "dg", "tpo": "tpo", "grpo": "grpo"}, (150, 600)),
    "tabular_multi": ({"pg": "pg", "dg": "dg", "tpo": "tpo", "grpo": "grpo", "ce": "ce"}, (200, 3000)),
}
# Run lengths are chosen so that the difference in work (≥ ~8 s on the faster side) dwarfs the ~±1 s run-to-run
# spread of a process's start-up (imports, JIT compilation): the reference's multi-context step is ~3 ms and its DG
# step ~45 ms, so 800 or 60 extra steps would leave a per-step figure mostly start-up noise.
PAPER_STEPS = {"tabular_single": 150, "tabular_multi": 1000}   # TPO paper §3.1 / §3.2 (both implementations)
TRANSFORMER_ALGORITHMS = ("tpo", "ppo", "dg", "grpo")
TRANSFORMER_LENGTHS = {"ppo": (20, 200), "dg": (20, 400)}   # others: (20, 80)


@dataclass
class Row:
    name: str
    kind: str                       # "process" (s/run) or "step" (s/step)
    ours: list[float] = field(default_factory=list)
    ref: list[float] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict:
        out: dict = {"name": self.name, "kind": self.kind, "note": self.note}
        for side in ("ours", "ref"):
            xs = getattr(self, side)
            out[side] = xs
            out[f"{side}_median"] = statistics.median(xs) if xs else None
            out[f"{side}_min"], out[f"{side}_max"] = (min(xs), max(xs)) if xs else (None, None)
        out["ratio"] = (out["ours_median"] / out["ref_median"]
                        if out["ours_median"] is not None and out["ref_median"] else None)
        return out


def _timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    """Wall seconds of one process and its stdout; RuntimeError (with the command's last lines) if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:4])} … exited {proc.returncode}:\n{tail}")
    return dt, proc.stdout


def _env(reference: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled" if reference else "offline",
               HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    return env


def bench_cmd(overrides: list[str]) -> list[str]:
    """The suite's command (the ``bench`` console script of this interpreter's environment)."""
    return [sys.executable, "-c", "from bench.cli import main; main()", "logger=none", *overrides]


def ours_tabular(experiment: str, steps: int) -> list[str]:
    return bench_cmd([f"experiment={experiment}", "scale=paper", f"run.steps={steps}"])


def ours_transformer(algorithm: str, steps: int) -> list[str]:
    return bench_cmd(["experiment=table3_terminal", "scale=paper", f"algorithm={algorithm}", "env.horizon=7",
                      "env.matching=prompt", "run.seeds=1", f"run.steps={steps}"])


def ref_tabular(python: str, experiment: str, steps: int, save_dir: Path) -> list[str]:
    return [python, "-c", REFERENCE_TABULAR, experiment, str(steps), str(save_dir)]


def ref_transformer(python: str, algorithm: str, steps: int, save_dir: Path) -> list[str]:
    return [python, "-m", "tpo.cli", "transformer_rlvr", "--algorithms", algorithm, "--sequence-length", "7",
            "--num-seeds", "1", "--num-episodes", str(steps), "--match", "prompts", "--no-wandb", "--no-verbose",
            "--save-dir", str(save_dir)]


def ours_final_errors(root: Path, experiment: str) -> dict[str, tuple[float, float, int]]:
    """Suite side: per algorithm, the last logged step's ``train/error`` mean, s.e. (ddof 1) and seed count,
    from the run records under ``root``."""
    from bench.records import find_runs, read_metrics, read_run

    out: dict[str, tuple[float, float, int]] = {}
    for run_dir in find_runs(root / "runs" / experiment):
        rec = read_run(run_dir)
        rows = read_metrics(run_dir)
        if rec is None or not rows:
            continue
        last = max(r["step"] for r in rows)
        xs = [r["train/error"] for r in rows if r["step"] == last and r.get("train/error") is not None]
        if xs:
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            out[rec.config["algorithm"]["name"]] = (statistics.fmean(xs), sd / math.sqrt(len(xs)), len(xs))
    return out


def reference_final_errors(stdout: str) -> dict[str, tuple[float, float]]:
    """Reference side: per algorithm label, the last step's error mean and s.e. printed by the driver."""
    for line in stdout.splitlines():
        if line.startswith("REFERENCE_FINAL "):
            return {k: (v[0], v[1]) for k, v in json.loads(line[len("REFERENCE_FINAL "):]).items()}
    raise RuntimeError("the reference run printed no final errors")


def agreement(experiment: str, ours: dict, ref: dict) -> list[dict]:
    """Per algorithm: both last-step errors and whether |ours − ref| ≤ 2·√(se_ours² + se_ref²)."""
    names, rows = TABULAR[experiment][0], []
    for label, algo in names.items():
        if label not in ref or algo not in ours:
            rows.append({"experiment": experiment, "algorithm": algo, "agrees": False, "note": "missing"})
            continue
        (mo, so, n), (mr, sr) = ours[algo], ref[label]
        tol = 2 * math.sqrt(so ** 2 + sr ** 2)
        rows.append({"experiment": experiment, "algorithm": algo, "ours": mo, "ours_se": so, "seeds": n,
                     "ref": mr, "ref_se": sr, "diff": mo - mr,
                     "tolerance": tol, "agrees": abs(mo - mr) <= tol + 1e-12})
    return rows


def run(reference: Path, python: str, repeats: int, only: Optional[list[str]] = None,
        say=lambda msg: print(msg, file=sys.stderr, flush=True)) -> tuple[list[Row], list[dict]]:
    """Time every workload ``repeats`` times (interleaved); returns the rows and the tabular agreement checks."""
    rows: dict[str, Row] = {}
    checks: list[dict] = []

    def row(name: str, kind: str, note: str = "") -> Row:
        return rows.setdefault(name, Row(name, kind, note=note))

    def want(name: str) -> bool:
        return not only or any(s in name for s in only)

    env_ref, env_ours = _env(True), _env(False)
    env_ref["PYTHONPATH"] = str(reference / "src") + os.pathsep + env_ref.get("PYTHONPATH", "")
    for rep in range(repeats):
        for experiment, (_, (short, long)) in TABULAR.items():
            if not want(experiment):
                continue
            times: dict[tuple[str, int], float] = {}
            for steps in sorted({short, long, PAPER_STEPS[experiment]}):
                for side in ("ref", "ours"):
                    with tempfile.TemporaryDirectory(prefix="tpo-vs-ref-") as tmp:
                        say(f"[vs-reference] repeat {rep + 1}/{repeats}: {experiment} {steps} steps ({side})")
                        if side == "ref":
                            dt, out = _timed(ref_tabular(python, experiment, steps, Path(tmp)), Path(tmp), env_ref)
                            final_ref = reference_final_errors(out) if steps == PAPER_STEPS[experiment] else None
                        else:
                            dt, _ = _timed(ours_tabular(experiment, steps), Path(tmp), env_ours)
                            if steps == PAPER_STEPS[experiment] and rep == 0:
                                checks += agreement(experiment, ours_final_errors(Path(tmp), experiment), final_ref)
                        times[(side, steps)] = dt
            paper = PAPER_STEPS[experiment]
            whole = row(f"{experiment} paper scale, whole process", "process",
                        f"all algorithms x 100 seeds x {paper} steps")
            whole.ref.append(times[("ref", paper)])
            whole.ours.append(times[("ours", paper)])
            step = row(f"{experiment}, per step (all algorithms, 100 seeds)", "step", f"({long} − {short} steps)")
            step.ref.append((times[("ref", long)] - times[("ref", short)]) / (long - short))
            step.ours.append((times[("ours", long)] - times[("ours", short)]) / (long - short))
        for algo in TRANSFORMER_ALGORITHMS:
            name = f"{algo.upper()} step, terminal reward, H = 7, B = 100, K = 8, 1 seed"
            if not want(name) and not want(f"transformer {algo}"):
                continue
            short, long = TRANSFORMER_LENGTHS.get(algo, (20, 80))
            t: dict[tuple[str, int], float] = {}
            for steps in (short, long):
                for side in ("ref", "ours"):
                    with tempfile.TemporaryDirectory(prefix="tpo-vs-ref-") as tmp:
                        say(f"[vs-reference] repeat {rep + 1}/{repeats}: {algo} {steps} steps ({side})")
                        cmd = (ref_transformer(python, algo, steps, Path(tmp)) if side == "ref"
                               else ours_transformer(algo, steps))
                        t[(side, steps)] = _timed(cmd, Path(tmp), env_ref if side == "ref" else env_ours)[0]
            r = row(name, "step", f"({long} − {short} steps)")
            r.ref.append((t[("ref", long)] - t[("ref", short)]) / (long - short))
            r.ours.append((t[("ours", long)] - t[("ours", short)]) / (long - short))
    return list(rows.values()), checks


def render(rows: list[Row], checks: list[dict], env: dict) -> str:
    lines = [f"# bench-perf --reference ({env['device_name']}, {env['cpu_count']} CPUs, 1 thread per process, "
             f"{env['date']})", "",
             f"Suite: torch {env['torch']}, commit {env.get('commit') or '?'}. Reference: {env['reference']} "
             f"(commit {env.get('reference_commit') or '?'}), jax {env.get('jax') or '?'}. Repeats: {env['repeats']}, "
             "interleaved. Command: `" + env["command"] + "`.", "",
             "| workload | reference (median, min–max) | tpo-bench (median, min–max) | unit | tpo-bench / reference |",
             "|---|---|---|---|---|"]
    for r in rows:
        s = r.summary()
        unit = "s/run" if r.kind == "process" else "s/step"

        def cell(side: str) -> str:
            if s[f"{side}_median"] is None:
                return "—"
            return f"{s[f'{side}_median']:.4g} ({s[f'{side}_min']:.4g}–{s[f'{side}_max']:.4g})"
        ratio = f"**{s['ratio']:.2f}**" if s["ratio"] is not None else "—"
        lines.append(f"| {r.name} {r.note} | {cell('ref')} | {cell('ours')} | {unit} | {ratio} |")
    if checks:
        lines += ["", "Same work: last-step error at paper scale, mean ± s.e. over seeds (agree: |difference| ≤ 2 "
                  "combined s.e.)", "", "| experiment | algorithm | reference | tpo-bench | agree |", "|---|---|---|---|---|"]
        for c in checks:
            if c.get("note") == "missing":
                lines.append(f"| {c['experiment']} | {c['algorithm']} | — | — | missing |")
            else:
                lines.append(f"| {c['experiment']} | {c['algorithm']} | {c['ref']:.4g} ± {c['ref_se']:.2g} | "
                             f"{c['ours']:.4g} ± {c['ours_se']:.2g} | {'yes' if c['agrees'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def _reference_versions(python: str, reference: Path) -> dict:
    info: dict = {}
    try:
        info["jax"] = subprocess.run([python, "-c", "import jax; print(jax.__version__)"], capture_output=True,
                                     text=True, timeout=120).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["jax"] = None
    try:
        info["reference_commit"] = subprocess.run(["git", "-C", str(reference), "rev-parse", "--short", "HEAD"],
                                                  capture_output=True, text=True).stdout.strip() or None
    except OSError:
        info["reference_commit"] = None
    return info


def main(reference: Path, python: Optional[str], repeats: int, only: Optional[list[str]], out: Path,
         command: str) -> int:
    """Run the side-by-side benchmark; one clear line (exit 2) when the reference cannot be found."""
    import platform

    import torch

    from bench.records import provenance

    reference = Path(reference).expanduser().resolve()
    python = python or str(reference / ".venv" / "bin" / "python")
    if not (reference / "src" / "tpo" / "cli.py").is_file():
        print(f"bench-perf: error: --reference {reference}: no src/tpo/cli.py there; clone the reference "
              "implementation (git clone https://github.com/JeanKaddour/tpo) and pass its directory", file=sys.stderr)
        return 2
    if not Path(python).is_file():
        print(f"bench-perf: error: --reference-python {python}: not found; install the reference in its own "
              f"environment (python -m venv {reference}/.venv && {reference}/.venv/bin/pip install -e {reference}) "
              "or pass that environment's python", file=sys.stderr)
        return 2
    rows, checks = run(reference, python, repeats, only)
    env = {"device_name": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "repeats": repeats,
           "reference": str(reference), "command": command, "commit": (provenance().get("git_sha") or "")[:7] or None,
           **_reference_versions(python, reference)}
    text = render(rows, checks, env)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / ("vs-reference-cpu" + ("-only_" + "_".join("".join(c if c.isalnum() else "-" for c in s)
                                                             for s in only) if only else ""))
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"environment": env, "rows": [r.summary() for r in rows],
                                                     "same_work": checks}, indent=2))
    return 0 if all(c["agrees"] for c in checks) else 1
