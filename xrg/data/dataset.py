"""A study = its views, its cleaned report and (when known) its 14 CheXpert labels."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from PIL import Image
from torch.utils.data import Dataset

from xrg.data.annotation import Study
from xrg.data.errors import DataError
from xrg.data.finding_dropout import StatedSentences, drop_findings, stated_sentences
from xrg.data.images import read_image
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.sentence_order import rule_mentions

log = logging.getLogger(__name__)
BadStudyPolicy = Literal["raise", "skip"]


def resolve_image(image_dir: Path, relative: str, study_id: str) -> Path:
    """The image's path, refusing any path that leaves `image_dir` ("../", absolute paths, links)."""
    root = image_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise DataError(f"study {study_id!r}: image path {relative!r} escapes the image root {root}")
    return path


def check_study(study: Study, image_dir: Path, cleaned_report: str, with_prior: bool = False, suffix: str = "") -> None:
    """Cheap checks done once at setup, so a bad study fails before hours of training."""
    if not cleaned_report.strip(" ."):
        raise DataError(f"study {study.id!r} ({study.split}): the report is empty")
    for relative in study.image_paths + (study.prior.image_paths if with_prior and study.prior else ()):
        path = resolve_image(image_dir, relative + suffix, study.id)
        if not path.is_file():
            raise DataError(f"study {study.id!r}: image file {path} does not exist")


def load_image(path: Path, study_id: str, window: tuple[float, float] | None = None) -> Image.Image:
    """`read_image`, with the study named in the error."""
    try:
        return read_image(path, window)
    except DataError as err:
        raise DataError(f"study {study_id!r}: {err}") from None


class ReportDataset(Dataset):
    """Items: {"id", "images" [V, C, H, W], "report", "labels" [14] (NaN = blank) if known,
    "indication", "prior_report" ("" when the annotation has none), and with `prior_views` > 0
    "prior_images" [P, C, H, W] (P = 0 for a study without a prior)}.

    With `drop_finding_sentences` p > 0 (training) each item's report leaves each finding it states
    out with probability p, and "stated_labels" [14] says what the report still states
    (`xrg.data.finding_dropout`); "labels" stay the study's.

    Studies in `features_held` come without "images": the model already holds their frozen
    encoder's features (`ReportGeneration(cache_frozen_features=true)`, `xrg.tasks.feature_cache`),
    so their files are not read again."""

    def __init__(
        self,
        studies: list[Study],
        image_dir: str | Path,
        transform: Callable[[Image.Image], torch.Tensor],
        cleaner: Callable[[str], str],
        labels: dict[str, list[float]] | None = None,
        max_views: int = 2,
        on_bad_study: BadStudyPolicy = "raise",
        image_window: tuple[float, float] | None = None,
        prior_views: int = 0,
        path_suffix: str = "",
        drop_finding_sentences: float = 0.0,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.path_suffix = path_suffix  # ".png" when reading from an image cache (xrg.data.image_cache)
        self.image_window = image_window
        self.transform = transform
        self.max_views = max_views
        self.prior_views = prior_views
        self.on_bad_study = on_bad_study
        self.labels = labels
        self.studies: list[Study] = []
        self.reports: list[str] = []
        self.prior_reports: list[str] = []
        self.skipped: dict[str, str] = {}  # study id -> why it was left out at setup
        for study in studies:
            report = cleaner(study.report)
            try:
                check_study(study, self.image_dir, report, with_prior=prior_views > 0, suffix=path_suffix)
                if labels is not None and study.id not in labels:
                    raise DataError(f"study {study.id!r}: no labels for it in the labels file")
            except DataError as err:
                if on_bad_study == "raise":
                    raise
                self.skipped[study.id] = str(err)
                continue
            self.studies.append(study)
            self.reports.append(report)
            self.prior_reports.append(cleaner(study.prior.report) if study.prior else "")
        self.drop_finding_sentences = drop_finding_sentences
        self.features_held: frozenset[str] = frozenset()
        self.stated: list[StatedSentences] | None = None
        if drop_finding_sentences > 0:
            if labels is None:
                raise DataError("drop_finding_sentences needs the studies' labels: give a labels file")
            mentions = rule_mentions()
            self.stated = [stated_sentences(report, mentions) for report in self.reports]
        if self.skipped:
            log.warning("skipped %d bad studies of %d; first: %s", len(self.skipped), len(studies),
                        next(iter(self.skipped.values())))

    def __len__(self) -> int:
        return len(self.studies)

    def prompt_lengths(self) -> list[tuple[int, int]]:
        """Per study, what sets its prompt's length as far as the data knows: (views, characters of
        indication + prior report). Prompt parts a model writes (predicted findings, retrieved
        reports) are unknown before it runs."""
        return [(min(len(study.image_paths), self.max_views), len(study.indication) + len(prior))
                for study, prior in zip(self.studies, self.prior_reports)]

    def _views(self, study: Study, paths: tuple[str, ...]) -> torch.Tensor:
        return torch.stack([self.transform(load_image(resolve_image(self.image_dir, p + self.path_suffix, study.id),
                                                      study.id, self.image_window)) for p in paths])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """`key` is an index, or (index, seed) from `EpochShuffle`: the item's random augmentation
        then comes from its own seed, so it is the same in any worker and after a resume."""
        if isinstance(key, tuple):
            index, seed = key
            with torch.random.fork_rng(devices=[]):  # the CPU generator only; CUDA's stays the model's
                torch.default_generator.manual_seed(seed)
                return self._item(index)
        return self._item(key)

    def _item(self, index: int) -> dict[str, Any]:
        study = self.studies[index]
        item = {"id": study.id, "report": self.reports[index], "indication": study.indication,
                "prior_report": self.prior_reports[index]}
        try:
            if study.id not in self.features_held:
                item["images"] = images = self._views(study, study.image_paths[: self.max_views])
            if self.prior_views > 0 and "images" in item:  # a study without a prior gets no views (masked out in the batch)
                prior = study.prior.image_paths[: self.prior_views] if study.prior else ()
                item["prior_images"] = self._views(study, prior) if prior else images[:0]
        except DataError as err:
            if self.on_bad_study == "raise":
                raise
            # An image that exists but cannot be decoded is only found here: collate sets it
            # aside and the loader counts it (xrg.data.loader.StudyLoader).
            log.warning("skipping: %s", err)
            return {"id": study.id, "error": str(err)}
        if self.labels is not None:
            item["labels"] = torch.tensor(self.labels[study.id], dtype=torch.float32)
        if self.stated is not None:
            item["report"], item["stated_labels"] = drop_findings(self.stated[index], item["labels"],
                                                                  self.drop_finding_sentences)
        return item


def pad_views(stacks: list[torch.Tensor], shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """[V_i, C, H, W] per study -> images [B, V, C, H, W] (V = the most views, at least 1), view_mask [B, V]."""
    max_views = max(1, *(stack.shape[0] for stack in stacks))
    images = torch.zeros(len(stacks), max_views, *shape)
    view_mask = torch.zeros(len(stacks), max_views, dtype=torch.bool)
    for i, stack in enumerate(stacks):
        images[i, : stack.shape[0]] = stack
        view_mask[i, : stack.shape[0]] = True
    return images, view_mask


def collate_studies(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pads the view axis to the batch's largest study and marks real views in `view_mask`
    (likewise `prior_images` / `prior_view_mask` when the items carry prior studies).

    Studies that could not be decoded go to `failed` ({"id", "error"} each); a batch of nothing
    but those is `{"ids": [], "failed": [...]}`.
    """
    failed = [item for item in items if "error" in item]
    items = [item for item in items if "error" not in item]
    if not items:
        return {"ids": [], "failed": failed}
    batch = {
        "ids": [item["id"] for item in items],
        "indications": [item.get("indication", "") for item in items],
        "prior_reports": [item.get("prior_report", "") for item in items],
        "failed": failed,
    }
    with_images = sum("images" in item for item in items)
    if with_images and with_images < len(items):  # the model holds all of a split's features or none
        raise ValueError("collate_studies: a batch mixes studies with images and studies whose features the model holds")
    if with_images:
        shape = items[0]["images"].shape[1:]
        batch["images"], batch["view_mask"] = pad_views([item["images"] for item in items], shape)
    if "report" in items[0]:  # studies from your own images have none
        batch["reports"] = [item["report"] for item in items]
    if "prior_images" in items[0]:
        prior_shape = items[0]["prior_images"].shape[1:]
        batch["prior_images"], batch["prior_view_mask"] = pad_views([item["prior_images"] for item in items], prior_shape)
    for key in ("labels", "stated_labels"):
        if key in items[0]:
            batch[key] = torch.stack([item[key] for item in items])
    if "paths" in items[0]:
        batch["paths"] = [item["paths"] for item in items]
    return batch


def positive_label_names(row: torch.Tensor) -> list[str]:
    """Readable names of the observations coded positive in one [14] label row."""
    return [name for name, code in zip(CHEXPERT_LABELS, row.tolist()) if not math.isnan(code) and code == 1]
