"""R2Gen's report cleaning, reproduced so scores computed with xrg match published numbers.

Both datasets: lowercase, split into sentences on ". ", strip punctuation inside each sentence,
join sentences with " . " and end with " .". MIMIC-CXR additionally collapses newlines, runs of
underscores (the de-identification blanks) and double spaces first.

One quirk is kept on purpose: R2Gen compares each cleaned sentence with ``[]`` (always unequal),
so empty sentences are never dropped. Dropping them would change BLEU/CIDEr on a few reports and
break equality with the numbers papers report.
"""

from __future__ import annotations

import re
from typing import Callable, Literal

# Sentence punctuation R2Gen removes. ":-\[" is a character *range* in the original pattern
# (":" .. "["), which also strips ";<=>?@" and capitals; capitals are gone after lower() anyway.
_PUNCTUATION = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")

# Enumerations like "1. ... 2. ..." become plain sentence breaks.
_ENUMERATION_FIXES = (
    ("1. ", ""),
    (". 2. ", ". "), (". 3. ", ". "), (". 4. ", ". "), (". 5. ", ". "),
    (" 2. ", ". "), (" 3. ", ". "), (" 4. ", ". "), (" 5. ", ". "),
)


def _replace_repeatedly(text: str, old: str, new: str, times: int) -> str:
    # R2Gen chains str.replace a fixed number of times rather than looping to a fixed point;
    # the fixed count matters for long runs ("......"), so it is kept.
    for _ in range(times):
        text = text.replace(old, new)
    return text


def _sentences_to_report(sentences: list[str]) -> str:
    cleaned = []
    for sentence in sentences:
        for char in ('"', "/", "\\", "'"):
            sentence = sentence.replace(char, "")
        cleaned.append(_PUNCTUATION.sub("", sentence.strip().lower()))
    return " . ".join(cleaned) + " ."


def _apply_enumeration_fixes(text: str) -> str:
    for old, new in _ENUMERATION_FIXES:
        text = text.replace(old, new)
    return text


def clean_iu_xray(report: str) -> str:
    """R2Gen's ``clean_report_iu_xray``."""
    text = _replace_repeatedly(report, "..", ".", 3)
    text = _apply_enumeration_fixes(text)
    return _sentences_to_report(text.strip().lower().split(". "))


def clean_mimic_cxr(report: str) -> str:
    """R2Gen's ``clean_report_mimic_cxr``."""
    text = report.replace("\n", " ")
    text = _replace_repeatedly(text, "__", "_", 7)
    text = _replace_repeatedly(text, "  ", " ", 6)
    text = _replace_repeatedly(text, "..", ".", 8)
    text = _apply_enumeration_fixes(text)
    return _sentences_to_report(text.strip().lower().split(". "))


def no_cleaning(report: str) -> str:
    return report


CleaningName = Literal["iu_xray", "mimic_cxr", "none"]
CLEANERS: dict[str, Callable[[str], str]] = {
    "iu_xray": clean_iu_xray,
    "mimic_cxr": clean_mimic_cxr,
    "none": no_cleaning,
}


def get_cleaner(name: str) -> Callable[[str], str]:
    try:
        return CLEANERS[name]
    except KeyError:
        raise ValueError(f"unknown report cleaning {name!r}; expected one of {sorted(CLEANERS)}") from None
