import pytest
import torch

from algorithms.batch import GroupBatch, TrajectoryBatch, TransitionBatch, group_to_trajectories, require_field

G, K, T, N = 2, 3, 4, 5


def _group(**over):
    kw = dict(logp=torch.zeros(G, K, T), logp_old=torch.zeros(G, K, T), scores=torch.zeros(G, K))
    kw.update(over)
    return GroupBatch(**kw)


def _traj(**over):
    kw = dict(logp=torch.zeros(N, T), logp_old=torch.zeros(N, T), rewards=torch.zeros(N, T))
    kw.update(over)
    return TrajectoryBatch(**kw)


@pytest.mark.parametrize(
    "field,bad",
    [
        ("logp_old", torch.zeros(G, K, T + 1)),
        ("scores", torch.zeros(G, K, 1)),
        ("mask", torch.zeros(G, K)),
        ("weights", torch.zeros(G)),
        ("logp_ref", torch.zeros(K, G, T)),
    ],
)
def test_group_batch_shape_errors_name_field(field, bad):
    with pytest.raises(ValueError, match=field):
        _group(**{field: bad})


def test_group_batch_logp_dims():
    with pytest.raises(ValueError, match="logp"):
        GroupBatch(logp=torch.zeros(G, K), logp_old=torch.zeros(G, K), scores=torch.zeros(G, K))


@pytest.mark.parametrize(
    "field,bad",
    [
        ("logp_old", torch.zeros(N, T + 1)),
        ("rewards", torch.zeros(N)),
        ("mask", torch.zeros(N + 1, T)),
        ("weights", torch.zeros(N, 1)),
        ("baseline", torch.zeros(N)),
        ("values", torch.zeros(N, T)),
        ("logp_ref", torch.zeros(T, N)),
        ("scores", torch.zeros(N + 1)),
    ],
)
def test_trajectory_batch_shape_errors_name_field(field, bad):
    with pytest.raises(ValueError, match=field):
        _traj(**{field: bad})


def test_type_error_for_non_tensor():
    with pytest.raises(TypeError, match="scores"):
        _group(scores=[[0.0] * K] * G)


def test_transition_batch_shapes():
    ok = dict(observations=torch.zeros(N, 3), actions=torch.zeros(N, 2), rewards=torch.zeros(N),
              next_observations=torch.zeros(N, 3), terminals=torch.zeros(N))
    TransitionBatch(**ok)
    for field, bad in [("rewards", torch.zeros(N + 1)), ("terminals", torch.zeros(N, 1)),
                       ("next_observations", torch.zeros(N, 4)), ("actions", torch.zeros(N + 1, 2))]:
        with pytest.raises(ValueError, match=field):
            TransitionBatch(**{**ok, field: bad})


def test_sequence_log_probs_respect_mask():
    logp = torch.tensor([[[-1.0, -2.0], [-0.5, -7.0]]])
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    b = GroupBatch(logp=logp, logp_old=logp - 1, scores=torch.zeros(1, 2), mask=mask, logp_ref=logp + 1)
    torch.testing.assert_close(b.seq_logp(), torch.tensor([[-3.0, -0.5]]))
    torch.testing.assert_close(b.seq_logp_old(), torch.tensor([[-5.0, -1.5]]))
    torch.testing.assert_close(b.seq_logp_ref(), torch.tensor([[-1.0, 0.5]]))
    with pytest.raises(ValueError, match="logp_ref"):
        _group().seq_logp_ref()


def test_group_to_trajectories():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(G, K, T, generator=g) < 0.7).float()
    b = _group(logp=torch.randn(G, K, T, generator=g), scores=torch.randn(G, K, generator=g), mask=mask,
               weights=torch.rand(G, K, generator=g))
    t = group_to_trajectories(b)
    assert t.logp.shape == (G * K, T)
    torch.testing.assert_close(t.seq_scores(), b.scores.reshape(-1))
    torch.testing.assert_close(t.rewards, b.scores.reshape(-1, 1) * mask.reshape(G * K, T))
    torch.testing.assert_close(t.traj_weights(), b.weights.reshape(-1))


def test_defaults_and_require_field():
    b = _traj()
    assert torch.equal(b.token_mask(), torch.ones(N, T))
    assert torch.equal(b.traj_weights(), torch.ones(N))
    with pytest.raises(ValueError, match="values"):
        require_field(b, "values", "a test")
