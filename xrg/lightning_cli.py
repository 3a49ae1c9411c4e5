"""xrg's LightningCLI: subclass mode for models and data, configs saved with every run and
embedded in every checkpoint, and `predict` writing JSONL."""

from __future__ import annotations

import importlib
import os
import re
from argparse import ArgumentError
from pathlib import Path

import lightning as L
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.rank_zero import rank_zero_only

import xrg.blocks  # noqa: F401  every block kind, so recipes name blocks by short class name
from xrg.callbacks import EmbedConfig, EpochSummary, JsonlPredictionWriter, WriteHeatmaps, last_checkpoints
from xrg.checkpoints import read_checkpoint, resolve_checkpoint
from xrg.data import ReportDataModule
from xrg.data.errors import CheckpointError, ConfigError, DataError
from xrg.loading import task_config
from xrg.progress import quiet
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

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        import sys

        _check_config_files(sys.argv[1:] if args is None else args)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise ConfigError(config_error_message(str(error))) from None

    def _parse_ckpt_path(self) -> None:
        """The model config comes from the checkpoint (Lightning's rule), and the data config too
        when the command gave none, so `xrg predict --ckpt_path X` runs on its own. A checkpoint of
        another task than the recipe's model is refused: Lightning would silently run the
        checkpoint's task under the recipe's name."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or (ckpt_path in LIGHTNING_CKPT_NAMES and not Path(ckpt_path).exists()):
            return
        section = self.config[subcommand]
        ckpt_path = section["ckpt_path"] = str(resolve_checkpoint(ckpt_path))  # Lightning restores a file
        checkpoint = read_checkpoint(ckpt_path)
        if "pytorch-lightning_version" not in checkpoint:  # Lightning's restore would die in a KeyError
            raise CheckpointError(f"{ckpt_path}: not a Lightning checkpoint (no 'pytorch-lightning_version'); "
                                  "expected a .ckpt written by `xrg fit` (plain weights go in a recipe's init_from)")
        recipe_model = section.get("model")
        if recipe_model is None or "_class_path" in (checkpoint.get("hyper_parameters") or {}):
            hparams = task_config(checkpoint, ckpt_path)
            class_path = hparams.pop("_class_path")
            if recipe_model is not None and _resolve(recipe_model.class_path) is not _resolve(class_path):
                raise CheckpointError(
                    f"{ckpt_path} is a {_short(class_path)} checkpoint, but the recipe's model is "
                    f"{_short(recipe_model.class_path)}; give a {_short(recipe_model.class_path)} checkpoint, "
                    f"or leave out --config to {subcommand} the checkpoint's own task"
                )
            self._merge_from_checkpoint(ckpt_path, "model", {"class_path": class_path, "dict_kwargs": hparams})
        data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
        data.pop("_instantiator", None)
        data_class_path = data.pop("_class_path", None)
        if section.get("data") is None and data_class_path:
            self._merge_from_checkpoint(ckpt_path, "data", {"class_path": data_class_path, "init_args": data})

    def _merge_from_checkpoint(self, ckpt_path: str, key: str, value: dict) -> None:
        try:
            self.config = self.parser.parse_object({self.config["subcommand"]: {key: value}}, self.config)
        except ArgumentError as error:
            raise CheckpointError(f"{ckpt_path}: its {key} config does not fit this xrg "
                                  f"({config_error_message(str(error))})") from None

    def _images_datamodule(self, section) -> L.LightningDataModule:
        """`--images`: studies from files or folders, prepared as the checkpoint's data module prepared images."""
        from xrg.data.studies import ImagePreparation, ImageStudiesDataModule

        ckpt_path = section.get("ckpt_path")
        if not ckpt_path:
            raise ConfigError("--images needs --ckpt_path of a trained model")
        checkpoint = read_checkpoint(ckpt_path)
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        batch_size = data.get("eval_batch_size") or data.get("batch_size") or 8
        return ImageStudiesDataModule(section["images"], ImagePreparation.from_checkpoint(checkpoint, ckpt_path), batch_size)

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        """Lightning's default logger, made two: CSV (`metrics.csv`) and TensorBoard event files in
        the same `<root>/lightning_logs/version_N`, so curves are one `tensorboard --logdir runs` away."""
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True) and "logger" not in kwargs:
            kwargs["logger"] = default_loggers(trainer_config.get("default_root_dir") or os.getcwd())
        if quiet():  # XRG_QUIET=1 / --quiet: no live bar, for batch jobs (per-epoch lines stay)
            kwargs["enable_progress_bar"] = False
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        section = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand != "predict" and (section.get("images") or section.get("explain")):
            raise ConfigError("--images and --explain belong to `xrg predict`")
        for key in ("model",) if section.get("images") else ("model", "data"):
            if section.get(key) is None:
                raise ConfigError(f"no {key} given; pass --config RECIPE.yaml, --{key} CLASS or --ckpt_path "
                                  "CHECKPOINT (written by `xrg fit`)")
        self._config_yaml = self.parser.dump(self.config, skip_none=False)

    def instantiate_classes(self) -> None:
        """Errors a block's constructor raises on the values it was given are config errors."""
        try:
            super().instantiate_classes()
        except DataError:
            raise
        except (ValueError, TypeError, KeyError, ImportError, MisconfigurationException) as error:
            raise ConfigError(f"cannot build the recipe's classes: {config_error_message(str(error))}") from None

    def after_instantiate_classes(self) -> None:
        if self.subcommand == "predict" and type(self.model).predict_step is L.LightningModule.predict_step:
            origin = f"the checkpoint {self.config.predict.ckpt_path}" if self.config.predict.get("ckpt_path") else "the recipe"
            raise CheckpointError(f"{origin} holds a {type(self.model).__name__}, which writes no predictions; "
                                  "`xrg predict` needs a report model (use `xrg test` to score this one)")
        trainer = self.trainer
        config = yaml.safe_load(self._config_yaml)
        if self.subcommand:
            config = config.get(self.subcommand, config)
        trainer.callbacks.append(EmbedConfig(yaml.safe_dump(config, sort_keys=False)))
        if self.subcommand in ("fit", "validate"):
            trainer.callbacks.append(EpochSummary())
        if self.subcommand == "fit":
            trainer.callbacks.extend(last_checkpoints(trainer.callbacks))
        for logger in trainer.loggers:
            claim_version_folder(logger)
        if self.subcommand == "predict":
            section = self.config[self.subcommand]
            if section.get("images"):
                self.datamodule = self._images_datamodule(section)
            if section.get("explain"):
                trainer.callbacks.append(WriteHeatmaps(section["explain"]))  # before the writer: rows name the pictures
            path = section.get("predictions") or str(Path(trainer.log_dir or ".") / "predictions.jsonl")
            trainer.callbacks.append(JsonlPredictionWriter(path))

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except MisconfigurationException as error:  # Lightning's word for a trainer setting that cannot work
            raise ConfigError(str(error)) from None
        except CheckpointError as error:  # raised while loading weights, which does not know the file
            ckpt_path = self.config[subcommand].get("ckpt_path")
            if ckpt_path and str(ckpt_path) not in str(error):
                raise CheckpointError(f"{ckpt_path}: {error}") from None
            raise


def default_loggers(root: str) -> list:
    """CSV and (when installed) TensorBoard loggers writing into one version folder."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    csv = CSVLogger(root)
    claim_version_folder(csv)
    try:
        import tensorboard  # noqa: F401  a dependency of xrg; a trimmed install may lack it
    except ImportError:
        return [csv]
    return [csv, TensorBoardLogger(root, version=csv.version, default_hp_metric=False)]


def claim_version_folder(logger) -> None:
    """Create the logger's `version_N` folder now, taking the next free N with an atomic mkdir:
    Lightning picks N by listing the folder, so two runs started together in one
    `default_root_dir` would both pick the same N and write into each other's run."""
    if getattr(logger, "_version", 0) is not None or not hasattr(logger, "_get_next_version") or rank_zero_only.rank:
        return  # a version the user chose, a logger without version folders, or not the main process
    root = Path(logger.root_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = logger._get_next_version()
    while True:
        try:
            (root / f"version_{version}").mkdir()
            break
        except FileExistsError:
            version += 1
    logger._version = version  # what `logger.version` returns once set (TensorBoardLogger, CSVLogger)


def _check_config_files(args: list[str]) -> None:
    """Each `--config FILE` must be readable YAML; jsonargparse would report a YAML error in
    "<unicode string>" without saying which file."""
    paths = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--config"]
    paths += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for path in map(Path, paths):
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found" if not path.exists() else f"--config {path}: not a file")
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None


_NOISE = ("Does not validate against any of", "Subtypes:", "Errors:", "Given value type:", "Given value:")


def config_error_message(text: str) -> str:
    """jsonargparse's nested, many-line report as one line: the dotted key, then what was wrong.

    "Parser key "model": ... Problem with given class_path 'ReportGeneration': Parser key
    "decoder": ... Parser key "dim": Expected a <class 'int'>. Got value: big" becomes
    "model (ReportGeneration).decoder (TransformerDecoder).dim: Expected a <class 'int'>. Got value: big".
    """
    if "given class_path 'xrg.tasks.XrgTask'" in text:  # options given, but no task class to take them
        return ("model: no class_path given, so its options cannot be read; name the task first "
                "(`model: {class_path: ReportGeneration, init_args: ...}` in the recipe, or --model ReportGeneration)")
    unknown = re.search(r"Expected a dot import path string: (\S+)", text)
    if unknown:
        key = re.match(r'Parser key "(.+?)"', text.strip())
        return (f"{key.group(1) if key else 'class_path'}: no class named {unknown.group(1)!r}; expected an xrg "
                "class by its short name (e.g. ReportGeneration, TransformerDecoder) or a dotted import path")
    keys: list[str] = []
    details: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().lstrip("-").strip()
        key = re.fullmatch(r'Parser key "(.+?)":\s*(.*)', line)
        if key:
            keys.append(key.group(1))
            line = key.group(2)
        problem = re.fullmatch(r"Problem with given class_path '(.+?)':\s*(.*)", line)
        if problem and keys:
            keys[-1] += f" ({_short(problem.group(1))})"
            line = problem.group(2)
        if line and not line.startswith(_NOISE) and "NoneType" not in line:
            details.append(line)
    detail = " ".join(details) or text.strip().splitlines()[0]
    return f"{'.'.join(keys)}: {detail}" if keys else detail


# `ckpt_path` values Lightning resolves itself instead of reading a file.
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def _resolve(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _short(class_path: str) -> str:
    return class_path.rpartition(".")[2]


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
        # A config mistake raises (one line from `xrg.cli.main`) instead of printing all the usage.
        parser_kwargs={"exit_on_error": False},
    )
