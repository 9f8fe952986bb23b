"""reasoning-gym tasks (envs/rlvr/tasks.py): generation, verifiers on gold answers, difficulty
pass-through, held-out seed spaces."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("reasoning_gym")

from envs.rlvr.errors import TaskConfigError  # noqa: E402
from envs.rlvr.tasks import (DEFAULT_INSTRUCTION, REASONING_GYM_TASKS, SEED_SPACE, held_out,  # noqa: E402
                             make_task, reasoning_gym_seed)

GOLD_TASKS = [name for name in REASONING_GYM_TASKS if name != "graph_color"]


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("name", GOLD_TASKS)
def test_generated_problems_score_their_gold_answer(name):
    task = make_task(name)
    problems = task.prompts("train", 8, seed=0)
    assert len(problems) == 8 and len({p.prompt for p in problems}) == 8
    assert task.has_gold
    for p in problems:
        assert p.task == name and p.prompt.endswith(DEFAULT_INSTRUCTION) and p.answer
        assert p.metadata["source_dataset"] == name
        completion = f"Let me think.\n<answer>{p.answer}</answer>"
        assert task.score(p, completion) == 1.0
        assert task.score(p, completion, reward="exact_match") == 1.0
        assert task.score(p, "<answer>certainly wrong</answer>") < 1.0
        assert task.score(p, "no answer given", reward="exact_match") == 0.0


def test_graph_color_is_verifier_only():
    task = make_task("graph_color")
    assert not task.has_gold
    for p in task.prompts("train", 6, seed=0):
        assert p.answer is None
        colouring = json.dumps(p.metadata["possible_answer"])
        assert task.score(p, f"<answer>{colouring}</answer>") == 1.0
        puzzle = p.metadata["puzzle"]
        one_colour = json.dumps({str(v): 1 for v in puzzle["vertices"]})
        wrong = task.score(p, f"<answer>{one_colour}</answer>")
        assert (wrong < 1.0) if puzzle["edges"] else (wrong == 1.0)
        assert task.score(p, "<answer>not json</answer>") == 0.0
        assert task.score(p, "no tags") == 0.0
        with pytest.raises(TaskConfigError) as err:
            task.score(p, colouring, reward="exact_match")
        assert "native" in _one_line(err)
    with pytest.raises(TaskConfigError) as err:
        make_task("graph_color", reward={"exact_match": 1.0, "format": 0.1})
    assert "gold" in _one_line(err)


def test_knights_knaves_native_reward_gives_partial_credit():
    task = make_task("knights_knaves", difficulty={"n_people": 2, "depth_constraint": 2, "width_constraint": 2})
    p = task.prompts("train", 1, seed=5)[0]
    terms = p.metadata["knight_knave_terms"]                  # e.g. hero/villain, angel/devil
    roles = {str(terms["knight"]): str(terms["knave"]), str(terms["knave"]): str(terms["knight"])}
    words = p.answer.split()
    flip_at = next(i for i, w in enumerate(words) if w.strip(",.") in roles)
    word = words[flip_at].strip(",.")
    words[flip_at] = words[flip_at].replace(word, roles[word])
    half_right = f"<answer>{' '.join(words)}</answer>"
    assert task.score(p, half_right) == pytest.approx(0.3 + 0.7 * 0.5)    # reasoning-gym's partial credit
    assert task.score(p, half_right, reward="exact_match") == 0.0
    assert task.score(p, half_right, reward={"native": 1.0, "format": 1.0}) == pytest.approx((0.65 + 1.0) / 2)


def test_difficulty_is_passed_to_the_dataset():
    task = make_task("chain_sum", difficulty={"min_terms": 4, "max_terms": 4, "min_digits": 1, "max_digits": 1})
    for p in task.prompts("train", 10, seed=1):
        assert p.metadata["num_terms"] == 4 and p.metadata["num_digits"] == 1
        assert p.metadata["expression"].count("+") + p.metadata["expression"].count("-") == 3
        assert task.score(p, f"<answer>{p.answer}</answer>") == 1.0


def test_unknown_difficulty_setting_lists_the_valid_ones():
    with pytest.raises(TaskConfigError) as err:
        make_task("leg_counting", difficulty={"max_legs": 4})
    message = _one_line(err)
    assert "'max_legs'" in message and "min_animals" in message and "max_instances" in message
    assert "seed" not in message.split("valid settings:")[1]      # the task owns seed and size


def test_invalid_difficulty_value_is_one_line():
    with pytest.raises(TaskConfigError) as err:
        make_task("chain_sum", difficulty={"min_terms": 5, "max_terms": 2})
    assert "max_terms" in _one_line(err)


@pytest.mark.parametrize("name", REASONING_GYM_TASKS)
def test_held_out_split_shares_no_question_and_is_seeded(name):
    task = make_task(name)
    train = task.prompts("train", 24, seed=0) + task.prompts("train", 24, seed=1)
    held_out = task.prompts("eval", 24, seed=0) + task.prompts("eval", 24, seed=1)
    assert not {p.prompt for p in train} & {p.prompt for p in held_out}
    assert task.prompts("eval", 24, seed=0) == held_out[:24]                     # same seed, same problems
    assert task.prompts("train", 24, seed=0) != task.prompts("train", 24, seed=1)


def test_split_seed_spaces_are_disjoint():
    for seed in (0, 1, 2, 10 ** 9, 2 ** 62):
        for n in (1, 100, 2 ** 20):
            train, held_out = reasoning_gym_seed("train", seed, n), reasoning_gym_seed("eval", seed, n)
            assert 0 <= train and train + n <= SEED_SPACE
            assert SEED_SPACE <= held_out and held_out + n <= 2 * SEED_SPACE


def test_generic_reasoning_gym_task_names_its_dataset():
    generic = make_task("reasoning_gym", dataset="chain_sum", extract=["answer_tag"])
    named = make_task("chain_sum")
    assert [p.prompt for p in generic.prompts("train", 5, 3)] == [p.prompt for p in named.prompts("train", 5, 3)]
    with pytest.raises(TaskConfigError) as err:
        make_task("reasoning_gym", dataset="chain_summ")
    assert "chain_sum" in _one_line(err)
    with pytest.raises(TaskConfigError) as err:
        make_task("chain_sum", dataset="leg_counting")        # fixed by the task name
    assert "'dataset'" in _one_line(err)


def test_graph_color_repeats_questions_but_never_across_splits():
    # sparse 10-vertex graphs recur across generator seeds, so only the question-hash split keeps them apart
    task = make_task("graph_color")
    train = [p.prompt for p in task.prompts("train", 300, seed=0)]
    held_out_prompts = [p.prompt for p in task.prompts("eval", 100, seed=0)]
    assert len(set(train)) < len(train)
    assert not set(train) & set(held_out_prompts)
    question = held_out_prompts[0][: -len(DEFAULT_INSTRUCTION)]
    assert held_out(question, task.settings.eval_fraction)


def test_too_small_a_split_is_one_line():
    task = make_task("chain_sum", difficulty={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
                     eval_fraction=1e-6)           # 100 questions; almost surely none hashes below 1e-6
    with pytest.raises(TaskConfigError) as err:
        task.prompts("eval", 1, seed=0)
    assert "eval_fraction" in _one_line(err)
