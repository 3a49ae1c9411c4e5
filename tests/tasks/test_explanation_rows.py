"""Every explanation a predicted row carries sits under the right name and the right study.

The heads' outputs are scripted (a different value per study and per disease, criterion or
neighbour), so a value written under another disease's name, another criterion's key or another
study's row shows as a mismatch. Perception is also checked at its source: a disease's logit
depends on its own prompts only, wherever it sits in the list of names.
"""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.clues import DiseaseClueInjector, MultiGranularClueInteraction
from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders import Features, HFTextEncoder, TimmImageEncoder
from xrg.blocks.findings import ConceptAligner, FindingsClassifier, ZeroShotDiseasePerception
from xrg.blocks.guides import DiseaseClues, PredictedFindings, RecognisedConcepts, RetrievedReports
from xrg.blocks.retrieval import ReportRetriever
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.tokenizers import WordTokenizer
from xrg.tasks import ReportGeneration

TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
THREE = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]
STUDIES = ["s0", "x"]  # "s0" is also in the index: it must never retrieve itself


def text() -> HFTextEncoder:
    torch.manual_seed(0)
    return HFTextEncoder(config=TINY_TEXT, frozen=True)


def perception(names: list[str]) -> ZeroShotDiseasePerception:
    torch.manual_seed(0)
    return ZeroShotDiseasePerception(text(), names, embed_dim=16)


@pytest.fixture(scope="module")
def task() -> ReportGeneration:
    torch.manual_seed(0)
    guides = [
        DiseaseClues(perception(THREE), DiseaseClueInjector(16), MultiGranularClueInteraction(16, 2), field=None),
        PredictedFindings(FindingsClassifier(THREE)),
        RecognisedConcepts(ConceptAligner(text(), dim=16, heads=2)),
        RetrievedReports(ReportRetriever(space="image", k=2)),
    ]
    decoder = TransformerDecoder(WordTokenizer(1, words=["heart"]), dim=16, heads=2, ffn_dim=16, encoder_layers=1,
                                 decoder_layers=1, max_length=3, num_beams=1)
    task = ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=guides, nlg_metrics=False,
                            clinical_efficacy=False).eval()
    keys = torch.eye(4)
    task.guides["retrieved"].retriever.build(["s0", "s1", "s2", "s3"], ["r0", "r1", "r2", "r3"], image_keys=keys)
    return task


def scripted(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.fixture(scope="module")
def rows_and_script(task):
    clues, findings = task.guides["clues"], task.guides["findings"]
    concepts, retrieved = task.guides["concepts"], task.guides["retrieved"]
    script = {
        "perceived": scripted((2, 3), 1),
        "findings": scripted((2, 3), 2),
        "diseases": scripted((2, 14), 3),
        "criteria": scripted((2, len(concepts.aligner.criteria), 2), 4),
        # study s0 is nearest itself (excluded), then s2, then s1; study x: s3, then s2
        "queries": torch.tensor([[0.9, 0.1, 0.3, 0.0], [0.0, 0.0, 0.2, 0.8]]),
    }
    original_align = concepts.aligner.align
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clues.perception, "forward", lambda features: script["perceived"])
        patch.setattr(findings.head, "forward", lambda features: script["findings"])
        patch.setattr(concepts.aligner, "align", lambda features: original_align(features)._replace(
            logits=script["diseases"], anchor_logits=script["criteria"]))
        patch.setattr(retrieved, "query_embedding", lambda encoded: script["queries"])
        batch = {"ids": STUDIES, "images": torch.rand(2, 1, 3, 32, 32)}
        with torch.no_grad():
            rows = task.predict_step(batch, 0)
            fields = [task.encode(batch, with_loss=False).fields(i) for i in range(2)]
    return rows, fields, script


def test_perceived_probabilities_sit_under_their_disease(rows_and_script):
    rows, _, script = rows_and_script
    for i, row in enumerate(rows):
        expected = {name: pytest.approx(float(torch.sigmoid(script["perceived"][i, k])), abs=1e-4) for k, name in enumerate(THREE)}
        assert row["perceived"] == expected, f"study {STUDIES[i]}"


def test_findings_probabilities_and_names_sit_under_their_disease(rows_and_script):
    rows, fields, script = rows_and_script
    for i, row in enumerate(rows):
        probs = script["findings"][i].sigmoid()
        assert row["findings_probs"] == {n: pytest.approx(float(probs[k]), abs=1e-4) for k, n in enumerate(THREE)}
        present = [n for k, n in enumerate(THREE) if probs[k] > 0.5]
        assert row["findings"] == present and fields[i]["findings"] == [n.lower() for n in present]


def test_concept_scores_sit_under_their_disease_and_criterion(task, rows_and_script):
    rows, _, script = rows_and_script
    criteria = task.guides["concepts"].aligner.criteria
    for i, row in enumerate(rows):
        assert row["diseases"] == {n: pytest.approx(float(script["diseases"][i, k].sigmoid())) for k, n in enumerate(CHEXPERT_LABELS)}
        present = script["criteria"][i].softmax(-1)[:, 0]
        assert row["criteria"] == {f"{c.disease} / {c.name}": pytest.approx(float(present[j])) for j, c in enumerate(criteria)}


def test_retrieved_ids_are_each_studys_own_neighbours_with_their_reports(rows_and_script):
    rows, fields, _ = rows_and_script
    assert [row["retrieved_ids"] for row in rows] == [["s2", "s1"], ["s3", "s2"]]
    assert [f["retrieved"] for f in fields] == [["r2", "r1"], ["r3", "r2"]]
    assert all(row["retrieved_scores"][0] >= row["retrieved_scores"][1] for row in rows)


def test_a_diseases_perception_depends_on_its_own_prompts_only():
    one, three = perception(["Pneumothorax"]), perception(THREE)
    one.bind_image_dim(8)
    three.bind_image_dim(8)
    shared = {k: v for k, v in three.state_dict().items() if k != "pos_weight"}  # sized by the number of names
    assert one.load_state_dict(shared, strict=False).missing_keys == ["pos_weight"]
    features = Features(torch.randn(4, 2, 8), torch.randn(4, 8))
    with torch.no_grad():
        torch.testing.assert_close(one(features)[:, 0], three(features)[:, THREE.index("Pneumothorax")])
