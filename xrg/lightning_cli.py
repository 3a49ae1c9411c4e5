"""xrg's LightningCLI: subclass mode for models and data, configs saved with every run and
embedded in every checkpoint, and `predict` writing JSONL."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import xrg.blocks  # noqa: F401  every block kind, so recipes name blocks by short class name
from xrg.callbacks import EmbedConfig, JsonlPredictionWriter, WriteHeatmaps
from xrg.data import ReportDataModule
from xrg.tasks import XrgTask


class XrgCLI(LightningCLI):
    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Model and data are optional at parse time: a checkpoint can supply both (see below).
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({"trainer." + k: v for k, v in self.trainer_defaults.items() if k != "callbacks"})
        parser.add_lightning_class_args(self._model_class, "model", subclass_mode=True, required=False)
        parser.add_lightning_class_args(self._datamodule_class, "data", subclass_mode=True, required=False)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--predictions",
            type=str | None,
            default=None,
            help="predict: JSONL output path (default: <log dir>/predictions.jsonl)",
        )
        parser.add_argument(
            "--images",
            nargs="+",
            type=str,
            default=None,
            help="predict: your own images instead of the data set, with --ckpt_path: image files (one study "
            "of several views) or folders (a study per sub-folder, or per image file); PNG, JPEG, TIFF or DICOM",
        )
        parser.add_argument(
            "--explain",
            type=str | None,
            default=None,
            help="predict: write a Grad-CAM overlay per finding found present into this folder "
            "(models with a findings / concept / perception head)",
        )

    def _parse_ckpt_path(self) -> None:
        """Besides the model (Lightning's default), take the data config from the checkpoint when
        the command gave none, so `xrg predict --ckpt_path X` runs on its own."""
        super()._parse_ckpt_path()
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        section = self.config[subcommand]
        ckpt_path = section.get("ckpt_path")
        if section.get("data") is not None or not ckpt_path or not Path(ckpt_path).is_file():
            return
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
        data.pop("_instantiator", None)
        class_path = data.pop("_class_path", None)
        if class_path:
            self.config = self.parser.parse_object(
                {subcommand: {"data": {"class_path": class_path, "init_args": data}}}, self.config
            )

    def _images_datamodule(self, section) -> L.LightningDataModule:
        """`--images`: studies from files or folders, prepared as the checkpoint's data module prepared images."""
        from xrg.data.studies import ImagePreparation, ImageStudiesDataModule

        ckpt_path = section.get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            raise SystemExit(f"xrg predict: --images needs --ckpt_path of a trained model (got {ckpt_path!r})")
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        batch_size = data.get("eval_batch_size") or data.get("batch_size") or 8
        return ImageStudiesDataModule(section["images"], ImagePreparation.from_checkpoint(checkpoint, ckpt_path), batch_size)

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        """Lightning's default logger, made two: CSV (`metrics.csv`) and TensorBoard event files in
        the same `<root>/lightning_logs/version_N`, so curves are one `tensorboard --logdir runs` away."""
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True) and "logger" not in kwargs:
            kwargs["logger"] = default_loggers(trainer_config.get("default_root_dir") or os.getcwd())
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        section = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand != "predict" and (section.get("images") or section.get("explain")):
            raise SystemExit(f"xrg {self.subcommand}: --images and --explain belong to `xrg predict`")
        for key in ("model",) if section.get("images") else ("model", "data"):
            if section.get(key) is None:
                raise SystemExit(f"xrg {self.subcommand or ''}: no {key} given; pass --config RECIPE.yaml or --ckpt_path")
        self._config_yaml = self.parser.dump(self.config, skip_none=False)

    def after_instantiate_classes(self) -> None:
        trainer = self.trainer
        config = yaml.safe_load(self._config_yaml)
        if self.subcommand:
            config = config.get(self.subcommand, config)
        trainer.callbacks.append(EmbedConfig(yaml.safe_dump(config, sort_keys=False)))
        if self.subcommand == "predict":
            section = self.config[self.subcommand]
            if section.get("images"):
                self.datamodule = self._images_datamodule(section)
            if section.get("explain"):
                trainer.callbacks.append(WriteHeatmaps(section["explain"]))  # before the writer: rows name the pictures
            path = section.get("predictions") or str(Path(trainer.log_dir or ".") / "predictions.jsonl")
            trainer.callbacks.append(JsonlPredictionWriter(path))


def default_loggers(root: str) -> list:
    """CSV and (when installed) TensorBoard loggers writing into one version folder."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    csv = CSVLogger(root)
    try:
        import tensorboard  # noqa: F401  a dependency of xrg; a trimmed install may lack it
    except ImportError:
        return [csv]
    return [csv, TensorBoardLogger(root, version=csv.version, default_hp_metric=False)]


def run_lightning_cli(args: list[str] | None) -> XrgCLI:
    return XrgCLI(
        # xrg's own bases: recipes say `class_path: ReportGeneration`, `class_path: ReportDataModule`
        model_class=XrgTask,
        datamodule_class=ReportDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        auto_configure_optimizers=False,  # tasks take optimizer/scheduler callables themselves
    )
