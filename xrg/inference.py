"""Reports for your own images, from Python: `xrg.load(ckpt).report(["frontal.png", "lateral.png"])`.

`report` prepares the images as the checkpoint's data module prepared them (`ImagePreparation`), runs the
task's `predict_step` (exactly what `xrg predict` writes), adds the probability of every
observation the model's findings / concept / perception heads score and, with `explain`, a
Grad-CAM heatmap per finding (`xrg.explain`). The result is a `StudyReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from xrg.data.dataset import collate_studies
from xrg.data.studies import ImageLike, ImagePreparation
from xrg.explain import finding_heads, finding_probabilities, gradcam, overlay


@dataclass
class StudyReport:
    """What a model says about one study.

    id:        the study's name
    images:    the image files read (view order); empty for in-memory images
    report:    the generated report text; None for a model that writes none (a findings classifier)
    findings:  {observation: probability} from every findings / concept / perception head
               (empty when the model has none)
    present:   the observations over their head's threshold ("No Finding" only when alone)
    heatmaps:  {observation: float32 array [V, H, W] in [0, 1]}, one map per view at the model's
               input size; filled when `explain` asked for it
    details:   the rest of the `xrg predict` row: what the model's guides explain (concept
               criteria, perceived diseases, retrieved report ids, ...)
    """

    id: str
    images: list[str]
    report: str | None
    findings: dict[str, float] = field(default_factory=dict)
    present: list[str] = field(default_factory=list)
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    views: list[Image.Image] = field(default_factory=list, repr=False)  # the radiographs as read

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: everything but the heatmap arrays and images."""
        return {"id": self.id, "images": self.images, "report": self.report, "findings": self.findings,
                "present": self.present, "details": self.details}

    def overlay(self, finding: str, view: int = 0, alpha: float = 0.5) -> Image.Image:
        """The heatmap of `finding` drawn over view `view` at the image's own resolution."""
        if finding not in self.heatmaps:
            raise KeyError(f"no heatmap for {finding!r}; have {sorted(self.heatmaps)} (ask with explain=[...])")
        return overlay(self.views[view], self.heatmaps[finding][view], alpha)


def preparation_of(task: torch.nn.Module) -> ImagePreparation:
    """How the task wants its images: set by `xrg.load` from the checkpoint, else the attached data module's."""
    preparation = getattr(task, "preparation", None)
    if preparation is not None:
        return preparation
    trainer = getattr(task, "_trainer", None)
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    if datamodule is not None and getattr(datamodule, "hparams", None):
        return ImagePreparation.from_hparams(dict(datamodule.hparams))
    raise ValueError(f"{type(task).__name__} does not know how to prepare its images: load it with xrg.load(checkpoint), "
                     "or set task.preparation = xrg.data.studies.ImagePreparation(image_size=..., mean=..., std=...)")


def _wanted(explain: bool | str | Sequence[str], present: list[str], scored: dict[str, float]) -> list[str]:
    if explain is True:
        return [name for name in present if name != "No Finding"]
    if explain == "all":
        return list(scored)
    if isinstance(explain, str):
        return [explain]
    return list(explain or [])


@torch.no_grad()
def report_studies(task: torch.nn.Module, studies: Sequence[tuple[str, Sequence[ImageLike]]],
                   explain: bool | str | Sequence[str] = False,
                   preparation: ImagePreparation | None = None) -> list[StudyReport]:
    """One `StudyReport` per (id, images) study. `explain`: True for the findings found present,
    "all" for every scored observation, or a list of observation names."""
    preparation = preparation or preparation_of(task)
    was_training = task.training
    task.eval()
    device = next(task.parameters()).device
    items, views = [], []
    for study_id, images in studies:
        images = list(images)[: preparation.max_views]
        read = [image if isinstance(image, Image.Image) else preparation.read(image, study_id) for image in images]
        views.append(read)
        paths = [str(image) for image in images if not isinstance(image, Image.Image)]
        items.append({"id": study_id, "images": preparation.views(read, study_id), "paths": paths})
    batch = collate_studies(items)
    batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
    try:
        return describe(task, batch, task.predict_step(batch, 0), explain, views)
    finally:
        task.train(was_training)


@torch.no_grad()
def describe(task: torch.nn.Module, batch: dict[str, Any], rows: list[dict[str, Any]],
             explain: bool | str | Sequence[str] = False,
             views: list[list[Image.Image]] | None = None) -> list[StudyReport]:
    """`StudyReport`s for a batch the task has predicted (`rows`: its `predict_step` output):
    the heads' probabilities and, with `explain`, heatmaps. `views`: the radiographs as read (for
    overlays); without them the model's own inputs are shown, un-normalised."""
    heads = finding_heads(task)
    size = len(batch["ids"])
    scored = finding_probabilities(task, task.image_encoder(batch["images"], batch.get("view_mask"))) if heads else [{}] * size
    if views is None:
        try:
            preparation = preparation_of(task)
        except ValueError:
            preparation = None
        views = model_inputs(batch, preparation)
    reports = []
    for i, (row, probs) in enumerate(zip(rows, scored)):
        details = {k: v for k, v in row.items() if k not in ("id", "generated", "images")}
        paths = batch["paths"][i] if "paths" in batch else []
        reports.append(StudyReport(str(row["id"]), list(paths), row.get("generated"), probs, _present(heads, probs),
                                   details=details, views=views[i]))
    wanted = [_wanted(explain, r.present, r.findings) for r in reports]
    if any(wanted):
        for report, maps in zip(reports, gradcam(task, batch["images"], batch.get("view_mask"), wanted)):
            report.heatmaps = maps
    return reports


def model_inputs(batch: dict[str, Any], preparation: ImagePreparation | None) -> list[list[Image.Image]]:
    """The batch's images as the model saw them, un-normalised to grey pictures (per study, real views)."""
    preparation = preparation or ImagePreparation()
    unit = preparation.preprocessing == "biovil"  # BioViL's inputs are [0, 1] already
    mean = torch.tensor((0.0,) * 3 if unit else preparation.mean).view(-1, 1, 1)
    std = torch.tensor((1.0,) * 3 if unit else preparation.std).view(-1, 1, 1)
    mask = batch.get("view_mask")
    studies = []
    for b, study in enumerate(batch["images"].detach().float().cpu()):
        real = int(mask[b].sum()) if mask is not None else study.shape[0]
        pictures = []
        for view in study[:real]:
            pixels = (view * std[: view.shape[0]] + mean[: view.shape[0]]).mean(0).clamp(0, 1)
            pictures.append(Image.fromarray((pixels.numpy() * 255).round().astype(np.uint8)))
        studies.append(pictures)
    return studies


def _present(heads, probs: dict[str, float]) -> list[str]:
    """Observations over their (first) head's threshold; "No Finding" only when nothing else is."""
    thresholds = {}
    for head in heads:
        for name in head.label_names:
            thresholds.setdefault(name, head.threshold)
    present = [name for name, p in probs.items() if p >= thresholds[name]]
    if len(present) > 1 and "No Finding" in present:
        present.remove("No Finding")
    return present
