"""Answer extraction from model text: bounded, linear scans; nothing is ever evaluated.

Each extractor maps a completion (``str``) to the answer text (``str``) or ``None`` when the text
holds no answer of that form. Guarantees, for every input:

* **Bounded input.** Only the LAST ``max_chars`` characters are scanned (default
  :data:`MAX_SCAN_CHARS` = 4,096): the final answer of a reasoning trace sits at its end, and a
  100k-character completion costs the same as a 4k one. An answer (or tag) that starts before that
  window is not seen; a tag cut by the window edge does not count.
* **Linear time.** ``str.rfind``/``str.find`` and single forward passes; the only regular
  expression (the brace tokens of :func:`boxed`) is an alternation of fixed tokens without
  quantifiers, so nothing can backtrack.
* **Result.** Leading/trailing whitespace is stripped; empty content gives ``None``.

Extractors (:data:`EXTRACTORS`, chained by :func:`extract_answer`):

``answer_tag``   ``<answer>…</answer>`` (the tag format of DeepSeek-R1, DeepSeek-AI 2025 §2.2.1, and of
                 reasoning-gym's prompts): the innermost complete pair that closes last. Unclosed
                 trailing tags are ignored, so ``<answer>1</answer><answer>2`` gives ``"1"``; nested tags
                 ``<answer>a<answer>b</answer>c</answer>`` give ``"b"``. Tags are matched exactly (lower
                 case, no attributes or inner spaces).
``boxed``        ``\\boxed{…}`` (the MATH convention, Hendrycks et al. 2021) with balanced braces; a
                 backslash escapes the next character (``\\{`` and ``\\}`` do not count). Among the
                 complete boxes the one that opens last wins, so a nested ``\\boxed{\\boxed{5}}`` gives
                 ``"5"`` and an unclosed last box falls back to the previous complete one. A box whose
                 content nests braces deeper than ``max_depth`` (default :data:`MAX_BRACE_DEPTH` = 32)
                 is refused.
``hash``         ``#### x`` (the GSM8K solution format, Cobbe et al. 2021): the rest of the line after the
                 last ``####``.
``last_number``  the last number in the window (one that touches the window's left edge of a longer
                 text may be truncated and is skipped), normalised to ``[-]digits[.digits]``: an optional sign
                 (``-``, ``+`` or U+2212 MINUS SIGN, counted only when not preceded by a letter, digit or
                 closing bracket, so ``5-3`` gives ``"3"``), digits with optional thousands groups
                 (``1,234,567``: a comma followed by exactly three digits), an optional fraction
                 (``.5``; a bare ``3.`` gives ``"3"``). Commas are dropped, ``+`` is dropped, a leading
                 ``.5`` becomes ``0.5``. Exponents are not parsed (``1e5`` gives ``"5"``).
``full_text``    the whole text, stripped (None if longer than the window): for models that answer
                 with the answer alone.

**Unicode digits.** Decimal digits of every script (Unicode category Nd: fullwidth ``３``,
Arabic-Indic ``٣``, Devanagari ``३``, …) are digits; :func:`last_number` maps them to ASCII via
``unicodedata.decimal``. Other numeric characters (superscripts ``²``, circled ``①``, vulgar
fractions ``½``, Roman numerals) are not digits and are refused (treated as text).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Optional, Sequence

from envs.rlvr.errors import TaskConfigError

__all__ = [
    "DEFAULT_METHODS", "EXTRACTORS", "MAX_BRACE_DEPTH", "MAX_SCAN_CHARS",
    "answer_tag", "boxed", "check_methods", "extract_answer", "full_text", "hash_answer", "last_number",
    "parse_number",
]

MAX_SCAN_CHARS = 4096
"""Characters scanned from the END of a completion (the rest is ignored)."""

MAX_BRACE_DEPTH = 32
"""Deepest brace nesting accepted inside one ``\\boxed{…}``."""

_MAX_TAG_NAME = 32
_SIGNS = {"-": "-", "+": "", "\u2212": "-"}
_NO_SIGN_BEFORE = ")]}"
_BOXED_TOKENS = re.compile(r"\\boxed\{|\\.|[{}]", re.DOTALL)   # fixed tokens only: no quantifier


def _window(text: str, max_chars: int) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise TaskConfigError(f"max_chars: expected an integer >= 1, got {max_chars!r}")
    return text[-max_chars:] if len(text) > max_chars else text


def _clean(text: str) -> Optional[str]:
    text = text.strip()
    return text or None


def _digit(ch: str) -> Optional[str]:
    """The ASCII digit of ``ch`` if it is a decimal digit of any script (category Nd), else None."""
    if "0" <= ch <= "9":
        return ch
    if ch.isascii():
        return None
    value = unicodedata.decimal(ch, None)
    return None if value is None else chr(48 + value)


def answer_tag(text: str, *, tag: str = "answer", max_chars: int = MAX_SCAN_CHARS) -> Optional[str]:
    """Content of the innermost complete ``<tag>…</tag>`` pair that closes last, or None.

    Args: ``text`` the completion; ``tag`` the tag name (letters, digits, ``_``/``-``; at most 32
    characters); ``max_chars`` the scan window (module docstring). Raises TypeError for a non-str
    text, TaskConfigError for a bad tag name or window.
    """
    if not (isinstance(tag, str) and 0 < len(tag) <= _MAX_TAG_NAME and tag.isascii()
            and tag.replace("_", "").replace("-", "").isalnum()):
        raise TaskConfigError(f"tag: expected 1-{_MAX_TAG_NAME} ASCII letters, digits, '_' or '-', got {tag!r}")
    window = _window(text, max_chars)
    opening, closing = f"<{tag}>", f"</{tag}>"
    last_close = window.rfind(closing)
    if last_close < 0:
        return None
    start = window.rfind(opening, 0, last_close)
    if start < 0:
        return None
    start += len(opening)
    end = window.find(closing, start)          # first close after the innermost open (<= last_close)
    return _clean(window[start:end])


def boxed(text: str, *, max_chars: int = MAX_SCAN_CHARS, max_depth: int = MAX_BRACE_DEPTH) -> Optional[str]:
    """Content of the complete ``\\boxed{…}`` that opens last (balanced braces), or None.

    One forward pass over the window with an explicit stack (no recursion). Raises TypeError for a
    non-str text, TaskConfigError for a bad window or depth.
    """
    window = _window(text, max_chars)
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0:
        raise TaskConfigError(f"max_depth: expected an integer >= 0, got {max_depth!r}")
    if "\\boxed{" not in window:
        return None
    stack: list[list] = []          # [content start, is a box, deepest nesting inside]
    best: Optional[tuple[int, int]] = None
    for match in _BOXED_TOKENS.finditer(window):
        token = match.group()
        if token == "{" or token == "\\boxed{":
            stack.append([match.end(), token != "{", 0])
        elif token == "}" and stack:
            start, is_box, inner = stack.pop()
            if stack:
                stack[-1][2] = max(stack[-1][2], inner + 1)
            if is_box and inner <= max_depth and (best is None or start > best[0]):
                best = (start, match.start())
        # any other token is an escape (backslash + one character): skipped
    return None if best is None else _clean(window[best[0]:best[1]])


def hash_answer(text: str, *, max_chars: int = MAX_SCAN_CHARS) -> Optional[str]:
    """The rest of the line after the last ``####`` (GSM8K's answer marker), or None."""
    window = _window(text, max_chars)
    at = window.rfind("####")
    if at < 0:
        return None
    rest = window[at + 4:]
    newline = rest.find("\n")
    return _clean(rest if newline < 0 else rest[:newline])


def _number_at(text: str, start: int) -> tuple[int, str]:
    """Parse the unsigned number starting at ``start`` (a digit, or ``.`` before a digit).
    Returns (end index, normalised ``digits[.digits]``)."""
    n = len(text)
    i = start
    whole: list[str] = []
    while i < n and (d := _digit(text[i])) is not None:
        whole.append(d)
        i += 1
    while whole and i + 3 < n and text[i] == ",":          # a thousands group: ',' + exactly 3 digits
        group = [_digit(text[j]) for j in range(i + 1, i + 4)]
        if None in group or (i + 4 < n and _digit(text[i + 4]) is not None):
            break
        whole.extend(group)
        i += 4
    frac: list[str] = []
    if i + 1 < n and text[i] == "." and _digit(text[i + 1]) is not None:
        i += 1
        while i < n and (d := _digit(text[i])) is not None:
            frac.append(d)
            i += 1
    number = "".join(whole) or "0"
    return i, number + ("." + "".join(frac) if frac else "")


def _sign_before(text: str, start: int) -> str:
    if start < 1 or text[start - 1] not in _SIGNS:
        return ""
    if start >= 2 and (text[start - 2].isalnum() or text[start - 2] in _NO_SIGN_BEFORE):
        return ""
    return _SIGNS[text[start - 1]]


def last_number(text: str, *, max_chars: int = MAX_SCAN_CHARS) -> Optional[str]:
    """The last number in the window, normalised (module docstring), or None."""
    window = _window(text, max_chars)
    cut = len(text) > len(window)          # then a number at the window's left edge may be truncated
    n = len(window)
    last: Optional[str] = None
    i = 0
    while i < n:
        ch = window[i]
        if _digit(ch) is None and not (ch == "." and i + 1 < n and _digit(window[i + 1]) is not None):
            i += 1
            continue
        start = i
        sign = _sign_before(window, i)
        i, number = _number_at(window, i)
        if not (cut and start == 0):
            last = sign + number
    return last


def full_text(text: str, *, max_chars: int = MAX_SCAN_CHARS) -> Optional[str]:
    """The whole text, stripped; None when it is empty, whitespace, or longer than ``max_chars``
    (such a text is not a bare answer)."""
    window = _window(text, max_chars)
    return None if len(window) < len(text) else _clean(window)


def parse_number(text: str) -> Optional[str]:
    """``text`` as ONE number, normalised like :func:`last_number`, or None if it is anything else.

    Surrounding whitespace, one leading ``$`` and one trailing ``.`` are allowed
    (``" $1,000. "`` gives ``"1000"``); texts longer than :data:`MAX_SCAN_CHARS` give None.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    t = text.strip()
    if not t or len(t) > MAX_SCAN_CHARS:
        return None
    sign = ""
    if t[0] in _SIGNS:
        sign, t = _SIGNS[t[0]], t[1:].lstrip()
    if t[:1] == "$":
        t = t[1:]
    if t.endswith("."):
        t = t[:-1]
    if not t or not (_digit(t[0]) is not None or (t[0] == "." and len(t) > 1 and _digit(t[1]) is not None)):
        return None
    end, number = _number_at(t, 0)
    return sign + number if end == len(t) else None


EXTRACTORS: dict[str, Callable[..., Optional[str]]] = {
    "answer_tag": answer_tag,
    "boxed": boxed,
    "hash": hash_answer,
    "last_number": last_number,
    "full_text": full_text,
}
"""Extractor registry: name -> ``f(text, *, max_chars) -> str | None``."""

DEFAULT_METHODS = ("answer_tag", "boxed", "hash", "last_number")
"""Default chain of :func:`extract_answer`: tags first, the last number as the final fallback."""


def check_methods(methods: Sequence[str] | str) -> tuple[str, ...]:
    """``methods`` as a tuple of extractor names; a single name is accepted. Raises TaskConfigError
    (one line listing the valid names) for an empty chain or an unknown name."""
    if isinstance(methods, str):
        methods = (methods,)
    try:
        names = tuple(methods)
    except TypeError:
        names = ()
    if not names:
        raise TaskConfigError(f"extract: expected one or more of {', '.join(EXTRACTORS)}, got {methods!r}")
    for name in names:
        if name not in EXTRACTORS:
            raise TaskConfigError(f"extract: unknown extractor {name!r}; valid extractors: {', '.join(EXTRACTORS)}")
    return names


def extract_answer(text: str, methods: Sequence[str] | str = DEFAULT_METHODS, *,
                   max_chars: int = MAX_SCAN_CHARS) -> Optional[str]:
    """Try the extractors ``methods`` in order; return the first non-None answer, or None.

    Raises TypeError for a non-str text and TaskConfigError for an unknown extractor name.
    """
    for name in check_methods(methods):
        answer = EXTRACTORS[name](text, max_chars=max_chars)
        if answer is not None:
            return answer
    return None
