"""Contrastive pre-training: the InfoNCE variants equal their references; a tiny model learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xrg.blocks.encoders import HFTextEncoder, TimmImageEncoder
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.contrastive import (ContrastivePretraining, disease_sentences, multi_positive_nce,
                                   retrieval_recall, sentence_positives, symmetric_nce)

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def test_one_positive_per_row_is_clip_cross_entropy():
    logits = torch.randn(5, 5)
    eye = torch.eye(5, dtype=torch.bool)
    expected = 0.5 * (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5)))
    torch.testing.assert_close(symmetric_nce(logits, eye), expected)


def test_masked_columns_are_as_if_absent():
    logits, positives = torch.randn(4, 6), torch.rand(4, 6) > 0.5
    valid = torch.tensor([True, False, True, True, False, True])
    torch.testing.assert_close(symmetric_nce(logits, positives, valid), symmetric_nce(logits[:, valid], positives[:, valid]))


def test_several_positives_share_the_target():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    positives = torch.tensor([[True, True, False]])
    log_p = logits.log_softmax(1)[0]
    torch.testing.assert_close(multi_positive_nce(logits, positives), -(log_p[0] + log_p[1]) / 2)


def test_disease_sentences_keep_positive_findings_only():
    report = "there is moderate cardiomegaly . no pneumothorax . small left pleural effusion . the lungs are clear ."
    found = disease_sentences(report)
    assert [s for s, _, _ in found] == ["there is moderate cardiomegaly", "small left pleural effusion"]
    names = [[CHEXPERT_LABELS[i] for i, on in enumerate(v) if on] for _, v, _ in found]
    assert names == [["Cardiomegaly"], ["Pleural Effusion"]]
    # With negated sentences, those stating absence join: "no pneumothorax", "the lungs are clear".
    found = disease_sentences(report, negated=True)
    assert [s for s, _, _ in found] == ["there is moderate cardiomegaly", "no pneumothorax", "small left pleural effusion",
                                        "the lungs are clear"]
    assert not any(found[1][1]) and [CHEXPERT_LABELS[i] for i, on in enumerate(found[1][2]) if on] == ["Pneumothorax"]
    assert not any(found[3][1]) and "Lung Opacity" in [CHEXPERT_LABELS[i] for i, on in enumerate(found[3][2]) if on]


def test_a_sentence_matches_studies_with_all_it_states_present_and_none_it_states_absent():
    index = {name: i for i, name in enumerate(CHEXPERT_LABELS)}

    def vector(*names):
        row = torch.zeros(14, dtype=torch.bool)
        row[[index[n] for n in names]] = True
        return row

    studies = torch.stack([vector("Cardiomegaly"), vector("Cardiomegaly", "Pneumothorax"), vector()])
    present = torch.stack([vector("Cardiomegaly"), vector(), vector("Pneumothorax")])
    absent = torch.stack([vector(), vector("Pneumothorax"), vector()])
    # sentences: "cardiomegaly", "no pneumothorax", "pneumothorax"
    assert sentence_positives(studies, present, absent).tolist() == [[True, True, False],
                                                                    [True, False, True],
                                                                    [False, True, False]]


def test_retrieval_recall_counts_rank_of_the_match():
    keys = torch.eye(3)
    queries = torch.tensor([[1.0, 0, 0], [1.0, 0.5, 0], [0, 0, 1.0]])  # query 1 ranks key 0 first
    assert retrieval_recall(queries, keys, (1, 2)) == pytest.approx({1: 2 / 3, 2: 1.0})


def _batch():
    reports = ["there is moderate cardiomegaly . no pneumothorax .", "heart size is normal . there is a right pneumothorax .",
               "small left pleural effusion . heart size is normal .", "the lungs are clear . no effusion ."]
    labels = torch.full((4, 14), float("nan"))
    for row, name in [(0, "Cardiomegaly"), (1, "Pneumothorax"), (2, "Pleural Effusion")]:
        labels[row, CHEXPERT_LABELS.index(name)] = 1
    return {"ids": list("abcd"), "images": torch.randn(4, 1, 3, 32, 32), "view_mask": torch.ones(4, 1, dtype=torch.bool),
            "reports": reports, "labels": labels}


def test_a_tiny_dual_encoder_learns_the_pairs():
    torch.manual_seed(0)
    task = ContrastivePretraining(TimmImageEncoder("test_resnet"), HFTextEncoder("minilm", config=TINY), embed_dim=16)
    batch = _batch()
    optimizer = torch.optim.AdamW(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        parts, _, _ = task.losses(batch)
        assert set(parts) == {"report", "sentence"}
        loss = task.total(parts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    task.eval()
    with torch.no_grad():
        images, reports = task.embed_images(batch), task.joint.embed_texts(batch["reports"])
    assert retrieval_recall(images, reports, (1,))[1] == 1.0


def test_each_studys_disease_sentences_fill_its_own_slots():
    """`sentences_per_study` slots per study, in study order: study i's sentences at i*S, i*S+1, ...;
    a study with fewer sentences leaves its other slots empty (zero, not valid)."""
    torch.manual_seed(0)
    task = ContrastivePretraining(TimmImageEncoder("test_resnet"), HFTextEncoder("minilm", config=TINY), embed_dim=16,
                                  sentences_per_study=2).eval()
    reports = _batch()["reports"][:3] + ["moderate cardiomegaly . small left pleural effusion ."]
    with torch.no_grad():
        embeddings, present, _, valid = task.sentence_slots(reports)
        expected = {(i, slot): sentence for i, report in enumerate(reports)
                    for slot, (sentence, _, _) in enumerate(disease_sentences(report)[:2])}
        assert valid.tolist() == [(i, slot) in expected for i in range(4) for slot in range(2)]
        for (i, slot), sentence in expected.items():
            torch.testing.assert_close(embeddings[i * 2 + slot], task.joint.embed_texts([sentence])[0])
        assert not embeddings[~valid].any()
    assert [CHEXPERT_LABELS[k] for k in present[7].nonzero().flatten()] == ["Pleural Effusion"]
