"""Stage 1 of RadAlign: train the concept aligner on an image encoder; AUC per disease logged.

With a `retriever`, the task is also the retrieval-only baseline: the "generated" report of a
study is its nearest training report in the aligned space, scored with the report metrics
(`xrg test`) and written with its concept scores and neighbours (`xrg predict`).

`RetrievalIndexMixin` holds the index lifecycle both RadAlign tasks share: the index is built
from the training split with the weights in use, saved next to the checkpoint, and reloaded
when its fingerprint (which weights computed the keys) still matches.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from xrg.blocks.encoders.base import ImageEncoder
from xrg.blocks.findings.concepts import ConceptAligner, ConceptOutput
from xrg.blocks.retrieval.base import Retrieved, Retriever
from xrg.data.dataset import collate_studies
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.findings import FindingsClassification

log = logging.getLogger(__name__)
INDEX_FOLDER = "retrieval_index"


def fingerprint(*modules: torch.nn.Module) -> str:
    """Which weights computed an index's keys: a hash of their state dicts."""
    digest = hashlib.sha1()
    for module in modules:
        for key, value in module.state_dict().items():
            if isinstance(value, torch.Tensor):
                digest.update(key.encode())
                digest.update(value.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class RetrievalIndexMixin:
    """For tasks with `self.retriever` (or None), `self.index_dir` and a `query_embedding(batch)`."""

    retriever: Retriever | None
    index_dir: str | None

    def query_embedding(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def index_query_modules(self) -> list[torch.nn.Module]:
        """The modules whose weights compute image-space keys (fingerprinted into the index)."""
        raise NotImplementedError

    def _index_metadata(self) -> dict[str, Any]:
        if self.retriever.keys_from_images:
            return {"weights": fingerprint(*self.index_query_modules())}
        return {}

    def _index_location(self) -> Path | None:
        if self.index_dir:
            return Path(self.index_dir)
        trainer = self._trainer
        if trainer is None:
            return None
        if trainer.ckpt_path:
            return Path(trainer.ckpt_path).parent / INDEX_FOLDER
        callback = trainer.checkpoint_callback
        if callback is not None and getattr(callback, "dirpath", None):
            return Path(callback.dirpath) / INDEX_FOLDER
        return Path(trainer.log_dir) / INDEX_FOLDER if trainer.log_dir else None

    def ensure_index(self) -> None:
        """Load the saved index if it was built with these weights, else build it and save it."""
        if self.retriever is None:
            return
        metadata = self._index_metadata()
        if self.retriever.index is not None and all(self.retriever.index.metadata.get(k) == v for k, v in metadata.items()):
            return
        location = self._index_location()
        if location is not None and (location / "index.json").is_file():
            try:
                self.retriever.load_index(location, metadata)
                log.info("loaded report index from %s", location)
                return
            except ValueError as mismatch:
                log.info("rebuilding the report index: %s", mismatch)
        self.build_index()
        if location is not None and self.trainer.is_global_zero:
            self.retriever.save_index(location)
            log.info("saved report index of %d reports to %s", len(self.retriever.index), location)

    @torch.no_grad()
    def build_index(self) -> None:
        datamodule = self.trainer.datamodule
        datamodule.setup("fit")
        train = datamodule.datasets["train"]
        keys = None
        if self.retriever.keys_from_images:
            # Keys from deterministic (evaluation) transforms: a random crop would blur the index.
            train = copy.copy(train)
            train.transform = datamodule.datasets["test"].transform
            loader = DataLoader(train, batch_size=datamodule.hparams.eval_batch_size or datamodule.hparams.batch_size,
                                collate_fn=collate_studies)
            was_training = self.training
            self.eval()
            chunks = []
            for batch in loader:
                batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                chunks.append(self.query_embedding(batch).float().cpu())
            self.train(was_training)
            keys = torch.cat(chunks)
        ids = [study.id for study in train.studies]
        self.retriever.build(ids, list(train.reports), keys, self._index_metadata())

    def retrieve(self, batch: dict[str, Any], query: torch.Tensor) -> Retrieved:
        # A study never retrieves itself: in training its own report would be the answer.
        return self.retriever(query, exclude_ids=batch["ids"])


class ConceptAlignment(RetrievalIndexMixin, FindingsClassification):
    """`FindingsClassification` with the concept aligner as its head (`findings`): the loss adds
    the anchor alignment term; AUC per disease is logged by the parent."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        findings: ConceptAligner,
        retriever: Retriever | None = None,
        index_dir: str | None = None,
        report_metrics: bool = True,
        fit_pos_weight: bool = True,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(image_encoder, findings, fit_pos_weight, **task_kwargs)
        self.save_task_hyperparameters(["image_encoder", "findings", "retriever"])
        if tuple(findings.label_names) != CHEXPERT_LABELS:
            raise ValueError(f"the criteria must name the CheXpert labels in order {CHEXPERT_LABELS}, "
                             f"got {findings.label_names}")
        self.retriever = retriever
        self.index_dir = index_dir
        self.test_reports = None
        if retriever is not None and report_metrics:
            from xrg.metrics.report import ReportMetrics

            self.test_reports = ReportMetrics()

    def concept_output(self, batch: dict[str, Any]) -> ConceptOutput:
        return self.findings.align(self.image_encoder(batch["images"], batch.get("view_mask")))

    def query_embedding(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.concept_output(batch).pooled

    def index_query_modules(self) -> list[torch.nn.Module]:
        return [self.image_encoder, self.findings]

    def on_test_start(self) -> None:
        self.ensure_index()

    def on_predict_start(self) -> None:
        self.ensure_index()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.findings.total_loss(self.concept_output(batch), self._labels(batch))
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=len(batch["ids"]))
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=len(batch["ids"]))
        return losses["loss"]

    def _evaluate(self, batch: dict[str, Any], split: str) -> ConceptOutput:
        output, labels = self.concept_output(batch), self._labels(batch)
        losses = self.findings.total_loss(output, labels)
        self.log_dict({f"{split}/{k}": v for k, v in losses.items()}, batch_size=len(batch["ids"]), sync_dist=True)
        self._outputs[split].append((output.logits.sigmoid().detach(), labels))
        return output

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        output = self._evaluate(batch, "test")
        if self.test_reports is not None:
            nearest = [reports[0] for reports in self.retrieve(batch, output.pooled).reports]
            self.test_reports.update(nearest, batch["reports"])

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.test_reports is not None:
            scores = self.test_reports.compute()
            self.test_reports.reset()
            self.log_dict({f"test/{k}": v for k, v in scores.items()}, rank_zero_only=False)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        output = self.concept_output(batch)
        explained = self.findings.explain(output)
        retrieved = self.retrieve(batch, output.pooled) if self.retriever is not None else None
        rows = []
        for i, study_id in enumerate(batch["ids"]):
            row = {"id": study_id}
            if retrieved is not None:
                row["generated"] = retrieved.reports[i][0]
                row["retrieved_ids"] = retrieved.ids[i]
            if batch.get("reports"):
                row["reference"] = batch["reports"][i]
            rows.append(row | explained[i])
        return rows
