"""Every loss on CUDA matches its CPU value and makes no host sync (needs a GPU)."""
import pytest
import torch

from algorithms import ALGORITHMS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _to(batch, device, dtype):
    fields = {}
    for f in batch.__dataclass_fields__:
        v = getattr(batch, f)
        fields[f] = None if v is None else v.detach().to(device=device, dtype=dtype).requires_grad_(f in ("logp", "values"))
    return type(batch)(**fields)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(k for k, s in ALGORITHMS.items() if s.loss is not None))   # offline: own file
def test_cuda_matches_cpu_without_sync(name, dtype, make_group_batch, make_traj_batch):
    spec = ALGORITHMS[name]
    cpu = make_group_batch(at_snapshot=False, binary=True, weights=True, ref=True) if spec.batch == "group" else \
        make_traj_batch(at_snapshot=False, values=True, ref=True, weights=True)
    cpu, gpu = _to(cpu, "cpu", dtype), _to(cpu, "cuda", dtype)
    params = spec.params()
    loss_cpu, diag_cpu = spec.loss(cpu, params)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_gpu, diag_gpu = spec.loss(gpu, params)
        (g_gpu,) = torch.autograd.grad(loss_gpu, gpu.logp)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    (g_cpu,) = torch.autograd.grad(loss_cpu, cpu.logp)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else {}
    assert loss_gpu.device.type == "cuda" and loss_gpu.dtype == dtype
    torch.testing.assert_close(loss_gpu.cpu(), loss_cpu, **tol)
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, **tol)
    for k in diag_cpu:
        assert diag_gpu[k].device.type == "cuda"
        torch.testing.assert_close(diag_gpu[k].cpu(), diag_cpu[k], **tol)
