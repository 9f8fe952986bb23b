"""Every numeric field of every params dataclass carries its allowed range as plain dataclass field
metadata ({"ge"|"gt"|"le"|"lt": bound}); defaults lie inside it; __post_init__ rejects what it checks."""
from __future__ import annotations

import dataclasses
import typing

import pytest

from algorithms import ALGORITHMS

BOUND_KEYS = {"ge", "gt", "le", "lt"}
#: numeric fields that take any real value (no range metadata)
UNBOUNDED = {"baseline_value"}


def _numeric(tp) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return all(a in (int, float) for a in args)


def _inside(value, meta) -> bool:
    checks = {"ge": lambda v, b: v >= b, "gt": lambda v, b: v > b, "le": lambda v, b: v <= b, "lt": lambda v, b: v < b}
    return all(checks[k](value, b) for k, b in meta.items())


PARAMS = sorted({spec.params for spec in ALGORITHMS.values()}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", PARAMS, ids=lambda c: c.__name__)
def test_numeric_fields_have_ranges_and_defaults_satisfy_them(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        assert set(meta) <= BOUND_KEYS, (cls.__name__, f.name, meta)
        if not _numeric(hints[f.name]) or hints[f.name] is bool:
            assert not meta, (cls.__name__, f.name)
            continue
        if f.name in UNBOUNDED:
            assert not meta, (cls.__name__, f.name)
            continue
        assert meta, f"{cls.__name__}.{f.name} has no range metadata"
        assert all(isinstance(b, (int, float)) for b in meta.values())
        if f.default is not None:
            assert _inside(f.default, meta), (cls.__name__, f.name, f.default, meta)


@pytest.mark.parametrize("cls, name, bad", [
    ("TPOParams", "eta", 0.0), ("GroupPGParams", "eta", -1.0), ("DGParams", "eta", 0.0),
    ("PPOParams", "clip_eps", -0.1), ("PPOParams", "log_ratio_clamp", 0.0),
    ("GRPOParams", "zero_var_rtol", -1e-6), ("KTOParams", "zero_var_rtol", -1.0),
])
def test_post_init_rejects_values_outside_the_range(cls, name, bad):
    params_cls = next(c for c in PARAMS if c.__name__ == cls)
    meta = dict(next(f for f in dataclasses.fields(params_cls) if f.name == name).metadata)
    assert not _inside(bad, meta)
    with pytest.raises(ValueError, match=name):
        params_cls(**{name: bad})
