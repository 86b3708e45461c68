"""Text as the triage model sees it: normalised, segmented into words, checked for script.

Chinese is segmented by jieba (its dictionary ships with the package, so nothing is
downloaded); Latin-script words are lower-cased. Both become word unigrams and bigrams.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
WORD = re.compile(r"\w", re.UNICODE)
# Full-width forms become ASCII (ＡＢＣ１２３ → ABC123) so 12315 is one token however typed.
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, lower case, one space between words, no control characters."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _SPACE.sub(" ", text).strip().lower()


@cache
def _jieba() -> Any:
    # jieba 0.42 imports pkg_resources, which newer setuptools marks deprecated; that
    # warning is jieba's business, not a fault of ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def words(text: str) -> list[str]:
    """The words of a normalised text: jieba's segmentation, punctuation dropped."""
    return [w for w in (t.strip() for t in _jieba().lcut(text)) if w and WORD.search(w)]


def word_features(text: str) -> list[str]:
    """Unigrams and bigrams of words, and the cue concepts of activities/triage/lexicon.py:
    the analyzer of the word vectoriser."""
    from activities.triage.lexicon import concepts

    tokens = words(text)
    return (tokens + [f"{a} {b}" for a, b in pairwise(tokens)]
            + concepts(text))


@dataclass(frozen=True)
class ScriptCheck:
    """What the text is written in: how many letters, and the share in Han or Latin."""

    letters: int
    han: int
    latin: int
    other: int

    @property
    def supported_share(self) -> float:
        return (self.han + self.latin) / self.letters if self.letters else 0.0

    @property
    def language(self) -> str:
        if not self.letters:
            return "none"
        if self.han and self.latin:
            return "zh" if self.han * 2 >= self.latin / 4 else "en"
        return "zh" if self.han else ("en" if self.latin else "other")


def check_script(text: str) -> ScriptCheck:
    """Count letters by script; digits, punctuation and emoji are not letters."""
    han = latin = other = 0
    for ch in text:
        if HAN.match(ch):
            han += 1
        elif ch.isalpha():
            if ch.isascii() or "LATIN" in unicodedata.name(ch, ""):
                latin += 1
            else:
                other += 1
    return ScriptCheck(han + latin + other, han, latin, other)
