"""`ReportDataModule`: any R2Gen-format dataset, or the embedded synthetic benchmark made on demand."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import logging

import lightning as L
import torch

from xrg.data.annotation import SPLITS, read_annotation, read_labels
from xrg.data.cleaning import get_cleaner
from xrg.data.dataset import BadStudyPolicy, ReportDataset, collate_studies
from xrg.data.errors import DataError
from xrg.data.loader import EpochShuffle, LabelBalancedShuffle, LongestFirst, StudyLoader, default_seed
from xrg.data.sentence_order import SentenceOrder, sentence_orderer
from xrg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, DetailChannel, Preprocessing, augmentations, build_transform

log = logging.getLogger(__name__)


@dataclass
class SyntheticBenchmark:
    """Where and how to make the synthetic benchmark; it is generated once, then reused (cached)."""

    root: str = "data_cache/synthetic"
    num_studies: int = 1000
    seed: int = 0
    views: int = 2
    image_size: int = 256
    # train/val/test shares; a larger test share (e.g. [0.5, 0.1, 0.4]) steadies per-finding metrics
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    # more of the generator's studies for the training split only: validation and test stay the
    # benchmark's own (`xrg.data.synthetic.generate_benchmark`)
    extra_train_studies: int = 0
    # the extra studies drawn with some of the generator's finding rates replaced, e.g. {fracture: 0.3}:
    # an enriched pre-training set, each rare finding's examples all different (`findings.BASE_RATES`)
    extra_finding_rates: dict[str, float] | None = None

    def __post_init__(self) -> None:
        # a bad value fails when the config is read, in one line, not at setup with a traceback
        from xrg.data.synthetic.benchmark import check_params

        check_params(self.num_studies, self.image_size, self.views, self.split_fractions, self.extra_train_studies,
                     self.extra_finding_rates)


class ReportDataModule(L.LightningDataModule):
    """Batches of studies for every task: images [B, V, C, H, W], view_mask, ids, cleaned reports, labels.

    `mean`/`std` normalise pixels for the backbone: ImageNet statistics by default; CLIP towers
    want CLIP's (0.4815, 0.4578, 0.4082) / (0.2686, 0.2613, 0.2758). `preprocessing="biovil"`
    uses hi-ml-multimodal's own transform instead (BioViL / BioViL-T; see `build_transform`).
    `random_affine` / `color_jitter` augment the training images with torchvision's transforms of
    those names (their keyword arguments, e.g. `random_affine: {degrees: 3, scale: [0.92, 1.05]}`).
    `detail_channel: 9` makes every image's second channel its detail over a 9-pixel window
    (`xrg.data.transforms.DetailChannel`): small faint findings for a backbone trained from scratch.

    `image_window=(low, high)` maps those pixel values to black and white for every image; by
    default 8-bit images keep their values and 16/32-bit images are windowed to their own range
    (see `xrg.data.images.read_image`).

    Loading: `num_workers` decoding processes (0 = in the training process), `pin_memory` for
    GPU training, `persistent_workers` (kept between epochs), `prefetch_factor` batches queued per
    worker (PyTorch's default 2 when None); docs/performance.md says how to size them.

    `group_by_length: true` batches the studies of the evaluation loaders (validation, test,
    predict) by prompt length, longest first (`xrg.data.loader.LongestFirst`): less padding in an
    LLM's prompts. Predictions files keep the split's order; scores do not depend on the order.

    `image_cache: DIR` reads the images from a cache built by `xrg data cache` at size `resize`
    (see `xrg.data.image_cache`) when DIR holds one; a cache built for another size, window or
    annotation is refused; without a cache yet, the source images are decoded as usual.

    Give either `annotation_path` (+ `image_dir`, default: the annotation's folder + "/images")
    or `synthetic` to use the embedded benchmark.

    `label_balance` > 0 draws each training epoch label-balanced instead of shuffling it: a study's
    chance grows as `(N / n_k) ** label_balance` for its rarest positive finding k (1: every finding
    about equally often; 0.5: square-root balancing; see `xrg.data.loader.LabelBalancedShuffle`).
    It needs a labels file and runs on one process (under DDP Lightning would swap the sampler).

    `sentence_order: findings_first` rewrites the training reports (only) with the sentences that
    state findings first, in CheXpert's column order, then those ruling findings out (see
    `xrg.data.sentence_order`): a findings-conditioned decoder then knows what it says next.
    `drop_finding_sentences: p` leaves each finding a training report states out of it with
    probability p, each epoch anew, and batches carry `stated_labels`, what the report still states
    (`xrg.data.finding_dropout`): a decoder told them learns to write exactly the findings it is told.

    Every batch carries each study's `indications` and `prior_reports` (empty strings where the
    annotation has none); `prior_views` > 0 also loads up to that many views of each study's prior
    study as `prior_images` / `prior_view_mask` (for the `PriorStudy` guide).
    """

    def __init__(
        self,
        annotation_path: str | None = None,
        image_dir: str | None = None,
        labels_path: str | None = None,
        synthetic: SyntheticBenchmark | None = None,
        cleaning: Literal["iu_xray", "mimic_cxr", "none"] = "iu_xray",
        max_views: int = 2,
        image_size: int = 224,
        resize: int = 256,
        horizontal_flip: bool = False,
        random_affine: dict[str, Any] | None = None,
        color_jitter: dict[str, Any] | None = None,
        detail_channel: int | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        preprocessing: Preprocessing = "r2gen",
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        prefetch_factor: int | None = None,
        on_bad_study: BadStudyPolicy = "raise",
        predict_split: Literal["train", "val", "test"] = "test",
        image_window: tuple[float, float] | None = None,
        prior_views: int = 0,
        image_cache: str | None = None,
        group_by_length: bool = False,
        label_balance: float = 0.0,
        sentence_order: SentenceOrder = "as_written",
        drop_finding_sentences: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(synthetic, dict):  # as a checkpoint's hyperparameters keep it
            synthetic = SyntheticBenchmark(**synthetic)
        if label_balance < 0:
            raise ValueError(f"label_balance is a power of 0 (plain shuffle) or more, got {label_balance}")
        if not 0.0 <= drop_finding_sentences < 1.0:
            raise ValueError(f"drop_finding_sentences is a probability below 1, got {drop_finding_sentences}")
        augmentations(random_affine, color_jitter)  # a misspelt argument fails here, not at the first batch
        if detail_channel is not None:
            DetailChannel(detail_channel)  # ... and so does a bad window
        self.save_hyperparameters()
        if isinstance(synthetic, SyntheticBenchmark):
            # Plain values in the checkpoint: a module built in Python (a notebook) otherwise
            # pickles the dataclass, and `torch.load(weights_only=True)` refuses the checkpoint.
            self.hparams["synthetic"] = asdict(synthetic)
        if (annotation_path is None) == (synthetic is None):
            raise ValueError("ReportDataModule needs exactly one of `annotation_path` or `synthetic`")
        self.synthetic = synthetic
        self.annotation_path = annotation_path
        self.image_dir = image_dir
        self.labels_path = labels_path
        self.cleaner = get_cleaner(cleaning)
        self.train_cleaner = self.cleaner
        if (reorder := sentence_orderer(sentence_order)) is not None:
            self.train_cleaner = lambda report: reorder(self.cleaner(report))
        self.datasets: dict[str, ReportDataset] = {}

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            self._ensure_synthetic()

    def _ensure_synthetic(self) -> None:
        from xrg.data.synthetic import ensure_benchmark

        s = self.synthetic
        root = ensure_benchmark(s.root, s.num_studies, s.seed, views=s.views, image_size=s.image_size,
                               split_fractions=tuple(s.split_fractions), extra_train_studies=s.extra_train_studies,
                               extra_finding_rates=s.extra_finding_rates)
        self.annotation_path = str(Path(root) / "annotation.json")
        self.image_dir = str(Path(root) / "images")
        self.labels_path = str(Path(root) / "labels.json")

    def setup(self, stage: str | None = None) -> None:
        self._ensure_datasets()
        self._require_split(stage)

    def _ensure_datasets(self) -> None:
        if not self.datasets:
            self._build_datasets()

    def _build_datasets(self) -> None:
        if self.synthetic is not None:
            self._ensure_synthetic()  # cached: only reads the stamp on ranks that did not generate
        annotation = read_annotation(self.annotation_path)
        image_dir = Path(self.image_dir) if self.image_dir else Path(self.annotation_path).parent / "images"
        labels = read_labels(self.labels_path) if self.labels_path else None
        hp = self.hparams
        image_dir, suffix, window = self._cached_images(image_dir)
        for split in SPLITS:
            transform = build_transform(
                train=split == "train", image_size=hp.image_size, resize=hp.resize,
                horizontal_flip=hp.horizontal_flip, mean=tuple(hp.mean), std=tuple(hp.std),
                preprocessing=hp.preprocessing, random_affine=hp.random_affine, color_jitter=hp.color_jitter,
                detail_channel=hp.detail_channel,
            )
            self.datasets[split] = ReportDataset(
                annotation[split], image_dir, transform, self.train_cleaner if split == "train" else self.cleaner,
                labels, hp.max_views, hp.on_bad_study,
                window, hp.prior_views, suffix, hp.drop_finding_sentences if split == "train" else 0.0,
            )

    def _require_split(self, stage: str | None) -> None:
        """The split a stage runs on must have studies: `xrg test` on an annotation without a test
        split would otherwise 'pass' having tested nothing."""
        split = {None: "train", "fit": "train", "validate": "val", "test": "test",
                 "predict": self.hparams.predict_split}.get(stage)
        if split is None or self.datasets[split].studies:
            return
        skipped = len(self.datasets[split].skipped)
        why = f"all {skipped} were skipped as bad (see the warnings)" if skipped else "it lists no studies"
        raise DataError(f"{self.annotation_path}: the {split!r} split has no usable studies ({why}); "
                        f"`xrg {getattr(stage, 'value', stage) or 'fit'}` needs at least one")

    def _cached_images(self, image_dir: Path) -> tuple[Path, str, tuple[float, float] | None]:
        """(image folder, path suffix, window) to read: the cache's when there is one."""
        hp = self.hparams
        if hp.image_cache:
            from xrg.data.image_cache import check_cache

            cached = check_cache(hp.image_cache, self.annotation_path, hp.resize, hp.image_window)
            if cached is not None:
                return *cached, None  # windowed when the cache was built
            log.warning("no image cache in %s yet: decoding the source images (build it with `xrg data cache "
                        "--annotation %s --size %d --out %s`)", hp.image_cache, self.annotation_path, hp.resize, hp.image_cache)
        return image_dir, "", hp.image_window

    def train_reports(self) -> list[str]:
        """Cleaned training reports: what a word vocabulary or BPE tokenizer is fitted on."""
        self._ensure_datasets()  # also at predict time, where a model builds its vocabulary before its weights load
        return list(self.datasets["train"].reports)

    def train_labels(self) -> torch.Tensor:
        """`[N, 14]` training labels (NaN = blank): what class weights are computed from."""
        self._ensure_datasets()
        dataset = self.datasets["train"]
        if dataset.labels is None:
            raise DataError(f"{self.annotation_path}: no labels file, but the task needs training labels")
        return torch.tensor([dataset.labels[study.id] for study in dataset.studies], dtype=torch.float32)

    def random_training_transforms(self) -> list[str]:
        """What makes a study's training views differ between epochs; empty when they are the same
        tensors every epoch (what `ReportGeneration(cache_frozen_features=true)` needs)."""
        hp = self.hparams
        varying = []
        if hp.preprocessing == "r2gen" and hp.resize > hp.image_size:
            varying.append(f"random crop (resize {hp.resize} > image_size {hp.image_size})")
        varying += [name for name in ("horizontal_flip", "random_affine", "color_jitter") if getattr(hp, name)]
        return varying

    def in_order(self, split: str, shard: tuple[int, int] = (0, 1)) -> StudyLoader:
        """`split`'s studies in their order, in evaluation batches (its own transform: a training
        split keeps its training preparation). `shard=(k, n)`: only every n-th study from the k-th,
        so n processes share the split between them."""
        self._ensure_datasets()
        rank, world = shard
        return self._loader(split, train=False, sampler=range(rank, len(self.datasets[split]), world) if world > 1 else None)

    def skipped_studies(self) -> dict[str, int]:
        return {split: len(ds.skipped) for split, ds in self.datasets.items()}

    def _loader(self, split: str, train: bool, sampler: Iterable[int] | None = None) -> StudyLoader:
        hp = self.hparams
        dataset = self.datasets[split]
        seed = default_seed()
        if sampler is None and train:
            sampler = self._train_sampler(dataset, seed)
        elif sampler is None and hp.group_by_length:
            sampler = LongestFirst(dataset.prompt_lengths())
        # no sampler: the split's order
        return StudyLoader(
            dataset,
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            sampler=sampler,
            drop_last=False,
            num_workers=hp.num_workers,
            # Workers kept between epochs skip re-forking and re-reading the annotation; pinned
            # (page-locked) batches copy to the GPU asynchronously. docs/performance.md sizes them.
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
            pin_memory=hp.pin_memory,
            prefetch_factor=hp.prefetch_factor if hp.num_workers > 0 else None,
            collate_fn=collate_studies,
            # Workers' base seeds from the loader's own generator, not from the global RNG the
            # model's dropout draws from (a resumed run could not replay those draws).
            generator=torch.Generator().manual_seed(seed),
        )

    def _train_sampler(self, dataset: ReportDataset, seed: int) -> EpochShuffle:
        balance = self.hparams.label_balance
        if not balance:
            return EpochShuffle(dataset, seed)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            raise DataError(f"label_balance: {balance} runs on one process; under DDP ({trainer.world_size} "
                            "processes) Lightning replaces the training sampler with a plain shuffle")
        return LabelBalancedShuffle(dataset, self.train_labels(), balance, seed)

    def train_dataloader(self) -> StudyLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> StudyLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> StudyLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> StudyLoader:
        return self._loader(self.hparams.predict_split, train=False)
