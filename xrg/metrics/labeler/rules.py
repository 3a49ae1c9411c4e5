"""`chexpert-rules`: an offline CheXpert-style rule labeler.

Pipeline, per report: split into sentences -> normalise -> find mentions (patterns.py) ->
classify each mention as 1 / 0 / -1 from triggers scoped inside its sentence -> merge the
mentions of each observation with CheXpert's aggregation -> derive "No Finding".
All regular expressions are compiled once, at import, because the labeler runs inside
validation loops on thousands of reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable

from xrg.data.labels import CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN
from xrg.metrics.labeler import patterns as p

NO_FINDING, SUPPORT_DEVICES, CARDIOMEGALY = "No Finding", "Support Devices", "Cardiomegaly"
OTHER = "_other abnormality"  # pseudo-observation: only blocks "No Finding"

_SENTENCE_BREAK = re.compile(r"\.(?!\d)|[;!?\n:]")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _compile(source: str) -> re.Pattern[str]:
    return re.compile(source)


_MENTIONS = {name: [(_compile(src), kind) for src, kind in specs] for name, specs in p.MENTIONS.items()}
_MENTIONS[OTHER] = [(_compile(p.OTHER_ABNORMALITIES), "finding")]
_UNMENTIONS = {name: _compile(src) for name, src in p.UNMENTIONS.items()}
_UNMENTIONS[OTHER] = _compile(p.OTHER_UNMENTIONS)
_EXAM_LIMITATION = _compile(p.EXAM_LIMITATION)
_MAYBE_ARTIFACT = _compile(p.MAYBE_ARTIFACT)
_HEDGED_NEGATION = _compile(p.HEDGED_NEGATION)
_HEDGED_NEGATION_AFTER = _compile(rf"^(?: \w+){{0,{p.HEDGED_NEGATION_AFTER_REACH}}}? (?:{p.HEDGED_NEGATION})")
_NOT_A_NEGATION = _compile(p.NOT_A_NEGATION)
_NEGATION_BEFORE = _compile(p.NEGATION_BEFORE)
_NEGATION_AFTER = _compile(p.NEGATION_AFTER)
_UNCERTAIN_BEFORE = _compile(p.UNCERTAIN_BEFORE)
_UNCERTAIN_AFTER = _compile(p.UNCERTAIN_AFTER)
_SCOPE_END = _compile(p.SCOPE_END)
_SCOPE_END_AFTER = _compile(p.SCOPE_END_AFTER)
_HEART_FAILURE = _compile(p.HEART_FAILURE)
_EXPLANATION = _compile(p.EXPLANATION)
_RESTATES_PREVIOUS = _compile(p.RESTATES_PREVIOUS)


@dataclass(frozen=True)
class Mention:
    observation: str
    text: str
    start: int
    end: int
    label: int  # 1, 0 or -1


def split_sentences(report: str) -> list[str]:
    """Sentences as ' words separated by single spaces ' (padded, so every word has \\b around it)."""
    sentences = []
    for raw in _SENTENCE_BREAK.split(report.lower().replace("'", "")):
        words = _NON_WORD.sub(" ", raw).strip()
        if words:
            sentences.append(f" {words} ")
    return sentences


def _mask(text: str, pattern: re.Pattern[str]) -> str:
    """Blank out matches, keeping offsets, so one trigger family cannot be read as another."""
    return pattern.sub(lambda m: "#" * len(m.group()), text)


def _governs_before(trigger: re.Pattern[str], sentence: str, start: int, end: int, reach: int) -> bool:
    """A trigger before the mention (or inside it: 'heart is not enlarged') reaches it."""
    for match in trigger.finditer(sentence, 0, end):
        between = sentence[match.end():start] if match.end() <= start else ""
        if len(between.split()) <= reach and not _SCOPE_END.search(between):
            return True
    return False


def _governs_after(trigger: re.Pattern[str], sentence: str, end: int) -> bool:
    """A trigger just after the mention ('effusion has resolved'), before any scope end."""
    after = sentence[end:]
    scope_end = _SCOPE_END_AFTER.search(after)
    return bool(trigger.search(after[: scope_end.start() + 1] if scope_end else after))


def _classify(sentence: str, hedges_hidden: str, start: int, end: int, kind: str) -> int:
    if kind == "normal":
        return NEGATIVE
    if kind == "borderline":
        return UNCERTAIN
    if _governs_before(_HEDGED_NEGATION, sentence, start, end, p.UNCERTAINTY_REACH):
        return UNCERTAIN
    if _governs_after(_HEDGED_NEGATION_AFTER, sentence, end):
        return UNCERTAIN
    if _governs_before(_NEGATION_BEFORE, hedges_hidden, start, end, p.NEGATION_REACH):
        return NEGATIVE
    if _governs_after(_NEGATION_AFTER, hedges_hidden, end):
        return NEGATIVE
    if _governs_before(_UNCERTAIN_BEFORE, sentence, start, end, p.UNCERTAINTY_REACH):
        return UNCERTAIN
    if _governs_after(_UNCERTAIN_AFTER, sentence, end):
        return UNCERTAIN
    return POSITIVE


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < other_end and other_start < end for other_start, other_end in spans)


def find_mentions(sentence: str) -> list[Mention]:
    """Every labeled mention in one normalised sentence (see `split_sentences`)."""
    hedges_hidden = _mask(_mask(sentence, _HEDGED_NEGATION), _NOT_A_NEGATION)
    about_the_exam = [m.span() for m in _EXAM_LIMITATION.finditer(sentence)]
    mentions = []
    for observation, specs in _MENTIONS.items():
        unmention = _UNMENTIONS.get(observation)
        claimed = about_the_exam + ([m.span() for m in unmention.finditer(sentence)] if unmention else [])
        for pattern, kind in specs:
            for match in pattern.finditer(sentence):
                start, end = match.span()
                if _overlaps(start, end, claimed):
                    continue
                claimed.append((start, end))
                label = _classify(sentence, hedges_hidden, start, end, kind)
                mentions.append(Mention(observation, match.group().strip(), start, end, label))
    return _without_restatements(sentence, mentions)


def _without_restatements(sentence: str, mentions: list[Mention]) -> list[Mention]:
    """Drop a mention that explains a positive mention of the same observation before it
    ("opacities ... compatible with scarring or atelectasis": the hedged "scarring" is the opacity)."""
    def restates(mention: Mention) -> bool:
        return any(
            stated.observation == mention.observation and stated.label == POSITIVE and stated.end <= mention.start
            and _EXPLANATION.search(sentence, stated.end, mention.start)
            for stated in mentions
        )
    return [mention for mention in mentions if not restates(mention)]


def merge(labels: list[int]) -> int:
    """CheXpert's aggregation of several mentions of one observation (its `dict_to_vec`).

    The cases are checked in this order, which makes {0, -1, 1} together come out -1:
    0 with -1 -> -1; 0 with 1 -> 1; -1 with 1 -> 1; otherwise all agree.
    """
    found = set(labels)
    if len(found) == 1:
        return labels[0]
    if NEGATIVE in found and UNCERTAIN in found:
        return UNCERTAIN
    return POSITIVE


def aggregate(mentions: Iterable[Mention]) -> dict[str, int | None]:
    """Merge mentions into one code per observation; derive "No Finding" and the CHF rule."""
    per_observation: dict[str, list[int]] = {}
    no_finding = True
    for mention in mentions:
        if mention.label in (POSITIVE, UNCERTAIN):
            if mention.observation != SUPPORT_DEVICES:
                no_finding = False
            if _HEART_FAILURE.fullmatch(mention.text):
                per_observation.setdefault(CARDIOMEGALY, []).append(UNCERTAIN)
        per_observation.setdefault(mention.observation, []).append(mention.label)
    labels: dict[str, int | None] = {
        name: merge(per_observation[name]) if name in per_observation else None for name in CHEXPERT_LABELS
    }
    labels[NO_FINDING] = POSITIVE if no_finding else None
    return labels


class ChexpertRulesLabeler:
    """Label reports with the 14 CheXpert observations: 1, 0, -1 or None (not mentioned)."""

    name = "chexpert-rules"
    observations = CHEXPERT_LABELS

    def mentions(self, report: str) -> list[Mention]:
        sentences = split_sentences(report)
        found, stated_before = [], set()
        for index, sentence in enumerate(sentences):
            mentions = find_mentions(sentence)
            if _RESTATES_PREVIOUS.search(sentence) and _EXPLANATION.search(sentence):
                # "Bandlike opacities are present. The appearance XXXX scarring or atelectasis.": the
                # explanation names the opacity again; it does not add a hedged one.
                mentions = [m for m in mentions if m.observation not in stated_before]
            stated_before = {m.observation for m in mentions if m.label == POSITIVE}
            if index + 1 < len(sentences) and _MAYBE_ARTIFACT.search(sentences[index + 1]):
                mentions = [replace(m, label=UNCERTAIN) if m.label == POSITIVE else m for m in mentions]
            found.extend(mentions)
        return found

    def label(self, report: str) -> dict[str, int | None]:
        if not split_sentences(report):  # a report with no words states nothing, not "No Finding"
            return dict.fromkeys(CHEXPERT_LABELS)
        return aggregate(self.mentions(report))

    def label_many(self, reports: Iterable[str]) -> list[dict[str, int | None]]:
        return [self.label(report) for report in reports]

    __call__ = label


_DEFAULT = ChexpertRulesLabeler()


def label_report(text: str) -> dict[str, int | None]:
    """Labels of one report, keyed by `CHEXPERT_LABELS` names, in that order."""
    return _DEFAULT.label(text)


def label_reports(texts: Iterable[str]) -> list[dict[str, int | None]]:
    return _DEFAULT.label_many(texts)
