"""Callbacks the CLI and recipes use: predictions as JSONL, the config inside checkpoints, samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter


class JsonlPredictionWriter(BasePredictionWriter):
    """One JSON line per study, flushed after every batch so an interrupted run keeps its work.

    Under several processes each rank writes its own `<name>.rank<k>.jsonl`.
    """

    def __init__(self, path: str = "predictions.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        self._file = None
        self.written = 0

    def _target(self, trainer: L.Trainer) -> Path:
        if trainer.world_size > 1:
            return self.path.with_suffix(f".rank{trainer.global_rank}{self.path.suffix}")
        return self.path

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = self._target(trainer)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = target.open("w", encoding="utf-8")
        self.written = 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        paths = batch.get("paths") if isinstance(batch, dict) else None
        for i, row in enumerate(prediction):
            if paths is not None:  # studies from your own images: say which files made each row
                row.setdefault("images", paths[i])
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        self.written += len(prediction)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._file.close()
        print(f"wrote {self.written} predictions to {self._target(trainer)}")


class EmbedConfig(L.Callback):
    """Puts the resolved run config into every checkpoint, so the file describes itself."""

    def __init__(self, config_yaml: str) -> None:
        self.config_yaml = config_yaml

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["xrg_config"] = self.config_yaml


class ShowSamples(L.Callback):
    """At the end of fitting, print a few generated test reports next to their references, each
    with the findings it states (positive CheXpert observations, as the CE labeler reads them)."""

    def __init__(self, num_samples: int = 4, split: str = "test", labeler: str = "chexpert-rules") -> None:
        self.num_samples = num_samples
        self.split = split
        self.labeler = labeler

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not trainer.is_global_zero or datamodule is None or self.split not in getattr(datamodule, "datasets", {}):
            return
        from xrg.data.dataset import collate_studies

        dataset = datamodule.datasets[self.split]
        batch = collate_studies([dataset[i] for i in range(min(self.num_samples, len(dataset)))])
        if not batch:
            return
        was_training = pl_module.training
        pl_module.eval()
        rows = pl_module.predict_step(
            {k: v.to(pl_module.device) if hasattr(v, "to") else v for k, v in batch.items()}, 0
        )
        pl_module.train(was_training)
        stated = stated_findings([row["generated"] for row in rows] + [row.get("reference", "") for row in rows], self.labeler)
        for i, row in enumerate(rows):
            print(f"\n[{row['id']}]\n  generated: {row['generated']}\n  reference: {row.get('reference', '')}"
                  f"\n  findings stated: {stated[i]}\n  findings true:   {stated[len(rows) + i]}")


class WriteHeatmaps(L.Callback):
    """`xrg predict --explain DIR`: per study, a Grad-CAM overlay for each finding found present,
    `DIR/<study id>/<finding>_view<k>.png`; each prediction row gains `heatmaps` {finding: [files]}.
    Runs before the JSONL writer, so the rows it writes name the pictures."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.written = 0

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        from xrg.inference import describe

        views = None
        if "paths" in batch:  # your own images: draw on the files at their own resolution
            preparation = trainer.datamodule.preparation
            views = [[preparation.read(p, study) for p in paths] for study, paths in zip(batch["ids"], batch["paths"])]
        for row, report in zip(outputs, describe(pl_module, batch, outputs, explain=True, views=views)):
            row["heatmaps"] = {}
            for finding, maps in report.heatmaps.items():
                files = []
                for view in range(len(maps)):
                    path = self.out_dir / _safe_name(report.id) / f"{_safe_name(finding)}_view{view}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    partial = path.with_name(path.name + ".partial")
                    report.overlay(finding, view).save(partial, format="PNG")
                    partial.replace(path)  # a reader never sees half a picture
                    files.append(str(path))
                    self.written += 1
                row["heatmaps"][finding] = files

    def on_predict_end(self, trainer, pl_module) -> None:
        print(f"wrote {self.written} heatmaps to {self.out_dir}")


def _safe_name(name: str) -> str:
    """A file name from a study id or finding ("Enlarged Cardiomediastinum" -> "Enlarged_Cardiomediastinum")."""
    cleaned = "".join(c if c.isalnum() or c in "-." else "_" for c in name).strip("._")
    return cleaned or "study"


class EpochSummary(L.Callback):
    """One line per validation epoch with the headline validation metrics (and the last training
    loss), printed above the live progress bar and kept in the scrollback, e.g.

        epoch 3  train/loss 2.114  val/loss 2.301  val/nlg/bleu_4 0.081  val/ce/chexpert-rules/macro14/f1 0.213

    The `xrg` CLI adds it to every fit and validate (it is not a recipe's choice)."""

    HEADLINE = ("loss", "nlg/bleu_4", "nlg/meteor", "nlg/rouge_l", "nlg/cider", "ce/chexpert-rules/macro14/f1",
                "ce/chexpert-rules/micro14/f1", "auc_mean")

    def __init__(self, max_metrics: int = 8) -> None:
        self.max_metrics = max_metrics

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        line = summary_line(trainer.callback_metrics, "val", self.HEADLINE, self.max_metrics)
        if line:
            train_loss = trainer.callback_metrics.get("train/loss")
            head = f"epoch {trainer.current_epoch}" + (f"  train/loss {float(train_loss):.4g}" if train_loss is not None else "")
            pl_module.print(f"{head}  {line}")


def summary_line(metrics: dict[str, Any], prefix: str, headline: tuple[str, ...], limit: int) -> str:
    """The `prefix/` metrics named in `headline` (in that order), else the first single-level ones."""
    chosen = [f"{prefix}/{name}" for name in headline if f"{prefix}/{name}" in metrics]
    if len(chosen) < 2:  # a task with other metrics (recall@k, AUC per label...): its short keys
        chosen += [k for k in metrics if k.startswith(prefix + "/") and k.count("/") == 1 and k not in chosen]
    return "  ".join(f"{key} {float(metrics[key]):.4g}" for key in chosen[:limit])


def stated_findings(reports: list[str], labeler: str = "chexpert-rules") -> list[str]:
    """The positive observations each report states, comma-separated ("none" if it states none)."""
    from xrg.data.labels import CHEXPERT_LABELS
    from xrg.metrics.ce import label_texts

    rows = label_texts(reports, labeler) == 1
    return [", ".join(n for n, on in zip(CHEXPERT_LABELS, row.tolist()) if on) or "none" for row in rows]
