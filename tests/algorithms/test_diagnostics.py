"""algorithms.diagnostics: switching the losses' diagnostics off changes neither the loss nor its gradient."""
from __future__ import annotations

import pytest
import torch

from algorithms import GRPOParams, TPOParams, diagnostics, grpo_loss, tpo_loss
from algorithms.batch import GroupBatch


def _batch(seed: int = 0) -> GroupBatch:
    g = torch.Generator().manual_seed(seed)
    logp = torch.randn(4, 6, 3, generator=g).clamp(max=-0.01).requires_grad_(True)
    return GroupBatch(logp=logp, logp_old=(logp.detach() + 0.1 * torch.randn(4, 6, 3, generator=g)),
                      scores=torch.randint(0, 2, (4, 6), generator=g).float())


@pytest.mark.parametrize("loss, params", [(tpo_loss, TPOParams()), (grpo_loss, GRPOParams())])
def test_off_returns_no_diagnostics_and_the_same_loss_and_gradient(loss, params):
    out = {}
    for on in (True, False):
        batch = _batch()
        with diagnostics.computed(on):
            value, diags = loss(batch, params)
        value.backward()
        out[on] = (value.detach(), batch.logp.grad, diags)
    assert out[True][2] and out[False][2] == {}
    assert torch.equal(out[True][0], out[False][0]) and torch.equal(out[True][1], out[False][1])


def test_switch_is_restored_after_an_exception():
    assert diagnostics.enabled()
    with pytest.raises(RuntimeError):
        with diagnostics.computed(False):
            assert not diagnostics.enabled()
            raise RuntimeError("inside")
    assert diagnostics.enabled()
