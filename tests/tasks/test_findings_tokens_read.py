"""The options that make a transformer decoder state what a findings guide's tokens say
(docs/quality.md, section 3): `visual_token_dropout` hides the visual tokens of a share of the
training studies, and `token_scale` starts the present / absent embeddings far apart.

Fixture: tiny studies whose image shows cardiomegaly only; their reports also state a pleural
effusion and a pneumothorax that no image shows (`conftest.write_tiny_dataset`). The tokens carry
all three labels, so a decoder that reads them states all three, and still does with the image
hidden."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from conftest import write_tiny_dataset
from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders import TimmImageEncoder
from xrg.blocks.findings import FindingsClassifier
from xrg.blocks.guides import Encoded, PredictedFindings
from xrg.data import ReportDataModule
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.tokenizers import WordTokenizer
from xrg.metrics.ce import label_texts
from xrg.tasks import ReportGeneration
from xrg.tasks.report_generation import append_tokens

pytestmark = pytest.mark.usefixtures("one_thread")
THREE = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"), studies_per_split=(48, 4, 16), views=1, size=32)


def task(visual_token_dropout: float = 0.0, token_scale: float = 0.02) -> ReportGeneration:
    torch.manual_seed(0)
    guide = PredictedFindings(FindingsClassifier(THREE), tokens=True, labels_in_training=True, decision_tokens=True,
                              token_scale=token_scale, loss_weight=1.0)
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=32, heads=2, ffn_dim=64, encoder_layers=1,
                                 decoder_layers=1, dropout=0.0, max_length=24, num_beams=1)
    return ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=[guide], generate_in_validation=False,
                            visual_token_dropout=visual_token_dropout,
                            optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3))


def datamodule(root) -> ReportDataModule:
    return ReportDataModule(annotation_path=str(root / "annotation.json"), labels_path=str(root / "labels.json"),
                            max_views=1, image_size=32, resize=32, batch_size=8, cleaning="none")


def stated_as_told(model: ReportGeneration, dm: ReportDataModule, hide_image: bool) -> float:
    """Share of (test study, finding) pairs whose report states the finding exactly when the tokens
    (the study's true labels, as in training) say it is present."""
    model.eval()
    dm.setup("test")
    agree, total = 0, 0
    columns = [CHEXPERT_LABELS.index(name) for name in THREE]
    with torch.no_grad():
        for batch in dm.test_dataloader():
            visual, memory = model.see(batch["images"], batch.get("view_mask"))
            told = model.guides["findings"](Encoded(batch, visual, memory, with_loss=False, training=True)).tokens
            if hide_image:
                memory = memory._replace(mask=torch.zeros(memory.tokens.shape[:2], dtype=torch.bool))
            stated = label_texts(model.decoder.generate(append_tokens(memory, told)))[:, columns] == 1
            agree += (stated == (batch["labels"][:, columns] == 1)).sum().item()
            total += stated.numel()
    return agree / total


def fit(model: ReportGeneration, root, tmp_path, epochs: int) -> ReportGeneration:
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(model, datamodule=datamodule(root))
    return model


def test_hidden_visual_tokens_are_masked_for_a_share_of_training_studies_only(data_root):
    model = task(visual_token_dropout=0.5)
    dm = datamodule(data_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    model.eval()
    assert model.encode(batch).memory.mask.all()  # never outside training
    model.train()
    torch.manual_seed(1)
    masks = torch.cat([model.encode(batch).memory.mask for _ in range(16)])  # [16 * B, visual + 3]
    visual = masks[:, :-3]
    assert masks[:, -3:].all()  # the findings tokens always stay
    assert (visual.all(1) | ~visual.any(1)).all()  # a study's visual tokens go together
    assert 0.35 < (~visual.any(1)).float().mean().item() < 0.65


def test_with_the_options_the_decoder_states_what_the_tokens_say(data_root, tmp_path):
    dm = datamodule(data_root)
    model = fit(task(visual_token_dropout=0.5, token_scale=1.0), data_root, tmp_path, epochs=25)
    with_image, tokens_only = stated_as_told(model, dm, hide_image=False), stated_as_told(model, dm, hide_image=True)
    assert with_image >= 0.95, (with_image, tokens_only)
    assert tokens_only >= 0.95, (with_image, tokens_only)  # the tokens alone suffice
    # Without the options the same fit leans on the image: hidden, it loses what the image showed.
    plain = fit(task(), data_root, tmp_path, epochs=25)
    assert stated_as_told(plain, dm, hide_image=True) < tokens_only - 0.1
