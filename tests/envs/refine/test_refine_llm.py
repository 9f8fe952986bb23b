"""LLM-scale refinement task (envs/refine/llm.py): the revision template and its checks, the verifier gold reward,
text edit distance, the settings' one-line errors, and that the shared Monte-Carlo gate metrics never deploy a
refinement with Δ < 0 on text answers."""
from __future__ import annotations

import pytest
import torch

from envs.refine.llm import RefineLLMConfig, check_template, edit_fraction, gold_rewards, levenshtein, revision_prompt
from envs.refine.sequence import gate_metrics
from envs.rlvr import make_task


def test_revision_prompt_and_template_checks():
    assert revision_prompt("{prompt}{answer}=", "3+4=", "8") == "3+4=8="
    check_template("{prompt}{answer}=", tuple("0123456789+="))
    with pytest.raises(ValueError, match=r"^env.template='\{prompt\} => \{answer\}': characters ' >' are not in"):
        check_template("{prompt} => {answer}", tuple("0123456789+="))
    for bad in ("{prompt}", "{prompt}{answer}{answer}", "{question}{answer}", "{prompt}{answer"):
        with pytest.raises(ValueError) as err:
            check_template(bad)
        assert str(err.value).startswith(f"env.template={bad!r}") and "\n" not in str(err.value)


def test_gold_reward_is_the_task_verifier():
    task = make_task("arithmetic_small")
    problems = task.prompts("eval", 3, seed=0)
    right = [p.answer for p in problems]
    texts = [t for r in right for t in (r, r + "1", "")]
    gold = gold_rewards(task, problems, texts, 3)
    assert gold.shape == (3, 3) and gold[:, 0].tolist() == [1.0] * 3 and float(gold[:, 1:].abs().max()) == 0.0
    with pytest.raises(ValueError, match="gold_rewards: 2 texts for 3 problems x k=1"):
        gold_rewards(task, problems, texts[:2])


def test_edit_fraction_is_levenshtein_over_the_longer_text():
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3 and levenshtein("ab", "ab") == 0
    got = edit_fraction(["12", "", "7", "123"], ["12", "", "8", "13"])
    assert torch.allclose(got, torch.tensor([0.0, 0.0, 1.0, 1 / 3]))


@pytest.mark.parametrize("rule", ["softmax", "two_way"])
def test_gate_metrics_never_deploy_a_worse_refinement(rule):
    """Binary gold rewards (the verifier) and an R_φ that disagrees with them half of the time."""
    cfg = RefineLLMConfig(gate_T=3.0, gate_rule=rule)
    g = torch.Generator().manual_seed(0)
    S, n, K = 2, 200, 4
    gold_a1 = torch.randint(2, (S, n), generator=g).float()
    gold_a2 = torch.randint(2, (S, n, K), generator=g).float()
    proxy_a1, proxy_a2 = torch.randn(S, n, generator=g), torch.randn(S, n, K, generator=g)
    same = torch.rand(S, n, K, generator=g) < 0.2
    gold_a2, proxy_a2 = torch.where(same, gold_a1[..., None], gold_a2), torch.where(same, proxy_a1[..., None], proxy_a2)
    out = gate_metrics(cfg, gold_a1, proxy_a1, gold_a2, proxy_a2, same, (~same).float(), torch.zeros(S, n))
    assert all(v.shape == (S,) for v in out.values())
    assert bool((out["harm_rate"] <= out["acceptance_rate"] + 1e-6).all()) and bool((out["harm_rate"] > 0).all())
    assert torch.allclose(out["best_response_lift"], 1 - gold_a1.mean(-1))
    # an oracle R_φ = R* with T → ∞ never harms and deploys every gold-better draw it sees
    oracle = gate_metrics(RefineLLMConfig(gate_T=1e6, gate_rule=rule), gold_a1, gold_a1, gold_a2, gold_a2, same,
                          (~same).float(), torch.zeros(S, n))
    assert float(oracle["harm_rate"].max()) == 0.0 and float(oracle["lift"].min()) > 0
    assert torch.allclose(oracle["proxy_gold_gap"], torch.zeros(S))


@pytest.mark.parametrize("kwargs, message", [
    ({"reference": "copy"}, "env.reference='copy'; valid: initial"),
    ({"refiner_init": "random"}, "env.refiner_init='random'; valid: base, scratch"),
    ({"template": "{answer}"}, "env.template='{answer}': must hold the fields {prompt} and {answer} once each"),
])
def test_bad_settings_are_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        RefineLLMConfig(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)
