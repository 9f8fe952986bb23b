"""Mechanism diagnostic of the MNIST bandit (paper Fig. 4b; TPO paper Appendix C).

Question: where does a method's EXPECTED update raise the correct-class
probability π_y more than a "one-vs-rest" scalar update would, on examples the
policy currently gets wrong? Everything is first order, per example, in the
logit space z of the last layer (the network Jacobian is left out — the brief
allows this; EXPERIMENTS.md does not spell Appendix C out, see "Assumptions").

For one test example with label y, current policy π = softmax(z) over K = 10
classes, and a logit-space direction g:

    gain(g)  = ∇_z π_y · g = π_y (g_y − Σ_k π_k g_k)                           (1)

One-vs-rest scalar surrogate of g: the update that moves ONLY the correct
logit against the rest, by the same margin g gives it over the average wrong
class, m(g) = g_y − mean_{k≠y} g_k; i.e. g_ovr = m(g)·e_y (adding a constant to
every logit does not change π, so "z_y up by m against all others" is e_y·m):

    gain_ovr(g) = π_y (1 − π_y) m(g)                                            (2)
    surplus(g)  = gain − gain_ovr = π_y (1 − π_y) (mean_{k≠y} g_k − Σ_{k≠y} r_k g_k),
    r_k = π_k / (1 − π_y)  (the wrong-class distribution).                       (3)

So the surplus is positive exactly when g pushes down the wrong classes that
hold the wrong mass harder than the uniform average: it measures how much a
method exploits concentrated confusion. Examples are binned by the wrong-class
concentration c = max_{j≠y} r_j ∈ [1/9, 1] into [0, .25), [.25, .5), [.5, .75), [.75, 1].

Expected logit-space directions (one sampled class a ~ π per image, R = 1{a = y},
expected baseline b = Σ_k π_k², A(a) = R − b: A(y) = 1 − b, A(a≠y) = −b; e = e_y):

* CE:        g = e − π.
* PG:        g = E_a[A(a)(e_a − π)] = π_y (e − π)  (any action-independent baseline;
             also REINFORCE with a learned baseline and, up to the scalar 1/σ_r of its
             score normalisation, DRO-V at the snapshot reference).
* GRPO (single sample, batch-standardised R): g = π_y (e − π)/(σ + 1e-8) with the
  batch moments taken at their population values μ = E_x[π_y(x)] (here: the mean
  over the evaluated test examples) and σ = √(μ(1 − μ)).
* DG (η = 1): g = Σ_a π_a σ(A(a)·(−log π_a)) A(a) (e_a − π).
* TPO (η = 1, first epoch at the snapshot): g = E_a[q^(a) − π],
  q^(a) = softmax(log π + u^(a)), u^(a) = standardise(A(a)·e_a) = sign(A(a))·(3 on a, −1/3 elsewhere).
* Group PG (η = 1): −∇_z of −Σ_k u_k log π_k is u − (Σ_k u_k)π = u, so g = E_a[u^(a)].

For every PG-type method (g ∝ π_y(e − π)) eq. (3) reduces to
surplus = π_y²(1 − π_y)²(Σ_{k≠y} r_k² − 1/(K−1)) ≥ 0: it grows with the concentration but is
damped by π_y² on misclassified examples (tested). TPO, DG and Group PG have no such closed
form here; they are evaluated from the exact expectations above.

Logged at each evaluation, per seed (mean over the misclassified test examples of the bin;
0 for an empty bin, whose count is then 0):
``diag/mech_gain_<m>_bin<i>``, ``diag/mech_ovr_<m>_bin<i>``, ``diag/mech_surplus_<m>_bin<i>``
for m in :data:`METHODS`, and ``diag/mech_count_bin<i>`` (examples in the bin).
The ``mnist_mechanism`` experiment reports them at its last step (step 2,000 at paper scale).

Assumptions (not in EXPERIMENTS.md): logit-space first order (no network Jacobian); the
one-vs-rest surrogate matched on the correct-vs-mean-wrong margin (2); method temperatures
at their defaults (η = 1); GRPO's batch moments at population values; DG's gate uses the
snapshot surprisal; expectations are exact sums over the 10 classes (no sampling).
"""
from __future__ import annotations

import torch
from torch import Tensor

from algorithms.shaping import standardise_scores
from bench import metrics as M

BIN_EDGES = (0.0, 0.25, 0.5, 0.75)  # lower edges; the last bin is [0.75, 1]
METHODS = ("ce", "pg", "grpo", "dg", "tpo", "group_pg")


def _signal_scores(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """A(a) [.., K] for every class a, and the one-hot e_y [.., K]."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    b = (probs * probs).sum(-1, keepdim=True)
    return e - b, e


def expected_directions(probs: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Each method's expected logit-space direction g [.., K] (closed forms in the module docstring)."""
    K = probs.shape[-1]
    adv, e = _signal_scores(probs, labels)          # adv[.., a] = A(a)
    eye = torch.eye(K, dtype=probs.dtype, device=probs.device)
    sample_dir = eye - probs[..., None, :]          # [.., a, K]: e_a − π
    p_y = (probs * e).sum(-1, keepdim=True)
    mu = p_y.mean()
    sigma = (mu * (1 - mu)).clamp_min(0).sqrt()
    gate = torch.sigmoid(adv * -torch.log(probs.clamp_min(1e-30)))
    u = standardise_scores(adv[..., :, None] * eye)  # [.., a, K]: u^(a)
    log_q = torch.log_softmax(torch.log(probs.clamp_min(1e-30))[..., None, :] + u, -1)
    w = probs[..., :, None]                          # π_a as a weight over a
    return {
        "ce": e - probs,
        "pg": p_y * (e - probs),
        "grpo": p_y * (e - probs) / (sigma + 1e-8),
        "dg": (w * (gate * adv)[..., None] * sample_dir).sum(-2),
        "tpo": (w * (log_q.exp() - probs[..., None, :])).sum(-2),
        "group_pg": (w * u).sum(-2),
    }


def gains(probs: Tensor, labels: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """(gain, gain_ovr) [..]: eqs. (1) and (2) of the module docstring."""
    e = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype).expand_as(probs)
    p_y = (probs * e).sum(-1)
    g_y = (g * e).sum(-1)
    gain = p_y * (g_y - (probs * g).sum(-1))
    margin = g_y - (g * (1 - e)).sum(-1) / (probs.shape[-1] - 1)
    return gain, p_y * (1 - p_y) * margin


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
    dirs = expected_directions(probs, labels)
    out: dict[str, Tensor] = {}
    masks = [(wrong & (bin_idx == i)).to(probs.dtype) for i in range(len(BIN_EDGES))]
    counts = [m.sum(-1) for m in masks]
    for i, n in enumerate(counts):
        out[M.diag(f"mech_count_bin{i}")] = n
    for name, g in dirs.items():
        gain, ovr = gains(probs, labels, g)
        for i, (m, n) in enumerate(zip(masks, counts)):
            den = n.clamp_min(1.0)
            mg, mo = (gain * m).sum(-1) / den, (ovr * m).sum(-1) / den
            out[M.diag(f"mech_gain_{name}_bin{i}")] = mg
            out[M.diag(f"mech_ovr_{name}_bin{i}")] = mo
            out[M.diag(f"mech_surplus_{name}_bin{i}")] = mg - mo
    return out
