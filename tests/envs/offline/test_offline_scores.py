"""D4RL reference constants and the normalised score (envs/offline/scores.py).

Constants are checked against D4RL's ``d4rl/infos.py`` (Fu et al. 2020, code release) as
typed here independently; expected scores are computed by hand from 100 (R - min) / (max - min).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from envs.offline.scores import REF_MAX_SCORE, REF_MIN_SCORE, normalised_score, reference_scores

# (id, REF_MIN_SCORE, REF_MAX_SCORE) as printed in d4rl/infos.py
PUBLISHED = [
    ("hopper-medium-v2", -20.272305, 3234.3),
    ("halfcheetah-medium-expert-v2", -280.178953, 12135.0),
    ("walker2d-medium-replay-v2", 1.629008, 4592.3),
    ("ant-random-v2", -325.6, 3879.7),
    ("maze2d-umaze-v1", 23.85, 161.86),
    ("maze2d-medium-v1", 13.13, 277.39),
    ("maze2d-large-v1", 6.7, 273.99),
    ("maze2d-large-dense-v1", 30.569041, 303.4857382709002),
    ("antmaze-large-diverse-v2", 0.0, 1.0),
    ("antmaze-umaze-v0", 0.0, 1.0),
]


@pytest.mark.parametrize("dataset_id, ref_min, ref_max", PUBLISHED)
def test_constants_match_d4rl_infos(dataset_id, ref_min, ref_max):
    assert REF_MIN_SCORE[dataset_id] == ref_min
    assert REF_MAX_SCORE[dataset_id] == ref_max
    assert reference_scores(dataset_id) == (ref_min, ref_max)


def test_every_required_id_is_present_and_shares_its_env_pair():
    for env in ("hopper", "halfcheetah", "walker2d"):
        pairs = {(REF_MIN_SCORE[f"{env}-{d}-v2"], REF_MAX_SCORE[f"{env}-{d}-v2"])
                 for d in ("random", "medium", "expert", "medium-replay", "medium-expert")}
        assert len(pairs) == 1
    for size in ("umaze", "medium", "large"):
        assert f"maze2d-{size}-v1" in REF_MIN_SCORE
    for name in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"):
        for version in ("v0", "v2"):
            assert REF_MAX_SCORE[f"antmaze-{name}-{version}"] == 1.0
    assert set(REF_MIN_SCORE) == set(REF_MAX_SCORE)
    assert all(REF_MAX_SCORE[k] > REF_MIN_SCORE[k] for k in REF_MIN_SCORE)


def test_normalised_score_hand_values():
    # halfcheetah: 100 * (5000 + 280.178953) / (12135.0 + 280.178953)
    assert normalised_score(5000.0, *reference_scores("halfcheetah-medium-v2")) == pytest.approx(42.530026937099436)
    # maze2d-umaze: 100 * (100 - 23.85) / (161.86 - 23.85)
    assert normalised_score(100.0, *reference_scores("maze2d-umaze-v1")) == pytest.approx(55.177161075284396)
    # walker2d: the midpoint of [1.629008, 4592.3] scores 50
    assert normalised_score(2296.964504, 1.629008, 4592.3) == pytest.approx(50.0)
    # antmaze: 100 x success rate
    assert normalised_score(0.7, 0.0, 1.0) == pytest.approx(70.0)
    assert normalised_score(3234.3, *reference_scores("hopper-expert-v2")) == pytest.approx(100.0)
    assert normalised_score(-20.272305, *reference_scores("hopper-expert-v2")) == pytest.approx(0.0)
    assert isinstance(normalised_score(1.0, 0.0, 2.0), float)


def test_normalised_score_is_elementwise():
    returns = np.array([[0.0, 1.0], [2.0, -1.0]])
    got = normalised_score(returns, 0.0, 2.0)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, [[0.0, 50.0], [100.0, -50.0]])
    np.testing.assert_allclose(normalised_score([10.0, 20.0], 10.0, 30.0), [0.0, 50.0])


@pytest.mark.parametrize("ref_min, ref_max", [(1.0, 1.0), (math.nan, 1.0), (0.0, math.inf)])
def test_normalised_score_rejects_a_degenerate_scale(ref_min, ref_max):
    with pytest.raises(ValueError, match="ref_min") as info:
        normalised_score(1.0, ref_min, ref_max)
    assert "\n" not in str(info.value)


def test_reference_scores_unknown_id_lists_the_families():
    with pytest.raises(KeyError, match="hopper.*maze2d.*antmaze"):
        reference_scores("hopper-medium-v9")
