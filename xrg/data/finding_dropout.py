"""Training reports with some of their stated findings left out, and labels of what they still state.

A decoder told a study's findings (`PredictedFindings` tokens or prompt) learns from training
reports whose findings come only in the combinations the data has, and always beside an image that
shows them. At test time it is told its head's decisions, in combinations it may never have seen,
and must write each told finding's sentence and nothing else; short fits confuse some of them
(docs/quality.md section 16: told two findings alone, a decoder writes both and nothing else in
16-66 of 78 pairs, depending on the seed).

`drop_finding_sentences: p` (`ReportDataModule`, training split only) leaves each finding that a
training report states (positive or uncertain) out with probability p: every sentence stating it
goes, and the study's `stated_labels` mark it blank, as a report that never mentions it would be
labeled. The images and the study's `labels` stay as they are, so a findings head still learns what
the image shows, while a decoder told the stated labels learns that a finding it is not told is not
written, whatever the image shows, from combinations the data never has. On the synthetic
benchmark it left the findings-first writer level (p = 0.25, five seeds over two settings, section
16: the pairs it fails, a second finding after the first, stay as rare), so no recipe sets it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from xrg.data.labels import COLUMN
from xrg.data.sentence_order import sentences_of

_NO_FINDING, _SUPPORT_DEVICES = COLUMN["No Finding"], COLUMN["Support Devices"]


@dataclass(frozen=True)
class StatedSentences:
    """A report as sentences and, per sentence, the columns it states positive or uncertain."""

    sentences: tuple[str, ...]
    states: tuple[frozenset[int], ...]


def stated_sentences(report: str, mentions: Callable[[str], list[tuple[str, int]]]) -> StatedSentences:
    sentences = tuple(sentences_of(report))
    states = tuple(frozenset(COLUMN[name] for name, code in mentions(s)
                             if name in COLUMN and code in (1, -1) and COLUMN[name] != _NO_FINDING)
                   for s in sentences)
    return StatedSentences(sentences, states)


def drop_findings(report: StatedSentences, labels: torch.Tensor, p: float) -> tuple[str, torch.Tensor]:
    """(report, stated labels) with each finding that `labels` [14] codes positive or uncertain and
    a sentence states left out with probability p (draws from torch's generator: an item's seed
    fixes them). A report left with no sentence is kept whole."""
    codes = labels.tolist()
    candidates = sorted(k for k in set().union(*report.states) if codes[k] in (1, -1))
    draws = torch.rand(len(candidates)).tolist()
    dropped = {k for k, u in zip(candidates, draws) if u < p}
    kept = [(s, st) for s, st in zip(report.sentences, report.states) if not st & dropped]
    stated = labels.clone()
    if not dropped or not kept:
        return " ".join(report.sentences), stated
    still = set().union(*(st for _, st in kept))
    for k in set(candidates) - still:
        stated[k] = math.nan  # not mentioned any more
    pathology = [c for k, c in enumerate(stated.tolist()) if k not in (_NO_FINDING, _SUPPORT_DEVICES)]
    if not any(c in (1, -1) for c in pathology):
        stated[_NO_FINDING] = 1.0  # CheXpert: no finding when no pathology is positive or uncertain
    return " ".join(s for s, _ in kept), stated
