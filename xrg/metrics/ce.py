"""Clinical efficacy (CE): agreement of labels extracted from generated and reference reports.

Papers disagree on how to score CE (14 or 5 observations, micro or macro, uncertain read as
negative or positive), so every convention is reported, each named in its key:

    ce/<labeler>/<average><labels>[_u1]/<stat>

- average (stat p / r / f1): ``macro``, ``micro``, ``weighted`` and ``example`` are sklearn's
  ``average="macro" | "micro" | "weighted" | "samples"`` with ``zero_division=0``; ``example``
  scores a report with no positive on either side 0, as RaDialog's Sample F1 and PromptMRG's
  example F1 do. ``exact`` (stat acc) is the share of reports whose positive sets are equal
  (sklearn's multilabel ``accuracy_score``; f1chexbert's accuracy is ``exact5_u1/acc``).
  With probabilities, ``macro<labels>/auroc`` and ``auroc[_u1]/<observation>`` add ROC AUC.
- labels: ``14`` (all CheXpert observations, No Finding included) or ``5`` (`CHEXPERT_5`).
- no suffix: uncertain (-1) and blank count as negative (R2Gen / RaDialog; the default).
  ``_u1``: uncertain counts as positive (f1chexbert's convention); blank is always negative.
- An empty generated report (no word in it) gets no credit on any key: its labels are blank
  whatever the labeler says about "", and it never counts as an exact match.
The headline number of most report-generation papers is ``ce/chexpert-rules/macro14/f1``.
docs/clinical_efficacy.md lists every key.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from xrg.data.labels import CHEXPERT_5, CHEXPERT_LABELS
from xrg.metrics.nlg.metric import PairedTextMetric

LabelDict = dict[str, "int | None"]
_FIVE = [CHEXPERT_LABELS.index(name) for name in CHEXPERT_5]


def _chexpert_rules() -> Callable[[list[str]], list[LabelDict]]:
    from xrg.metrics.labeler import label_reports

    return label_reports


# Labelers usable by name. Model-based labelers (CheXbert) need weights, so they are built
# explicitly from xrg.metrics.model_based and their label matrices passed to `ce_from_labels`.
LABELERS: dict[str, Callable[[], Callable[[list[str]], list[LabelDict]]]] = {"chexpert-rules": _chexpert_rules}


def labels_to_matrix(labels: Sequence[LabelDict]) -> Tensor:
    """Label dicts -> float tensor [N, 14] in CheXpert order, NaN for blank (the batch convention)."""
    rows = [[math.nan if row.get(name) is None else float(row[name]) for name in CHEXPERT_LABELS] for row in labels]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(CHEXPERT_LABELS))


def binarize(matrix: Tensor, uncertain_as: int = 0) -> Tensor:
    """Codes -> bool positives. Blank (NaN) and 0 are negative; -1 follows `uncertain_as`."""
    if uncertain_as not in (0, 1):
        raise ValueError(f"uncertain_as must be 0 or 1, got {uncertain_as!r}")
    positive = matrix == 1
    return positive | (matrix == -1) if uncertain_as == 1 else positive


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    # sklearn's zero_division=0: an observation never predicted has precision 0.
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.zeros_like(numerator))


def _prf(true_pos: Tensor, predicted: Tensor, actual: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    precision, recall = _ratio(true_pos, predicted), _ratio(true_pos, actual)
    return precision, recall, _ratio(2 * true_pos, predicted + actual)


def per_label_scores(pred: Tensor, ref: Tensor) -> dict[str, Tensor]:
    """Per-column P, R, F1 and support of bool matrices [N, L]."""
    pred, ref = pred.double(), ref.double()
    true_pos, predicted, actual = (pred * ref).sum(0), pred.sum(0), ref.sum(0)
    precision, recall, f1 = _prf(true_pos, predicted, actual)
    return {"p": precision, "r": recall, "f1": f1, "support": actual}


def _averages(pred: Tensor, ref: Tensor) -> dict[str, dict[str, float]]:
    scores = per_label_scores(pred, ref)
    macro = {key: scores[key].mean().item() for key in ("p", "r", "f1")}
    support = scores["support"]
    # sklearn's "weighted": per-observation scores weighted by their reference support (0 if none).
    weighted = {
        key: (scores[key] * support).sum().div(support.sum()).item() if support.sum() > 0 else 0.0
        for key in ("p", "r", "f1")
    }
    p_d, r_d = pred.double(), ref.double()
    micro = dict(zip(("p", "r", "f1"), (t.item() for t in _prf((p_d * r_d).sum(), p_d.sum(), r_d.sum()))))
    # sklearn's "samples": P/R/F1 of each report's positive set, then the mean; a report with no
    # positive on either side scores 0 (zero_division=0), as RaDialog and PromptMRG score it.
    per_report = _prf((p_d * r_d).sum(1), p_d.sum(1), r_d.sum(1))
    example = {key: value.mean().item() for key, value in zip(("p", "r", "f1"), per_report)}
    return {"macro": macro, "micro": micro, "weighted": weighted, "example": example}


def _auroc(probabilities: Tensor, positive: Tensor) -> Tensor:
    """ROC AUC per column in float64 (Mann-Whitney: the mean rank of the positives, ties
    averaged); NaN where the reference has one class only (sklearn would raise) or where a
    probability is NaN (nothing perceived that observation)."""
    scores = torch.full((positive.shape[1],), math.nan, dtype=torch.float64)
    for column in range(positive.shape[1]):
        target = positive[:, column]
        n_pos, n_neg = int(target.sum()), int((~target).sum())
        if n_pos and n_neg and not probabilities[:, column].isnan().any():  # NaN: nothing perceives it
            values, inverse, counts = torch.unique(probabilities[:, column].double(), return_inverse=True, return_counts=True)
            mean_rank = counts.cumsum(0) - (counts - 1) / 2  # 1-based rank of each distinct value, ties averaged
            rank_sum = mean_rank.double()[inverse][target].sum()
            scores[column] = ((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()
    return scores


def ce_from_labels(
    pred: Tensor,
    ref: Tensor,
    labeler: str = "chexpert-rules",
    empty: Tensor | None = None,
    probabilities: Tensor | None = None,
) -> dict[str, float]:
    """Every CE convention from label matrices [N, 14] (codes 1/0/-1, NaN blank).

    `empty` [N] bool marks generated reports with no words: their labels are blanked and they
    never count as exact matches (no CE credit). `probabilities` [N, 14] (a findings head's, say)
    add per-observation ROC AUC against the reference labels.
    """
    if pred.shape != ref.shape or pred.ndim != 2 or pred.shape[1] != len(CHEXPERT_LABELS):
        raise ValueError(f"expected two [N, {len(CHEXPERT_LABELS)}] label matrices, got {tuple(pred.shape)} and {tuple(ref.shape)}")
    if probabilities is not None and probabilities.shape != ref.shape:
        raise ValueError(f"expected probabilities {tuple(ref.shape)} like the labels, got {tuple(probabilities.shape)}")
    empty = torch.zeros(len(pred), dtype=torch.bool) if empty is None else empty.bool()
    if empty.shape != (len(pred),):
        raise ValueError(f"expected an empty-report mask of shape ({len(pred)},), got {tuple(empty.shape)}")
    results: dict[str, float] = {}
    if pred.shape[0] == 0:
        return results
    pred = torch.where(empty[:, None], torch.full_like(pred, math.nan), pred)
    for suffix, uncertain_as in (("", 0), ("_u1", 1)):
        pred_bin, ref_bin = binarize(pred, uncertain_as), binarize(ref, uncertain_as)
        auroc = _auroc(probabilities, ref_bin) if probabilities is not None else None
        if auroc is not None:
            results.update({f"ce/{labeler}/auroc{suffix}/{name}": auroc[i].item() for i, name in enumerate(CHEXPERT_LABELS)})
        for size, columns in (("14", list(range(len(CHEXPERT_LABELS)))), ("5", _FIVE)):
            for average, scores in _averages(pred_bin[:, columns], ref_bin[:, columns]).items():
                for key, value in scores.items():
                    results[f"ce/{labeler}/{average}{size}{suffix}/{key}"] = value
            exact = (pred_bin[:, columns] == ref_bin[:, columns]).all(1) & ~empty
            results[f"ce/{labeler}/exact{size}{suffix}/acc"] = exact.double().mean().item()
            if auroc is not None:
                known = auroc[columns][~auroc[columns].isnan()]
                results[f"ce/{labeler}/macro{size}{suffix}/auroc"] = known.mean().item() if len(known) else math.nan
    return results


def per_label_report(pred: Tensor, ref: Tensor, uncertain_as: int = 0,
                     names: Sequence[str] = CHEXPERT_LABELS) -> dict[str, dict[str, float]]:
    """{observation: {p, r, f1, support}} for notes and error analysis; `names` label the columns
    (a findings head of fewer labels passes its own)."""
    if pred.shape[-1] != len(names):
        raise ValueError(f"{pred.shape[-1]} label columns but {len(names)} names")
    scores = per_label_scores(binarize(pred, uncertain_as), binarize(ref, uncertain_as))
    return {name: {key: scores[key][i].item() for key in scores} for i, name in enumerate(names)}


def format_per_label_report(report: dict[str, dict[str, float]]) -> str:
    """A markdown table of `per_label_report`."""
    lines = ["| observation | P | R | F1 | support |", "|---|---|---|---|---|"]
    for name, s in report.items():
        lines.append(f"| {name} | {s['p']:.3f} | {s['r']:.3f} | {s['f1']:.3f} | {int(s['support'])} |")
    return "\n".join(lines)


def label_texts(texts: Sequence[str], labeler: str = "chexpert-rules", progress: str | None = None) -> Tensor:
    """`[N, 14]` labels of `texts`; with `progress` (a description) a progress bar follows the
    labelling in chunks (`xrg evaluate`; never inside a training run, whose own bar is live)."""
    if labeler not in LABELERS:
        raise ValueError(f"unknown labeler {labeler!r}; expected one of {sorted(LABELERS)}")
    label = LABELERS[labeler]()
    texts = list(texts)
    if progress is None:
        return labels_to_matrix(label(texts))
    from xrg.progress import track

    chunks = [texts[start:start + 256] for start in range(0, len(texts), 256)]
    return labels_to_matrix([row for chunk in track(chunks, f"{progress} ({len(texts)} reports)") for row in label(chunk)])


def is_empty_report(text: str) -> bool:
    """No letter or digit in it: "", whitespace, or the " ." that R2Gen cleaning leaves."""
    return not any(character.isalnum() for character in text)


def score_texts(
    generated: Sequence[str], references: Sequence[str], label_matrix: Callable[[list[str]], Tensor], labeler: str,
    probabilities: Tensor | None = None,
) -> dict[str, float]:
    """CE of generated reports against references with any labeler (`label_matrix`: texts -> [N, 14])."""
    if len(generated) != len(references):
        raise ValueError(f"got {len(generated)} generated reports but {len(references)} references")
    empty = torch.tensor([is_empty_report(text) for text in generated], dtype=torch.bool)
    return ce_from_labels(label_matrix(list(generated)), label_matrix(list(references)), labeler, empty=empty,
                          probabilities=probabilities)


def clinical_efficacy(generated: list[str], references: list[str], labeler: str = "chexpert-rules",
                      progress: bool = False, probabilities: Tensor | None = None) -> dict[str, float]:
    """CE of generated reports against references, every convention (see module docstring);
    with `probabilities` [N, 14] also the AUROC of what the model perceived."""
    describe = "labelling" if progress else None
    return score_texts(generated, references, lambda texts: label_texts(texts, labeler, describe), labeler,
                       probabilities=probabilities)


class ClinicalEfficacy(PairedTextMetric):
    """Accumulates report strings (and, when a model perceives observations, their probabilities);
    labels and scores once on the whole (all-rank) set.

    Texts are gathered across ranks as strings (`PairedTextMetric`), each study once, and rank 0
    labels and scores them, so the score does not depend on the number of GPUs (scoring per rank
    and averaging would).
    """

    def __init__(self, labeler: str = "chexpert-rules", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if labeler not in LABELERS:
            raise ValueError(f"unknown labeler {labeler!r}; expected one of {sorted(LABELERS)}")
        self.labeler = labeler
        self.add_state("probabilities", default=[], dist_reduce_fx=None)  # [14] rows, when every batch has them

    def update(self, generated: Sequence[str], references: Sequence[str], probabilities: Tensor | None = None,
               ids: Sequence[str] | None = None) -> None:
        if probabilities is not None and len(probabilities) != len(generated):
            raise ValueError(f"got {len(generated)} generated reports but {len(probabilities)} probability rows")
        super().update(list(generated), list(references), None if ids is None else list(ids))
        if probabilities is not None:
            self.probabilities.extend(probabilities.detach().double().cpu().unbind(0))

    def _local_rows(self) -> list[tuple]:
        rows = self.rows()
        probabilities = [row.tolist() for row in self.probabilities] if len(self.probabilities) == len(rows) else [None] * len(rows)
        return [(*row, p) for row, p in zip(rows, probabilities)]

    def _keep_rows(self, rows: list[tuple]) -> None:
        super()._keep_rows(rows)
        self.probabilities = [torch.tensor(row[3], dtype=torch.float64) for row in rows if row[3] is not None]

    def _score(self) -> dict[str, float]:
        generated, references = self.texts()
        # AUROC only when every report came with its probabilities (else the rows would not line up).
        probabilities = torch.stack(self.probabilities) if len(self.probabilities) == len(generated) > 0 else None
        scores = clinical_efficacy(generated, references, self.labeler, probabilities=probabilities)
        # an observation no guide perceives (or one class only) has no AUROC: not logged as NaN
        return {key: value for key, value in scores.items() if not ("auroc" in key and math.isnan(value))}
