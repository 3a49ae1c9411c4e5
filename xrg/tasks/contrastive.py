"""`ContrastivePretraining`: align any image encoder with any text encoder (TRRG stage 1).

Two InfoNCE objectives share one learnable temperature (`JointSpace`):
- global: each study's image against its whole report (CLIP's symmetric loss);
- sentence: each image against disease sentences, i.e. report sentences in which the labeler
  finds a positive observation. A sentence is a positive for *every* image in the (gathered)
  batch whose study has all the sentence's findings, so "moderate cardiomegaly" from another
  study is not pushed away from an image with cardiomegaly. Targets are uniform over positives.
Negatives come from every rank: embeddings are gathered with gradients under DDP.
Validation logs image -> report retrieval recall@k over the whole validation split.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from xrg.blocks.encoders.base import ImageEncoder, TextEncoder
from xrg.blocks.findings.zero_shot import JointSpace
from xrg.data.labels import CHEXPERT_LABELS
from xrg.metrics.gather import gather_studies, study_keys
from xrg.tasks.base import XrgTask

_SENTENCE_END = re.compile(r"(?<!\d)\.(?!\d)")
_NO_FINDING = CHEXPERT_LABELS.index("No Finding")


def _findings_vector(codes: dict[str, int | None]) -> tuple[bool, ...]:
    return tuple(codes[name] == 1 and name != "No Finding" for name in CHEXPERT_LABELS)


@lru_cache(maxsize=65536)
def _sentence_findings(sentence: str) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(stated present, stated absent) per observation; "No Finding" is neither.
    Reports are templated, so the same sentences recur: the labeler runs once per distinct one."""
    from xrg.metrics.labeler import label_report

    codes = label_report(sentence)
    return _findings_vector(codes), tuple(codes[name] == 0 and name != "No Finding" for name in CHEXPERT_LABELS)


def disease_sentences(report: str, negated: bool = False) -> list[tuple[str, tuple[bool, ...], tuple[bool, ...]]]:
    """Sentences of `report` stating a positive finding (with `negated`, also those stating only
    absent ones, "no pneumothorax"), each with its [14] stated-present and stated-absent findings."""
    found = []
    for sentence in (s.strip() for s in _SENTENCE_END.split(report)):
        if sentence:
            present, absent = _sentence_findings(sentence)
            if any(present) or (negated and any(absent)):
                found.append((sentence, present, absent))
    return found


def sentence_positives(study_findings: torch.Tensor, present: torch.Tensor, absent: torch.Tensor) -> torch.Tensor:
    """[images, sentences] bool: a sentence matches an image when the study has every finding the
    sentence states present and none it states absent (study_findings, present, absent: [N, 14])."""
    missing = (present.unsqueeze(0) & ~study_findings.unsqueeze(1)).any(-1)
    contradicted = (absent.unsqueeze(0) & study_findings.unsqueeze(1)).any(-1)
    return ~(missing | contradicted)


def multi_positive_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row against a uniform target over its positive columns.

    Rows without any positive take no part (a normal study has no disease sentence to match).
    """
    rows = positives.any(1)
    if not rows.any():
        return logits.sum() * 0.0
    targets = positives[rows].to(logits.dtype)
    targets = targets / targets.sum(1, keepdim=True)
    return -(targets * logits[rows].log_softmax(1)).sum(1).mean()


def symmetric_nce(logits: torch.Tensor, positives: torch.Tensor, valid_columns: torch.Tensor | None = None) -> torch.Tensor:
    if valid_columns is not None:
        # A large finite fill (not -inf): zero targets times the log-probability must stay 0, not NaN.
        logits = logits.masked_fill(~valid_columns.unsqueeze(0), -1e4)
        positives = positives & valid_columns.unsqueeze(0)
    return 0.5 * (multi_positive_nce(logits, positives) + multi_positive_nce(logits.t(), positives.t()))


def retrieval_recall(queries: torch.Tensor, keys: torch.Tensor, ks: tuple[int, ...]) -> dict[int, float]:
    """Share of queries i whose key i ranks in the top k (ties count against the match)."""
    similarity = queries @ keys.t()
    rank = (similarity > similarity.diagonal().unsqueeze(1)).sum(1)
    return {k: (rank < k).float().mean().item() for k in ks}


class ContrastivePretraining(XrgTask):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        embed_dim: int = 256,
        temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        report_weight: float = 1.0,
        sentence_weight: float = 1.0,
        sentences_per_study: int = 2,
        negated_sentences: bool = False,
        recall_at: tuple[int, ...] = (1, 5, 10),
        **task_kwargs: Any,
    ) -> None:
        super().__init__(**task_kwargs)
        self.image_encoder = image_encoder
        self.joint = JointSpace(text_encoder, embed_dim, temperature, max_logit_scale)
        self.joint.bind_image_dim(image_encoder.dim)
        self.report_weight = report_weight
        self.sentence_weight = sentence_weight
        self.sentences_per_study = sentences_per_study
        self.negated_sentences = negated_sentences
        self.recall_at = tuple(recall_at)
        self._val_embeddings: list[tuple[torch.Tensor, ...]] = []  # (study keys, images, reports) per batch

    # --- pieces -----------------------------------------------------------------------------
    def embed_images(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.joint.embed_images(self.image_encoder(batch["images"], batch.get("view_mask")).pooled)

    def study_findings(self, batch: dict[str, Any]) -> torch.Tensor:
        """[B, 14] bool positives: the dataset's labels when it has them, else the labeler's."""
        if batch.get("labels") is not None:
            findings = batch["labels"] == 1
        else:
            from xrg.metrics.labeler import label_reports

            findings = torch.tensor([_findings_vector(c) for c in label_reports(batch["reports"])])
        findings = findings.to(self.device)
        findings[:, _NO_FINDING] = False
        return findings

    def sentence_slots(self, reports: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`sentences_per_study` slots per study: embeddings [B*S, E], stated-present and
        stated-absent findings [B*S, 14], valid [B*S].

        A fixed number of slots per study keeps shapes equal across ranks for the gather; empty
        slots stay zero and are masked out. Training picks a random subset, evaluation the first.
        """
        per_study, chosen, slot_index = self.sentences_per_study, [], []
        present = torch.zeros(len(reports) * per_study, len(CHEXPERT_LABELS), dtype=torch.bool)
        absent = torch.zeros_like(present)
        for i, report in enumerate(reports):
            candidates = disease_sentences(report, self.negated_sentences)
            order = torch.randperm(len(candidates)).tolist() if self.training else range(len(candidates))
            for slot, c in enumerate(list(order)[:per_study]):
                sentence, stated_present, stated_absent = candidates[c]
                chosen.append(sentence)
                slot_index.append(i * per_study + slot)
                present[i * per_study + slot] = torch.tensor(stated_present)
                absent[i * per_study + slot] = torch.tensor(stated_absent)
        embeddings = torch.zeros(len(reports) * per_study, self.joint.embed_dim, device=self.device)
        valid = torch.zeros(len(reports) * per_study, dtype=torch.bool, device=self.device)
        if chosen:
            index = torch.tensor(slot_index, device=self.device)
            embeddings = embeddings.index_put((index,), self.joint.embed_texts(chosen).to(embeddings.dtype))
            valid[index] = True
        return embeddings, present.to(self.device), absent.to(self.device), valid

    def _gather(self, tensor: torch.Tensor, grads: bool) -> torch.Tensor:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return tensor
        return self.all_gather(tensor, sync_grads=grads).flatten(0, 1)

    # --- objective --------------------------------------------------------------------------
    def losses(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The losses over the gathered batch, and this rank's image and report embeddings."""
        local_images, local_reports = self.embed_images(batch), self.joint.embed_texts(batch["reports"])
        images, reports = self._gather(local_images, grads=True), self._gather(local_reports, grads=True)
        scale = self.joint.scale()
        eye = torch.eye(len(images), dtype=torch.bool, device=images.device)
        losses = {"report": symmetric_nce(scale * images @ reports.t(), eye)}
        if self.sentence_weight > 0:
            sentences, present, absent, valid = self.sentence_slots(batch["reports"])
            sentences = self._gather(sentences, grads=True)
            present, absent = self._gather(present, grads=False), self._gather(absent, grads=False)
            valid = self._gather(valid, grads=False)
            findings = self._gather(self.study_findings(batch), grads=False)
            positives = sentence_positives(findings, present, absent)
            losses["sentence"] = symmetric_nce(scale * images @ sentences.t(), positives, valid)
        return losses, local_images, local_reports

    def total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.report_weight * losses["report"] + self.sentence_weight * losses.get("sentence", 0.0)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses, _, _ = self.losses(batch)
        size = len(batch["ids"])
        for name, value in losses.items():
            self.log(f"train/{name}_loss", value, batch_size=size)
        self.log("train/logit_scale", self.joint.scale(), batch_size=size)
        loss = self.total(losses)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        losses, images, reports = self.losses(batch)
        self.log("val/loss", self.total(losses), prog_bar=True, batch_size=len(batch["ids"]), sync_dist=True)
        # gathered once, at epoch end, each study once
        self._val_embeddings.append((study_keys(batch["ids"], images.device), images.detach(), reports.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_embeddings:
            return
        keys, images, reports = (torch.cat(column) for column in zip(*self._val_embeddings))
        images, reports = gather_studies(self, keys, images, reports)
        self._val_embeddings.clear()
        recalls = retrieval_recall(images.float(), reports.float(), self.recall_at)
        self.log_dict({f"val/recall@{k}": v for k, v in recalls.items()}, rank_zero_only=False)
