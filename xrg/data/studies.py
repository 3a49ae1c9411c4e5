"""Your own images as studies: no annotation file, no reference report.

    xrg predict --ckpt_path X --images frontal.png lateral.png   # one study, several views
    xrg predict --ckpt_path X --images DIR                       # a study per sub-folder, or per file

`find_studies` turns paths into studies; `ImagePreparation` is the checkpoint's own evaluation
transform (image size, normalisation, pixel window, views per study), so an image is prepared exactly as the
model saw its validation images; `ImageStudiesDataModule` serves them to `xrg predict`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from xrg.data.dataset import collate_studies, load_image
from xrg.data.errors import DataError
from xrg.data.images import is_image_file, read_image
from xrg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, build_transform

log = logging.getLogger(__name__)
ImageLike = str | Path | Image.Image


@dataclass
class ImagePreparation:
    """How a checkpoint's model wants its images: its data module's evaluation transform, the
    pixel window and how many views it reads (`ReportDataModule`'s options of the same names)."""

    image_size: int = 224
    resize: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    preprocessing: Preprocessing = "r2gen"
    image_window: tuple[float, float] | None = None
    max_views: int = 2
    detail_channel: int | None = None

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any] | None) -> "ImagePreparation":
        """From a `ReportDataModule`'s hyperparameters (as a checkpoint stores them)."""
        hparams = hparams or {}
        known = {name: hparams[name] for name in cls.__dataclass_fields__ if hparams.get(name) is not None}
        for name in ("mean", "std", "image_window"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], name: str = "the checkpoint") -> "ImagePreparation":
        hparams = checkpoint.get("datamodule_hyper_parameters")
        if not hparams:
            log.warning("%s records no data module: images are prepared with xrg's defaults %s", name, cls())
        return cls.from_hparams(hparams)

    def transform(self):
        return build_transform(train=False, image_size=self.image_size, resize=self.resize, mean=self.mean,
                               std=self.std, preprocessing=self.preprocessing, detail_channel=self.detail_channel)

    def read(self, path: str | Path, study_id: str | None = None) -> Image.Image:
        """One image file, read with this window; errors name the study when one is given."""
        if study_id is None:
            return read_image(path, self.image_window)
        return load_image(Path(path), study_id, self.image_window)

    def views(self, images: Sequence[ImageLike], study_id: str | None = None) -> torch.Tensor:
        """`[V, C, H, W]` for one study's images (paths or PIL images), the first `max_views` of them."""
        if not images:
            raise DataError(f"study {study_id!r} has no images" if study_id else "no images given")
        if len(images) > self.max_views:
            log.warning("study %r: %d images, the model reads %d views; using the first %d",
                        study_id, len(images), self.max_views, self.max_views)
        transform = self.transform()
        return torch.stack([transform(image if isinstance(image, Image.Image) else self.read(image, study_id))
                            for image in images[: self.max_views]])


def study_name(paths: Sequence[str | Path]) -> str:
    """A study's id from its files: their folder's name when they share one, else the first file's stem."""
    paths = [Path(p) for p in paths]
    parents = {p.resolve().parent for p in paths}
    if len(paths) > 1 and len(parents) == 1 and parents.pop().name:
        return paths[0].resolve().parent.name
    return paths[0].stem


def find_studies(paths: Sequence[str | Path]) -> list[tuple[str, list[Path]]]:
    """(study id, image files) from `--images` paths.

    - Only files: one study whose views are those files, in the order given (id: `study_name`).
    - Folders: each sub-folder holding images is one study (id: the sub-folder's name, views sorted
      by file name); each image directly inside the folder is a study of its own (id: its stem).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no images given")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataError(f"image path {missing[0]} does not exist")
    folders = [p for p in paths if p.is_dir()]
    if not folders:
        for path in paths:
            if not is_image_file(path):
                raise DataError(f"{path} is not an image xrg reads (PNG, JPEG, TIFF, BMP, WebP or DICOM)")
        return [(study_name(paths), paths)]
    if len(folders) != len(paths):
        raise DataError("--images takes either image files (one study) or folders, not both")
    studies: list[tuple[str, list[Path]]] = []
    for folder in folders:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                views = sorted(p for p in entry.iterdir() if is_image_file(p))
                if views:
                    studies.append((entry.name, views))
            elif is_image_file(entry):
                studies.append((entry.stem, [entry]))
    if not studies:
        raise DataError(f"no images found in {', '.join(map(str, folders))}")
    ids = [study_id for study_id, _ in studies]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise DataError(f"two studies are named {duplicate!r} (a sub-folder and a file, or two folders); rename one")
    return studies


class ImageStudies(Dataset):
    """Items as `ReportDataset` gives them, without a report: {"id", "images" [V, C, H, W], "paths"}."""

    def __init__(self, studies: list[tuple[str, list[Path]]], preparation: ImagePreparation) -> None:
        self.studies = studies
        self.preparation = preparation

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> dict[str, Any]:
        study_id, paths = self.studies[index]
        views = self.preparation.views(paths, study_id)
        return {"id": study_id, "images": views, "paths": [str(p) for p in paths[: len(views)]]}


class ImageStudiesDataModule(L.LightningDataModule):
    """`xrg predict` on image files or folders (see `find_studies`) with a checkpoint's preparation."""

    def __init__(self, images: list[str], preparation: ImagePreparation | None = None, batch_size: int = 8,
                 num_workers: int = 0) -> None:
        super().__init__()
        self.images = list(images)
        self.preparation = preparation or ImagePreparation()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.dataset: ImageStudies | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = ImageStudies(find_studies(self.images), self.preparation)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_studies)
