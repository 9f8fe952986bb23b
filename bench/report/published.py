"""The paper's published numbers (transcribed once, ``results/published/*.csv``) and method names.

CSV layout (tidy, one value per line)::

    experiment, table, method, <setting columns named like config keys, e.g. env.vocab>,
    metric, reduction, threshold, value, unit, note, source

(``threshold``: the threshold of ``steps_to_threshold``, the step of ``at_step``.)

``method`` uses our algorithm config names (``tpo``, ``grpo_nokl``, ...); :data:`PAPER_NAMES`
is the one place paper labels map to them. A paper "−" (never reached / > 95 %) is an
empty ``value`` with a ``note`` saying so; :func:`load_published` exposes it as
``value = NaN, never = True``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

import bench

PUBLISHED_DIR = Path(bench.__file__).resolve().parent.parent / "results" / "published"
"""Default location of the transcribed CSVs (the repository's ``results/published``)."""

PAPER_NAMES: dict[str, str] = {
    "TPO": "tpo",
    "TPO_token": "tpo_token",
    "TPO-no-anchor": "tpo_no_anchor",
    "TPO (1 epoch)": "tpo_1ep",
    "GRPO": "grpo",
    "GRPO_token": "grpo_token",
    "GRPO (no KL)": "grpo_nokl",
    "GRPO (masked)": "grpo_masked",
    "PPO": "ppo",
    "DG": "dg",
    "PG": "pg",
    "Group PG": "group_pg",
    "CE": "ce",
    "DRO-V": "dro_v",
    "REINFORCE": "reinforce",
    "REINFORCE (learned baseline)": "reinforce_lb",
    "BC": "bc",
    "TD3+BC": "td3_bc",
    "IQL": "iql",
    "RLOO": "rloo",
    "KTO": "kto",
    "Dr. GRPO": "dr_grpo",
    "D-BC": "ddpm_bc",
    "C-BC": "consistency_bc",
    "Flow BC": "flow_bc",
    "GTP-BC": "gtp_bc",
    "D-QL": "diffusion_ql",
    "C-AC": "consistency_ac",
    "FQL": "fql",
    "GTP": "gtp",
    "GTP (K=2)": "gtp_k2",
    "GTP (ODE teacher)": "gtp_ode_teacher",
    "GTP (shortcut, no teacher)": "gtp_shortcut",
    "TPO-offline": "tpo_offline",
}
"""Paper label -> algorithm config name (``algorithm.name``)."""

METHOD_LABELS: dict[str, str] = {v: k for k, v in PAPER_NAMES.items()}
"""Algorithm config name -> label printed in tables (the paper's spelling)."""

BASE_COLUMNS = ("experiment", "table", "method", "metric", "reduction", "threshold", "value", "unit", "note", "source")


def method_label(name: object) -> str:
    """Paper label of an algorithm config name (unknown names print as given)."""
    return METHOD_LABELS.get(str(name), str(name))


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """The setting columns of a published CSV (everything not in :data:`BASE_COLUMNS`)."""
    return [c for c in frame.columns if c not in BASE_COLUMNS]


def load_published(name: str, root: Optional[Path] = None) -> pd.DataFrame:
    """Read ``<root>/<name>`` (``.csv`` added if missing); adds a boolean ``never`` column.

    Raises ``FileNotFoundError`` naming the path when the file does not exist.
    """
    path = Path(root or PUBLISHED_DIR) / (name if name.endswith(".csv") else f"{name}.csv")
    if not path.exists():
        raise FileNotFoundError(f"published numbers not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["value"] = pd.to_numeric(frame["value"].replace("", None), errors="coerce")
    frame["threshold"] = pd.to_numeric(frame["threshold"].replace("", None), errors="coerce")
    frame["never"] = frame["value"].isna()
    return frame


def published_for(frame: pd.DataFrame, metric: str, reduction: str, threshold: Optional[float]) -> pd.DataFrame:
    """Rows of a published frame for one metric/reduction (and threshold, when given)."""
    rows = frame[(frame["metric"] == metric) & (frame["reduction"] == reduction)]
    if threshold is not None and rows["threshold"].notna().any():
        rows = rows[(rows["threshold"] - threshold).abs() < 1e-12]
    return rows
