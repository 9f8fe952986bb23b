"""Named rewards (envs/rlvr/rewards.py): answer normalisation, composition by weights, the [0, 1]
range, and one-line errors."""
from __future__ import annotations

import math

import pytest

from envs.rlvr.errors import TaskConfigError
from envs.rlvr.rewards import REWARDS, answers_match, make_reward, normalise_text
from envs.rlvr.tasks import Problem, RLVRTask


@pytest.mark.parametrize("candidate, gold, same", [
    ("1000", "1000", True), ("1,000", "1000", True), ("1000.0", "1000", True), ("$1,000.", "1000", True),
    ("-0", "0", True), ("\uff11\uff12", "12", True), ("+5", "5", True), (".5", "0.5", True),
    ("1000 apples", "1000", False), ("999", "1000", False), ("1e3", "1000", False), (None, "1000", False),
    ("", "1000", False),
    ("Joseph is an Angel.", "joseph is an angel", True), ("joseph  is\nan angel", "Joseph is an angel.", True),
    ("Joseph is a devil", "Joseph is an angel", False),
])
def test_answers_match(candidate, gold, same):
    assert answers_match(candidate, gold) is same


def test_normalise_text():
    assert normalise_text("  Ｈello   World. ") == "hello world"


class StubTask(RLVRTask):
    """A task whose verifier returns a fixed value (to check clipping)."""

    def __init__(self, value: float, reward="native"):
        self.value = value
        super().__init__("stub", type("S", (), {"extract": ("answer_tag",), "reward": reward})())

    def prompts(self, split, n, seed):  # pragma: no cover - not used
        return []

    def verify(self, problem, answer):
        return self.value


PROBLEM = Problem("q", "42", {}, "stub")


@pytest.mark.parametrize("value, expected", [(0.25, 0.25), (5.0, 1.0), (-1.0, 0.0), (math.nan, 0.0),
                                             (math.inf, 0.0)])
def test_native_reward_is_clipped_into_the_unit_interval(value, expected):
    assert StubTask(value).score(PROBLEM, "<answer>x</answer>") == expected


def test_exact_match_and_format():
    task = StubTask(0.0)
    assert REWARDS["exact_match"](task, PROBLEM, "<answer> 42 </answer>") == 1.0
    assert REWARDS["exact_match"](task, PROBLEM, "42") == 0.0            # nothing extracted by answer_tag
    assert REWARDS["format"](task, PROBLEM, "<answer>anything</answer>") == 1.0
    assert REWARDS["format"](task, PROBLEM, "<answer></answer>") == 0.0
    assert REWARDS["format"](task, PROBLEM, "<answer>unclosed") == 0.0
    with pytest.raises(TaskConfigError) as err:
        REWARDS["exact_match"](task, Problem("q", None, {}, "stub"), "<answer>42</answer>")
    assert "native" in str(err.value)


def test_weighted_rewards_are_a_weighted_mean():
    task = StubTask(0.5)
    reward = make_reward({"exact_match": 3, "format": 1})
    assert reward.names == ("exact_match", "format")
    assert reward(task, PROBLEM, "<answer>42</answer>") == 1.0
    assert reward(task, PROBLEM, "<answer>41</answer>") == 0.25
    assert reward(task, PROBLEM, "41") == 0.0
    assert make_reward({"native": 1, "format": 0})(task, PROBLEM, "x") == 0.5
    assert task.score(PROBLEM, "<answer>41</answer>", reward={"native": 1, "format": 1}) == 0.75


@pytest.mark.parametrize("spec, fragment", [
    ("accuracy", "valid rewards: exact_match, native, format"),
    ({"exact_match": 1, "fmt": 1}, "'fmt'"),
    ({"exact_match": -1}, ">= 0"),
    ({"exact_match": math.nan}, ">= 0"),
    ({"exact_match": 0, "format": 0}, "sum to 0"),
    ({}, "non-empty"),
    (3, "valid rewards"),
])
def test_bad_reward_specs_are_one_line(spec, fragment):
    with pytest.raises(TaskConfigError) as err:
        make_reward(spec)
    message = str(err.value)
    assert "\n" not in message and fragment in message
