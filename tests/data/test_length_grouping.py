"""`group_by_length`: evaluation batches of similar prompt length, longest first.

An LLM report model whose prompt carries each study's indication and prior report (`PriorStudy`)
predicts the test split with and without grouping: the predictions files are identical byte for
byte (the writer keeps the split's order), and the prompts handed to `generate` pad less.
"""

from __future__ import annotations

import json
import random

import lightning as L
import pytest
import torch

from conftest import write_tiny_dataset
from xrg.blocks.decoders import CausalLMDecoder, PromptBuilder
from xrg.blocks.encoders import TimmImageEncoder
from xrg.blocks.guides import PriorStudy
from xrg.callbacks import JsonlPredictionWriter
from xrg.data import ReportDataModule
from xrg.data.loader import LongestFirst
from xrg.data.tokenizers import BPETokenizer
from xrg.tasks import ReportGeneration

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2}
WORDS = "cough fever chest pain shortness of breath follow up after surgery rule out pneumonia".split()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The tiny data set, each study given an indication of 0-40 words and half of them a prior report."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("grouping"), studies_per_split=(4, 2, 16), views=1, size=32)
    rng = random.Random(6)
    annotation = json.loads((root / "annotation.json").read_text())
    for items in annotation.values():
        for item in items:
            item["indication"] = " ".join(rng.choices(WORDS, k=rng.randrange(0, 40)))
            if rng.random() < 0.5:
                item["prior"] = {"id": "p" + item["id"], "report": "The heart is enlarged. " * rng.randrange(1, 6),
                                 "image_path": item["image_path"]}
    (root / "annotation.json").write_text(json.dumps(annotation))
    return root


def datamodule(root, **kwargs) -> ReportDataModule:
    return ReportDataModule(annotation_path=str(root / "annotation.json"), labels_path=str(root / "labels.json"),
                            max_views=1, image_size=32, resize=32, batch_size=4, cleaning="none", **kwargs)


def report_model(root) -> ReportGeneration:
    torch.manual_seed(0)
    tokenizer = BPETokenizer(vocab_size=200)
    tokenizer.fit(datamodule(root).train_reports() + WORDS)
    decoder = CausalLMDecoder(config=TINY_LLAMA, tokenizer=tokenizer, max_new_tokens=6)
    prompt = PromptBuilder(template="{image} Indication: {indication}. Prior: {prior_report}. Report:", chat="plain")
    return ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=[PriorStudy()], prompt=prompt,
                            clinical_efficacy=False, nlg_metrics=False).eval()


def predict(task, root, path, **data) -> list[int]:
    """Writes the test split's predictions to `path`; returns each batch's padded prompt width."""
    widths, sequences = [], task.decoder._sequences

    def recorded(memory, prompts, targets):
        seq = sequences(memory, prompts, targets)
        widths.append(seq.ids.shape[1])
        return seq

    task.decoder._sequences = recorded
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[JsonlPredictionWriter(str(path))])
    trainer.predict(task, datamodule=datamodule(root, **data), return_predictions=False)
    del task.decoder._sequences
    return widths


def test_grouped_predictions_equal_ungrouped_id_for_id_and_pad_less(data_root, tmp_path):
    task = report_model(data_root)
    plain = predict(task, data_root, tmp_path / "plain.jsonl")
    grouped = predict(task, data_root, tmp_path / "grouped.jsonl", group_by_length=True)
    text = (tmp_path / "plain.jsonl").read_text()
    assert len(text.splitlines()) == 16
    assert (tmp_path / "grouped.jsonl").read_text() == text  # same reports, same order
    ids = [json.loads(line)["id"] for line in text.splitlines()]
    assert ids == [s["id"] for s in json.loads((data_root / "annotation.json").read_text())["test"]]
    assert len(grouped) == len(plain) == 4
    assert grouped == sorted(grouped, reverse=True)  # longest batch first
    assert sum(grouped) < 0.85 * sum(plain) and plain != sorted(plain, reverse=True), (grouped, plain)


def test_every_study_is_predicted_once_across_ranks_each_share_sorted():
    """What Lightning does under DDP: it wraps the loader's sampler in its distributed sampler."""
    from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
    from lightning.pytorch.trainer.states import RunningStage
    from torch.utils.data import DataLoader

    lengths = [(1, n) for n in random.Random(0).choices(range(500), k=23)]
    loader = DataLoader(range(23), sampler=LongestFirst(lengths), batch_size=4)
    shares = [list(_get_distributed_sampler(loader, shuffle=False, overfit_batches=0, mode=RunningStage.PREDICTING,
                                            num_replicas=3, rank=rank)) for rank in range(3)]
    assert sorted(i for share in shares for i in share) == list(range(23))  # each study once: none dropped, none twice
    assert [len(share) for share in shares] == [8, 8, 7]
    for share in shares:
        assert [lengths[i] for i in share] == sorted((lengths[i] for i in share), reverse=True)
