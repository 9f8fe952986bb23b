"""``bench-perf``: per-step cost of the standard workloads (figures to quote, not a test).

    bench-perf [--only NAME ...] [--repeats 5] [--device cpu|cuda] [--set KEY=VALUE ...] [--out results/perf]
    bench-perf --reference DIR [--reference-python PYTHON] [--repeats 3] [--only NAME ...]   (side by side with
                                                                   the JAX reference: bench/perf_reference.py)

Each workload is a composed configuration (the same code path as ``bench``):
it is built, warmed up, then timed over ``steps`` on-policy steps, ``repeats``
times; the table gives the median and the spread (min–max) of seconds per step
— or of the whole experiment for the ``experiment`` workloads — plus peak
memory, device, torch version and thread count. Each workload runs in its own
spawned process (``--in-process`` to share one), so its peak memory is its own. Results are printed as a
Markdown table and written as JSON next to it. ``--set`` adds config overrides to
every workload, e.g. ``--set run.autocast=bf16`` or ``--set run.compile=true``
(the output file names carry them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

os.environ.setdefault("WANDB_MODE", "disabled")


@dataclass(frozen=True)
class Workload:
    """name; overrides for ``bench``; what is timed: ``step`` (seconds per step
    over ``steps`` steps), ``experiment`` (seconds for the whole run of every
    algorithm in ``algorithms``), ``eval`` (seconds per evaluation episode of an
    offline task: one evaluation of every seed's episodes, divided by their number)
    ``act`` (seconds per action of an offline policy's deterministic inference on
    ``steps`` dataset states per call: ``OfflineTask.act_latency``) or ``trl`` (seconds
    per step of TRL's GRPOTrainer on the RLVR quick setting: :mod:`bench.perf_trl`)."""

    name: str
    overrides: tuple[str, ...]
    steps: int = 10
    kind: str = "step"
    algorithms: tuple[str, ...] = ()
    note: str = ""


def _seq(name: str, algorithm: str, setting: tuple[str, ...], seeds: int = 1, steps: int = 3) -> Workload:
    return Workload(name, ("experiment=table3_terminal" if "terminal" in name else "experiment=table1_vocab",
                           f"algorithm={algorithm}", f"run.seeds={seeds}", *setting), steps=steps)


T3 = ("env.horizon=7", "env.matching=prompt")   # Table 3 setting: H=7, B=100, K=8, V=2, terminal reward
T1 = ("env.vocab=2", "env.horizon=10")          # Table 1 setting: V=2, H=10, bag reward, token candidates
T1_H7 = ("env.vocab=2", "env.horizon=7")
OFFLINE = ("experiment=offline_baselines", "scale=paper", "env.dataset=pendulum-medium-replay-gen",
           "env.eval_every=1000000")   # paper networks (256-256), batch 256; data from `bench-data quick`

GENERATIVE = (*OFFLINE, "model.generator_hidden=[256,256,256]")   # the Diffusion-QL / GTP backbone
GENERATIVE_ALGOS = ("ddpm_bc", "diffusion_ql", "consistency_bc", "consistency_ac", "flow_bc", "fql", "gtp_bc", "gtp",
                    "gtp_k2", "tpo_offline")
RLVR = ("experiment=llm_rlvr", "scale=quick", "env.task=arithmetic_small", "run.seeds=1", "env.eval_every=1000000")
LLAMA_04B = ("model.hidden=896", "model.layers=24", "model.heads=14", "model.intermediate=4864", "env.sft.steps=0",
             "env.log_kl=false")   # Qwen2.5-0.5B's backbone shape with a character vocabulary: ~0.39B parameters

TABLE3_ALGORITHMS = ("tpo", "grpo", "grpo_nokl", "ppo", "dg", "dro_v", "reinforce_lb")   # its sweep's rows
TABLE3_MATCHING = ("prompt", "interaction")
TABLE3_HORIZONS = (7, 8, 9, 10)
TABLE3_STEPS = 2000   # TPO paper §3.6: 2,000 episodes

WORKLOADS: tuple[Workload, ...] = (
    Workload("tabular_single paper (4 algos x 100 seeds x 150 steps)", ("experiment=tabular_single", "scale=paper"),
             kind="experiment", algorithms=("pg", "dg", "tpo", "grpo")),
    Workload("tabular_multi paper (5 algos x 100 seeds x 1000 steps)", ("experiment=tabular_multi", "scale=paper"),
             kind="experiment", algorithms=("ce", "tpo", "dg", "pg", "grpo")),
    *(Workload(f"tabular_multi {a} step (100 seeds)", ("experiment=tabular_multi", "scale=paper", f"algorithm={a}"),
               steps=200) for a in ("ce", "tpo")),
    Workload("mnist step (B=100, 1 seed)", ("experiment=mnist", "algorithm=tpo", "run.seeds=1"), steps=20),
    Workload("mnist step (B=100, 20 seeds)", ("experiment=mnist", "algorithm=tpo", "run.seeds=20"), steps=10),
    *(_seq(f"terminal H=7 {a} (1 seed)", a, T3) for a in ("tpo", "grpo", "ppo", "dg")),
    *(_seq(f"bag V=2 H=10 {a} (1 seed)", a, T1) for a in ("tpo_token", "grpo_token", "ppo", "dg")),
    *(_seq(f"terminal H=7 tpo ({s} seeds)", "tpo", T3, seeds=s) for s in (4, 20)),
    *(_seq(f"terminal H=7 {a} (20 seeds)", a, T3, seeds=20) for a in ("grpo", "ppo", "dg")),
    *(_seq(f"bag V=2 H=10 {a} (20 seeds)", a, T1, seeds=20) for a in ("tpo_token",)),
    # TPO_token needs a dense reward: at the Table 3 shape (H=7, B=100, K=8) it runs with the bag reward
    *(_seq(f"bag V=2 H=7 tpo_token ({s} seed{'s' if s > 1 else ''})", "tpo_token", T1_H7, seeds=s) for s in (1, 20)),
    # offline RL (generated pendulum data: `bench-data quick`); gradient steps only (no evaluation in the window)
    *(Workload(f"offline {a} step (256-256 nets, B=256, {s} seed{'s' if s > 1 else ''})", (*OFFLINE, f"algorithm={a}",
                                                                           f"run.seeds={s}"), steps=50)
      for a in ("bc", "td3_bc", "iql") for s in (1, 5)),
    Workload("offline evaluation (Pendulum-v1, 5 seeds x 10 episodes)", (*OFFLINE, "algorithm=td3_bc", "run.seeds=5"),
             kind="eval"),
    # generative policies (GTP paper's efficiency table: 3x256 generator, batch 256): training step and inference
    *(Workload(f"offline {a} step (256 nets, B=256, 1 seed)", (*GENERATIVE, f"algorithm={a}"), steps=20)
      for a in GENERATIVE_ALGOS),
    *(Workload(f"offline {a} inference (batch {b})", (*GENERATIVE, f"algorithm={a}"), steps=b, kind="act")
      for a in GENERATIVE_ALGOS for b in (1, 256)),
    # LLM RLVR (env=rlvr): one step = sampling G x K completions + the loss's epochs; the quick experiment's model
    # and a ~0.4B-parameter Llama built from a config (random weights, character vocabulary; no SFT)
    *(Workload(f"rlvr {a} step (tiny LM, G=16 x K=16, 1 seed)", (*RLVR, f"algorithm={a}"), steps=3)
      for a in ("tpo", "grpo")),
    # the same GRPO step, one epoch, beside TRL's GRPOTrainer on the same model, batch and K (bench/perf_trl.py)
    Workload("rlvr grpo step, 1 epoch (tiny LM, G=16 x K=16, 1 seed)", (*RLVR, "algorithm=grpo", "algorithm.epochs=1"),
             steps=3),
    Workload("TRL GRPOTrainer step (tiny LM, G=16 x K=16; needs the trl extra)", (), steps=3, kind="trl"),
    Workload("rlvr tpo step (0.4B Llama, G=2 x K=4, 8 new tokens, 1 seed)",
             (*RLVR, "algorithm=tpo", *LLAMA_04B, "env.prompts_per_step=2", "env.k=4", "env.max_new_tokens=8"),
             steps=1),
    # every cell of Table 3 at paper scale (20 seeds) at the two ends of its horizon range: the per-step times from
    # which `table3_projection` projects the wall time of `bench experiment=table3_terminal scale=paper`
    *(Workload(f"table3 {a} {m} H={h} (20 seeds)", ("experiment=table3_terminal", "scale=paper", f"algorithm={a}",
                                                    f"env.matching={m}", f"env.horizon={h}"), steps=3)
      for a in TABLE3_ALGORITHMS for m in TABLE3_MATCHING for h in (TABLE3_HORIZONS[0], TABLE3_HORIZONS[-1])),
)


@dataclass
class Result:
    name: str
    unit: str
    median_s: Optional[float] = None
    min_s: Optional[float] = None
    max_s: Optional[float] = None
    repeats: int = 0
    peak_rss_mb: Optional[float] = None
    peak_cuda_mb: Optional[float] = None
    skipped: str = ""
    samples: list[float] = field(default_factory=list)


def _build(overrides: list[str]):
    from bench.build import build
    from bench.cli import compose
    from bench.schema import to_settings

    settings = to_settings(compose(["logger=none", *overrides]))
    return settings, build(settings)


def _time_steps(overrides: list[str], steps: int) -> float:
    """Seconds per training step (after one warm-up step) of the workload's loop (on-policy or offline)."""
    from bench.precision import configure

    settings, b = _build(overrides)
    precision = configure(settings.run)
    train = b.train
    train(b.task, b.loss, b.optimizer, steps=1, epochs=b.epochs, log_every=1, on_log=lambda *a: None,
          precision=precision)
    _sync(settings.run.device)
    t0 = time.perf_counter()
    train(b.task, b.loss, b.optimizer, steps=1 + steps, epochs=b.epochs, log_every=steps,
          on_log=lambda *a: None, start_step=1, precision=precision)
    _sync(settings.run.device)
    return (time.perf_counter() - t0) / steps


def profile_steps(overrides: list[str], steps: int, device: str) -> str:
    """A ``torch.profiler`` summary of ``steps`` training steps (after two warm-up steps): operator calls and
    CUDA kernel launches per step, and the top operators by self time — where a step's time goes when it is
    bound by per-operation overhead rather than arithmetic."""
    from torch.profiler import ProfilerActivity, profile

    from bench.precision import configure

    settings, b = _build([*overrides, f"run.device={device}"])
    precision = configure(settings.run)

    def train(start: int, n: int) -> None:
        b.train(b.task, b.loss, b.optimizer, steps=start + n, epochs=b.epochs, log_every=10 ** 9,
                on_log=lambda *a: None, start_step=start, precision=precision)

    train(0, 2)
    _sync(device)
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        train(2, steps)
        _sync(device)
    wall = (time.perf_counter() - t0) / steps
    events = prof.key_averages()
    ops = sum(e.count for e in events if e.key.startswith("aten::"))
    kernels = sum(e.count for e in prof.events() if getattr(e, "device_type", None) is not None
                  and "CUDA" in str(e.device_type)) if cuda else 0
    head = (f"{steps} steps, {wall:.4g} s/step wall under the profiler (Python overhead included; the table's self "
            f"times count operators only); {ops / steps:.0f} aten operator calls per step (nested calls included)"
            + (f", {kernels / steps:.0f} CUDA kernels per step" if cuda else ""))
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return head + "\n\n" + events.table(sort_by=sort, row_limit=25) + "\n"


def _time_experiment(overrides: list[str], algorithms: tuple[str, ...]) -> float:
    """Seconds to train every algorithm of the experiment for its configured steps."""
    from bench.precision import configure

    total = 0.0
    for algorithm in algorithms:
        settings, b = _build([*overrides, f"algorithm={algorithm}"])
        t0 = time.perf_counter()
        b.train(b.task, b.loss, b.optimizer, steps=settings.run.steps, epochs=b.epochs,
              log_every=settings.run.log_every, on_log=lambda *a: None, precision=configure(settings.run))
        _sync(settings.run.device)
        total += time.perf_counter() - t0
    return total


def _time_eval(overrides: list[str]) -> float:
    """Seconds per evaluation episode of an offline task (one evaluation after a warm-up one)."""
    settings, b = _build(overrides)
    b.task.evaluate()
    t0 = time.perf_counter()
    b.task.evaluate()
    return (time.perf_counter() - t0) / (len(b.task.seeds) * settings.env.eval_episodes)


def _time_act(overrides: list[str], batch: int) -> float:
    """Seconds per action of an offline policy's deterministic inference on ``batch`` states per call."""
    _, b = _build(overrides)
    return b.task.act_latency(batch) / 1000.0


def _time_trl(overrides: list[str], steps: int) -> float:
    """Seconds per step of TRL's GRPOTrainer (:func:`bench.perf_trl.time_trl_grpo_step`)."""
    from bench.perf_trl import time_trl_grpo_step

    return time_trl_grpo_step(overrides, steps)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def measure(w: Workload, repeats: int, device: str, extra: tuple[str, ...] = ()) -> Result:
    """Time one workload ``repeats`` times (skipped, with the reason, if it cannot be built)."""
    import torch

    unit = {"experiment": "s/run", "eval": "s/episode", "act": "s/action"}.get(w.kind, "s/step")
    overrides = [*w.overrides, f"run.device={device}", *extra]
    res = Result(w.name, unit)
    try:
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            t = (_time_experiment(overrides, w.algorithms) if w.kind == "experiment"
                 else _time_eval(overrides) if w.kind == "eval"
                 else _time_act(overrides, w.steps) if w.kind == "act"
                 else _time_trl(overrides, w.steps) if w.kind == "trl" else _time_steps(overrides, w.steps))
            res.samples.append(t)
    except Exception as exc:  # noqa: BLE001 - a workload whose family is absent is reported, not fatal
        res.skipped = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        return res
    res.repeats = len(res.samples)
    res.median_s, res.min_s, res.max_s = statistics.median(res.samples), min(res.samples), max(res.samples)
    res.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        res.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    return res


def _measure_with_threads(w: Workload, repeats: int, device: str, extra: tuple[str, ...], threads: int) -> Result:
    import torch

    torch.set_num_threads(threads)
    return measure(w, repeats, device, extra)


def _in_child(job: tuple) -> Result:
    """:func:`measure` in a fresh (spawned) process, so that its peak RSS / CUDA memory is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_with_threads, *job).result()


def environment(device: str, extra: tuple[str, ...] = ()) -> dict:
    import torch

    return {"device": device, "overrides": list(extra),
            "device_name": torch.cuda.get_device_name() if device.startswith("cuda")
            else (platform.processor() or platform.machine()), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def render(results: list[Result], env: dict) -> str:
    lines = [f"# bench-perf ({env['device']}: {env['device_name']}, {env['cpu_count']} CPUs, torch {env['torch']}, "
             f"{env['threads']} thread(s), {env['date']})" + (f", overrides: {' '.join(env['overrides'])}"
                                                             if env.get("overrides") else ""), "",
             "| workload | median | min–max | unit | repeats | peak RSS MB | peak CUDA MB |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.name} | skipped: {r.skipped} | | | | | |")
        else:
            cuda = f"{r.peak_cuda_mb:.0f}" if r.peak_cuda_mb is not None else ""
            lines.append(f"| {r.name} | {r.median_s:.4g} | {r.min_s:.4g}–{r.max_s:.4g} | {r.unit} | {r.repeats} | "
                         f"{r.peak_rss_mb:.0f} | {cuda} |")
    return "\n".join(lines) + "\n"


def table3_projection(results: list[Result]) -> Optional[str]:
    """Projected wall time of Table 3 at paper scale (all cells in sequence on the measured device), or None
    unless every ``table3 …`` workload was measured.

    T = Σ_{algorithm, matching, H ∈ 7..10} 2,000 · t(algorithm, matching, H), with t the measured median
    seconds per step (20 seeds in one batch) at H = 7 and H = 10 and linear in H between them. Run start-up
    (composition, model build) and the per-``log_every`` logging are not included."""
    t = {r.name: r.median_s for r in results if r.name.startswith("table3 ") and r.median_s is not None}
    lo, hi = TABLE3_HORIZONS[0], TABLE3_HORIZONS[-1]
    total, rows = 0.0, []
    for a in TABLE3_ALGORITHMS:
        for m in TABLE3_MATCHING:
            ends = [t.get(f"table3 {a} {m} H={h} (20 seeds)") for h in (lo, hi)]
            if None in ends:
                return None
            cell = sum(TABLE3_STEPS * (ends[0] + (ends[1] - ends[0]) * (h - lo) / (hi - lo)) for h in TABLE3_HORIZONS)
            rows.append(f"| {a} | {m} | {ends[0]:.4g} | {ends[1]:.4g} | {cell / 60:.1f} |")
            total += cell
    return "\n".join(["", f"Projected wall time of `bench experiment=table3_terminal scale=paper` on this device "
                       f"({len(TABLE3_ALGORITHMS)} algorithms x {len(TABLE3_MATCHING)} matchings x H in "
                       f"{lo}..{hi} x 20 seeds x {TABLE3_STEPS} steps, cells in sequence; s/step linear in H between "
                       f"the measured ends; start-up and logging excluded): **{total / 60:.1f} min**", "",
                       "| algorithm | matching | s/step H=7 | s/step H=10 | minutes (4 horizons) |", "|---|---|---|---|---|",
                       *rows, ""])


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-perf", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="substrings of workload names to run")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per workload (median and min–max reported)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides",
                    help="config overrides for every workload (e.g. run.autocast=bf16)")
    ap.add_argument("--out", type=Path, default=Path("results/perf"), help="folder for the .md/.json tables")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--in-process", action="store_true",
                    help="run every workload in this process (faster start; peak memory is then cumulative)")
    ap.add_argument("--reference", type=Path, default=None, metavar="DIR",
                    help="time the TPO paper's JAX reference implementation (a checkout in DIR) side by side with "
                         "the suite instead (bench/perf_reference.py)")
    ap.add_argument("--reference-python", default=None, metavar="PYTHON",
                    help="the interpreter of the reference's environment (default DIR/.venv/bin/python)")
    ap.add_argument("--profile", action="store_true",
                    help="instead of timing, write a torch.profiler summary of each chosen step workload "
                         "(operator calls and kernels per step, top operators) to --out")
    args = ap.parse_args(argv)
    if args.reference is not None:
        from bench.perf_reference import main as vs_reference

        return vs_reference(args.reference, args.reference_python, args.repeats, args.only, args.out,
                            "bench-perf " + " ".join(argv if argv is not None else sys.argv[1:]))
    if args.list:
        print("\n".join(w.name for w in WORKLOADS))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    chosen = [w for w in WORKLOADS if not args.only or any(s in w.name for s in args.only)]
    if not chosen:
        print(f"bench-perf: error: --only {' '.join(args.only)}: no workload matches; bench-perf --list names them",
              file=sys.stderr)
        return 2
    if args.profile:
        args.out.mkdir(parents=True, exist_ok=True)
        for w in (w for w in chosen if w.kind == "step"):
            print(f"[bench-perf] profiling {w.name} ...", file=sys.stderr, flush=True)
            text = f"# {w.name} ({args.device})\n\n" + profile_steps([*w.overrides, *args.overrides], w.steps,
                                                                      args.device)
            slug = "".join(c if c.isalnum() else "-" for c in w.name)
            path = args.out / f"profile-{args.device.replace(':', '')}-{slug}.txt"
            path.write_text(text)
            print(text + f"[bench-perf] written to {path}")
        return 0
    results = []
    for w in chosen:
        print(f"[bench-perf] {w.name} ...", file=sys.stderr, flush=True)
        job = (w, args.repeats, args.device, tuple(args.overrides), args.threads)
        results.append(_measure_with_threads(*job) if args.in_process else _in_child(job))
    env = environment(args.device, tuple(args.overrides))
    text = render(results, env) + (table3_projection(results) or "")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "".join(f"-{o.split('.')[-1].replace('=', '_')}" for o in args.overrides)
    if args.only:   # a subset never replaces the full table (results/perf/perf-<device>.md)
        tag += "-only_" + "_".join("".join(c if c.isalnum() else "-" for c in s) for s in args.only)
    stem = args.out / f"perf-{args.device.replace(':', '')}{tag}"
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"environment": env, "results": [asdict(r) for r in results]},
                                                    indent=2))
    print(f"[bench-perf] written to {stem.with_suffix('.md')} and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
