"""The one report task learns with each guide: validation loss falls below half its start, the
reports follow the image, and the logged validation and test metrics equal `xrg evaluate` on the written predictions.

Fixture: tiny studies whose image brightness shows cardiomegaly and whose reports state three
findings (`conftest.write_tiny_dataset`); only cardiomegaly is visible, so a model that reads the
image writes "the heart is enlarged" for bright studies and "heart size is normal" for dark ones.
"""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from conftest import write_tiny_dataset
from xrg.blocks.clues import DiseaseClueInjector, MultiGranularClueInteraction
from xrg.blocks.decoders import CausalLMDecoder, PromptBuilder, TransformerDecoder
from xrg.blocks.encoders import HFTextEncoder, TimmImageEncoder
from xrg.blocks.findings import ConceptAligner, FindingsClassifier, ZeroShotDiseasePerception
from xrg.blocks.guides import DiseaseClues, PredictedFindings, RecognisedConcepts, RetrievedReports
from xrg.blocks.retrieval import ReportRetriever
from xrg.data import ReportDataModule
from xrg.data.tokenizers import BPETokenizer, WordTokenizer
from xrg.tasks import InstructionTuning, ReportGeneration

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
TINY_LLAMA = {"model_type": "llama", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512}
THREE = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"), studies_per_split=(24, 8, 8), views=1, size=32)


def datamodule(root, predict_split: str = "test") -> ReportDataModule:
    return ReportDataModule(annotation_path=str(root / "annotation.json"), labels_path=str(root / "labels.json"),
                            max_views=1, image_size=32, resize=32, batch_size=8, cleaning="none",
                            predict_split=predict_split)


def transformer() -> TransformerDecoder:
    return TransformerDecoder(WordTokenizer(threshold=1), dim=32, heads=2, ffn_dim=64, encoder_layers=1,
                              decoder_layers=1, dropout=0.0, max_length=24, num_beams=1)


def llm() -> CausalLMDecoder:
    return CausalLMDecoder(config=TINY_LLAMA, tokenizer=BPETokenizer(vocab_size=300), freeze_llm=False,
                           max_length=40, max_new_tokens=24)


def encoder() -> TimmImageEncoder:
    return TimmImageEncoder("test_resnet")


def text() -> HFTextEncoder:
    return HFTextEncoder(config=TINY_TEXT, frozen=True)


PROMPT = {"template": "Image: {image}. Findings: {findings}. Similar: {retrieved}. Report:", "chat": "plain"}
BUILDS = {
    "no guide": lambda: dict(decoder=transformer()),
    "findings tokens": lambda: dict(decoder=transformer(), guides=[PredictedFindings(
        FindingsClassifier(THREE), tokens=True, labels_in_training=False, loss_weight=1.0)]),
    "findings in an LLM prompt": lambda: dict(decoder=llm(), prompt=PromptBuilder(**PROMPT), guides=[PredictedFindings(
        FindingsClassifier(THREE), loss_weight=1.0)]),
    "disease clues": lambda: dict(decoder=transformer(), guides=[DiseaseClues(
        ZeroShotDiseasePerception(text(), THREE, embed_dim=16), DiseaseClueInjector(16), MultiGranularClueInteraction(16, 2))]),
    "concept tokens": lambda: dict(decoder=transformer(), guides=[RecognisedConcepts(
        ConceptAligner(text(), dim=16, heads=2), tokens=True, loss_weight=1.0)]),
    "retrieved reports": lambda: dict(decoder=llm(), prompt=PromptBuilder(**PROMPT), guides=[RetrievedReports(
        ReportRetriever(space="image", k=1))]),
}


class ValLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.losses.append(float(trainer.callback_metrics["val/loss"]))


def fit(task, root, tmp_path, epochs: int) -> tuple[L.Trainer, ValLosses]:
    losses = ValLosses()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[losses],
                        default_root_dir=tmp_path, num_sanity_val_steps=0)
    dm = datamodule(root)
    trainer.validate(task, datamodule=dm, verbose=False)  # the starting validation loss
    trainer.fit(task, datamodule=dm)
    return trainer, losses


def states_cardiomegaly(report: str) -> bool | None:
    report = report.lower()
    if "enlarged" in report:
        return True
    if "heart size is normal" in report:
        return False
    return None


@pytest.mark.parametrize("kind", list(BUILDS))
def test_report_task_learns_with_each_guide(kind, data_root, tmp_path):
    torch.manual_seed(0)
    task = ReportGeneration(image_encoder=encoder(), **BUILDS[kind](), block_lr={"image_encoder": 3e-3},
                            optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3), meteor=False,
                            generate_in_validation=False)
    # 45 epochs: at 30 the token guides' decoders wrote one report for every study in some runs (torch
    # seed 2 here; seed 0 under pytest on another CPU); at 45 all 8 test studies were right for seeds 0-5.
    trainer, losses = fit(task, data_root, tmp_path, epochs=45)
    assert losses.losses[-1] < 0.5 * losses.losses[0], f"{kind}: val loss {losses.losses[0]:.3f} -> {losses.losses[-1]:.3f}"

    # The reports follow the image: cardiomegaly (the visible finding) is stated as the labels say.
    rows = [row for batch in trainer.predict(task, datamodule=datamodule(data_root)) for row in batch]
    labels = json.loads((data_root / "labels.json").read_text())
    stated = [states_cardiomegaly(row["generated"]) for row in rows]
    truth = [bool(labels[row["id"]]["Cardiomegaly"]) for row in rows]
    correct = sum(s == t for s, t in zip(stated, truth))
    assert correct >= 0.75 * len(rows), f"{kind}: {correct}/{len(rows)} state cardiomegaly correctly: {stated} vs {truth}"
    assert len(set(stated)) > 1  # not one report for every study


def test_labels_in_training_reach_the_prompt_though_the_guide_is_frozen():
    torch.manual_seed(0)
    guide = PredictedFindings(FindingsClassifier(THREE))
    task = ReportGeneration(encoder(), llm(), guides=[guide], prompt=PromptBuilder(**PROMPT), frozen=["guides.findings"])
    labels = torch.full((2, 14), float("nan"))
    labels[0, 2], labels[1, 2] = 1.0, 0.0  # Cardiomegaly
    batch = {"ids": ["a", "b"], "images": torch.rand(2, 1, 3, 32, 32), "labels": labels}
    task.train()
    assert not guide.training  # frozen blocks stay in eval mode ...
    assert task.encode(batch).fields(0)["findings"] == ["cardiomegaly"]  # ... yet the task trains: labels
    assert task.encode(batch).fields(1)["findings"] == []
    task.eval()
    predicted = task.encode(batch).fields(0)["findings"]
    assert predicted == [n.lower() for n in guide.head.predicted_names(guide.head(task.encode(batch).visual).sigmoid())[0]]


def test_logged_val_and_test_metrics_equal_evaluate_on_the_written_predictions(data_root, tmp_path):
    from xrg.callbacks import JsonlPredictionWriter
    from xrg.metrics.evaluate import main as evaluate

    torch.manual_seed(0)
    task = ReportGeneration(encoder(), transformer(), optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3), meteor=False,
                            generate_in_validation=False)
    trainer, _ = fit(task, data_root, tmp_path, epochs=8)
    task.generate_in_validation = True
    for split, run in (("val", trainer.validate), ("test", trainer.test)):
        logged = run(task, datamodule=datamodule(data_root), verbose=False)[0]
        predictions = tmp_path / f"{split}.jsonl"
        writer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                           callbacks=[JsonlPredictionWriter(str(predictions))])
        writer.predict(task, datamodule=datamodule(data_root, predict_split=split), return_predictions=False)
        scores_path = tmp_path / f"{split}_scores.json"
        assert evaluate(["--predictions", str(predictions), "--output", str(scores_path), "--no-meteor"]) in (0, None)
        scores = json.loads(scores_path.read_text())
        flat = scores.get("metrics", scores)
        for key in ("nlg/bleu_4", "nlg/cider", "ce/chexpert-rules/micro14/f1"):
            assert logged[f"{split}/{key}"] == pytest.approx(flat[key], abs=1e-6), f"{split}/{key}"


def test_instruction_tuning_learns_dialogs(data_root, tmp_path):
    torch.manual_seed(0)
    task = InstructionTuning(encoder(), llm(), guides=[PredictedFindings(FindingsClassifier(THREE), loss_weight=1.0)],
                             prompt=PromptBuilder(**PROMPT), optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3),
                             meteor=False, generate_in_validation=False)
    _, losses = fit(task, data_root, tmp_path, epochs=20)
    assert task.records  # dialogs were derived from the training reports and labels
    assert losses.losses[-1] < 0.5 * losses.losses[0]


def test_logged_auroc_is_sklearns_on_the_probabilities_the_guide_perceived(data_root, tmp_path):
    from sklearn.metrics import roc_auc_score

    from xrg.metrics.ce import binarize, label_texts

    torch.manual_seed(0)
    task = ReportGeneration(encoder(), **BUILDS["findings tokens"](), optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3),
                            meteor=False, nlg_metrics=False, generate_in_validation=False)
    trainer, _ = fit(task, data_root, tmp_path, epochs=4)
    logged = trainer.test(task, datamodule=datamodule(data_root), verbose=False)[0]
    rows = [row for batch in trainer.predict(task, datamodule=datamodule(data_root)) for row in batch]
    truth = binarize(label_texts([row["reference"] for row in rows]), 0)
    checked = 0
    for column, name in enumerate(["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion",
                                   "Lung Opacity", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
                                   "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]):
        key = f"test/ce/chexpert-rules/auroc/{name}"
        if name not in THREE or truth[:, column].all() or not truth[:, column].any():
            assert key not in logged, f"{name} is not perceived (or one class only) but logged {logged.get(key)}"
            continue
        probabilities = [row["findings_probs"][name] for row in rows]  # rounded to 4 places in the rows
        assert logged[key] == pytest.approx(roc_auc_score(truth[:, column].numpy(), probabilities), abs=0.02), name
        checked += 1
    assert checked >= 2
