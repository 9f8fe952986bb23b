"""SFT warm start of the LLM RLVR family: demonstration kinds and fractions, the cache key, train-then-load,
bitwise determinism, corrupt cache files, verifier-only tasks, the settings' range checks, and that SFT
lowers the loss on gold demonstrations."""
from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("transformers")

from bench.families.rlvr_sft import (  # noqa: E402
    MAX_WRONG_OFFSET, SFT_FORMAT_VERSION, Demo, demonstrations, greedy_accuracy, sft_batch, sft_key, sft_loss,
    warm_start,
)
from bench.models.lm import LMConfig, completion_logprobs, load_lm  # noqa: E402
from bench.models.lm_sampling import encode_prompts  # noqa: E402
from bench.seeding import stream_seed  # noqa: E402
from envs.rlvr.config import RLVRConfig, SFTSettings  # noqa: E402
from envs.rlvr.errors import TaskConfigError  # noqa: E402
from envs.rlvr.tasks import Problem, RLVRTask, make_task  # noqa: E402

TASK_SETTINGS = {"max_operand": 9, "n_terms": 2}
MODEL = LMConfig(hidden=32, layers=1, heads=2, intermediate=64, max_position=32)
SFT = SFTSettings(steps=12, lr=3e-3, batch_size=8, wrong_fraction=0.25, truncated_fraction=0.125)
PARTS = {"model": MODEL, "task": {"name": "arithmetic_small", "settings": TASK_SETTINGS}}


@pytest.fixture(scope="module")
def task():
    return make_task("arithmetic_small", **TASK_SETTINGS)


def fresh(task, seed=0):
    return load_lm(MODEL, alphabet=task.alphabet(), seed=seed)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- demonstrations


def test_demonstrations_have_the_requested_kinds_and_scores(task):
    n, seed = 80, 3
    demos = demonstrations(task, n, seed, wrong_fraction=0.25, truncated_fraction=0.125)
    problems = task.prompts("train", n, stream_seed(seed, "sft"))
    assert len(demos) == n and all(isinstance(d, Demo) for d in demos)
    assert [d.kind for d in demos].count("wrong") == 20 and [d.kind for d in demos].count("truncated") == 10
    assert [d.kind for d in demos].count("gold") == 50
    assert [d.prompt for d in demos] == [p.prompt for p in problems]
    for demo, problem in zip(demos, problems):
        assert problem.task == "arithmetic_small" and problem.metadata["split"] == "train"
        if demo.kind == "gold":
            assert demo.completion == problem.answer and task.score(problem, demo.completion) == 1.0
        elif demo.kind == "wrong":
            assert task.score(problem, demo.completion) < 1.0
            assert 1 <= abs(int(demo.completion) - int(problem.answer)) <= MAX_WRONG_OFFSET
            assert int(demo.completion) >= 0           # stays inside the task's alphabet (no minus sign)
        else:
            assert len(demo.completion) < len(problem.answer) and problem.answer.startswith(demo.completion)
    kinds = [d.kind for d in demos]
    assert kinds != sorted(kinds)                           # kinds are shuffled, not in blocks
    assert demonstrations(task, n, seed, 0.25, 0.125) == demos
    assert demonstrations(task, n, seed + 1, 0.25, 0.125) != demos


def test_gold_completion_uses_the_format_the_task_scores():
    tagged = make_task("arithmetic_small", extract=("answer_tag",))
    demos = demonstrations(tagged, 20, 0, wrong_fraction=0.5, truncated_fraction=0.0)
    problems = {p.prompt: p for p in tagged.prompts("train", 20, stream_seed(0, "sft"))}
    for demo in demos:
        problem = problems[demo.prompt]
        if demo.kind == "gold":
            assert demo.completion == f"<answer>{problem.answer}</answer>"
            assert tagged.score(problem, demo.completion) == 1.0
        else:
            assert demo.completion.startswith("<answer>") and tagged.score(problem, demo.completion) == 0.0


def test_fraction_edges(task):
    assert {d.kind for d in demonstrations(task, 10, 0, 0.0, 0.0)} == {"gold"}
    assert {d.kind for d in demonstrations(task, 10, 0, 1.0, 0.0)} == {"wrong"}
    assert {d.kind for d in demonstrations(task, 10, 0, 0.5, 0.5)} == {"wrong", "truncated"}
    with pytest.raises(ValueError, match=r"wrong_fraction \+ truncated_fraction = 0.7 \+ 0.5: must be <= 1"):
        demonstrations(task, 10, 0, 0.7, 0.5)
    with pytest.raises(ValueError, match=r"truncated_fraction=-0.1: must be a number >= 0 and <= 1"):
        demonstrations(task, 10, 0, 0.1, -0.1)


class VerifierOnly(RLVRTask):
    """A task whose problems have no gold answer (scored by its verifier only)."""

    has_gold = False

    def __init__(self):
        super().__init__("verifier_only", dataclasses.replace(make_task("arithmetic_small").settings,
                                                              reward="native"))

    def prompts(self, split, n, seed):
        return [Problem("1+1=", None, {}, self.name)] * n

    def verify(self, problem, answer):
        return 1.0 if answer == "2" else 0.0


def test_verifier_only_task_raises_one_line(task):
    model, tok = fresh(task)
    for call in (lambda: demonstrations(VerifierOnly(), 4, 0, 0.0, 0.0),
                 lambda: warm_start(model, tok, VerifierOnly(), SFT, 0, PARTS, cache_dir=None)):
        with pytest.raises(TaskConfigError) as err:
            call()
        text = str(err.value)
        assert "\n" not in text and "needs gold answers" in text and "model.path" in text
    # steps = 0 needs no demonstrations: nothing is trained, nothing raised
    out = warm_start(model, tok, VerifierOnly(), SFTSettings(steps=0), 0, PARTS)
    assert out == {"sft_loss": 0.0, "sft_cached": 0.0, "sft_steps": 0}


# --------------------------------------------------------------------------- batch layout and loss


def test_batch_is_the_sampler_prompt_then_completion_with_eos_except_truncated(task):
    model, tok = fresh(task)
    demos = [Demo("3+4=", "7", "gold"), Demo("13+14=", "26", "wrong"), Demo("9+9=", "1", "truncated"),
             Demo("1+1=", "", "truncated")]
    ids, mask, cmask = sft_batch(tok, demos)
    prompt_ids, prompt_mask = encode_prompts(tok, [d.prompt for d in demos])
    P = prompt_ids.shape[1]
    assert torch.equal(ids[:, :P], prompt_ids) and torch.equal(mask[:, :P], prompt_mask)
    assert (prompt_mask[:, 0] == 0).any()                          # prompts are left-padded
    eos, pad = tok.eos_token_id, tok.pad_token_id
    char = {c: tok.convert_tokens_to_ids(c) for c in "012679"}
    assert ids[:, P:].tolist() == [[char["7"], eos, pad], [char["2"], char["6"], eos], [char["1"], pad, pad],
                                   [pad, pad, pad]]
    assert cmask.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert torch.equal(mask[:, P:], cmask)
    logp = completion_logprobs(model, ids, mask, cmask)
    expected = -(logp.sum() / cmask.sum())
    assert torch.allclose(sft_loss(model, tok, demos), expected)
    assert float(sft_loss(model, tok, [Demo("1+1=", "", "truncated")])) == 0.0     # no token: zero, not NaN


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, "env.sft.steps=-1: must be an integer >= 0 (0 = no SFT)"),
    ({"steps": 1.5}, "env.sft.steps=1.5: must be an integer >= 0"),
    ({"lr": 0.0}, "env.sft.lr=0.0: must be a number > 0"),
    ({"batch_size": 0}, "env.sft.batch_size=0: must be an integer >= 1"),
    ({"wrong_fraction": 1.5}, "env.sft.wrong_fraction=1.5: must be a number >= 0 and <= 1"),
    ({"truncated_fraction": True}, "env.sft.truncated_fraction=True: must be a number"),
    ({"weight_decay": -0.1}, "env.sft.weight_decay=-0.1: must be a number >= 0"),
    ({"wrong_fraction": 0.6, "truncated_fraction": 0.5}, "env.sft.wrong_fraction + env.sft.truncated_fraction"),
])
def test_settings_range_errors_are_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        SFTSettings(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_settings_defaults_and_config_field():
    sft = SFTSettings()
    assert sft.steps > 0 and 0 < sft.wrong_fraction + sft.truncated_fraction < 1
    assert RLVRConfig().sft == sft
    ranges = {f.name: f.metadata for f in dataclasses.fields(SFTSettings)}
    assert ranges["steps"] == {"ge": 0} and ranges["lr"] == {"gt": 0} and ranges["wrong_fraction"] == {"ge": 0, "le": 1}


# --------------------------------------------------------------------------- key


def test_key_changes_with_every_part_and_ignores_spelling():
    base = {**PARTS, "sft": SFT, "seed": 0, "sft_format": SFT_FORMAT_VERSION}
    key = sft_key(base)
    assert len(key) == 16 and int(key, 16) >= 0
    variants = [
        {**base, "model": dataclasses.replace(MODEL, hidden=64, heads=2)},
        {**base, "model": dataclasses.replace(MODEL, lora={"rank": 2})},
        {**base, "task": {"name": "arithmetic_small", "settings": {**TASK_SETTINGS, "max_operand": 19}}},
        {**base, "task": {"name": "chain_sum", "settings": TASK_SETTINGS}},
        {**base, "sft": dataclasses.replace(SFT, lr=1e-3)},
        {**base, "sft": dataclasses.replace(SFT, wrong_fraction=0.0)},
        {**base, "seed": 1},
        {**base, "sft_format": SFT_FORMAT_VERSION + 1},
    ]
    keys = [sft_key(v) for v in variants]
    assert key not in keys and len(set(keys)) == len(keys)
    reordered = {k: base[k] for k in reversed(list(base))}
    assert sft_key(reordered) == key
    assert sft_key({"a": (1, 2)}) == sft_key({"a": [1, 2]})
    with pytest.raises(TypeError, match="cannot put a object"):
        sft_key({"a": object()})


# --------------------------------------------------------------------------- warm start


def test_warm_start_trains_caches_and_loads(task, tmp_path):
    before = torch.random.get_rng_state()
    model, tok = fresh(task, seed=5)
    init = params(model)
    out = warm_start(model, tok, task, SFT, 5, PARTS, cache_dir=tmp_path)
    assert torch.equal(torch.random.get_rng_state(), before)        # the global torch RNG is untouched
    assert out["sft_cached"] == 0.0 and out["sft_steps"] == SFT.steps and out["sft_loss"] > 0
    trained = params(model)
    assert not same(init, trained)
    files = list(tmp_path.glob("*.pt"))
    key = sft_key({**PARTS, "sft": SFT, "seed": 5, "sft_format": SFT_FORMAT_VERSION})
    assert [f.name for f in files] == [f"{key}.pt"]
    assert not [f for f in tmp_path.iterdir() if f.suffix != ".pt"]   # no temporary file left behind

    again, tok2 = fresh(task, seed=5)
    loaded = warm_start(again, tok2, task, SFT, 5, PARTS, cache_dir=tmp_path)
    assert loaded == {"sft_loss": out["sft_loss"], "sft_cached": 1.0, "sft_steps": SFT.steps}
    assert same(params(again), trained)

    other, tok3 = fresh(task, seed=6)              # another seed: another key, trained afresh
    assert warm_start(other, tok3, task, SFT, 6, PARTS, cache_dir=tmp_path)["sft_cached"] == 0.0
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_warm_start_is_bitwise_deterministic(task, tmp_path):
    a, tok_a = fresh(task, seed=2)
    b, tok_b = fresh(task, seed=2)
    out_a = warm_start(a, tok_a, task, SFT, 2, PARTS, cache_dir=tmp_path / "a")
    out_b = warm_start(b, tok_b, task, SFT, 2, PARTS, cache_dir=tmp_path / "b")
    assert out_a["sft_cached"] == out_b["sft_cached"] == 0.0 and out_a["sft_loss"] == out_b["sft_loss"]
    assert same(params(a), params(b))
    c, tok_c = fresh(task, seed=2)                 # a different recipe changes the weights
    warm_start(c, tok_c, task, dataclasses.replace(SFT, wrong_fraction=0.0), 2, PARTS, cache_dir=tmp_path / "c")
    assert not same(params(a), params(c))


@pytest.mark.parametrize("damage", ["garbage", "torn"])
def test_corrupt_cache_file_is_retrained(task, tmp_path, capsys, damage):
    model, tok = fresh(task, seed=1)
    warm_start(model, tok, task, SFT, 1, PARTS, cache_dir=tmp_path)
    trained = params(model)
    (path,) = tmp_path.glob("*.pt")
    data = path.read_bytes()
    path.write_bytes(b"not a checkpoint" if damage == "garbage" else data[:len(data) // 2])
    capsys.readouterr()
    model2, tok2 = fresh(task, seed=1)
    out = warm_start(model2, tok2, task, SFT, 1, PARTS, cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert out["sft_cached"] == 0.0 and same(params(model2), trained)
    assert err.count("\n") == 1 and "retraining" in err and str(path) in err
    model3, tok3 = fresh(task, seed=1)
    assert warm_start(model3, tok3, task, SFT, 1, PARTS, cache_dir=tmp_path)["sft_cached"] == 1.0


def test_cache_file_of_another_model_shape_is_retrained(task, tmp_path, capsys):
    model, tok = fresh(task, seed=0)
    warm_start(model, tok, task, SFT, 0, PARTS, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.pt")
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = torch.zeros(3)
    torch.save(payload, path)
    model2, tok2 = fresh(task, seed=0)
    init = params(model2)
    assert warm_start(model2, tok2, task, SFT, 0, PARTS, cache_dir=tmp_path)["sft_cached"] == 0.0
    assert "different shape" in capsys.readouterr().err and not same(params(model2), init)


def test_steps_zero_changes_nothing(task, tmp_path):
    model, tok = fresh(task)
    init = params(model)
    out = warm_start(model, tok, task, SFTSettings(steps=0), 0, PARTS, cache_dir=tmp_path)
    assert out["sft_steps"] == 0 and same(params(model), init) and not list(tmp_path.iterdir())


def test_sft_lowers_the_loss_on_gold_demonstrations(task, tmp_path):
    model, tok = fresh(task, seed=4)
    held_out = [Demo(p.prompt, p.answer, "gold") for p in task.prompts("eval", 20, 0)]
    with torch.no_grad():
        before = float(sft_loss(model, tok, held_out))
    sft = SFTSettings(steps=60, lr=3e-3, batch_size=16, wrong_fraction=0.2, truncated_fraction=0.1)
    warm_start(model, tok, task, sft, 4, PARTS, cache_dir=tmp_path)
    with torch.no_grad():
        after = float(sft_loss(model, tok, held_out))
    assert before > 2.0                 # about log(vocabulary size) for a random-init model
    assert after < 0.6 * before


def test_greedy_accuracy_is_the_mean_score_whatever_the_chunking(task, tmp_path):
    model, tok = fresh(task, seed=4)
    warm_start(model, tok, task, SFTSettings(steps=60, batch_size=16), 4, PARTS, cache_dir=tmp_path)
    problems = task.prompts("train", 12, 0)
    whole = greedy_accuracy(model, tok, task, problems, max_new_tokens=3)
    assert whole == greedy_accuracy(model, tok, task, problems, max_new_tokens=3, batch_size=5)
    assert whole == greedy_accuracy(model, tok, task, problems, max_new_tokens=3, batch_size=1)
    assert 0.0 <= whole <= 1.0 and abs(whole * 12 - round(whole * 12)) < 1e-9
    with pytest.raises(ValueError, match=r"problems=\[\]"):
        greedy_accuracy(model, tok, task, [], max_new_tokens=3)


def test_lora_model_warm_starts_and_loads(task, tmp_path):
    pytest.importorskip("peft")
    cfg = dataclasses.replace(MODEL, lora={"rank": 2})
    parts = {**PARTS, "model": cfg}
    model, tok = load_lm(cfg, alphabet=task.alphabet(), seed=0)
    base = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    assert warm_start(model, tok, task, SFT, 0, parts, cache_dir=tmp_path)["sft_cached"] == 0.0
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())          # only the adapters trained
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in after.items())
    again, tok2 = load_lm(cfg, alphabet=task.alphabet(), seed=0)
    assert warm_start(again, tok2, task, SFT, 0, parts, cache_dir=tmp_path)["sft_cached"] == 1.0
    assert same(params(again), params(model))
