"""What the decoder reads: guide tokens join the visual memory after it, and the memory's mask
(padded views of a study with fewer views) comes with them, the guide tokens always attended."""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.encoders import Features
from xrg.tasks.report_generation import append_tokens


def test_guide_tokens_join_the_memory_and_padded_views_stay_masked():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    memory = Features(torch.randn(2, 3, 4), torch.randn(2, 4), mask)
    tokens = torch.randn(2, 2, 4)
    joined = append_tokens(memory, tokens)
    assert torch.equal(joined.tokens, torch.cat([memory.tokens, tokens], 1))
    assert torch.equal(joined.pooled, memory.pooled)
    assert joined.mask.tolist() == [[True, True, False, True, True], [True, False, False, True, True]]
    assert append_tokens(Features(memory.tokens, memory.pooled, None), tokens).mask is None


def test_the_training_objective_adds_each_guides_logged_auxiliary_loss(monkeypatch):
    from xrg.blocks.decoders import TransformerDecoder
    from xrg.blocks.encoders import TimmImageEncoder
    from xrg.blocks.findings import FindingsClassifier
    from xrg.blocks.guides import PredictedFindings
    from xrg.data.tokenizers import WordTokenizer
    from xrg.tasks import ReportGeneration

    torch.manual_seed(0)
    decoder = TransformerDecoder(WordTokenizer(1, words=["heart"]), dim=16, heads=2, ffn_dim=16, encoder_layers=1,
                                 decoder_layers=1, dropout=0.0)
    guide = PredictedFindings(FindingsClassifier(["Cardiomegaly"]), loss_weight=2.0)
    task = ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=[guide], nlg_metrics=False,
                            clinical_efficacy=False).eval()
    labels = torch.full((2, 14), float("nan"))
    labels[:, 2] = torch.tensor([1.0, 0.0])  # Cardiomegaly
    batch = {"ids": ["a", "b"], "images": torch.rand(2, 1, 3, 32, 32), "reports": ["heart", "heart heart"], "labels": labels}
    logged = {}
    monkeypatch.setattr(task, "log", lambda name, value, **kw: logged.__setitem__(name, float(value)))
    total = task.training_step(batch, 0)
    encoded = task.encode(batch)
    decoder_nll = decoder.loss(encoded.memory, batch["reports"])
    findings = 2.0 * guide.head.loss(guide.head(encoded.visual), labels[:, 2:3])
    assert logged["eval/findings_loss"] == pytest.approx(float(findings), abs=1e-6)
    assert float(total) == pytest.approx(float(decoder_nll + findings), abs=1e-6)
