"""The `PriorStudy` guide: the prior study's views reach the decoder as tagged, masked memory, its
indication and prior report reach the prompt, and a model that must compare reads the prior."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from xrg.blocks.decoders import CausalLMDecoder, PromptBuilder, TransformerDecoder
from xrg.blocks.encoders import TimmImageEncoder
from xrg.blocks.findings import FindingsClassifier
from xrg.blocks.guides import PredictedFindings, PriorStudy
from xrg.data import ReportDataModule
from xrg.data.errors import DataError
from xrg.data.synthetic.longitudinal import COURSES, generate_longitudinal, stated_courses
from xrg.data.tokenizers import BPETokenizer, WordTokenizer
from xrg.tasks import ReportGeneration

REPORT = {("dark", "dark"): "the heart is unchanged .", ("dark", "bright"): "the heart is newly enlarged .",
          ("bright", "bright"): "the enlarged heart is unchanged .", ("bright", "dark"): "the enlargement has resolved ."}


def write_pairs(root, per_split=(32, 8, 0)):
    """Studies whose report compares the current image's brightness with the prior's: only a model
    that reads the prior can tell "newly enlarged" from "unchanged"."""
    annotation, index = {}, 0
    for split, count in zip(("train", "val", "test"), per_split):
        annotation[split] = []
        for _ in range(count):
            prior, current = list(REPORT)[index % 4]
            study = f"s{index:03d}"
            for name, look in ((study, current), (f"{study}_prior", prior)):
                (root / name).mkdir(parents=True)
                Image.fromarray(np.full((32, 32), 200 if look == "bright" else 60, np.uint8)).save(root / name / "0.png")
            annotation[split].append({"id": study, "report": REPORT[prior, current], "image_path": [f"{study}/0.png"],
                                      "split": split, "indication": f"cough {index}",
                                      "prior": {"id": f"{study}_prior", "report": f"prior {prior}",
                                                "image_path": [f"{study}_prior/0.png"]}})
            index += 1
    (root / "annotation.json").write_text(json.dumps(annotation))
    return root


def datamodule(root, prior_views=1) -> ReportDataModule:
    return ReportDataModule(annotation_path=str(root / "annotation.json"), image_dir=str(root), max_views=1,
                            prior_views=prior_views, image_size=32, resize=32, batch_size=8, cleaning="none")


def transformer() -> TransformerDecoder:
    return TransformerDecoder(WordTokenizer(threshold=1), dim=32, heads=2, ffn_dim=64, encoder_layers=1,
                              decoder_layers=1, dropout=0.0, max_length=16, num_beams=1)


def batch_of(dm, split="val"):
    dm.setup("fit")
    return next(iter(dm.val_dataloader() if split == "val" else dm.train_dataloader()))


def test_prior_views_join_the_memory_tagged_and_masked(tmp_path):
    dm = datamodule(write_pairs(tmp_path))
    batch = batch_of(dm)
    batch["prior_view_mask"][0] = False  # study 0 has no prior
    task = ReportGeneration(TimmImageEncoder("test_resnet"), transformer(), guides=[PriorStudy(images=True)])
    encoded = task.encode(batch, with_loss=False)
    current = task.image_encoder(batch["images"], batch["view_mask"])
    n = current.tokens.shape[1]
    assert encoded.memory.tokens.shape[1] == 2 * n
    assert torch.equal(encoded.memory.tokens[:, :n], current.tokens)
    prior = task.image_encoder(batch["prior_images"], batch["prior_view_mask"]).tokens
    assert torch.allclose(encoded.memory.tokens[:, n:], prior + task.guides["prior"].tag)
    assert not encoded.memory.mask[0, n:].any() and encoded.memory.mask[1:].all()
    assert encoded.fields(3) == {"indication": batch["indications"][3], "prior_report": batch["prior_reports"][3]}


def test_prior_views_take_the_grid_positions_and_follow_a_findings_guides_tokens_off_it(tmp_path):
    batch = batch_of(datamodule(write_pairs(tmp_path)))
    per_view = TimmImageEncoder("test_resnet")(batch["images"], batch["view_mask"]).tokens.shape[1]
    grid = TransformerDecoder(WordTokenizer(threshold=1), dim=32, heads=2, ffn_dim=64, encoder_layers=1,
                              decoder_layers=1, max_length=16, memory_grid=(1, per_view))
    alone = ReportGeneration(TimmImageEncoder("test_resnet"), grid, guides=[PriorStudy(images=True)])
    memory = alone.encode(batch, with_loss=False).memory
    assert (memory.views, memory.appended) == (2, 0)  # the prior's view is one more view on the grid
    findings = PredictedFindings(FindingsClassifier(["Cardiomegaly", "Edema"]), tokens=True)
    both = ReportGeneration(TimmImageEncoder("test_resnet"), grid, guides=[findings, PriorStudy(images=True)])
    memory = both.encode(batch, with_loss=False).memory
    assert memory.tokens.shape[1] == 2 * per_view + 2 and memory.appended == per_view + 2
    encoded, _ = grid.encode_memory(memory)  # before: "not a whole number of grids"
    assert encoded.shape[1] == 1 + memory.tokens.shape[1]  # the grid's CLS token and every token


def test_prior_text_fills_the_prompt_and_missing_prior_images_fail_in_one_line(tmp_path):
    root = write_pairs(tmp_path)
    config = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256}
    task = ReportGeneration(TimmImageEncoder("test_resnet"), CausalLMDecoder(config=config, tokenizer=BPETokenizer(vocab_size=300)),
                            guides=[PriorStudy(text=True)], prompt=PromptBuilder(
                                template="Indication: {indication}. Prior: {prior_report}. Report:", chat="plain"))
    batch = batch_of(datamodule(root, prior_views=0))
    prompts = task.prompts(task.encode(batch, with_loss=False))
    assert prompts[0].strip() == f"Indication: {batch['indications'][0]}. Prior: {batch['prior_reports'][0]}. Report:"
    assert batch["indications"][0].startswith("cough") and batch["prior_reports"][0].startswith("prior")
    imaging = ReportGeneration(TimmImageEncoder("test_resnet"), transformer(), guides=[PriorStudy(text=False, images=True)])
    with pytest.raises(ValueError, match="set the data module's prior_views"):
        imaging.encode(batch)


def _course_accuracy(task, dm) -> float:
    task.eval()
    batch = batch_of(dm)
    with torch.no_grad():
        generated = task.generate_reports(task.encode(batch, with_loss=False))
    return float(np.mean([g.strip() == r.strip() for g, r in zip(generated, batch["reports"])]))


@pytest.mark.usefixtures("one_thread")
def test_a_model_must_read_the_prior_to_word_the_change(tmp_path):
    """Same data, same budget: with the prior's views the val reports are all right; without them
    the model cannot tell "newly enlarged" from "unchanged" (at most 3 of 4 kinds right)."""
    root = write_pairs(tmp_path / "data")
    accuracy = {}
    for with_prior in (True, False):
        L.seed_everything(0)
        guides = [PriorStudy(text=False, images=True)] if with_prior else []
        task = ReportGeneration(TimmImageEncoder("test_resnet"), transformer(), guides=guides, meteor=False,
                                generate_in_validation=False, block_lr={"image_encoder": 3e-3},
                                optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3))
        dm = datamodule(root, prior_views=1 if with_prior else 0)
        L.Trainer(max_epochs=60, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0).fit(task, dm)
        accuracy[with_prior] = _course_accuracy(task, dm)
    assert accuracy[True] == 1.0 and accuracy[False] <= 0.75, accuracy


def test_longitudinal_pairs_state_their_courses(tmp_path):
    out = generate_longitudinal(tmp_path / "long", num_pairs=16, image_size=64, views=1)
    annotation = json.loads((out / "annotation.json").read_text())
    courses = json.loads((out / "courses.json").read_text())
    items = [item for split in annotation.values() for item in split]
    assert len(items) == 16 and all((out / "images" / item["prior"]["image_path"][0]).is_file() for item in items)
    assert all(stated_courses(item["report"]) == courses[item["id"]] for item in items)
    assert {c for study in courses.values() for c in study.values()} == set(COURSES)
    stamp = (out / "annotation.json").stat().st_mtime_ns
    assert generate_longitudinal(tmp_path / "long", num_pairs=16, image_size=64, views=1) == out  # reused
    assert (out / "annotation.json").stat().st_mtime_ns == stamp
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(DataError, match="refusing to overwrite"):
        generate_longitudinal(tmp_path / "mine", num_pairs=4, image_size=64, views=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "a user's file"
