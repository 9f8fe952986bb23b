"""Property tests of answer extraction with adversarial text (hypothesis, derandomized, no example
database). The per-example time bound is the hypothesis ``deadline`` (generous: a scan of the
4,096-character window takes a few milliseconds); the test bodies assert only answers."""
from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

from envs.rlvr.extract import (EXTRACTORS, answer_tag, boxed, extract_answer, hash_answer, last_number,  # noqa: E402
                               parse_number)

FUZZ = settings(derandomize=True, database=None, deadline=timedelta(milliseconds=300), max_examples=60,
                suppress_health_check=list(hypothesis.HealthCheck))

PIECES = ["<answer>", "</answer>", "<answer", "answer>", "\\boxed{", "\\boxed", "{", "}", "\\", "\\{", "####", "#",
          "\n", " ", "1", "9", ",", ".", "-", "+", "\u2212", "x", "\u0663", "\uff17", "\u00b2", "\u2460", "$", "e"]
"""Fragments that drive the scanners' branches (tags, braces, escapes, markers, signs, unicode digits)."""


# Hypothesis keeps caches in ./.hypothesis even without an example database (from the moment this
# module's strategies are built): keep them out of the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tpo-bench-hypothesis")


pieces_text = st.lists(st.sampled_from(PIECES), max_size=400).map("".join)
repeated = st.builds(lambda piece, k: piece * k, st.sampled_from(PIECES + ["1" * 7, "<answer>1"]),
                     st.integers(0, 30_000))
junk = st.one_of(pieces_text, repeated, st.text(max_size=300),
                 st.builds(lambda a, b: a + b, repeated, pieces_text))

ADVERSARIAL = ["1" * 50_000 + "x", "<answer>" * 10_000, "\\boxed{" * 10_000, "{" * 100_000, "}" * 100_000,
               "\\" * 100_000, "#" * 100_000, "1," * 50_000, "-" * 100_000, "." * 100_000, "x" * 100_000,
               "<answer>" * 5_000 + "</answer>" * 5_000, "\\boxed{{" * 5_000 + "}" * 5_000, "\u0663" * 100_000]


@FUZZ
@given(junk)
@example(ADVERSARIAL[0])
@example(ADVERSARIAL[1])
@example(ADVERSARIAL[2])
@example(ADVERSARIAL[3])
@example(ADVERSARIAL[4])
@example(ADVERSARIAL[5])
@example(ADVERSARIAL[6])
@example(ADVERSARIAL[7])
@example(ADVERSARIAL[8])
@example(ADVERSARIAL[9])
@example(ADVERSARIAL[10])
@example(ADVERSARIAL[11])
@example(ADVERSARIAL[12])
@example(ADVERSARIAL[13])
def test_every_extractor_returns_stripped_text_or_none(text):
    for extractor in EXTRACTORS.values():
        out = extractor(text)
        assert out is None or (isinstance(out, str) and out and out == out.strip())
    number = last_number(text)
    assert number is None or parse_number(number) == number      # normalised: ASCII [-]digits[.digits]


@FUZZ
@given(junk, st.integers(-10 ** 12, 10 ** 12))
@example(ADVERSARIAL[1], 7)
@example(ADVERSARIAL[2], -7)
@example(ADVERSARIAL[0], 123)
def test_an_answer_at_the_end_is_found_after_any_text(text, n):
    gold = str(n)
    assert answer_tag(text + f"<answer>{gold}</answer>") == gold
    assert boxed(text + f" \\boxed{{{gold}}}") == gold
    assert hash_answer(text + f"\n#### {gold}") == gold
    assert last_number(text + f" {gold}") == gold
    assert extract_answer(text + f" <answer> {gold} </answer>") == gold


ZEROS = ["0", "\u0660", "\u06f0", "\u0966", "\u09e6", "\uff10", "\u0e50"]
"""Digit zero of several scripts (ASCII, Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali,
fullwidth, Thai): digit d of a script is ``chr(ord(zero) + d)``."""


@FUZZ
@given(st.integers(0, 10 ** 15), st.sampled_from(ZEROS), junk)
def test_unicode_digits_are_normalised_to_ascii(n, zero, text):
    foreign = "".join(chr(ord(zero) + int(d)) for d in str(n))
    assert last_number(text + " " + foreign) == str(n)
    assert parse_number(foreign) == str(n)


@FUZZ
@given(st.integers(-10 ** 15, 10 ** 15), st.integers(0, 999))
def test_thousands_separators_and_decimals_round_trip(n, frac):
    text = f"{n:,}.{frac:03d}"
    expected = f"{n}.{frac:03d}"
    assert last_number("total: " + text + " dollars") == expected
    assert parse_number(text) == expected


@FUZZ
@given(st.integers(0, 60), st.integers(0, 60))
def test_nested_and_unclosed_answer_tags(depth, unclosed):
    nested = "<answer>" * depth + "5" + "</answer>" * depth
    text = nested + "<answer>" * unclosed
    assert answer_tag(text) == (None if depth == 0 else "5")
    boxes = "\\boxed{" * depth + "5" + "}" * depth
    assert boxed(boxes + "\\boxed{" * unclosed) == (None if depth == 0 else "5")
