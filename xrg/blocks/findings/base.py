"""Findings / concept heads: visual Features -> logits `[B, K]` over named observations.

The one base class of this kind. A head says what it predicts (`label_names`), scores it
(`forward`), trains with a masked BCE whose positive weights can be fitted from training labels
(optionally focal: `focal_gamma`), and writes its predictions as text for an LLM prompt.

Labels are CheXpert codes: 1 positive, 0 negative, -1 uncertain, NaN blank (not mentioned).
Uncertain entries never count. Blank ones count as negative by default (`blank: negative`): a
report that does not mention a finding says it is absent, and some observations are never stated
negative at all (No Finding, Support Devices), so skipping blanks would leave a head that has
never seen a negative. `blank: ignore` skips them instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from xrg.blocks.encoders.base import Block, Features
from xrg.data.labels import select_labels

NO_FINDING, SUPPORT_DEVICES = "No Finding", "Support Devices"
PosWeightRule = Literal["log", "ratio"]
POS_WEIGHT_RULES = get_args(PosWeightRule)


def pos_weight_rule(fit_pos_weight: bool | str) -> str | None:
    """A task's or guide's `fit_pos_weight` setting as a rule: true is RaDialog's `log`, false none."""
    if fit_pos_weight is True:
        return "log"
    if fit_pos_weight is False or fit_pos_weight is None:
        return None
    if fit_pos_weight not in POS_WEIGHT_RULES:
        raise ValueError(f"fit_pos_weight is true, false or one of {POS_WEIGHT_RULES}, got {fit_pos_weight!r}")
    return fit_pos_weight


class FindingsHead(Block, ABC):
    def __init__(self, label_names: list[str], threshold: float = 0.5, blank: Literal["negative", "ignore"] = "negative",
                 focal_gamma: float = 0.0) -> None:
        super().__init__()
        if not label_names:
            raise ValueError("a findings head needs at least one label name")
        if blank not in ("negative", "ignore"):
            raise ValueError(f"blank must be 'negative' or 'ignore', got {blank!r}")
        if isinstance(focal_gamma, bool) or not isinstance(focal_gamma, (int, float)) or focal_gamma < 0:
            raise ValueError(f"focal_gamma is a number >= 0 (0: plain BCE), got {focal_gamma!r}")
        self.label_names = list(label_names)
        self.threshold = threshold
        self.blank = blank
        self.focal_gamma = float(focal_gamma)
        # Saved with the weights: a restored head weighs its loss exactly as it was trained.
        self.register_buffer("pos_weight", torch.ones(len(self.label_names)))

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def bind_input(self, dim: int) -> None:
        """Called by the task with the width of the visual features it will pass in."""
        if getattr(self, "input_dim", None) != dim:
            self.input_dim = dim
            self._build_input_layers(dim)

    def _build_input_layers(self, dim: int) -> None:
        """Create the layers whose size depends on the visual width (if the head has any)."""

    @abstractmethod
    def forward(self, features: Features) -> torch.Tensor:
        """Logits `[B, K]`, one per name in `label_names`."""

    def fit_pos_weight(self, labels: torch.Tensor, rule: PosWeightRule = "log") -> torch.Tensor:
        """Positive weights from training labels, over the studies where label k is counted (N, see
        `blank`) and positive (count_k); a label never positive keeps weight 1.
        `log`: RaDialog's log(N / count_k). `ratio`: negatives / positives, (N - count_k) / count_k,
        the weight that makes positives and negatives pull equally (PyTorch's BCE documentation),
        capped at 100 so a label with one positive in a large set cannot swamp the loss."""
        if rule not in POS_WEIGHT_RULES:
            raise ValueError(f"a positive-weight rule is one of {POS_WEIGHT_RULES}, got {rule!r}")
        _, known = self.targets(labels)
        total = known.sum(0).float()
        positives = ((labels == 1) & known).sum(0).float()
        count = positives.clamp_min(1)
        fitted = torch.log(total / count) if rule == "log" else ((total - positives) / count).clamp_max(100.0)
        weight = torch.where(positives > 0, fitted, torch.ones_like(total))
        # Either is 0 for a label positive in every study; keep a small floor so it still learns.
        self.pos_weight.copy_(weight.clamp_min(1e-3))
        return self.pos_weight

    def fit_pos_weight_from(self, datamodule: object, rule: PosWeightRule = "log") -> None:
        """`fit_pos_weight` on a data module's training labels (nothing when it has none). Callers
        call it at a fresh fit only: a resumed fit keeps the weights its checkpoint carries."""
        if hasattr(datamodule, "train_labels"):
            self.fit_pos_weight(select_labels(datamodule.train_labels(), self.label_names), rule)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """BCE with `pos_weight`, averaged over the entries that count (see `targets`). With
        `focal_gamma` > 0 each entry is scaled by (1 - p_t) ** gamma, p_t the probability given to its
        true answer (focal loss, Lin et al., ICCV 2017): the findings a head already calls right stop
        drowning out the gradients of those it does not yet see."""
        targets, known = self.targets(labels)
        targets = targets.to(logits.dtype)
        per_entry = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight, reduction="none")
        if self.focal_gamma:
            probs = logits.sigmoid()
            p_true = torch.where(targets > 0.5, probs, 1 - probs)
            per_entry = per_entry * (1 - p_true).pow(self.focal_gamma)
        return (per_entry * known).sum() / known.sum().clamp_min(1)

    def targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(0/1 targets, mask of the entries that count) for CheXpert-coded `labels`."""
        return label_targets(labels, self.blank)

    def predicted_names(self, probs: torch.Tensor, threshold: float | torch.Tensor | None = None) -> list[list[str]]:
        """Names over the threshold (one, or one per label) per study; "No Finding" is dropped when
        anything else is found."""
        threshold = self.threshold if threshold is None else threshold
        return [names_from_row(row, self.label_names, threshold) for row in probs]

    def to_text(self, probs: torch.Tensor, threshold: float | None = None) -> list[str]:
        """Readable findings per study for a prompt, e.g. "cardiomegaly, pleural effusion"."""
        return [", ".join(n.lower() for n in names) or "none" for names in self.predicted_names(probs, threshold)]


def names_from_row(row: torch.Tensor, label_names: list[str], threshold: float | torch.Tensor = 0.5) -> list[str]:
    """Names whose value is over `threshold` (one for all, or a tensor with one per label; values are
    probabilities, or labels where 1 is positive); "No Finding" only when nothing else is present,
    as RaDialog writes its prompts."""
    thresholds = threshold.tolist() if isinstance(threshold, torch.Tensor) else [threshold] * len(label_names)
    names = [name for name, value, t in zip(label_names, row.tolist(), thresholds) if value == value and value >= t]
    if len(names) > 1 and NO_FINDING in names:
        names.remove(NO_FINDING)
    return names


def no_finding_as_labelled(decided: torch.Tensor, label_names: list[str]) -> torch.Tensor:
    """0/1 decisions `[B, K]` with No Finding decided as CheXpert labels set it: exactly when no
    pathology is decided (Support Devices is not one). A head's thresholds decide each column on its
    own, so a study can get no decision at all, which no training label ever says."""
    column = label_names.index(NO_FINDING)
    pathology = [k for k, name in enumerate(label_names) if name not in (NO_FINDING, SUPPORT_DEVICES)]
    decided = decided.clone()
    decided[:, column] = (decided[:, pathology] < 0.5).all(1).to(decided.dtype)
    return decided


def label_targets(labels: torch.Tensor, blank: str = "negative") -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, counted): target 1 where the code is 1, else 0; uncertain (-1) never counts,
    blank (NaN) counts as negative unless `blank` is "ignore"."""
    counted = labels != -1
    if blank == "ignore":
        counted &= ~torch.isnan(labels)
    return (labels == 1).float(), counted


def best_f1_thresholds(probs: torch.Tensor, labels: torch.Tensor, default: float = 0.5,
                       max_call_ratio: float | None = None) -> torch.Tensor:
    """Per column of `probs` [N, K], the threshold whose decisions (p >= t) have the best F1 against
    `labels` (CheXpert codes; only 1 is positive, as clinical efficacy counts). The threshold sits
    halfway between the last probability taken and the next, so it does not hug one study; a
    column without positives keeps `default`.

    `max_call_ratio` r: the best F1 among thresholds that call the observation in at most r studies
    per study that has it. Without it, an observation the head barely perceives gets its best F1 by
    being called in a large share of studies (with 2 positives in 100, calling 40 studies still
    scores above 0), so every report would state it; the limit keeps such calls rare, and where no
    threshold within it finds a positive, the column gets 2.0 (above every probability: never called)."""
    if max_call_ratio is not None and max_call_ratio < 1:
        raise ValueError(f"max_call_ratio is at least 1 (calls per study that has the observation), got {max_call_ratio}")
    thresholds = torch.full((probs.shape[1],), float(default))
    for k in range(probs.shape[1]):
        positive = labels[:, k] == 1
        if not positive.any():
            continue
        order = probs[:, k].argsort(descending=True)
        ranked, hits = probs[order, k], positive[order].double().cumsum(0)
        called = torch.arange(1, len(ranked) + 1, dtype=torch.float64)
        f1 = 2 * hits / (called + positive.sum())
        if max_call_ratio is not None:
            f1[called > max_call_ratio * positive.sum()] = -1.0
        best = int(f1.argmax())
        if f1[best] <= 0:  # only with a limit: no call within it is right
            thresholds[k] = 2.0
            continue
        below = ranked[best + 1] if best + 1 < len(ranked) else ranked[best] / 2
        thresholds[k] = float(ranked[best] + below) / 2
    return thresholds
