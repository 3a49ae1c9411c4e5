"""Training reports rewritten in one sentence order, so a decoder learns *what* to say next.

Radiologists word findings freely and in any order; a decoder fed the findings (as tokens, clues
or a prompt) must then also guess, at every sentence boundary, which of the remaining findings a
report states next, and under greedy or beam search a rare finding's sentence seldom wins that
contest before the end token (docs/quality.md, section 4). Structured reporting fixes the order.
`findings_first` puts the sentences that state an observation positive or uncertain first, in
CheXpert's column order (heart, lungs, pleura, bones, devices), then the sentences that rule
observations out in the same order, then the rest (e.g. "the osseous structures are intact") in
their written order. Only the words' order changes: a report keeps every sentence it had.

It applies to the training targets only; validation and test references stay as written (clinical
efficacy ignores order; BLEU against the written order is what papers report).
"""

from __future__ import annotations

import re
from typing import Callable, Literal

from xrg.data.labels import CHEXPERT_LABELS, COLUMN

SentenceOrder = Literal["as_written", "findings_first"]

# A sentence ends at a full stop followed by space: "a b . c d ." (cleaned) and "A b. C d." (raw).
_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def sentences_of(report: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(report.strip()) if s]


def findings_first_key(mentions: list[tuple[str, int]]) -> int:
    """Where a sentence mentioning these (observation, code) goes: stated findings, then ruled-out
    ones, then the rest. What a sentence mentions, not its report-level labels: those would call
    every sentence without a pathology "No Finding"."""
    mentions = [(name, code) for name, code in mentions if name in COLUMN]  # not the labeler's internal ones
    positive = [COLUMN[name] for name, code in mentions if code in (1, -1)]
    if positive:
        return min(positive)
    negative = [COLUMN[name] for name, code in mentions if code == 0]
    return len(CHEXPERT_LABELS) + min(negative) if negative else 2 * len(CHEXPERT_LABELS)


def order_findings_first(report: str, mentions: Callable[[str], list[tuple[str, int]]]) -> str:
    """The report's sentences, stably sorted by `findings_first_key` of what each one mentions."""
    sentences = sentences_of(report)
    keys = [findings_first_key(mentions(sentence)) for sentence in sentences]
    order = sorted(range(len(sentences)), key=keys.__getitem__)
    return " ".join(sentences[i] for i in order)


def rule_mentions() -> Callable[[str], list[tuple[str, int]]]:
    """(observation, code) of each mention in a sentence, by the offline CheXpert rules (microseconds a sentence)."""
    from xrg.metrics.labeler import ChexpertRulesLabeler

    labeler = ChexpertRulesLabeler()

    def mentions(sentence: str) -> list[tuple[str, int]]:
        return [(m.observation, m.label) for m in labeler.mentions(sentence)]

    return mentions


def sentence_orderer(order: SentenceOrder) -> Callable[[str], str] | None:
    """The rewrite of a training report for `order`; None keeps reports as written."""
    if order == "as_written":
        return None
    if order == "findings_first":
        mentions = rule_mentions()
        return lambda report: order_findings_first(report, mentions)
    raise ValueError(f"unknown sentence_order {order!r}; expected 'as_written' or 'findings_first'")
