"""`last.ckpt` is the latest state of a fit, also beside a monitored checkpoint (`xrg.callbacks.
LastCheckpoint`): Lightning 2.6 writes `save_last` only when a top-k checkpoint is saved at the same
step, so `last.ckpt` stayed at the best epoch, and a resume from it went back epochs."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import write_tiny_dataset
from xrg.callbacks import LastCheckpoint, last_checkpoints
from xrg.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


class WorseEveryEpoch(L.LightningModule):
    """A linear model whose logged `val/score` falls every epoch: the best epoch is the first."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", -float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), batch_size=4)

    def val_dataloader(self):
        return self.train_dataloader()


def saved_epoch(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


@pytest.mark.parametrize("check_every", [1, 2])  # 2: the third epoch has no validation, training's end saves it
def test_last_checkpoint_is_the_last_epoch_beside_a_monitored_best(tmp_path, check_every):
    best = ModelCheckpoint(monitor="val/score", mode="max", save_last=True, filename="best-{epoch}")
    added = last_checkpoints([best])
    assert [type(c) for c in added] == [LastCheckpoint] and best.save_last is False  # one writer of last.ckpt
    trainer = L.Trainer(max_epochs=3, check_val_every_n_epoch=check_every, callbacks=[best, *added],
                        default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(WorseEveryEpoch())
    folder, first_validated = tmp_path / "checkpoints", check_every - 1  # the best epoch: scores only fall
    assert sorted(p.name for p in folder.iterdir()) == [f"best-epoch={first_validated}.ckpt", "last.ckpt"]
    assert saved_epoch(folder / f"best-epoch={first_validated}.ckpt") == first_validated
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == trainer.global_step == 6  # all 3 epochs of 2 steps
    torch.testing.assert_close(last["state_dict"]["layer.weight"], trainer.lightning_module.layer.weight)


def test_xrg_fit_keeps_last_ckpt_at_the_last_epoch(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", studies_per_split=(8, 4, 4), views=1, size=32)
    recipe = {"trainer": {"max_epochs": 3, "accelerator": "cpu", "enable_progress_bar": False, "logger": False,
                          "default_root_dir": str(tmp_path / "run"),
                          "callbacks": [{"class_path": "ModelCheckpoint", "init_args": {
                              "monitor": "val/loss", "mode": "max", "save_last": True, "filename": "best-{epoch}"}}]},
              "model": {"class_path": "ReportGeneration", "init_args": {
                  "image_encoder": {"class_path": "TimmImageEncoder", "init_args": {"model_name": "test_resnet"}},
                  "decoder": {"class_path": "TransformerDecoder", "init_args": {
                      "dim": 16, "heads": 2, "ffn_dim": 32, "encoder_layers": 1, "decoder_layers": 1, "max_length": 12,
                      "num_beams": 1, "tokenizer": {"class_path": "WordTokenizer", "init_args": {"threshold": 1}}}},
                  "nlg_metrics": False, "clinical_efficacy": False, "generate_in_validation": False}},
              "data": {"class_path": "ReportDataModule", "init_args": {
                  "annotation_path": str(data / "annotation.json"), "labels_path": str(data / "labels.json"),
                  "image_size": 32, "resize": 32, "max_views": 1, "batch_size": 4, "num_workers": 0}}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["fit", "--config", str(tmp_path / "recipe.yaml")]) == 0
    folder = tmp_path / "run" / "checkpoints"
    assert saved_epoch(folder / "last.ckpt") == 2
    (best,) = folder.glob("best-*.ckpt")
    # The highest val loss is an early epoch's (training lowers it), so Lightning's own last.ckpt would be that one.
    assert best.name == f"best-epoch={saved_epoch(best)}.ckpt" and saved_epoch(best) < 2
