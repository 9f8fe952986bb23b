"""``bench-data``: generate and inspect the offline-RL datasets in D4RL layout (Fu et al. 2020).

    bench-data list [--data-dir D]
    bench-data generate ID [ID ...] [--data-dir D] [--seed S] [--force] [--steps N] [--sac-steps N]
                                    [--set KEY=VALUE ...]
    bench-data quick [--data-dir D] [--seed S] [--force]
    bench-data info ID [--data-dir D]

Files live at ``<root>/<id>.hdf5``; root = ``--data-dir``, else ``$TPO_BENCH_DATA``, else
``$XDG_CACHE_HOME/tpo-bench/datasets`` (``~/.cache/...``). A file whose stored settings match and whose
checksum verifies is reused; SAC behaviour policies are cached under ``<root>/behaviour/``. ``--steps``
sets the rows of a maze2d dataset and the transitions of a sampled SAC dataset; ``--sac-steps`` the
behaviour SAC's training steps; ``--set`` any other setting of :mod:`envs.offline.generate.specs`
(applied to the ids that have it). ``quick`` generates the datasets of the quick experiments (all five
pendulum ones and maze2d-umaze). Progress and notices go to stderr, one result line per dataset (with
its wall time) to stdout. Bad input exits 2 with one line; a failed generation exits 1 with one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Optional, Sequence

from envs.offline.generate import (DATASETS, QUICK_IDS, CorruptDatasetError, UnknownDatasetError, data_root,
                                   generate_dataset, get_spec, make_config, read_metadata)

PROG = "bench-data"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Generate offline-RL datasets in D4RL layout.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{list,generate,quick,info}")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--data-dir", default=None, help="dataset root (default: $TPO_BENCH_DATA, else the user cache)")

    common(sub.add_parser("list", help="every dataset id, what it is, and whether it is present"))
    g = sub.add_parser("generate", help="generate datasets (reuses valid files)")
    g.add_argument("ids", nargs="+", metavar="ID")
    q = sub.add_parser("quick", help="the quick experiments' datasets: " + ", ".join(QUICK_IDS))
    for s in (g, q):
        common(s)
        s.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
        s.add_argument("--force", action="store_true", help="regenerate even when a valid file exists")
    g.add_argument("--steps", type=int, default=None, help="maze2d rows / SAC-sampled transitions per dataset")
    g.add_argument("--sac-steps", type=int, default=None, help="training steps of the behaviour SAC")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other generation setting (repeatable)")
    i = sub.add_parser("info", help="print a dataset file's metadata")
    i.add_argument("id", metavar="ID")
    common(i)
    return p


def _fail(msg: str, code: int) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    return code


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _mb(path) -> float:
    return path.stat().st_size / 2**20


def _list(args) -> int:
    root = data_root(args.data_dir)
    print(f"root: {root}")
    print(f"{'id':30s} {'present':34s} what")
    for did, spec in DATASETS.items():
        path = root / f"{did}.hdf5"
        if path.exists():
            try:
                meta = read_metadata(path)
                present = f"yes, {meta.get('rows', '?')} rows, {_mb(path):.1f} MB, seed {meta.get('seed', '?')}"
            except CorruptDatasetError:
                present = f"unreadable, {_mb(path):.1f} MB"
        else:
            present = "-"
        print(f"{did:30s} {present:34s} {spec.summary}")
    return 0


def _per_id_overrides(ids: Sequence[str], args) -> dict[str, dict]:
    """{id: overrides}; ValueError (one line) for a KEY=VALUE that is malformed or fits none of the ids."""
    wanted: dict[str, str] = {}
    for item in args.overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        wanted[k.strip().replace("-", "_")] = v
    if args.steps is not None:
        wanted["steps"] = str(args.steps)
    if args.sac_steps is not None:
        wanted["sac_steps"] = str(args.sac_steps)
    fields = {did: {f.name for f in dataclasses.fields(get_spec(did).defaults)} for did in ids}
    for k in wanted:
        if not any(k in f for f in fields.values()):
            valid = sorted(set().union(*fields.values()))
            raise ValueError(f"setting {k!r} applies to none of {', '.join(ids)}; valid: {', '.join(valid)}")
    return {did: {k: v for k, v in wanted.items() if k in fields[did]} for did in ids}


def _generate(ids: Sequence[str], args, overrides: dict[str, dict]) -> int:
    total = time.perf_counter()
    for did in ids:
        r = generate_dataset(did, args.data_dir, seed=args.seed, force=args.force, say=_say, **overrides[did])
        what = "generated" if r.generated else "up to date"
        print(f"{did}: {what}, {r.rows} rows, {_mb(r.path):.1f} MB, {r.seconds:.1f} s -> {r.path}", flush=True)
    if len(ids) > 1:
        print(f"total: {len(ids)} datasets in {time.perf_counter() - total:.1f} s", flush=True)
    return 0


def _info(args) -> int:
    path = data_root(args.data_dir) / f"{args.id}.hdf5"
    if not path.exists():
        return _fail(f"no file at {path}; run: {PROG} generate {args.id}", 1)
    meta = read_metadata(path)
    print(f"file: {path} ({_mb(path):.1f} MB)")
    for k in sorted(meta):
        v = meta[k]
        if k in ("config", "env_kwargs", "versions") and isinstance(v, str):
            v = json.dumps(json.loads(v), sort_keys=True)
        elif hasattr(v, "tolist"):
            v = v.tolist()
        print(f"{k}: {v}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list(args)
        if args.command == "info":
            get_spec(args.id)
            return _info(args)
        ids = list(QUICK_IDS) if args.command == "quick" else list(dict.fromkeys(args.ids))
        for did in ids:
            get_spec(did)
        if args.seed < 0:
            return _fail(f"--seed: {args.seed} is not allowed (an integer ≥ 0)", 2)
        overrides = _per_id_overrides(ids, args) if args.command == "generate" else {d: {} for d in ids}
        for did in ids:   # validate every setting before generating anything
            make_config(get_spec(did), overrides[did])
    except UnknownDatasetError as e:
        return _fail(str(e), 2)
    except ValueError as e:
        return _fail(str(e), 2)
    except CorruptDatasetError as e:
        return _fail(str(e), 1)
    try:
        return _generate(ids, args, overrides)
    except KeyboardInterrupt:
        return _fail("interrupted (no partial file is left under a dataset's name)", 130)
    except Exception as e:  # one line, no traceback
        return _fail(f"error: {type(e).__name__}: {e}", 1)


if __name__ == "__main__":
    sys.exit(main())
