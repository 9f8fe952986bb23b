"""Token reversal family: targets, rewards, scores, errors and token-candidate scores on hand-made data."""
import pytest
import torch

from envs import reversal as R

X = torch.tensor([[0, 1, 2, 3]])  # V = 4, H = 4


@pytest.mark.parametrize("logic, expected", [
    ("copy", [0, 1, 2, 3]),
    ("flip", [3, 2, 1, 0]),
    ("reverse_copy", [3, 2, 1, 0]),
    ("reverse_flip", [0, 1, 2, 3]),
])
def test_targets_all_logics(logic, expected):
    assert R.target(X, logic, 4).tolist() == [expected]


def test_targets_asymmetric_prompt_distinguishes_logics():
    x = torch.tensor([[0, 0, 2, 1]])  # V = 3
    assert R.target(x, "copy", 3).tolist() == [[0, 0, 2, 1]]
    assert R.target(x, "flip", 3).tolist() == [[2, 2, 0, 1]]
    assert R.target(x, "reverse_copy", 3).tolist() == [[1, 2, 0, 0]]
    assert R.target(x, "reverse_flip", 3).tolist() == [[1, 0, 2, 2]]


# two answers, H = 4: first wrong at t = 1 (later right), second wrong only at t = 3
C = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])


def test_correct():
    y = torch.tensor([[1, 0, 1, 1]])
    a = torch.tensor([[1, 1, 1, 0]])
    assert R.correct(a, y).tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_rewards():
    assert R.reward_bag(C).tolist() == C.tolist()
    assert R.reward_sequential(C).tolist() == [[1, 0, 0, 0], [1, 1, 1, 0]]
    assert R.reward_terminal(C).tolist() == [0.0, 0.0]
    assert R.reward_terminal(torch.ones(2, 4)).tolist() == [1.0, 1.0]


def test_sequence_scores():
    assert R.sequence_score(C, "bag").tolist() == [0.75, 0.75]
    assert R.sequence_score(C, "sequential").tolist() == [0.25, 0.75]
    c = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    assert R.sequence_score(c, "terminal").tolist() == [1.0, 0.0]


def test_errors():
    assert R.error_bag(C).item() == pytest.approx(1 - 6 / 8)
    assert R.error_sequential(C).item() == pytest.approx(1 - (1 + 3) / 8)
    c = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    assert R.error_terminal(c).item() == pytest.approx(2 / 3)


def test_alive():
    assert R.alive(C).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_candidate_scores():
    targets = torch.tensor([[1, 0, 1, 1]])
    behaviour = torch.tensor([[1, 1, 1, 1]])       # wrong at t = 1
    c = R.correct(behaviour, targets)
    cands = torch.stack([behaviour, torch.tensor([[0, 0, 1, 0]]), torch.tensor([[1, 0, 0, 1]])], dim=-1)  # [1, 4, 3]
    bag = R.candidate_scores_bag(cands, c, targets)
    assert bag.tolist() == [[[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 1]]]
    seq = R.candidate_scores_sequential(cands, c, targets)
    # alive = [1, 1, 0, 0]: t = 1 still scores (only y_0 must be right), t ≥ 2 is dead
    assert seq.tolist() == [[[1, 0, 1], [0, 1, 1], [0, 0, 0], [0, 0, 0]]]


def test_task_dispatch_and_grouped_shapes():
    task = R.ReversalTask(horizon=3, vocab=2, logic="reverse_copy", reward="sequential")
    prompts = torch.tensor([[0, 1, 1]])
    answers = torch.tensor([[[1, 1, 0], [1, 0, 0], [0, 1, 0]]])  # [B=1, K=3, H=3]; target [1, 1, 0]
    c = task.correct(prompts, answers)
    assert c.tolist() == [[[1, 1, 1], [1, 0, 1], [0, 1, 1]]]
    assert torch.allclose(task.score(c), torch.tensor([[1.0, 1 / 3, 0.0]]))
    assert task.error(c).item() == pytest.approx(1 - 4 / 9)
    assert task.dense
    assert not R.ReversalTask(3, 2, "copy", "terminal").dense


def test_task_candidate_scores_terminal_rejected():
    task = R.ReversalTask(horizon=2, vocab=2, logic="copy", reward="terminal")
    with pytest.raises(ValueError, match="bag"):
        task.candidate_scores(torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2), torch.zeros(1, 2, dtype=torch.long))


@pytest.mark.parametrize("kwargs, words", [
    (dict(logic="mirror"), ["copy", "reverse_flip"]),
    (dict(reward="dense"), ["bag", "sequential", "terminal"]),
])
def test_task_validation_lists_choices(kwargs, words):
    with pytest.raises(ValueError) as err:
        R.ReversalTask(horizon=3, vocab=2, **kwargs)
    assert all(w in str(err.value) for w in words)


def test_sample_prompts_range_and_determinism():
    x = R.sample_prompts(torch.Generator().manual_seed(0), 500, 7, 3, "cpu")
    y = R.sample_prompts(torch.Generator().manual_seed(0), 500, 7, 3, "cpu")
    assert x.shape == (500, 7) and x.dtype == torch.long
    assert torch.equal(x, y)
    assert set(x.unique().tolist()) == {0, 1, 2}
