"""`cache_frozen_features`: a fit over a frozen image encoder reads each training and validation
image once, and trains the same weights as the fit that re-encodes every step."""

from __future__ import annotations

import lightning as L
import pytest
import torch

import xrg.data.dataset as dataset_module
from conftest import write_tiny_dataset
from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders import TimmImageEncoder
from xrg.blocks.findings import FindingsClassifier
from xrg.blocks.guides import PredictedFindings
from xrg.data import ReportDataModule
from xrg.data.errors import ConfigError
from xrg.data.tokenizers import WordTokenizer
from xrg.tasks import ReportGeneration

pytestmark = pytest.mark.usefixtures("one_thread")
THREE = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]
TRAIN, VAL, VIEWS = 16, 8, 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"), studies_per_split=(TRAIN, VAL, 4), views=VIEWS, size=32)


def task(cache: bool, frozen=("image_encoder",)) -> ReportGeneration:
    L.seed_everything(0)
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=32, heads=2, ffn_dim=64, encoder_layers=1,
                                 decoder_layers=1, dropout=0.1, max_length=24, num_beams=1)
    guide = PredictedFindings(FindingsClassifier(THREE), tokens=True, labels_in_training=True, tune_thresholds=True)
    return ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=[guide], frozen=list(frozen),
                            visual_token_dropout=0.5, nlg_metrics=False, cache_frozen_features=cache,
                            optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3))


def fit(model, root, tmp_path, trainer_args=None, ckpt_path=None, **data) -> ReportDataModule:
    dm = ReportDataModule(annotation_path=str(root / "annotation.json"), labels_path=str(root / "labels.json"),
                          max_views=VIEWS, image_size=32, resize=data.pop("resize", 32), batch_size=4,
                          cleaning="none", **data)
    trainer_args = {"max_epochs": 3, "enable_checkpointing": False, **(trainer_args or {})}
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, **trainer_args)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return dm


def counting_reads(monkeypatch) -> list[int]:
    reads = [0]
    real = dataset_module.load_image

    def counted(*args, **kwargs):
        reads[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "load_image", counted)
    return reads


def test_kept_features_train_the_same_weights_reading_each_image_once(data_root, tmp_path, monkeypatch):
    reads = counting_reads(monkeypatch)
    plain = task(cache=False)
    fit(plain, data_root, tmp_path / "plain")
    plain_reads, reads[0] = reads[0], 0
    kept = task(cache=True)
    dm = fit(kept, data_root, tmp_path / "kept")
    # 3 epochs + sanity check + threshold tuning re-read the images without the cache; once with it
    assert reads[0] == (TRAIN + VAL) * VIEWS < plain_reads
    trained = [name for name, p in plain.named_parameters() if p.requires_grad]
    assert trained and any(n.startswith("decoder") for n in trained) and any(n.startswith("guides") for n in trained)
    tensors = [(name, a, b) for (name, a), b in zip(plain.state_dict().items(), kept.state_dict().values())
               if isinstance(a, torch.Tensor)]  # not the tokenizer's extra state
    for name, a, b in tensors:
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    assert not any(p.requires_grad for p in kept.image_encoder.parameters())
    assert all(not ds.features_held for ds in dm.datasets.values())  # a later validate reads images again
    assert kept._feature_cache is None


def test_a_fit_resumed_mid_epoch_keeps_the_features_again_and_ends_as_an_uninterrupted_one(data_root, tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    full = task(cache=True)
    fit(full, data_root, tmp_path / "full")
    saved = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=6)
    fit(task(cache=True), data_root, tmp_path / "stopped", {"max_steps": 6, "callbacks": [saved], "enable_checkpointing": True})  # 4 steps an epoch
    resumed = task(cache=True)
    fit(resumed, data_root, tmp_path / "resumed", ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt"))
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


def test_kept_features_equal_the_encoders_own(data_root):
    model = task(cache=True)
    dm = ReportDataModule(annotation_path=str(data_root / "annotation.json"), labels_path=str(data_root / "labels.json"),
                          max_views=VIEWS, image_size=32, resize=32, batch_size=3, cleaning="none")
    from xrg.tasks.feature_cache import FeatureCache

    cache = FeatureCache()
    cache.fill(model.image_encoder, dm.in_order("val"), torch.device("cpu"))
    batch = next(iter(dm.in_order("val")))
    own = model.image_encoder(batch["images"], batch["view_mask"])
    kept = cache.features(batch["ids"], torch.device("cpu"))
    assert kept.views == own.views and torch.equal(kept.mask, own.mask)
    assert torch.allclose(kept.tokens, own.tokens, atol=1e-6) and torch.allclose(kept.pooled, own.pooled, atol=1e-6)
    with pytest.raises(KeyError, match="no features for study 'study_000'"):
        cache.features(["study_000"], torch.device("cpu"))  # a training study: only val was filled


@pytest.mark.parametrize("frozen, data, message", [
    ((), {}, r"the image encoder trains in this fit; freeze it"),
    (("image_encoder",), {"resize": 36}, r"vary between epochs \(random crop \(resize 36 > image_size 32\)\)"),
    (("image_encoder",), {"random_affine": {"degrees": 3}}, r"vary between epochs \(random_affine\)"),
])
def test_a_fit_where_kept_features_would_differ_is_refused(data_root, tmp_path, frozen, data, message):
    with pytest.raises(ConfigError, match=message):
        fit(task(cache=True, frozen=frozen), data_root, tmp_path, **data)
