"""Every offline phase loss on CUDA matches its CPU value and gradient and makes no host sync (needs a GPU)."""
import pytest
import torch

from test_offline_losses import PHASE_IDS, PHASES, _loss, init_params, make_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _place(phase, p, b, device, dtype):
    """Parameters (the phase's own network's requiring grad) and batch on ``device`` — the host-to-device copy is a
    sync by design, so it happens before the sync check starts."""
    own = phase.network
    ps = {net: {k: v.to(device=device, dtype=dtype).requires_grad_(net == own) for k, v in q.items()}
          for net, q in p.items()}
    return ps, {k: v.to(device=device, dtype=dtype) for k, v in b.items()}


def _run(name, phase, ps, bs):
    own = phase.network
    loss, diags = _loss(name, phase, ps, bs)
    grads = torch.autograd.grad(loss, list(ps[own].values()), allow_unused=True)
    return loss, diags, [torch.zeros_like(v) if g is None else g for v, g in zip(ps[own].values(), grads)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name, i, phase", PHASES, ids=PHASE_IDS)
def test_cuda_matches_cpu_without_sync(name, i, phase, dtype):
    gen = torch.Generator().manual_seed(300 + i)
    p, b = init_params(gen), make_batch(gen)
    loss_c, diag_c, grad_c = _run(name, phase, *_place(phase, p, b, "cpu", dtype))
    on_gpu = _place(phase, p, b, "cuda", dtype)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_g, diag_g, grad_g = _run(name, phase, *on_gpu)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else {}
    assert loss_g.device.type == "cuda" and loss_g.dtype == dtype
    torch.testing.assert_close(loss_g.cpu(), loss_c, **tol)
    for g, c in zip(grad_g, grad_c):
        torch.testing.assert_close(g.cpu(), c, **tol)
    for k in diag_c:
        assert diag_g[k].device.type == "cuda"
        torch.testing.assert_close(diag_g[k].cpu(), diag_c[k], **tol)
