"""Callbacks the CLI, recipes and every task use: predictions as JSONL, counted skips, exact resume,
the config inside checkpoints, samples."""

from __future__ import annotations

import json
import os
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from xrg.data.jsonl import partial_path, sidecar_path, write_atomic
from xrg.data.loader import left_out, skipped_at_setup


class JsonlPredictionWriter(BasePredictionWriter):
    """One JSON line per study, written to `<path>.partial` and moved onto `path` only when every
    study is done, so a killed or failed run never truncates an earlier complete file. Studies
    that could not be read get a row `{"id", "error"}`: no study goes missing silently.

    Beside the file, `<path>.meta.json` records how many rows it holds and how many studies the
    split has; `xrg evaluate` checks it. Under several processes each rank writes its own
    `<name>.rank<k>.jsonl`.

    Rows follow the split's order whatever order the batches came in (the data module's
    `group_by_length` hands them longest prompt first), so the file does not depend on batching.
    """

    def __init__(self, path: str = "predictions.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        self._file = None
        self.written = 0
        self._positions: list[int] = []  # each written row's place in the split (for the final order)

    def _target(self, trainer: L.Trainer) -> Path:
        if trainer.world_size > 1:
            return self.path.with_suffix(f".rank{trainer.global_rank}{self.path.suffix}")
        return self.path

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = self._target(trainer)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = partial_path(target).open("w", encoding="utf-8")
        self.written, self._positions = 0, []
        self._split_order = split_order(trainer.predict_dataloaders)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        self.written += len(rows)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        rows = prediction or []
        paths = batch.get("paths") if isinstance(batch, dict) else None
        if paths is not None:  # studies from your own images: say which files made each row
            for row, files in zip(rows, paths):
                row.setdefault("images", files)
        self._positions += [self._split_order.get(row.get("id"), len(self._split_order)) for row in rows]
        self._write(rows)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_split_order(trainer)
        errors, expected = {}, 0
        for loader in flat_loaders(trainer.predict_dataloaders):
            errors |= getattr(loader, "failures", {})
            expected += len(loader.sampler)
            if trainer.is_global_zero:  # studies left out at setup: the same on every rank, listed once
                at_setup = skipped_at_setup(loader)
                errors |= at_setup
                expected += len(at_setup)
        self._write([{"id": study_id, "error": why} for study_id, why in errors.items()])
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self._target(trainer)
        os.replace(partial_path(target), target)
        meta = {"rows": self.written, "errors": len(errors), "expected": expected}
        write_atomic(sidecar_path(target), json.dumps(meta) + "\n")
        print(f"wrote {self.written} predictions to {target}" + (f" ({len(errors)} with an error)" if errors else ""))
        if self.written != expected:
            warnings.warn(f"{target}: {self.written} rows for {expected} studies")

    def _restore_split_order(self, trainer: L.Trainer) -> None:
        """Rewrite the rows written so far in the split's order, if they came in another."""
        if self._positions == sorted(self._positions):
            return
        self._file.close()
        partial = partial_path(self._target(trainer))
        lines = partial.read_text(encoding="utf-8").split("\n")[:-1]  # not splitlines: a report may hold U+2028
        order = sorted(range(len(lines)), key=self._positions.__getitem__)  # stable: ties keep their order
        write_atomic(partial, "".join(lines[i] + "\n" for i in order))
        self._file = partial.open("a", encoding="utf-8")
        self._positions.sort()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()  # the partial file stays for inspection; the earlier file is untouched


def split_order(loaders: Any) -> dict[str, int]:
    """Study id -> its place in the loaders' datasets (studies of a `ReportDataset`)."""
    order: dict[str, int] = {}
    for loader in flat_loaders(loaders):
        for study in getattr(getattr(loader, "dataset", None), "studies", []):
            if hasattr(study, "id"):
                order.setdefault(study.id, len(order))
    return order


def flat_loaders(loaders: Any) -> list:
    """Lightning hands one loader, a list, a dict or None."""
    if loaders is None:
        return []
    if isinstance(loaders, dict):
        return list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return list(loaders)
    return [loaders]


class SkippedStudies(L.Callback):
    """At the end of fit, validate, test and predict: how many studies reached no model and why
    (`on_bad_study: skip`), one line on the console and every id in `<log dir>/skipped_studies.jsonl`."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, "fit", {"train": trainer.train_dataloader, "val": trainer.val_dataloaders})

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._report(trainer, "validate", {"val": trainer.val_dataloaders})

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, "test", {"test": trainer.test_dataloaders})

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, "predict", {"predict": trainer.predict_dataloaders})

    def _report(self, trainer: L.Trainer, stage: str, loaders: dict[str, Any]) -> None:
        rows = [{"stage": stage, "split": split, "id": study_id, "why": why}
                for split, split_loaders in loaders.items() for loader in flat_loaders(split_loaders)
                for study_id, why in left_out(loader).items()]
        if not rows:
            return
        name = "skipped_studies.jsonl" if trainer.world_size == 1 else f"skipped_studies.rank{trainer.global_rank}.jsonl"
        path = Path(trainer.log_dir or trainer.default_root_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        counts = Counter(row["split"] for row in rows)
        per_split = ", ".join(f"{split}: {count}" for split, count in counts.items())
        print(f"xrg {stage}: {len(rows)} studies skipped as unreadable ({per_split}); ids and reasons in {path}")


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`: the weights after every validation and at the end of training, whatever a
    monitored checkpoint keeps. Lightning 2.6 writes a `save_last` copy only when a top-k checkpoint
    is saved at the same step, so beside a monitor `last.ckpt` held the best epoch, not the latest:
    a resume from it went back to that epoch and `xrg.load("last.ckpt")` was not the final model.
    `xrg fit` adds one beside each `ModelCheckpoint(monitor=..., save_last=true)` and turns that
    one's `save_last` off, so one callback writes the file (`last_checkpoints`)."""

    def __init__(self, dirpath: str | Path | None = None) -> None:
        super().__init__(dirpath=dirpath, filename=self.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
                         enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # epochs after the last validation
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))


def last_checkpoints(callbacks: list[L.Callback]) -> list[LastCheckpoint]:
    """One `LastCheckpoint` per folder of a monitored `ModelCheckpoint` in `callbacks` that was asked
    for `save_last`; that callback's own `save_last` is switched off."""
    folders = []
    for callback in callbacks:
        if type(callback) is ModelCheckpoint and callback.monitor and callback.save_last:
            callback.save_last = False
            if callback.dirpath not in folders:
                folders.append(callback.dirpath)
    return [LastCheckpoint(folder) for folder in folders]


class ExactResume(L.Callback):
    """Puts every random state a fit depends on into each checkpoint and restores it when the fit
    resumes: Python's, NumPy's and torch's global generators (CUDA's too) and every
    `random.Random` / `torch.Generator` a block or task holds. With the data order in the
    checkpoint too (`xrg.data.loader`), a fit killed at any step resumes bit-identically.

    The states are put back at `on_train_start`, after the sanity check and model set-up that also
    draw random numbers, right before the first step that the interrupted run had not taken.
    """

    KEY = "xrg_random_states"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[self.KEY] = {"process": process_random_states(), "held": held_random_states(pl_module)}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(self.KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        set_process_random_states(self._pending["process"])
        set_held_random_states(pl_module, self._pending["held"])
        self._pending = None


def process_random_states() -> dict[str, Any]:
    """Python, NumPy and torch (and CUDA) global RNG states, as types `torch.load(weights_only=True)` reads."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_process_random_states(states: dict[str, Any]) -> None:
    random.setstate(_as_tuples(states["python"]))
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def held_random_states(module: torch.nn.Module) -> dict[str, Any]:
    """The state of every `random.Random` and `torch.Generator` held as an attribute inside `module`."""
    states = {}
    for name, owner in module.named_modules():
        for attribute, value in vars(owner).items():
            key = f"{name}.{attribute}" if name else attribute
            if isinstance(value, random.Random):
                states[key] = value.getstate()
            elif isinstance(value, torch.Generator):
                states[key] = value.get_state()
    return states


def set_held_random_states(module: torch.nn.Module, states: dict[str, Any]) -> None:
    for key, state in states.items():
        *path, attribute = key.split(".")
        generator = getattr(module.get_submodule(".".join(path)), attribute)
        if isinstance(generator, random.Random):
            generator.setstate(_as_tuples(state))
        else:
            generator.set_state(state)


def _as_tuples(state):
    """`random.setstate` wants tuples where a checkpoint may hand back lists."""
    return tuple(_as_tuples(item) for item in state) if isinstance(state, (list, tuple)) else state


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
        if not batch["ids"]:
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

        epoch 3  train/loss 2.1140  val/loss 2.3010  val/nlg/bleu_4 0.0810  val/ce/chexpert-rules/macro14/f1 0.2130

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
            head = f"epoch {trainer.current_epoch}" + (f"  train/loss {float(train_loss):.4f}" if train_loss is not None else "")
            pl_module.print(f"{head}  {line}")


def summary_line(metrics: dict[str, Any], prefix: str, headline: tuple[str, ...], limit: int) -> str:
    """The `prefix/` metrics named in `headline` (in that order), else the first single-level ones."""
    chosen = [f"{prefix}/{name}" for name in headline if f"{prefix}/{name}" in metrics]
    if len(chosen) < 2:  # a task with other metrics (recall@k, AUC per label...): its short keys
        chosen += [k for k in metrics if k.startswith(prefix + "/") and k.count("/") == 1 and k not in chosen]
    return "  ".join(f"{key} {float(metrics[key]):.4f}" for key in chosen[:limit])


def stated_findings(reports: list[str], labeler: str = "chexpert-rules") -> list[str]:
    """The positive observations each report states, comma-separated ("none" if it states none)."""
    from xrg.data.labels import CHEXPERT_LABELS
    from xrg.metrics.ce import label_texts

    rows = label_texts(reports, labeler) == 1
    return [", ".join(n for n, on in zip(CHEXPERT_LABELS, row.tolist()) if on) or "none" for row in rows]
