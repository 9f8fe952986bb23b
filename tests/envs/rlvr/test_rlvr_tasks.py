"""The RLVR task interface, registry and the built-in ``arithmetic_small`` task (envs/rlvr/tasks.py,
envs/rlvr/config.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from envs.rlvr import RLVRConfig, build_task
from envs.rlvr.errors import TaskConfigError
from envs.rlvr.tasks import SPLITS, TASKS, Problem, make_task


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


def test_unknown_task_name_lists_the_valid_names():
    with pytest.raises(TaskConfigError) as err:
        make_task("gsm8k_hard")
    message = _one_line(err)
    assert "'gsm8k_hard'" in message
    for name in ("arithmetic_small", "chain_sum", "graph_color", "gsm8k", "knights_knaves"):
        assert name in message
    assert set(TASKS) >= {"arithmetic_small", "basic_arithmetic", "chain_sum", "leg_counting", "knights_knaves",
                          "graph_color", "gsm8k"}


def test_unknown_setting_lists_the_valid_settings():
    with pytest.raises(TaskConfigError) as err:
        make_task("arithmetic_small", max_operands=5)
    message = _one_line(err)
    assert "'max_operands'" in message and "max_operand" in message and "n_terms" in message


@pytest.mark.parametrize("setting, field", [
    ({"max_operand": 0}, "max_operand"), ({"n_terms": 0}, "n_terms"), ({"n_terms": 2.5}, "n_terms"),
    ({"eval_fraction": 1.0}, "eval_fraction"), ({"eval_fraction": 0}, "eval_fraction"),
    ({"extract": ("answer_tag", "regex")}, "extract"), ({"reward": "accuracy"}, "reward"),
    ({"reward": {"exact_match": -1.0}}, "reward"), ({"instruction": 3}, "instruction"),
])
def test_bad_settings_raise_one_line_naming_the_field(setting, field):
    with pytest.raises(TaskConfigError) as err:
        make_task("arithmetic_small", **setting)
    assert field in _one_line(err)


@pytest.mark.parametrize("call, field", [
    (lambda t: t.prompts("test", 4, 0), "split"),
    (lambda t: t.prompts("train", 0, 0), "n"),
    (lambda t: t.prompts("train", None, 0), "n"),
    (lambda t: t.prompts("train", 4, -1), "seed"),
])
def test_bad_prompt_arguments_raise_one_line(call, field):
    with pytest.raises(TaskConfigError) as err:
        call(make_task("arithmetic_small"))
    assert _one_line(err).startswith(field)


def test_arithmetic_small_problems_are_correct_and_respect_the_difficulty():
    task = make_task("arithmetic_small", max_operand=4, n_terms=3)
    problems = task.prompts("train", 200, seed=3)
    assert len(problems) == 200
    for p in problems:
        operands = [int(x) for x in p.prompt.rstrip("=").split("+")]
        assert len(operands) == 3 and all(0 <= x <= 4 for x in operands)
        assert p.answer == str(sum(operands)) and p.task == "arithmetic_small"
        assert p.metadata["operands"] == tuple(operands)
    assert {x for p in problems for x in p.metadata["operands"]} == set(range(5))   # the whole range is drawn


def test_arithmetic_small_is_seeded():
    task = make_task("arithmetic_small")
    assert task.prompts("train", 50, 7) == task.prompts("train", 50, 7)
    assert task.prompts("train", 50, 7) != task.prompts("train", 50, 8)
    assert make_task("arithmetic_small").prompts("eval", 20, 1) == task.prompts("eval", 20, 1)


@pytest.mark.parametrize("settings", [{}, {"max_operand": 3, "n_terms": 2}, {"max_operand": 99, "eval_fraction": 0.5},
                                      {"max_operand": 999, "n_terms": 2}])   # the last is not enumerated
def test_arithmetic_small_held_out_split_shares_no_question(settings):
    task = make_task("arithmetic_small", **settings)
    train = {p.prompt for seed in range(3) for p in task.prompts("train", 300, seed)}
    held_out = {p.prompt for seed in range(3) for p in task.prompts("eval", 100, seed)}
    assert train and held_out and not train & held_out


def test_arithmetic_small_small_spaces_are_split_exactly():
    task = make_task("arithmetic_small", max_operand=9, n_terms=2, eval_fraction=0.2)   # 100 questions
    held_out = {p.prompt for p in task.prompts("eval", 2000, 0)}
    train = {p.prompt for p in task.prompts("train", 4000, 0)}
    assert len(held_out) == 20 and len(train) == 80
    tiny = make_task("arithmetic_small", max_operand=1, n_terms=1, eval_fraction=0.01)  # 2 questions: 1 + 1
    assert len({p.prompt for p in tiny.prompts("eval", 50, 0)}) == 1
    assert {p.prompt for p in tiny.prompts("eval", 50, 0)} != {p.prompt for p in tiny.prompts("train", 50, 0)}


def test_arithmetic_small_refuses_a_large_space_without_eval_questions():
    with pytest.raises(TaskConfigError) as err:     # 10^6 questions, crc32 threshold of ~4 out of 2^32
        make_task("arithmetic_small", max_operand=999, n_terms=2, eval_fraction=1e-9)
    assert "eval_fraction" in _one_line(err)


def test_alphabet_covers_every_prompt_and_answer():
    task = make_task("arithmetic_small", max_operand=50, n_terms=3, instruction=" sum?")
    alphabet = task.alphabet()
    assert list(alphabet) == sorted(set(alphabet))
    seen = {ch for split in SPLITS for p in task.prompts(split, 100, 0) for ch in p.prompt + p.answer}
    assert seen <= set(alphabet) and {"?", " ", "s"} <= set(alphabet)


def test_arithmetic_small_scores():
    task = make_task("arithmetic_small")
    p = task.prompts("train", 1, 0)[0]
    assert task.score(p, p.answer) == 1.0
    assert task.score(p, f" {p.answer} ") == 1.0
    assert task.score(p, str(int(p.answer) + 1)) == 0.0
    assert task.score(p, f"{p.answer} {p.answer}") == 0.0        # full_text: nothing but the answer counts
    assert task.score(p, "") == 0.0
    tagged = f"<answer>{p.answer}</answer>"
    assert task.score(p, tagged) == 0.0
    assert task.score(p, tagged, reward={"exact_match": 1, "format": 1}) == 0.5
    assert make_task("arithmetic_small", extract=["answer_tag"]).score(p, tagged) == 1.0


def test_a_problem_is_scored_only_by_its_own_task():
    stranger = Problem("1+1=", "2", {}, task="chain_sum")
    with pytest.raises(TaskConfigError) as err:
        make_task("arithmetic_small").score(stranger, "2")
    assert "chain_sum" in _one_line(err)


def test_problem_equality_and_hash_ignore_metadata():
    a = Problem("1+1=", "2", {"x": [1]}, "arithmetic_small")
    b = Problem("1+1=", "2", {"x": [2]}, "arithmetic_small")
    assert a == b and hash(a) == hash(b) and a != Problem("1+1=", "3", {}, "arithmetic_small")


def test_config_builds_the_task():
    task = build_task(RLVRConfig(task="arithmetic_small", settings={"max_operand": 3, "n_terms": 3}))
    assert task.settings.max_operand == 3 and task.prompts("eval", 2, 0)[0].prompt.count("+") == 2


def test_importing_the_package_needs_neither_reasoning_gym_nor_pyarrow():
    code = ("import sys, envs.rlvr; t = envs.rlvr.make_task('arithmetic_small'); t.prompts('train', 2, 0); "
            "assert 'reasoning_gym' not in sys.modules and 'pyarrow' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
