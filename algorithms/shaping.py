"""Score shaping and baselines shared by every loss (docs/paper-map.md §1).

Group methods (TPO, Group PG, GRPO, RLOO) turn the K scores of a group into
per-candidate signals over the *last* dimension K; trajectory methods (PG, PPO,
DG) subtract a baseline from per-token rewards. Nothing here carries a
gradient except what the caller passes in (every output is meant to be used
under stop-gradient and is returned detached where the maths says ``sg``).

Weights: ``weights`` [..., K] are expectation weights of candidates; the mean
and the (population, ddof 0) std of a group are taken under the weights
normalised to sum to 1 within the group. With all-ones weights this is the
plain mean/std; with behaviour probabilities π it is the exact population
statistic used by the tabular updates (TPO paper, Appendix B; docs/paper-map.md §3).
A candidate is *live* when its weight is > 0 (every candidate without weights).

Zero-variance groups (docs/paper-map.md §1 and §7). Equal scores that are not
exactly representable (k/H in fp32) have a group mean one ulp away from each
score, and ``(s − mean)/(std + 1e-8)`` turns that residue into an O(1)
advantage of one sign for the whole group. A group is therefore tested on the
spread of its live scores, which has no mean residue (max − min of equal
numbers is exactly 0), relative to their magnitude:

    flat  ⇔  max_live(s) − min_live(s) ≤ rtol · max_live |s|

A flat group gets exactly zero centred score / advantage. The test is ``≤``, so
an all-zero group (0 ≤ 0) and a group with no live candidate are flat without a
separate absolute floor; a group with NaN scores is never flat (the NaN
propagates). ``rtol`` is a loss parameter (``zero_var_rtol``, default
:data:`ZERO_VAR_RTOL`); ``rtol=None`` switches the test off and gives the
reference implementation's plain formulas.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .aggregate import safe_den as _safe_den
from .aggregate import weighted_mean
from .batch import TrajectoryBatch, require_field

BASELINES = ("constant", "batch_mean", "expected", "learned")
ADV_SCALES = ("std", "none")

#: Default relative tolerance of the zero-variance test: about 80 fp32 ulps, so the rounding of a mean of up
#: to ~100 equal terms is absorbed, while scores that differ in the 5th significant digit stay distinct.
ZERO_VAR_RTOL = 1e-5


def group_moments(s: Tensor, weights: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(mean, population std) of ``s`` over the last dim, keepdim, optionally weighted."""
    if weights is None:
        mean = s.mean(-1, keepdim=True)
        var = ((s - mean) ** 2).mean(-1, keepdim=True)
    else:
        w = weights.to(s.dtype)
        w = w / _safe_den(w.sum(-1, keepdim=True))
        mean = (w * s).sum(-1, keepdim=True)
        var = (w * (s - mean) ** 2).sum(-1, keepdim=True)
    return mean, var.clamp_min(0.0).sqrt()


def spread_and_scale(s: Tensor, live: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(max − min, max |s|) of ``s`` over the last dim, keepdim, restricted to ``live`` (bool, same
    shape; all when None). A group with no live entry gives (−inf, 0). Detached."""
    s = s.detach()
    if live is None:
        return s.amax(-1, keepdim=True) - s.amin(-1, keepdim=True), s.abs().amax(-1, keepdim=True)
    inf = torch.full_like(s, float("inf"))
    hi = torch.where(live, s, -inf).amax(-1, keepdim=True)
    lo = torch.where(live, s, inf).amin(-1, keepdim=True)
    scale = torch.where(live, s.abs(), torch.zeros_like(s)).amax(-1, keepdim=True)
    return hi - lo, scale


def flat_groups(s: Tensor, rtol: Optional[float], weights: Optional[Tensor] = None) -> Tensor:
    """bool [..., 1] (keepdim): True where the live scores span at most ``rtol``·max|s| (module doc);
    all False when ``rtol`` is None (no zero-variance test). ValueError for a negative rtol."""
    if rtol is None:
        return torch.zeros(s.shape[:-1] + (1,), dtype=torch.bool, device=s.device)
    check_zero_var_rtol(rtol)
    spread, scale = spread_and_scale(s, None if weights is None else weights > 0)
    return spread <= rtol * scale


def check_zero_var_rtol(rtol: Optional[float]) -> None:
    """Raise ValueError unless rtol is None or a number ≥ 0 (used by params __post_init__)."""
    if rtol is not None and not rtol >= 0:
        raise ValueError(f"zero_var_rtol: must be >= 0 (or None for no zero-variance test), got {rtol}")


def _zero_where(flat: Tensor, x: Tensor) -> Tensor:
    return torch.where(flat, torch.zeros_like(x), x)


def standardise_scores(s: Tensor, eps: float = 1e-6, weights: Optional[Tensor] = None,
                       rtol: Optional[float] = ZERO_VAR_RTOL) -> Tensor:
    """TPO rule over the last dim K (TPO paper §3): c = s − mean(s), sd = std(c) (ddof 0);
    u = c / sd if sd > eps else c; a flat group (module doc, tolerance ``rtol``) gives u = 0 exactly.

    Shapes: s [..., K], weights [..., K] or None → u [..., K]. ``rtol=None`` is the reference
    implementation's rule (no zero-variance test: equal fp32 scores then give u = c ≈ 1e-8, not 0).
    Example: a one-hot over 10 candidates gives (3, −1/3, …, −1/3).
    """
    mean, sd = group_moments(s, weights)
    c = s - mean
    ok = sd > eps
    u = torch.where(ok, c / torch.where(ok, sd, torch.ones_like(sd)), c)
    return _zero_where(flat_groups(s, rtol, weights), u)


def check_adv_scale(scale: str) -> None:
    """Raise ValueError for an unknown GRPO advantage scaling."""
    if scale not in ADV_SCALES:
        raise ValueError(f"adv_scale: expected one of {', '.join(ADV_SCALES)}, got {scale!r}")


def grpo_advantage(s: Tensor, eps: float = 1e-8, weights: Optional[Tensor] = None,
                   rtol: Optional[float] = ZERO_VAR_RTOL, scale: str = "std") -> Tensor:
    """GRPO advantage over the last dim K: A = (s − mean(s)) / (std(s) + eps) (``scale="std"``,
    DeepSeekMath §4.1) or A = s − mean(s) (``scale="none"``, Dr. GRPO: Liu et al. 2025, arXiv
    2503.20783, §3.2); a flat group (module doc, tolerance ``rtol``) gives A = 0 exactly.

    Shapes: s [..., K], weights [..., K] or None → A [..., K]. ``rtol=None`` is the reference
    implementation's formula, with no zero-variance test. ValueError for an unknown ``scale``.
    """
    check_adv_scale(scale)
    mean, sd = group_moments(s, weights)
    a = s - mean
    if scale == "std":
        a = a / (sd + eps)
    return _zero_where(flat_groups(s, rtol, weights), a)


def leave_one_out_advantage(s: Tensor, rtol: Optional[float] = ZERO_VAR_RTOL) -> Tensor:
    """RLOO: A_k = s_k − mean_{j≠k} s_j = (K·s_k − Σ_j s_j) / (K − 1) over the last dim K; needs
    K ≥ 2 (ValueError otherwise). A flat group (module doc) gives A = 0 exactly; ``rtol=None``: no test."""
    K = s.shape[-1]
    if K < 2:
        raise ValueError(f"scores: leave-one-out baseline needs K >= 2 candidates, got K={K}")
    return _zero_where(flat_groups(s, rtol), (K * s - s.sum(-1, keepdim=True)) / (K - 1))


def zero_variance_groups(s: Tensor, eps: float = 1e-6, weights: Optional[Tensor] = None,
                         rtol: Optional[float] = ZERO_VAR_RTOL) -> Tensor:
    """bool [..] (last dim reduced): the group has zero variance — flat under ``rtol`` (module doc),
    or, with ``rtol=None`` (the reference rule), its weighted score std ≤ eps."""
    if rtol is None:
        return group_moments(s, weights)[1].squeeze(-1) <= eps
    return flat_groups(s, rtol, weights).squeeze(-1)


def success_fail_means(v: Tensor, s: Tensor, eps: float = 1e-6,
                       rtol: Optional[float] = ZERO_VAR_RTOL) -> tuple[Tensor, Tensor]:
    """Diagnostic: mean of per-candidate ``v`` [G, K] over *successful* candidates
    (score equal to the group's max) and over the others, counting only groups
    with non-zero score variance (:func:`zero_variance_groups` with eps, rtol).
    Empty sets give 0. Returns detached 0-dim tensors."""
    v, s = v.detach(), s.detach()
    live = (~zero_variance_groups(s, eps, rtol=rtol)).to(v.dtype)[:, None]
    succ = (s >= s.max(-1, keepdim=True).values).to(v.dtype) * live
    fail = live - succ
    return (v * succ).sum() / _safe_den(succ.sum()), (v * fail).sum() / _safe_den(fail.sum())


def advantage(
    rewards: Tensor,
    mask: Optional[Tensor],
    mode: str,
    constant: float = 0.0,
    baseline: Optional[Tensor] = None,
    values: Optional[Tensor] = None,
    weights: Optional[Tensor] = None,
    rtol: Optional[float] = ZERO_VAR_RTOL,
) -> Tensor:
    """Per-token advantage A [N, T] = r_t − b_t for trajectory methods (PG, PPO, DG).

    Shapes: rewards, mask [N, T] (mask in {0, 1}; None: no padding); weights [N] or None.
    mode:
      * ``"constant"``:   b_t = constant.
      * ``"batch_mean"``: b_t = Σ_n w_n m_nt r_nt / Σ_n w_n m_nt, the (weighted,
        masked) mean of r_t over the N trajectories at token position t
        (0 where no trajectory has a token t) — the TPO paper's r_t − mean_B r_t
        (docs/paper-map.md §1). A position whose live rewards (m_nt w_n > 0) are
        flat (module doc, tolerance ``rtol``; None: no test) gets A = 0 exactly.
      * ``"expected"``:   b_t = ``baseline`` [N, T] (e.g. Σ_k π_k² on MNIST).
      * ``"learned"``:    b_t = sg[values] [N] broadcast over t.
    Padding (m = 0) gets A = 0 and its reward is never read, so a non-finite
    padding value cannot reach a sum (no inf·0). Returned detached (the losses use sg[A]).
    ValueError for an unknown mode or a missing baseline/values tensor.
    """
    check_baseline(mode)
    real = None if mask is None else mask > 0
    r = rewards.detach() if real is None else torch.where(real, rewards.detach(), torch.zeros_like(rewards))
    if mode == "constant":
        a = r - float(constant)
    elif mode == "batch_mean":
        m = torch.ones_like(r) if mask is None else mask.to(r.dtype)
        if weights is not None:
            m = m * weights.to(r.dtype)[:, None]
        b = ((r * m).sum(0) / _safe_den(m.sum(0)))[None, :]
        flat = flat_groups(r.transpose(0, 1), rtol, m.transpose(0, 1)).transpose(0, 1)  # [1, T]
        a = _zero_where(flat, r - b)
    elif mode == "expected":
        if baseline is None:
            raise ValueError("baseline: baseline='expected' needs batch.baseline [N, T], got None")
        a = r - baseline.detach().to(r.dtype)
    else:  # "learned"
        if values is None:
            raise ValueError("values: baseline='learned' needs batch.values [N], got None")
        a = r - values.detach().to(r.dtype)[:, None]
    return a if real is None else torch.where(real, a, torch.zeros_like(a))


def check_baseline(mode: str) -> None:
    """Raise ValueError for an unknown baseline mode (used by params __post_init__)."""
    if mode not in BASELINES:
        raise ValueError(f"unknown baseline mode {mode!r}; valid: {', '.join(BASELINES)}")


def trajectory_advantage(batch: TrajectoryBatch, mode: str, constant: float = 0.0,
                         rtol: Optional[float] = ZERO_VAR_RTOL) -> Tensor:
    """:func:`advantage` read off a :class:`TrajectoryBatch` (the one advantage of PG, PPO and DG)."""
    return advantage(batch.rewards, batch.mask, mode, constant, batch.baseline, batch.values, batch.weights,
                     rtol)


def value_loss(batch: TrajectoryBatch) -> Tensor:
    """½ Σ_n w_n (r_n − V_n)² / Σ_n w_n with r = batch.seq_scores(), V = batch.values (with grad)."""
    values = require_field(batch, "values", "a learned value baseline")
    r = batch.seq_scores().detach().to(values.dtype)
    return 0.5 * weighted_mean((r - values) ** 2, batch.weights)
