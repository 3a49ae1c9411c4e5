"""xrg's LightningCLI: subclass mode for models and data, configs saved with every run and
embedded in every checkpoint, and `predict` writing JSONL."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import xrg.blocks  # noqa: F401  every block kind, so recipes name blocks by short class name
from xrg.callbacks import EmbedConfig, JsonlPredictionWriter
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

    def before_instantiate_classes(self) -> None:
        section = self.config[self.subcommand] if self.subcommand else self.config
        for key in ("model", "data"):
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
            path = section.get("predictions") or str(Path(trainer.log_dir or ".") / "predictions.jsonl")
            trainer.callbacks.append(JsonlPredictionWriter(path))


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
