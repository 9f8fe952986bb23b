import torch

from algorithms.kl import kl_k1, kl_k3, seq_log_ratio

D = torch.float64


def test_k1_k3_values():
    logp = torch.tensor([-1.0, -2.0, -0.5], dtype=D)
    ref = torch.tensor([-1.5, -2.0, -0.1], dtype=D)
    torch.testing.assert_close(kl_k1(logp, ref), logp - ref)
    d = ref - logp
    torch.testing.assert_close(kl_k3(logp, ref), torch.exp(d) - d - 1)
    assert (kl_k3(logp, ref) >= 0).all()
    assert kl_k3(logp, ref)[1] == 0


def test_k3_unbiased_for_kl():
    """E_{y~π}[k3] = KL(π‖π_ref) for categorical π, π_ref."""
    pi = torch.softmax(torch.randn(7, dtype=D), 0)
    ref = torch.softmax(torch.randn(7, dtype=D), 0)
    exact = (pi * (pi.log() - ref.log())).sum()
    torch.testing.assert_close((pi * kl_k3(pi.log(), ref.log())).sum(), exact)
    torch.testing.assert_close((pi * kl_k1(pi.log(), ref.log())).sum(), exact)


def test_gradients_flow_through_logp_only():
    logp = torch.tensor([-1.0, -0.3], dtype=D, requires_grad=True)
    ref = torch.tensor([-1.0, -0.8], dtype=D, requires_grad=True)
    kl_k3(logp, ref).sum().backward()
    assert ref.grad is None
    assert logp.grad[0] == 0  # zero gradient where logp == ref
    torch.testing.assert_close(logp.grad[1], 1 - torch.exp(ref[1] - logp[1]).detach())


def test_seq_log_ratio_masks_padding():
    logp = torch.tensor([[-1.0, -2.0, -9.0]], dtype=D)
    ref = torch.tensor([[-0.5, -1.0, 0.0]], dtype=D)
    m = torch.tensor([[1.0, 1.0, 0.0]], dtype=D)
    torch.testing.assert_close(seq_log_ratio(logp, ref, m), torch.tensor([-1.5], dtype=D))
