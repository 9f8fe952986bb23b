"""GSM8K (Cobbe et al. 2021, "Training Verifiers to Solve Math Word Problems") from files on disk.

Nothing is downloaded. The data directory (``root``, :func:`gsm8k_root`) holds, per split
(``train`` and ``test``; the suite's ``eval`` split reads ``test``), the first of:

1. ``<root>/<split>.jsonl`` — one JSON object per line with string fields ``question`` and ``answer``;
2. ``<root>/<split>-*.parquet`` — the Hugging Face layout (shards read in name order; needs pyarrow);
3. ``<root>/main/<split>-*.parquet`` — the same inside the ``main`` configuration folder, as
   ``hf download openai/gsm8k --repo-type dataset --local-dir <root>`` writes it.

``answer`` is the worked solution ending in ``#### <final answer>``; the gold answer is the text after
the last ``####``, with thousands commas removed (``"#### 1,000"`` -> ``"1000"``).

Errors: :class:`~envs.rlvr.errors.TaskDataNotFound` (one line naming the paths expected and where to
get the files) and :class:`~envs.rlvr.errors.TaskDataUnreadable` (one line naming the file, the line
or row, and what is wrong).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from envs.rlvr.errors import TaskDataNotFound, TaskDataUnreadable, one_line

__all__ = ["GSM8K_URL", "GSM8KRecord", "find_split_files", "gsm8k_root", "read_gsm8k"]

GSM8K_URL = "https://huggingface.co/datasets/openai/gsm8k"
DATA_ENV_VAR = "TPO_BENCH_DATA"
SPLIT_FILES = {"train": "train", "eval": "test", "test": "test"}


@dataclass(frozen=True)
class GSM8KRecord:
    """One problem: ``question``, the worked ``solution`` (with its ``####`` line), the ``gold`` answer,
    and where it came from (``source`` file, ``index`` within the split in file order)."""

    question: str
    solution: str
    gold: str
    source: str
    index: int


def gsm8k_root(data_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """``data_dir`` if given; else ``$TPO_BENCH_DATA/gsm8k``; else ``$XDG_CACHE_HOME/tpo-bench/datasets/gsm8k``;
    else ``~/.cache/tpo-bench/datasets/gsm8k`` (the dataset root of the offline family, plus ``gsm8k``)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser() / "gsm8k"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()
    return base / "tpo-bench" / "datasets" / "gsm8k"


def find_split_files(root: Union[str, os.PathLike], split: str) -> list[Path]:
    """The file(s) of ``split`` (``train``, ``test`` or ``eval`` = ``test``) under ``root``, in the order
    of the module docstring. Raises TaskDataNotFound (one line: the paths expected, the download page)."""
    root = Path(root)
    stem = SPLIT_FILES[split]
    jsonl = root / f"{stem}.jsonl"
    if jsonl.is_file():
        return [jsonl]
    for folder in (root, root / "main"):
        shards = sorted(folder.glob(f"{stem}-*.parquet")) if folder.is_dir() else []
        if shards:
            return shards
    where = "" if root.is_dir() else f"directory {root} does not exist; "
    raise TaskDataNotFound(
        f"GSM8K {stem} split not found: {where}expected {jsonl} or {root / (stem + '-*.parquet')} or "
        f"{root / 'main' / (stem + '-*.parquet')}; get the files from {GSM8K_URL} on a connected machine "
        f"(e.g. `hf download openai/gsm8k --repo-type dataset --local-dir {root}`) and copy them there, "
        f"or set the task's data_dir / ${DATA_ENV_VAR}")


def _gold(solution: str, where: str) -> str:
    at = solution.rfind("####")
    if at < 0:
        raise TaskDataUnreadable(f"{where}: the answer has no '#### <final answer>' line")
    gold = solution[at + 4:].strip().replace(",", "")
    if not gold:
        raise TaskDataUnreadable(f"{where}: nothing after '####' in the answer")
    return gold


def _record(row: object, source: Path, where: str, index: int) -> GSM8KRecord:
    if not isinstance(row, dict):
        raise TaskDataUnreadable(f"{where}: expected a JSON object with 'question' and 'answer', got "
                                 f"{type(row).__name__}")
    for key in ("question", "answer"):
        if not isinstance(row.get(key), str):
            raise TaskDataUnreadable(f"{where}: field {key!r} missing or not a string")
    return GSM8KRecord(row["question"], row["answer"], _gold(row["answer"], where), str(source), index)


def _read_jsonl(path: Path, start: int) -> list[GSM8KRecord]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskDataUnreadable(f"{where}: not valid JSON ({one_line(exc)})") from None
            records.append(_record(row, path, where, start + len(records)))
    return records


def _read_parquet(path: Path, start: int) -> list[GSM8KRecord]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskDataUnreadable(f"reading {path} needs pyarrow (pip install pyarrow), or convert the split "
                                 f"to {path.parent / (path.name.split('-')[0] + '.jsonl')}") from None
    try:
        rows = pq.read_table(path, columns=["question", "answer"]).to_pylist()
    except Exception as exc:  # pyarrow raises its own error types for corrupt files / missing columns
        raise TaskDataUnreadable(f"{path}: cannot read the 'question' and 'answer' columns "
                                 f"({one_line(exc)})") from None
    return [_record(row, path, f"{path} row {k}", start + k) for k, row in enumerate(rows)]


def read_gsm8k(root: Union[str, os.PathLike], split: str) -> list[GSM8KRecord]:
    """Every record of ``split`` (``train``, ``test`` or ``eval``) under ``root``, in file order.
    Raises TaskDataNotFound / TaskDataUnreadable (module docstring); an empty split is unreadable."""
    records: list[GSM8KRecord] = []
    files = find_split_files(root, split)
    for path in files:
        read = _read_jsonl if path.suffix == ".jsonl" else _read_parquet
        records.extend(read(path, len(records)))
    if not records:
        raise TaskDataUnreadable(f"GSM8K {SPLIT_FILES[split]} split under {root} is empty "
                                 f"({', '.join(map(str, files))})")
    return records
