"""Tasks. ``ENVS`` is the one registry of environments; the harness looks an
environment up once, at build time. This package never imports
``algorithms`` or the harness."""
from __future__ import annotations

from dataclasses import dataclass

from envs.tabular import TabularMultiConfig, TabularSingleConfig


@dataclass(frozen=True)
class EnvSpec:
    """name: registry key; config: frozen dataclass of the task settings
    (field ``name`` first); family: which harness family runs it; summary: one line."""

    name: str
    config: type
    family: str
    summary: str


ENVS: dict[str, EnvSpec] = {
    "tabular_single": EnvSpec("tabular_single", TabularSingleConfig, "tabular",
                              "single-context sampled bandit, 100 arms (paper Fig. 2)"),
    "tabular_multi": EnvSpec("tabular_multi", TabularMultiConfig, "tabular",
                             "multi-context exact-update bandit, 100 contexts x 10 actions (paper Fig. 3)"),
}


def get_env(name: str) -> EnvSpec:
    """Registry lookup; an unknown name raises KeyError listing the valid ones."""
    try:
        return ENVS[name]
    except KeyError:
        raise KeyError(f"unknown env {name!r}; valid envs: {', '.join(sorted(ENVS))}") from None
