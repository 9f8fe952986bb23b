"""Answer extraction (envs/rlvr/extract.py): each extractor on hand-written cases, the scan window,
unicode digits, and adversarial inputs with their exact expected answers."""
from __future__ import annotations

import pytest

from envs.rlvr.errors import TaskConfigError
from envs.rlvr.extract import (EXTRACTORS, MAX_SCAN_CHARS, answer_tag, boxed, check_methods, extract_answer,
                               full_text, hash_answer, last_number, parse_number)


@pytest.mark.parametrize("text, expected", [
    ("<answer>42</answer>", "42"),
    ("think... <answer> 7 </answer>", "7"),
    ("<answer>1</answer> then <answer>2</answer>", "2"),              # the last complete pair
    ("<answer>1</answer> then <answer>2", "1"),                       # unclosed trailing tag ignored
    ("<answer>a<answer>b</answer>c</answer>", "b"),                   # nested: innermost closing last
    ("<answer>x</answer></answer>", "x"),                             # stray close
    ("</answer>5<answer>", None),                                     # close before open
    ("<answer>   </answer>", None),                                   # empty content
    ("<answer>5", None),
    ("no tags at all", None),
    ("<Answer>5</Answer>", None),                                     # tags are exact (lower case)
    ("<answer>" * 10000, None),
    ("</answer>" * 10000, None),
    ("<answer>" * 10000 + "3</answer>", "3"),
    ("x" * 100_000 + "<answer>9</answer>", "9"),
])
def test_answer_tag(text, expected):
    assert answer_tag(text) == expected


@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{5}", "5"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{1} and later \boxed{2}", "2"),
    (r"\boxed{1} and later \boxed{2", "1"),                           # unclosed last box -> previous box
    (r"\boxed{\boxed{5}}", "5"),
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),                               # escaped braces do not count
    (r"\boxed{}", None),
    ("{" * 40 + r"\boxed{3}", "3"),                                   # unbalanced text around a box
    ("}" * 40 + r"\boxed{3}" + "}" * 40, "3"),
    ("\\boxed{" + "{" * 33 + "}" * 33 + "}", None),                   # deeper than MAX_BRACE_DEPTH
    ("\\boxed{" + "{" * 32 + "x" + "}" * 32 + "}", "{" * 32 + "x" + "}" * 32),
    ("\\boxed{" * 10000, None),
    ("{" * 100_000, None),
    ("x" * 100_000 + r"\boxed{-4}", "-4"),
])
def test_boxed(text, expected):
    assert boxed(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("reasoning\n#### 72", "72"),
    ("#### 1,000\nextra line", "1,000"),
    ("#### 1\n#### 2", "2"),
    ("#####5", "5"),
    ("####", None),
    ("####\n5", None),
    ("no marker 5", None),
    ("#" * 100_000, None),
])
def test_hash_answer(text, expected):
    assert hash_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("The answer is 42.", "42"),
    ("x = -3", "-3"),
    ("(-3)", "-3"),
    ("\u22127", "-7"),                        # U+2212 MINUS SIGN
    ("+8", "8"),
    ("5-3", "3"),                             # a minus after a digit is an operator, not a sign
    ("a-3", "3"),
    ("1,234,567 apples", "1234567"),
    ("1,2345", "2345"),                       # not a thousands group
    ("1,234.5", "1234.5"),
    ("3.14 and 2.50", "2.50"),
    (".5", "0.5"),
    ("costs 3.", "3"),
    ("1e5", "5"),                             # exponents are not parsed
    ("\uff13\uff14", "34"),                   # fullwidth digits
    ("\u0663.\u0665", "3.5"),                 # Arabic-Indic digits
    ("\u0967\u0968", "12"),                   # Devanagari digits
    ("2\u00b2", "2"),                         # superscript two is not a digit
    ("\u2460", None),                         # circled one is not a digit
    ("no digits", None),
    ("1" * 50_000 + "x", None),               # the only number is cut by the 4,096-character window
    ("1" * 50_000 + "x 7", "7"),
    ("-" * 100_000, None),
    ("1," * 50_000, "1"),
])
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_window_is_the_last_max_chars_characters():
    tail = "<answer>5</answer>"
    text = tail + "y" * (MAX_SCAN_CHARS - len(tail))
    assert answer_tag(text) == "5"                        # exactly inside the window
    assert answer_tag(text + "y") is None                 # one character more pushes the open tag out
    assert last_number("7 " + "y" * 100, max_chars=50) is None
    assert last_number("7 " + "y" * 100, max_chars=200) == "7"
    assert full_text(" 12 ") == "12"
    assert full_text("1" * (MAX_SCAN_CHARS + 1)) is None  # not a bare answer


@pytest.mark.parametrize("text, expected", [
    (" $1,000. ", "1000"), ("-3", "-3"), ("+.5", "0.5"), ("3.0", "3.0"), ("\uff11\uff12", "12"),
    ("1 2", None), ("abc", None), ("1,00", None), ("12 apples", None), ("", None), ("-", None),
])
def test_parse_number(text, expected):
    assert parse_number(text) == expected


def test_extract_answer_tries_the_chain_in_order():
    text = r"\boxed{3} then <answer>4</answer> and finally 5"
    assert extract_answer(text) == "4"
    assert extract_answer(text, ("boxed", "answer_tag")) == "3"
    assert extract_answer(text, "last_number") == "5"
    assert extract_answer("nothing here", ("answer_tag", "boxed", "hash")) is None
    assert set(EXTRACTORS) == {"answer_tag", "boxed", "hash", "last_number", "full_text"}


def test_bad_arguments_raise_one_line():
    with pytest.raises(TaskConfigError) as err:
        check_methods(("answer_tag", "regex"))
    assert "\n" not in str(err.value) and "'regex'" in str(err.value) and "last_number" in str(err.value)
    with pytest.raises(TaskConfigError):
        check_methods(())
    with pytest.raises(TaskConfigError, match="max_chars"):
        last_number("1", max_chars=0)
    with pytest.raises(TaskConfigError, match="tag"):
        answer_tag("<a b>1</a b>", tag="a b")
    with pytest.raises(TypeError, match="expected str"):
        boxed(None)
