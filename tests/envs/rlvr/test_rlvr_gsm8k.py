"""GSM8K from files (envs/rlvr/gsm8k.py and the ``gsm8k`` task): jsonl and parquet layouts, gold
answers, sampling, and one-line errors for missing or malformed files. Files are written to tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs.rlvr.errors import TaskConfigError, TaskDataNotFound, TaskDataUnreadable
from envs.rlvr.gsm8k import GSM8K_URL, gsm8k_root, read_gsm8k
from envs.rlvr.tasks import DEFAULT_INSTRUCTION, make_task

TRAIN = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A car costs $1,200 and a bike $34. Total?", "answer": "1200 + 34 = 1234\n#### 1,234"},
    {"question": "Ann owes 5 and pays 8. Balance?", "answer": "5 - 8 = -3\n#### -3"},
    {"question": "Half of 5?", "answer": "5 / 2 = 2.5\n#### 2.5"},
    {"question": "Ten times ten?", "answer": "10 * 10 = 100\n#### 100"},
]
TEST = [
    {"question": "Two plus two?", "answer": "#### 4"},
    {"question": "Three times three?", "answer": "3 * 3 = 9\n#### 9"},
    {"question": "Six minus one?", "answer": "#### 5"},
]


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def gsm8k_dir(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "test.jsonl", TEST)
    return tmp_path


def test_jsonl_split_is_read_in_file_order_with_gold_answers(gsm8k_dir):
    task = make_task("gsm8k", data_dir=str(gsm8k_dir))
    problems = task.prompts("train", None, seed=0)
    assert [p.answer for p in problems] == ["7", "1234", "-3", "2.5", "100"]
    assert problems[1].prompt == TRAIN[1]["question"] + DEFAULT_INSTRUCTION
    assert problems[1].metadata["solution"] == TRAIN[1]["answer"] and problems[1].metadata["index"] == 1
    assert [p.answer for p in task.prompts("eval", None, seed=0)] == ["4", "9", "5"]     # eval = test split


def test_sampling_is_seeded_and_without_replacement(gsm8k_dir):
    task = make_task("gsm8k", data_dir=str(gsm8k_dir))
    draw = task.prompts("train", 4, seed=11)
    assert draw == task.prompts("train", 4, seed=11) and len(set(draw)) == 4
    assert {p.prompt for seed in range(20) for p in task.prompts("train", 2, seed)} == \
        {row["question"] + DEFAULT_INSTRUCTION for row in TRAIN}
    with pytest.raises(TaskConfigError) as err:
        task.prompts("eval", 4, seed=0)                     # only 3 test problems
    assert _one_line(err).startswith("n:")


@pytest.mark.parametrize("completion, reward", [
    ("so he pays 1,234 in total.", 1.0),
    ("<answer>1234</answer>", 1.0),
    ("\\boxed{1,234.00}", 1.0),
    ("#### 1234", 1.0),
    ("<answer>1235</answer> 1234", 0.0),                     # the tag wins over the last number
    ("I do not know", 0.0),
])
def test_scores(gsm8k_dir, completion, reward):
    task = make_task("gsm8k", data_dir=str(gsm8k_dir))
    problem = task.prompts("train", None, seed=0)[1]
    assert task.score(problem, completion) == reward
    assert task.score(problem, completion, reward="native") == reward


def test_parquet_in_the_hugging_face_layout(tmp_path):
    pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    main = tmp_path / "main"
    main.mkdir()
    pd.DataFrame(TRAIN[:3]).to_parquet(main / "train-00000-of-00002.parquet")
    pd.DataFrame(TRAIN[3:]).to_parquet(main / "train-00001-of-00002.parquet")
    pd.DataFrame(TEST).to_parquet(main / "test-00000-of-00001.parquet")
    task = make_task("gsm8k", data_dir=str(tmp_path))
    assert [p.answer for p in task.prompts("train", None, 0)] == ["7", "1234", "-3", "2.5", "100"]
    assert [p.metadata["index"] for p in task.prompts("train", None, 0)] == [0, 1, 2, 3, 4]
    assert [p.answer for p in task.prompts("eval", None, 0)] == ["4", "9", "5"]


def test_parquet_next_to_jsonl_prefers_jsonl_and_reads_flat_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    pd.DataFrame(TRAIN).to_parquet(tmp_path / "train-00000-of-00001.parquet")
    write_jsonl(tmp_path / "test.jsonl", TEST[:1])
    records = read_gsm8k(tmp_path, "train")
    assert [r.gold for r in records] == ["7", "1234", "-3", "2.5", "100"]
    assert [r.gold for r in read_gsm8k(tmp_path, "eval")] == ["4"]


def test_missing_directory_names_the_paths_and_where_to_get_them(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(TaskDataNotFound) as err:
        make_task("gsm8k", data_dir=str(missing))
    message = _one_line(err)
    assert str(missing / "train.jsonl") in message and str(missing / "main" / "train-*.parquet") in message
    assert GSM8K_URL in message and "does not exist" in message


def test_missing_test_split_names_its_path(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    with pytest.raises(TaskDataNotFound) as err:
        make_task("gsm8k", data_dir=str(tmp_path))
    message = _one_line(err)
    assert str(tmp_path / "test.jsonl") in message and "train.jsonl" not in message


@pytest.mark.parametrize("line, problem", [
    ("{not json", "not valid JSON"),
    (json.dumps({"question": "q"}), "'answer'"),
    (json.dumps({"question": "q", "answer": "no marker 5"}), "####"),
    (json.dumps({"question": "q", "answer": "#### "}), "nothing after"),
    (json.dumps(["q", "#### 1"]), "JSON object"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, problem):
    path = write_jsonl(tmp_path / "train.jsonl", TRAIN[:2])
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(TaskDataUnreadable) as err:
        read_gsm8k(tmp_path, "train")
    message = _one_line(err)
    assert f"{path}:3" in message and problem in message


def test_corrupt_parquet_is_one_line(tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "train-00000-of-00001.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(TaskDataUnreadable) as err:
        read_gsm8k(tmp_path, "train")
    assert "train-00000-of-00001.parquet" in _one_line(err)


def test_default_root_follows_the_data_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path))
    assert gsm8k_root() == tmp_path / "gsm8k"
    assert gsm8k_root(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.delenv("TPO_BENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert gsm8k_root() == tmp_path / "cache" / "tpo-bench" / "datasets" / "gsm8k"
