"""What every xrg task shares, one mechanism per concern: hyperparameters (saved once, here),
optimizer/scheduler callables with per-block learning rates (`block_lr`), what trains (`frozen`),
vocabulary preparation (every unbuilt tokenizer-owning block, one loop), stage chaining
(`init_from`), and the parameter report. Input widths are bound by each task from the block
upstream (`bind_input`, `bind_memory`, `Guide.bind`), never typed in a recipe."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass, field
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from lightning.pytorch.utilities.parsing import _get_init_args

from xrg.blocks.base import Block, VocabularyOwner
from xrg.checkpoints import describe_mismatch, load_block_weights, read_checkpoint, state_dict_of
from xrg.data.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)


@dataclass
class StageInit:
    """Start blocks from an earlier stage's checkpoint.

    `blocks` maps an attribute of this task to the key prefix of the block in the checkpoint,
    e.g. {"image_encoder": "image_encoder"}. With `checkpoint: null` every block starts from its
    own initialisation, so each stage also runs on its own.
    """

    checkpoint: str | None = None
    blocks: dict[str, str] = field(default_factory=dict)


def _is_plain(value) -> bool:
    """A value that YAML and `torch.load(weights_only=True)` both take as it is."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


class XrgTask(L.LightningModule):
    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: StageInit | None = None,
        block_lr: dict[str, float] | None = None,
        frozen: list[str] | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        self._save_task_hyperparameters()
        self.frozen = list(frozen or [])
        self.scheduler_interval = scheduler_interval
        self.block_lr = dict(block_lr or {})
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.init_from = init_from
        self._stage_init_loaded = False

    def _save_task_hyperparameters(self) -> None:
        """Record the concrete task's constructor arguments, once, for every task.

        Under the CLI the arguments are the config (class paths + init args), which is exactly
        what a checkpoint needs to rebuild the task. In a notebook they are live modules,
        callables and dataclasses: only plain values are kept, since pickling the rest would make
        the checkpoint unloadable with `weights_only=True`.
        """
        frame = inspect.currentframe().f_back  # this __init__; walk out to the subclass's own
        while frame.f_back is not None and frame.f_back.f_code.co_name == "__init__" and frame.f_back.f_locals.get("self") is self:
            frame = frame.f_back
        if _given_hyperparameters.get() is not None:
            self.save_hyperparameters(frame=frame)
            return
        _, init_args = _get_init_args(frame)
        ignore = [name for name, value in init_args.items() if not _is_plain(value)]
        self.save_hyperparameters(ignore=ignore, frame=frame)

    def apply_frozen(self) -> None:
        """Freeze every block named in `frozen` (dotted names reach inside: `guides.clues.perception`).
        Called at the end of a task's __init__ and again in `setup`, after blocks built layers."""
        for name in self.frozen:
            try:
                block = self.get_submodule(name)
            except AttributeError:
                blocks = [n for n, m in self.named_children()]
                raise ConfigError(f"frozen names {name!r}, which this task does not have; its blocks: {blocks}") from None
            if isinstance(block, Block):
                block.freeze()
            else:
                block.requires_grad_(False)

    def prepare_vocabularies(self, stage: str) -> None:
        """Fit the tokenizer and build the vocabulary-sized layers of every unbuilt block that owns
        a tokenizer (decoders, a Q-Former's BERT), from the training reports. A model restored
        from a checkpoint has them from the checkpoint (module extra state) and skips this."""
        unbuilt = [m for m in self.modules() if isinstance(m, VocabularyOwner) and not m.is_built]
        if not unbuilt:
            return
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "train_reports"):
            if stage == "fit":
                names = sorted({type(m).__name__ for m in unbuilt})
                raise RuntimeError(f"{names} need a vocabulary: give a datamodule with train_reports()")
            return
        reports = datamodule.train_reports()
        if not reports and stage != "fit":  # testing a checkpoint on data without a train split: the
            return  # checkpoint's weights bring the vocabulary (module extra state)
        for owner in unbuilt:
            owner.prepare(reports)

    def setup(self, stage: str) -> None:
        self.build(stage)
        self.apply_frozen()

    def configure_model(self) -> None:
        # Lightning's weight-averaging callbacks (EMAWeightAveraging) copy the model in their own
        # `setup`, which runs before this task's, and call this hook first so that the copy has the
        # layers the data sizes.
        self.build(self.trainer.state.fn)

    def build(self, stage: str) -> None:
        """Once per run: the stage's initial weights (a fresh fit's `init_from`), then the layers
        sized by the training reports' vocabulary."""
        # Resuming restores every weight from the resumed checkpoint; stage init is for fresh fits.
        if (stage == "fit" and self.init_from and self.init_from.checkpoint and not self.trainer.ckpt_path
                and not self._stage_init_loaded):
            self.load_stage_init(self.init_from)  # first: a block it restores brings its own vocabulary
            self._stage_init_loaded = True
        self.prepare_vocabularies(stage)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """PyTorch's, with weights that do not fit this task (another architecture, another task's
        checkpoint) reported as one `CheckpointError` line instead of a list of every key."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as error:
            if "state_dict" not in str(error):  # not a key / shape mismatch: a real failure
                raise
            raise CheckpointError(f"the weights do not fit this {type(self).__name__}: "
                                  f"{describe_mismatch(self, state_dict)}") from None

    def load_stage_init(self, init: StageInit) -> None:
        checkpoint = read_checkpoint(init.checkpoint)  # once, however many blocks it gives
        state = state_dict_of(checkpoint, init.checkpoint)
        for attribute, prefix in init.blocks.items():
            try:  # a dotted name reaches a block inside a block, e.g. "perception.joint"
                block = self.get_submodule(attribute)
            except AttributeError:
                raise ConfigError(f"init_from names block {attribute!r}, which this task does not have") from None
            load_block_weights(block, init.checkpoint, prefix, state)
            log.info("initialised %s from %s [%s]", attribute, init.checkpoint, prefix)
        self.warn_if_prepared_otherwise(checkpoint, init.checkpoint)

    def warn_if_prepared_otherwise(self, checkpoint: dict, path: str) -> None:
        """One line when this fit prepares images otherwise than the stage `init_from` starts from:
        an encoder, all the more a frozen one, reads images of another size, normalisation or detail
        channel worse than those it was trained on (a head trained at 128 px, read at 96 px)."""
        from xrg.data.studies import ImagePreparation

        then = checkpoint.get("datamodule_hyper_parameters")
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if not then or datamodule is None or not getattr(datamodule, "hparams", None):
            return
        before, now = ImagePreparation.from_hparams(then), ImagePreparation.from_hparams(dict(datamodule.hparams))
        per_image = [name for name in ImagePreparation.__dataclass_fields__ if name != "max_views"]  # views: how many, not how
        changed = [f"{name} {getattr(before, name)} -> {getattr(now, name)}" for name in per_image
                   if getattr(before, name) != getattr(now, name)]
        if changed:
            log.warning("init_from %s: its blocks were trained on images prepared otherwise (%s); give the data "
                        "module the same options unless that is meant", path, ", ".join(changed))

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters, with their own learning rate for blocks named in `block_lr`
        (R2Gen trains its visual extractor at 5e-5 and the rest at 1e-4); dotted names reach inside
        (`guides.clues`), and the longest name that contains a parameter decides its rate."""
        groups = {name: {"params": [], "lr": lr} for name, lr in self.block_lr.items()}
        rest: list[torch.nn.Parameter] = []
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                owners = [block for block in groups if name.startswith(block + ".")]
                (groups[max(owners, key=len)]["params"] if owners else rest).append(parameter)
        return [{"params": rest}, *(g for g in groups.values() if g["params"])]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": self.scheduler_interval}}

    def report(self, images, explain=False, study_id: str | None = None):
        """A `xrg.inference.StudyReport` for one study from its image files (or PIL images), one
        per view, prepared as the checkpoint's data module prepared images: the report text, the findings
        with probabilities and, with `explain` (True: the findings present; "all"; or a list of
        names), a Grad-CAM heatmap per finding. See `xrg.inference.report_studies` for many studies."""
        from xrg.inference import report_studies

        if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
            images = [images]
        from xrg.data.studies import study_name

        name = study_id or (study_name(images) if all(isinstance(i, (str, Path)) for i in images) else "study")
        return report_studies(self, [(name, list(images))], explain=explain)[0]

    def configure_callbacks(self) -> list[L.Callback]:
        """What every run of every task gets, from the CLI or a notebook: random states in each
        checkpoint for an exact resume, and the count of studies skipped as unreadable."""
        from xrg.callbacks import ExactResume, SkippedStudies

        return [ExactResume(), SkippedStudies()]

    def on_fit_start(self) -> None:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        share = 100 * trainable / max(total, 1)
        self.print(f"parameters: {trainable:,} trainable of {total:,} ({share:.2f}%)")
