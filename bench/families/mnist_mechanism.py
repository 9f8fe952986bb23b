"""Mechanism diagnostic of the MNIST bandit (TPO paper §3.3, Fig. 4b; Appendix C).

Question (Fig. 4b): on test examples the policy gets wrong, how much more does a
method's EXPECTED update raise the correct-class probability π_y than the scalar
one-vs-rest surrogate of Appendix C, as a function of how concentrated the wrong-class
mass is? Everything is first order, per example, in the logit space z of the last layer
(the network Jacobian is left out, as in Appendix C: "single-example logit updates").

For one test example with label y, policy π = softmax(z) over K = 10 classes,
p = π_y, v = e_y − π (the CE direction), and a logit-space direction g:

    gain(g)     = ∇_z π_y · g = p·(v·g)                                          (1)

**One-vs-rest surrogate (the paper's, default).** Appendix C writes each method's
expected update under the symmetric one-vs-rest approximation π_j = q = (1 − p)/(K − 1)
for every j ≠ y, where it collapses to a scalar multiple β_sym(p)·v. The surrogate is
that scalar update at the actual π, and the surplus is the exact gain over it:

    gain_ovr(g) = p·β_sym(p)·‖v‖²,        surplus = gain − gain_ovr.               (2)

β_sym is computed, not hard-coded: each method's exact expected direction evaluated at
the symmetrised policy π_sym = p·e_y + q·(1 − e_y) is collinear with v_sym = e_y − π_sym,
and β_sym = g(π_sym)·v_sym / ‖v_sym‖². This reproduces Appendix C's closed forms
(tested): CE 1; PG p; GRPO p/σ; Group PG 6p; DG p(1−b)σ((1−b)log(1/p)/η) +
p·b·σ(−b·log(1/q)/η) with b = p² + 9q²; TPO p·β₊(p) + p·γ(q), β₊(p) = p(λ−1)/(1−p+λp),
γ(r) = r(λ−1)/(λ(1−r)+r), λ = e^{10/3}. PG, GRPO and Group PG are exactly collinear with v
for any π, so their surplus is 0; TPO and DG are not. This is also how the reference
implementation measures Fig. 4b.

**Margin-matched surrogate (another reading, logged beside it).** The update that moves
only the correct logit, by the correct-vs-mean-wrong margin m(g) = g_y − mean_{k≠y} g_k:

    gain_margin(g) = p(1 − p)·m(g),
    surplus_margin = p(1 − p)(mean_{k≠y} g_k − Σ_{k≠y} r_k g_k),  r_k = π_k/(1 − p).   (3)

For every PG-type direction (g ∝ p·v) eq. (3) gives p²(1 − p)²(Σ r_k² − 1/(K−1)) ≥ 0,
unlike (2), which gives 0 (tested).

Examples are binned by the wrong-class concentration c = max_{j≠y} r_j ∈ [1/9, 1] into
[0, .25), [.25, .5), [.5, .75), [.75, 1] (Fig. 4b).

Expected logit-space directions (one sampled class a ~ π per image, R = 1{a = y},
expected baseline b = Σ_k π_k², A(a) = R − b: A(y) = 1 − b, A(a≠y) = −b; e = e_y;
Appendix C):

* CE:        g = e − π.
* PG:        g = E_a[A(a)(e_a − π)] = p(e − π) (any action-independent baseline; also
             REINFORCE with a learned baseline and, up to the scalar 1/σ_r of its score
             normalisation, DRO-V at the snapshot reference).
* GRPO (single sample, batch-standardised R): g = p(e − π)/(σ + 1e-8), with the batch
  moments at their population values μ = E_x[π_y(x)] (here: the mean over the evaluated
  test examples) and σ = √(μ(1 − μ)); g = 0 when μ ∈ {0, 1} (all rewards equal: a
  zero-variance group, GRPOParams.zero_var_rtol).
* DG (η = 1): g = Σ_a π_a σ(A(a)·(−log π_a)) A(a) (e_a − π).
* TPO (η = 1, first step at the snapshot): g = E_a[q^(a) − π],
  q^(a) = softmax(log π + u^(a)), u^(a) = standardise(A(a)·e_a) = sign(A(a))·(3 on a, −1/3 elsewhere).
* Group PG (η = 1): only the sampled class enters, weighted by u^(a)_a = 3·sign(A(a)):
  g = E_a[u^(a)_a (e_a − π)] = 6p(e − π) (Appendix C).

Logged at each evaluation, per seed (mean over the misclassified test examples of the
bin; 0 for an empty bin, whose count is then 0), for m in :data:`METHODS`:
``diag/mech_gain_<m>_bin<i>``, ``diag/mech_ovr_<m>_bin<i>`` and
``diag/mech_surplus_<m>_bin<i>`` (surrogate (2)), ``diag/mech_ovr_margin_<m>_bin<i>`` and
``diag/mech_surplus_margin_<m>_bin<i>`` (surrogate (3)), and ``diag/mech_count_bin<i>``.
The ``mnist_mechanism`` experiment trains each method and reports them at its last step
(step 2,000 at paper scale, Fig. 4b); the figure's reading is method m's surplus on the
policy m trained (the reference's), the other rows are the same directions on other policies.

Assumptions: logit-space first order; method temperatures at their defaults (η = 1);
GRPO's batch moments at population values; DG's gate uses the snapshot surprisal;
expectations are exact sums over the 10 classes (no sampling).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from algorithms.grpo import GRPOParams
from algorithms.shaping import grpo_advantage, standardise_scores
from algorithms.tpo import TPOParams
from bench import metrics as M

BIN_EDGES = (0.0, 0.25, 0.5, 0.75)  # lower edges; the last bin is [0.75, 1]
METHODS = ("ce", "pg", "grpo", "dg", "tpo", "group_pg")
_GRPO, _TPO = GRPOParams(), TPOParams()   # shaping constants of the methods at their defaults


def _signal_scores(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """A(a) [.., K] for every class a, and the one-hot e_y [.., K]."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    b = (probs * probs).sum(-1, keepdim=True)
    return e - b, e


def expected_directions(probs: Tensor, labels: Tensor, mu: Optional[Tensor] = None) -> dict[str, Tensor]:
    """Each method's expected logit-space direction g [.., K] (closed forms in the module docstring).

    probs [.., K], labels [..]; ``mu``: GRPO's population mean reward (default: the mean of π_y over probs).
    """
    K = probs.shape[-1]
    adv, e = _signal_scores(probs, labels)          # adv[.., a] = A(a)
    eye = torch.eye(K, dtype=probs.dtype, device=probs.device)
    sample_dir = eye - probs[..., None, :]          # [.., a, K]: e_a − π
    p_y = (probs * e).sum(-1, keepdim=True)
    mu = p_y.mean() if mu is None else mu
    # GRPO's 1/(σ + ε), σ = √(μ(1 − μ)), as A(R=1) − A(R=0) of the library advantage over the rewards {0, 1}
    # weighted (1 − μ, μ): a population whose rewards cannot differ (μ ∈ {0, 1}) is a zero-variance group → 0
    m2 = torch.stack([1 - mu, mu], -1)
    a01 = grpo_advantage(torch.stack([torch.zeros_like(mu), torch.ones_like(mu)], -1), _GRPO.adv_eps,
                         weights=m2, rtol=_GRPO.zero_var_rtol, scale=_GRPO.adv_scale)
    grpo_scale = (a01[..., 1] - a01[..., 0])[..., None]
    gate = torch.sigmoid(adv * -torch.log(probs.clamp_min(1e-30)))
    u = standardise_scores(adv[..., :, None] * eye, _TPO.std_eps, rtol=_TPO.zero_var_rtol)  # [.., a, K]: u^(a)
    log_q = torch.log_softmax(torch.log(probs.clamp_min(1e-30))[..., None, :] + u, -1)
    w = probs[..., :, None]                          # π_a as a weight over a
    u_sampled = torch.diagonal(u, dim1=-2, dim2=-1)  # [.., a]: u^(a)_a, the sampled coordinate
    return {
        "ce": e - probs,
        "pg": p_y * (e - probs),
        "grpo": p_y * (e - probs) * grpo_scale,
        "dg": (w * (gate * adv)[..., None] * sample_dir).sum(-2),
        "tpo": (w * (log_q.exp() - probs[..., None, :])).sum(-2),
        "group_pg": (w * u_sampled[..., None] * sample_dir).sum(-2),
    }


def symmetrised(probs: Tensor, labels: Tensor) -> Tensor:
    """π_sym [.., K]: the same π_y, the wrong-class mass spread evenly, q = (1 − π_y)/(K − 1)."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    p_y = (probs * e).sum(-1, keepdim=True)
    return p_y * e + (1 - p_y) / (probs.shape[-1] - 1) * (1 - e)


def one_vs_rest_coefficients(probs: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """β_sym(π_y) [..] per method: its expected direction at :func:`symmetrised` π, projected on
    v_sym = e_y − π_sym (it is collinear there; Appendix C). GRPO keeps the moments of ``probs``."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    mu = (probs * e).sum(-1).mean()
    sym = symmetrised(probs, labels)
    v = e - sym
    vv = (v * v).sum(-1).clamp_min(torch.finfo(probs.dtype).tiny)
    return {m: (g * v).sum(-1) / vv for m, g in expected_directions(sym, labels, mu).items()}


def gain(probs: Tensor, labels: Tensor, g: Tensor) -> Tensor:
    """Eq. (1): first-order change of π_y along g, π_y·(e_y − π)·g [..]."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    p_y = (probs * e).sum(-1)
    return p_y * ((e - probs) * g).sum(-1)


def gain_one_vs_rest(probs: Tensor, labels: Tensor, beta: Tensor) -> Tensor:
    """Eq. (2): the gain of the scalar surrogate β·(e_y − π), π_y·β·‖e_y − π‖² [..]."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    v = e - probs
    return (probs * e).sum(-1) * beta * (v * v).sum(-1)


def gain_margin(probs: Tensor, labels: Tensor, g: Tensor) -> Tensor:
    """Eq. (3): the gain of moving only z_y by the margin g_y − mean_{k≠y} g_k, π_y(1 − π_y)·margin [..]."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    p_y = (probs * e).sum(-1)
    margin = (g * e).sum(-1) - (g * (1 - e)).sum(-1) / (probs.shape[-1] - 1)
    return p_y * (1 - p_y) * margin


def concentration(probs: Tensor, labels: Tensor) -> Tensor:
    """c = max_{j≠y} π_j / (1 − π_y) [..]."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(torch.bool).expand(probs.shape)
    wrong = probs.masked_fill(e, 0.0)
    return wrong.max(-1).values / wrong.sum(-1).clamp_min(torch.finfo(probs.dtype).tiny)


@torch.no_grad()
def diagnostic(probs: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Per-seed binned gains on misclassified examples: probs [S, N, K], labels [N] -> {name: [S]}."""
    labels = labels.expand(probs.shape[:-1])
    wrong = probs.argmax(-1) != labels
    c = concentration(probs, labels)
    bin_idx = (c[..., None] >= torch.tensor(BIN_EDGES, dtype=c.dtype, device=c.device)).sum(-1) - 1
    # per seed: GRPO's population moments are those of that seed's policy
    dirs = [expected_directions(probs[s], labels[s]) for s in range(probs.shape[0])]
    betas = [one_vs_rest_coefficients(probs[s], labels[s]) for s in range(probs.shape[0])]
    out: dict[str, Tensor] = {}
    masks = [(wrong & (bin_idx == i)).to(probs.dtype) for i in range(len(BIN_EDGES))]
    counts = [m.sum(-1) for m in masks]
    for i, n in enumerate(counts):
        out[M.diag(f"mech_count_bin{i}")] = n
    for name in METHODS:
        g = torch.stack([d[name] for d in dirs])
        beta = torch.stack([b[name] for b in betas])
        values = {"gain": gain(probs, labels, g), "ovr": gain_one_vs_rest(probs, labels, beta),
                  "ovr_margin": gain_margin(probs, labels, g)}
        for i, (m, n) in enumerate(zip(masks, counts)):
            den = n.clamp_min(1.0)
            mean = {k: (v * m).sum(-1) / den for k, v in values.items()}
            out[M.diag(f"mech_gain_{name}_bin{i}")] = mean["gain"]
            out[M.diag(f"mech_ovr_{name}_bin{i}")] = mean["ovr"]
            out[M.diag(f"mech_surplus_{name}_bin{i}")] = mean["gain"] - mean["ovr"]
            out[M.diag(f"mech_ovr_margin_{name}_bin{i}")] = mean["ovr_margin"]
            out[M.diag(f"mech_surplus_margin_{name}_bin{i}")] = mean["gain"] - mean["ovr_margin"]
    return out
